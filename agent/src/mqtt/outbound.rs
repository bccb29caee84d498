//! Which of the agent's QoS 1 publishes a PUBACK acknowledges (stack.md §3).
//!
//! rumqttc does not hand back the packet id of a publish: `try_publish` only queues a request
//! in its channel; the event loop assigns the packet id when it takes the request and reports
//! `Outgoing::Publish(pkid)`; the broker's answer is `Incoming::PubAck(pkid)`; packet ids are
//! recycled round-robin in `1..=inflight`. This module is the bookkeeping that ties them
//! together, pure (no I/O, no clock), driven by the connection task in the order rumqttc reports
//! things:
//!
//! * [`Outbound::push`] — a QoS 1 publish went into rumqttc's channel (`try_publish` returned
//!   `Ok`). The channel is a FIFO and only the connection task pushes into it, so the queue
//!   here is in the order rumqttc will take the requests.
//! * [`Outbound::outgoing`] — `Outgoing::Publish(pkid)`: the oldest queued publish went out with
//!   `pkid`; unless `pkid` is already mapped (a retransmission of that publish) or belongs to the
//!   publish rumqttc parked on a collision (now sent).
//! * [`Outbound::await_ack`] — `Outgoing::AwaitAck(pkid)`: rumqttc took the oldest queued
//!   publish, found `pkid` still in flight (the broker acknowledged out of order) and parked it
//!   until that id is acknowledged. rumqttc keeps one parked publish; a second collision
//!   replaces the first, which is then lost and returned as such.
//! * [`Outbound::puback`] — `Incoming::PubAck(pkid)`: the publish sent with `pkid` is
//!   acknowledged; returned, and the id is free for recycling.
//! * [`Outbound::connection_lost`] — rumqttc moved everything it held (in flight, parked, still
//!   in its channel) into its `pending` list; the connection task removes the publishes from
//!   there (see `connection.rs`), so all of them are lost here, in the order they were pushed.
//! * [`Outbound::connack`] — a CONNACK without a session means the broker dropped whatever was
//!   in flight: anything still mapped is lost. (After [`Outbound::connection_lost`] nothing is.)
//!
//! The contract: a value comes back from [`Outbound::puback`] only for the PUBACK of the very
//! publish it was pushed with; every pushed value comes back exactly once (acknowledged or
//! lost) unless the connection is still working on it. A report that contradicts the
//! bookkeeping (a publish going out with nothing queued) is an [`OutOfStep`] error: the caller
//! must then give up on everything (rebuild the client) rather than guess.

use std::collections::{HashMap, VecDeque};

/// rumqttc reported something the bookkeeping cannot explain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OutOfStep {
    #[error("a publish went out with packet id {0}, but none was queued")]
    NothingQueued(u16),
}

/// The agent's QoS 1 publishes between `try_publish` and their PUBACK.
#[derive(Debug)]
pub struct Outbound<T> {
    /// In rumqttc's channel, not yet taken: in push order.
    queued: VecDeque<T>,
    /// Sent, awaiting the PUBACK: packet id → (push order, value).
    sent: HashMap<u16, (u64, T)>,
    /// Parked by rumqttc on a packet-id collision: sent once that id is acknowledged.
    parked: Option<(u16, u64, T)>,
    /// Push order of the front of `queued`.
    front: u64,
}

impl<T> Default for Outbound<T> {
    fn default() -> Self {
        Outbound {
            queued: VecDeque::new(),
            sent: HashMap::new(),
            parked: None,
            front: 0,
        }
    }
}

impl<T> Outbound<T> {
    pub fn new() -> Outbound<T> {
        Outbound::default()
    }

