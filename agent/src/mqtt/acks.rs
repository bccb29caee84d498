//! PUBACKs for inbound QoS 1 messages, in the order the messages arrived (MQTT 3.1.1 §4.6),
//! and only on the connection that delivered them.
//!
//! Pure bookkeeping, no I/O: the connection task records every inbound QoS 1 publish
//! ([`AckOrder::receive`]) and hands the consumer an [`Ack`]; when the consumer acknowledges
//! ([`AckOrder::ack`]) the PUBACKs that may go out now are returned: the acknowledged message's
//! and those of later messages acknowledged earlier, never one ahead of an older message.
//!
//! A packet id only means something on the connection it came from: after a connection is
//! lost ([`AckOrder::new_connection`]) every outstanding [`Ack`] is void. The broker redelivers
//! those messages on the resumed session (with new packet ids), and acking an old id there could
//! acknowledge a different message.

use std::collections::VecDeque;

/// The consumer's token for one inbound message: hand it back through
/// [`super::MqttHandle::ack`] once the message is dealt with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "an inbound QoS 1 message stays unacknowledged (and blocks later PUBACKs) until acked"]
pub struct Ack {
    connection: u64,
    /// 0 for QoS 0 (nothing to acknowledge).
    pkid: u16,
}

impl Ack {
    /// Whether acknowledging this message sends anything (QoS 1).
    pub fn needs_puback(&self) -> bool {
        self.pkid != 0
    }
}

/// The order of inbound QoS 1 messages on the current connection.
#[derive(Debug, Default)]
pub struct AckOrder {
    connection: u64,
    /// Packet ids in receive order, with whether the consumer acknowledged them.
    received: VecDeque<(u16, bool)>,
}

impl AckOrder {
    pub fn new() -> AckOrder {
        AckOrder::default()
    }

    /// The connection was lost or replaced: outstanding acks are void.
    pub fn new_connection(&mut self) {
        self.connection = self.connection.wrapping_add(1);
        self.received.clear();
    }

    /// A publish arrived with this packet id (0 for QoS 0).
    pub fn receive(&mut self, pkid: u16) -> Ack {
        if pkid != 0 {
            self.received.push_back((pkid, false));
        }
        Ack {
            connection: self.connection,
            pkid,
        }
    }

    /// The consumer is done with a message: the packet ids to PUBACK now, in order. Empty for a
    /// QoS 0 message, an ack of an earlier connection, or while an older message is still
    /// being dealt with.
    pub fn ack(&mut self, ack: Ack) -> Vec<u16> {
        if ack.pkid == 0 || ack.connection != self.connection {
            return Vec::new();
        }
        if let Some(entry) = self
            .received
            .iter_mut()
            .find(|(pkid, done)| *pkid == ack.pkid && !*done)
        {
            entry.1 = true;
        }
        let mut out = Vec::new();
        while let Some(&(pkid, true)) = self.received.front() {
            out.push(pkid);
            self.received.pop_front();
        }
        out
    }

    /// Messages received on this connection and not yet acknowledged to the broker.
    #[cfg(test)]
    pub fn outstanding(&self) -> usize {
        self.received.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn pubacks_go_out_in_receive_order() {
        let mut o = AckOrder::new();
        let a = o.receive(5);
        let b = o.receive(6);
        let c = o.receive(7);
        assert_eq!(o.ack(c), Vec::<u16>::new());
        assert_eq!(o.ack(a), vec![5]);
        assert_eq!(o.ack(b), vec![6, 7]);
        assert_eq!(o.outstanding(), 0);
    }

    #[test]
    fn acks_of_a_lost_connection_are_void() {
        let mut o = AckOrder::new();
        let a = o.receive(1);
        o.new_connection();
        let b = o.receive(1);
        assert_eq!(o.ack(a), Vec::<u16>::new());
        assert_eq!(o.outstanding(), 1);
        assert_eq!(o.ack(b), vec![1]);
    }

    #[test]
    fn qos0_needs_nothing() {
        let mut o = AckOrder::new();
        let a = o.receive(0);
        assert!(!a.needs_puback());
        assert_eq!(o.outstanding(), 0);
        assert_eq!(o.ack(a), Vec::<u16>::new());
    }

    proptest! {
        /// Whatever order the consumer acknowledges in, every id goes out exactly once and in
        /// receive order.
        #[test]
        fn any_ack_order_gives_receive_order(n in 1usize..40, seed in any::<u64>()) {
            let mut o = AckOrder::new();
            let acks: Vec<Ack> = (1..=n).map(|i| o.receive(u16::try_from(i).unwrap())).collect();
            let mut order: Vec<usize> = (0..n).collect();
            let mut s = seed | 1;
            for i in (1..n).rev() {
                s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                order.swap(i, usize::try_from(s % (i as u64 + 1)).unwrap());
            }
            let mut sent = Vec::new();
            for i in order {
                sent.extend(o.ack(acks[i]));
            }
            let expected: Vec<u16> = (1..=n).map(|i| u16::try_from(i).unwrap()).collect();
            prop_assert_eq!(sent, expected);
        }
    }
}
