//! Inbound messages to their consumers: the connection has one inbound queue; the mqtt source
//! takes `in/events` and `in/scans`, the fleet commands task `cmd/+`, and so on. Each consumer
//! gets a [`Route`]: the filters it subscribes to and its own bounded queue.
//!
//! * A message goes to the first route with a filter that matches its topic. A message no
//!   route takes (a subscription left over in a persistent session) is acknowledged and
//!   dropped.
//! * The router waits while a consumer's queue is full (back-pressure: the broker's in-flight
//!   window then holds further messages). Consumers should take messages promptly.
//! * A consumer that has stopped (its receiver dropped) leaves its messages unacknowledged:
//!   the broker delivers them again after a reconnect.
//! * The router ends when the connection's inbound queue closes; the consumers' queues close
//!   with it.

use tallyman_protocol::topic::Filter;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::debug;

use super::{INBOUND_QUEUE, Inbound, MqttHandle};

/// One consumer: what it subscribes to and where its messages go.
#[derive(Debug)]
pub struct Route {
    pub filters: Vec<Filter>,
    to: mpsc::Sender<Inbound>,
}

impl Route {
    /// A route for `filters` and the receiving end of its queue.
    pub fn new(filters: Vec<Filter>) -> (Route, mpsc::Receiver<Inbound>) {
        let (to, rx) = mpsc::channel(INBOUND_QUEUE);
        (Route { filters, to }, rx)
    }
}

/// Every filter of `routes`: the connection's subscriptions.
pub fn subscriptions(routes: &[Route]) -> Vec<Filter> {
    let mut all: Vec<Filter> = Vec::new();
    for f in routes.iter().flat_map(|r| r.filters.iter()) {
        if !all.contains(f) {
            all.push(f.clone());
        }
    }
    all
}

/// Start routing `inbound` to `routes`.
pub fn spawn(
    mut inbound: mpsc::Receiver<Inbound>,
    mqtt: MqttHandle,
    routes: Vec<Route>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(m) = inbound.recv().await {
            let route = routes
                .iter()
                .find(|r| r.filters.iter().any(|f| f.matches(&m.topic)));
            match route {
                Some(r) => {
                    if let Err(e) = r.to.send(m).await {
                        debug!(topic = %e.0.topic, "The consumer of this topic has stopped; the message is left to the broker.");
                    }
                }
                None => {
                    debug!(topic = %m.topic, "No consumer for an inbound message; acknowledged and dropped.");
                    mqtt.ack(m.ack).await;
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use tallyman_protocol::event::{FacilityId, GatewayId};
    use tallyman_protocol::topic::{CommandName, Target, Topic};

    use super::super::acks::AckOrder;
    use super::super::{Command, MqttHandle};
    use super::*;

    fn ids() -> (FacilityId, GatewayId) {
        (
            FacilityId::new("north").unwrap(),
            GatewayId::new("gw-1").unwrap(),
        )
    }

    #[tokio::test]
    async fn each_message_goes_to_the_route_of_its_topic_and_others_are_acknowledged() {
        let (f, g) = ids();
        let (source, mut source_rx) = Route::new(vec![Filter::InEvents {
            facility: f.clone(),
            gateway: g.clone(),
        }]);
        let (commands, mut commands_rx) = Route::new(vec![
            Filter::Cmd {
                facility: f.clone(),
                target: Target::Gateway(g.clone()),
            },
            Filter::Cmd {
                facility: f.clone(),
                target: Target::All,
            },
        ]);
        let routes = vec![source, commands];
        assert_eq!(subscriptions(&routes).len(), 3);
        let (tx, mut handle_rx) = mpsc::channel(8);
        let (inbound_tx, inbound) = mpsc::channel(8);
        let task = spawn(inbound, MqttHandle { commands: tx }, routes);
        let mut acks = AckOrder::new();
        let mut send = |topic: Topic| {
            let ack = acks.receive(7);
            let inbound_tx = inbound_tx.clone();
            async move {
                inbound_tx
                    .send(Inbound {
                        topic,
                        payload: Vec::new(),
                        redelivered: false,
                        ack,
                    })
                    .await
                    .unwrap();
            }
        };
        send(Topic::InEvents {
            facility: f.clone(),
            gateway: g.clone(),
        })
        .await;
        send(Topic::Cmd {
            facility: f.clone(),
            target: Target::All,
            name: CommandName::new("status").unwrap(),
        })
        .await;
        send(Topic::ConfigSet {
            facility: f.clone(),
            target: Target::All,
        })
        .await;
        assert!(matches!(
            source_rx.recv().await.unwrap().topic,
            Topic::InEvents { .. }
        ));
        assert!(matches!(
            commands_rx.recv().await.unwrap().topic,
            Topic::Cmd { .. }
        ));
        // No route for config/set: acknowledged by the router.
        assert!(matches!(handle_rx.recv().await, Some(Command::Ack(_))));
        drop(inbound_tx);
        task.await.unwrap();
        assert!(source_rx.recv().await.is_none());
        assert!(commands_rx.recv().await.is_none());
    }
}