    /// Publishes not acknowledged yet (queued, parked or sent).
    pub fn len(&self) -> usize {
        self.queued.len() + self.sent.len() + usize::from(self.parked.is_some())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A QoS 1 publish entered rumqttc's channel.
    pub fn push(&mut self, value: T) {
        self.queued.push_back(value);
    }

    fn pop_queued(&mut self) -> Option<(u64, T)> {
        let value = self.queued.pop_front()?;
        let order = self.front;
        self.front = self.front.wrapping_add(1);
        Some((order, value))
    }

    /// `Outgoing::Publish(pkid)`. Packet id 0 is a QoS 0 publish, which is not tracked.
    pub fn outgoing(&mut self, pkid: u16) -> Result<(), OutOfStep> {
        if pkid == 0 || self.sent.contains_key(&pkid) {
            // QoS 0, or a retransmission of the publish already mapped to this id.
            return Ok(());
        }
        if let Some((parked_id, order, value)) = self.parked.take() {
            if parked_id == pkid {
                self.sent.insert(pkid, (order, value));
                return Ok(());
            }
            self.parked = Some((parked_id, order, value));
        }
        let (order, value) = self.pop_queued().ok_or(OutOfStep::NothingQueued(pkid))?;
        self.sent.insert(pkid, (order, value));
        Ok(())
    }

    /// `Outgoing::AwaitAck(pkid)`: the oldest queued publish is parked until `pkid` is
    /// acknowledged. Returns a publish rumqttc dropped by parking this one in its place.
    pub fn await_ack(&mut self, pkid: u16) -> Result<Option<T>, OutOfStep> {
        let (order, value) = self.pop_queued().ok_or(OutOfStep::NothingQueued(pkid))?;
        Ok(self
            .parked
            .replace((pkid, order, value))
            .map(|(_, _, lost)| lost))
    }

    /// `Incoming::PubAck(pkid)`: the publish it acknowledges, if one was sent with that id.
    pub fn puback(&mut self, pkid: u16) -> Option<T> {
        self.sent.remove(&pkid).map(|(_, value)| value)
    }

    /// The connection was lost (or the client is rebuilt) and rumqttc no longer holds any
    /// publish: every one is lost, oldest first.
    pub fn connection_lost(&mut self) -> Vec<T> {
        let mut lost = self.take_sent();
        lost.extend(self.queued.drain(..));
        self.front = 0;
        lost
    }

    /// A CONNACK. Without a session the broker forgot what was in flight: what is still sent
    /// or parked is lost, oldest first. What is queued in rumqttc's channel goes out next.
    pub fn connack(&mut self, session_present: bool) -> Vec<T> {
        if session_present {
            Vec::new()
        } else {
            self.take_sent()
        }
    }

    /// Sent and parked publishes, in push order.
    fn take_sent(&mut self) -> Vec<T> {
        let mut held: Vec<(u64, T)> = self.sent.drain().map(|(_, v)| v).collect();
        if let Some((_, order, value)) = self.parked.take() {
            held.push((order, value));
        }
        held.sort_by_key(|(order, _)| *order);
        held.into_iter().map(|(_, v)| v).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn acks_in_order_resolve_in_order() {
        let mut o = Outbound::new();
        for v in ["a", "b", "c"] {
            o.push(v);
        }
        for pkid in 1..=3 {
            o.outgoing(pkid).unwrap();
        }
        assert_eq!(o.puback(1), Some("a"));
        assert_eq!(o.puback(2), Some("b"));
        assert_eq!(o.puback(3), Some("c"));
        assert!(o.is_empty());
    }

    #[test]
    fn acks_out_of_order_resolve_the_publish_of_that_id() {
        let mut o = Outbound::new();
        for v in ["a", "b", "c"] {
            o.push(v);
        }
        for pkid in [1, 2, 3] {
            o.outgoing(pkid).unwrap();
        }
        assert_eq!(o.puback(3), Some("c"));
        assert_eq!(o.puback(1), Some("a"));
        assert_eq!(o.len(), 1);
        assert_eq!(o.puback(2), Some("b"));
    }

    #[test]
    fn a_retransmission_does_not_take_the_next_queued_publish() {
        let mut o = Outbound::new();
        o.push("a");
        o.push("b");
        o.outgoing(1).unwrap();
        // The same id again (a resumed session): still `a`; `b` stays queued.
        o.outgoing(1).unwrap();
        assert_eq!(o.len(), 2);
        o.outgoing(2).unwrap();
        assert_eq!(o.puback(2), Some("b"));
        assert_eq!(o.puback(1), Some("a"));
    }

    #[test]
    fn recycled_ids_map_to_the_new_publish() {
        let mut o = Outbound::new();
        o.push("a");
        o.outgoing(1).unwrap();
        assert_eq!(o.puback(1), Some("a"));
        o.push("b");
        o.outgoing(1).unwrap();
        assert_eq!(o.puback(1), Some("b"));
        assert_eq!(
            o.puback(1),
            None,
            "a second PUBACK of the id resolves nothing"
        );
    }

    #[test]
    fn a_parked_publish_is_sent_with_its_id_after_the_ack() {
        let mut o = Outbound::new();
        o.push("a");
        o.push("b");
        o.push("c");
        o.outgoing(1).unwrap();
        o.outgoing(2).unwrap();
        // inflight 2: `c` gets id 1 again, still in flight: parked.
        assert_eq!(o.await_ack(1).unwrap(), None);
        assert_eq!(o.puback(2), Some("b"));
        assert_eq!(o.puback(1), Some("a"));
        o.outgoing(1).unwrap();
        assert_eq!(o.puback(1), Some("c"));
        assert!(o.is_empty());
    }

    #[test]
    fn a_second_collision_loses_the_first_parked_publish() {
        let mut o = Outbound::new();
        for v in ["a", "b", "c"] {
            o.push(v);
        }
        o.outgoing(1).unwrap();
        assert_eq!(o.await_ack(1).unwrap(), None);
        assert_eq!(o.await_ack(1).unwrap(), Some("b"));
        assert_eq!(o.connection_lost(), vec!["a", "c"]);
    }

    #[test]
    fn session_loss_fails_what_was_sent_and_keeps_the_queue() {
        let mut o = Outbound::new();
        for v in ["a", "b", "c", "d"] {
            o.push(v);
        }
        o.outgoing(2).unwrap();
        o.outgoing(1).unwrap();
        assert_eq!(o.connack(true), Vec::<&str>::new());
        assert_eq!(o.connack(false), vec!["a", "b"]);
        assert_eq!(o.len(), 2);
        // The queue goes out next, ids may be anything.
        o.outgoing(2).unwrap();
        assert_eq!(o.puback(2), Some("c"));
        assert_eq!(o.connection_lost(), vec!["d"]);
        assert!(o.is_empty());
    }

    #[test]
    fn nothing_queued_is_out_of_step() {
        let mut o: Outbound<&str> = Outbound::new();
        assert_eq!(o.outgoing(5), Err(OutOfStep::NothingQueued(5)));
        assert_eq!(o.await_ack(5), Err(OutOfStep::NothingQueued(5)));
        assert_eq!(o.outgoing(0), Ok(()), "QoS 0 is not tracked");
    }

    // --- A model of rumqttc 0.25.1's outgoing side (state.rs, eventloop.rs) -----------------
    //
    // Packet ids round-robin in 1..=inflight (`next_pkid`); a request is taken from the channel
    // only while fewer than `inflight` are in flight and nothing is parked; a taken publish
    // whose id is still in flight is parked (`AwaitAck`) and sent when that id is acked; the
    // broker acks in any order; events are buffered and may still be undelivered when the
    // connection fails (they are handed over before the loss is handled, as the connection
    // task does); a loss moves everything into `pending`, which the connection task empties of
    // publishes; a rebuilt client starts its ids again at 1.

    #[derive(Debug, Clone)]
    enum Op {
        Push,
        Take,
        Ack(usize),
        Deliver(usize),
        Lose,
        Reconnect(bool),
        Rebuild,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => Just(Op::Push),
            6 => Just(Op::Take),
            6 => any::<usize>().prop_map(Op::Ack),
            6 => any::<usize>().prop_map(Op::Deliver),
            1 => Just(Op::Lose),
            1 => any::<bool>().prop_map(Op::Reconnect),
            1 => Just(Op::Rebuild),
        ]
    }

    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Ev {
        Publish(u16),
        AwaitAck(u16),
        /// The PUBACK, with the publish the broker really acknowledged (the model knows).
        PubAck(u16, u32),
    }

    #[derive(Debug)]
    struct Rumqttc {
        inflight_max: u16,
        last_pkid: u16,
        slots: Vec<Option<u32>>,
        collision: Option<(u16, u32)>,
        channel: VecDeque<u32>,
        events: VecDeque<Ev>,
        connected: bool,
    }

    impl Rumqttc {
        fn new(inflight_max: u16) -> Rumqttc {
            Rumqttc {
                inflight_max,
                last_pkid: 0,
                slots: vec![None; usize::from(inflight_max) + 1],
                collision: None,
                channel: VecDeque::new(),
                events: VecDeque::new(),
                connected: true,
            }
        }

        fn inflight(&self) -> usize {
            self.slots.iter().filter(|s| s.is_some()).count()
        }

        fn next_pkid(&mut self) -> u16 {
            let next = self.last_pkid + 1;
            if next == self.inflight_max {
                self.last_pkid = 0;
            } else {
                self.last_pkid = next;
            }
            next
        }

        fn take(&mut self) {
            if !self.connected
                || self.collision.is_some()
                || self.inflight() >= usize::from(self.inflight_max)
            {
                return;
            }
            let Some(id) = self.channel.pop_front() else {
                return;
            };
            let pkid = self.next_pkid();
            if self.slots[usize::from(pkid)].is_some() {
                self.collision = Some((pkid, id));
                self.events.push_back(Ev::AwaitAck(pkid));
            } else {
                self.slots[usize::from(pkid)] = Some(id);
                self.events.push_back(Ev::Publish(pkid));
            }
        }

        fn ack(&mut self, pick: usize) {
            let in_flight: Vec<u16> = (1..=self.inflight_max)
                .filter(|p| self.slots[usize::from(*p)].is_some())
                .collect();
            if !self.connected || in_flight.is_empty() {
                return;
            }
            let pkid = in_flight[pick % in_flight.len()];
            let id = self.slots[usize::from(pkid)].take().unwrap();
            self.events.push_back(Ev::PubAck(pkid, id));
            if self.collision.is_some_and(|(p, _)| p == pkid) {
                let (_, parked) = self.collision.take().unwrap();
                self.slots[usize::from(pkid)] = Some(parked);
                self.events.push_back(Ev::Publish(pkid));
            }
        }

        /// What the connection task removes from `pending` after a loss.
        fn lose(&mut self) -> Vec<u32> {
            let mut held: Vec<u32> = self.slots.iter_mut().filter_map(Option::take).collect();
            held.extend(self.collision.take().map(|(_, id)| id));
            held.extend(self.channel.drain(..));
            self.connected = false;
            held
        }
    }

    /// Feed one event to the bookkeeping; check a PUBACK resolves the publish it acknowledges.
    fn feed(o: &mut Outbound<u32>, ev: Ev, acked: &mut Vec<u32>, lost: &mut Vec<u32>) {
        match ev {
            Ev::Publish(pkid) => o.outgoing(pkid).unwrap(),
            Ev::AwaitAck(pkid) => lost.extend(o.await_ack(pkid).unwrap()),
            Ev::PubAck(pkid, id) => {
                assert_eq!(
                    o.puback(pkid),
                    Some(id),
                    "PUBACK of {pkid} resolves publish {id}"
                );
                acked.push(id);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Random pushes, takes, out-of-order acks, late event delivery, losses, reconnects
        /// with and without a session, rebuilds: every PUBACK resolves exactly the publish the
        /// broker acknowledged, and every publish is resolved once.
        #[test]
        fn every_puback_resolves_its_own_publish(
            inflight in 1u16..6,
            ops in proptest::collection::vec(op(), 1..300),
        ) {
            let mut r = Rumqttc::new(inflight);
            let mut o: Outbound<u32> = Outbound::new();
            let (mut acked, mut lost) = (Vec::new(), Vec::new());
            let mut next_id = 0u32;
            for op in ops {
                match op {
                    Op::Push => {
                        r.channel.push_back(next_id);
                        o.push(next_id);
                        next_id += 1;
                    }
                    Op::Take => r.take(),
                    Op::Ack(pick) => r.ack(pick),
                    Op::Deliver(n) => {
                        for _ in 0..=(n % 4) {
                            if let Some(ev) = r.events.pop_front() {
                                feed(&mut o, ev, &mut acked, &mut lost);
                            }
                        }
                    }
                    Op::Lose | Op::Rebuild => {
                        // Events buffered before the loss are handed over first.
                        while let Some(ev) = r.events.pop_front() {
                            feed(&mut o, ev, &mut acked, &mut lost);
                        }
                        let mut held = r.lose();
                        let mut gone = o.connection_lost();
                        held.sort_unstable();
                        gone.sort_unstable();
                        prop_assert_eq!(&held, &gone);
                        lost.extend(gone);
                        if matches!(op, Op::Rebuild) {
                            r = Rumqttc::new(inflight);
                        }
                    }
                    Op::Reconnect(session) => {
                        if !r.connected {
                            r.connected = true;
                            prop_assert!(o.connack(session).is_empty());
                        }
                    }
                }
                // Not yet resolved: what rumqttc holds, and publishes whose PUBACK event has
                // not been handed over yet.
                let unseen_acks = r.events.iter().filter(|e| matches!(e, Ev::PubAck(..))).count();
                prop_assert_eq!(
                    o.len(),
                    r.inflight() + r.channel.len() + usize::from(r.collision.is_some()) + unseen_acks
                );
            }
            let mut all: Vec<u32> = acked.iter().chain(&lost).copied().collect();
            all.sort_unstable();
            all.dedup();
            prop_assert_eq!(all.len(), acked.len() + lost.len(), "resolved once each");
            prop_assert_eq!(all.len() + o.len(), next_id as usize, "none forgotten");
        }
    }
}
