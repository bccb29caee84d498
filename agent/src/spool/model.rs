//! The spool against an in-memory model: random sequences of appends, deliveries, dead
//! letters, replays, purges and restarts; after every step each sink's next batch, the dead
//! letters, the cursors and the stored events must be what the model says.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use proptest::prelude::*;
use tallyman_protocol::event::{EventId, Timestamp};

use super::tests::{receipt, scan};
use super::*;

#[derive(Debug, Clone)]
enum Op {
    Append {
        scan: bool,
    },
    /// Read up to 4 events for the sink and acknowledge the first `n` of them.
    Ack {
        sink: usize,
        n: usize,
    },
    /// Read up to 4 events, dead-letter the one at `pos`, acknowledging those before it
    /// first when `ack_prefix`.
    DeadLetter {
        sink: usize,
        pos: usize,
        ack_prefix: bool,
    },
    /// Replay all dead letters (of one sink or all), or the first listed one by id.
    Replay {
        sink: Option<usize>,
        one: bool,
    },
    Purge {
        sink: Option<usize>,
        one: bool,
    },
    Reopen,
}

fn op(sinks: usize) -> impl Strategy<Value = Op> {
    let sink = 0..sinks;
    let some_sink = proptest::option::of(0..sinks);
    prop_oneof![
        4 => any::<bool>().prop_map(|scan| Op::Append { scan }),
        4 => (sink.clone(), 0..5usize).prop_map(|(sink, n)| Op::Ack { sink, n }),
        2 => (sink, 0..4usize, any::<bool>())
            .prop_map(|(sink, pos, ack_prefix)| Op::DeadLetter { sink, pos, ack_prefix }),
        1 => (some_sink.clone(), any::<bool>()).prop_map(|(sink, one)| Op::Replay { sink, one }),
        1 => (some_sink, any::<bool>()).prop_map(|(sink, one)| Op::Purge { sink, one }),
        1 => Just(Op::Reopen),
    ]
}

#[derive(Debug, Default, Clone)]
struct MSink {
    cursor: u64,
    dead: BTreeSet<u64>,
    replay: BTreeSet<u64>,
}

#[derive(Debug, Default)]
struct Model {
    next_seq: u64,
    /// Stored events: seq → id.
    events: BTreeMap<u64, EventId>,
    /// Every event ever accepted: seq → id.
    appended: BTreeMap<u64, EventId>,
    sinks: Vec<MSink>,
}

impl Model {
    /// What `next_batch` must give: replays first, then stored events after the cursor.
    fn batch(&self, sink: usize, max: usize) -> Vec<(u64, bool)> {
        let s = &self.sinks[sink];
        let mut out: Vec<(u64, bool)> = s.replay.iter().take(max).map(|q| (*q, true)).collect();
        let room = max - out.len();
        out.extend(
            self.events
                .range(s.cursor + 1..)
                .map(|(q, _)| *q)
                .take(room)
                .map(|q| (q, false)),
        );
        out
    }

    fn held(&self, seq: u64) -> bool {
        self.sinks
            .iter()
            .any(|s| s.dead.contains(&seq) || s.replay.contains(&seq))
    }

    /// What garbage collection may remove: done for every sink, held by none.
    fn collectable(&self) -> BTreeSet<u64> {
        let wm = self.sinks.iter().map(|s| s.cursor).min().unwrap_or(0);
        self.events
            .range(..=wm)
            .map(|(q, _)| *q)
            .filter(|q| !self.held(*q))
            .collect()
    }

    fn deliver(&mut self, sink: usize, acked: &[(u64, bool)]) {
        let s = &mut self.sinks[sink];
        for &(seq, replay) in acked {
            if replay {
                s.replay.remove(&seq);
            } else {
                s.cursor = s.cursor.max(seq);
            }
        }
    }
}

fn name(i: usize) -> String {
    format!("sink{i}")
}

fn info() -> DeadLetterInfo {
    let t = Timestamp::from_unix_millis(1_800_000_000_000).unwrap();
    DeadLetterInfo {
        reason: "refused".into(),
        attempts: 1,
        last_error: None,
        first_attempt_at: t,
        last_attempt_at: t,
    }
}

struct Harness {
    rt: tokio::runtime::Runtime,
    options: SpoolOptions,
    spool: Option<Spool>,
    /// One event per block: garbage collection is then exact per event.
    exact: bool,
}

impl Harness {
    fn spool(&self) -> &Spool {
        self.spool.as_ref().unwrap()
    }

    fn reopen(&mut self) {
        if let Some(s) = self.spool.take() {
            self.rt.block_on(s.close()).unwrap();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let (spool, check) = loop {
            match Spool::open(self.options.clone()) {
                Err(SpoolError::Locked { .. }) if std::time::Instant::now() < deadline => {
                    std::thread::yield_now();
                }
                other => break other.unwrap(),
            }
        };
        assert_eq!(check.problems, vec![]);
        self.spool = Some(spool);
    }

    fn batch(&self, sink: usize, max: usize) -> Vec<Stored> {
        self.spool().next_batch(&name(sink), max).unwrap()
    }

    /// The first dead-letter entry of the listing (of one sink or all), in the spool's order.
    fn first_listed(&self, sink: Option<usize>, replaying: Option<bool>) -> Option<DeadLetter> {
        let n = sink.map(name);
        self.spool()
            .dlq_list(n.as_deref())
            .unwrap()
            .into_iter()
            .find(|d| replaying.is_none_or(|r| d.replaying == r))
    }

    fn step(&mut self, m: &mut Model, op: &Op) {
        match *op {
            Op::Append { scan: is_scan } => {
                let ev = if is_scan { scan() } else { receipt() };
                let id = ev.id();
                let a = self.rt.block_on(self.spool().append(ev)).unwrap();
                assert_eq!(a.seq, m.next_seq);
                m.events.insert(a.seq, id);
                m.appended.insert(a.seq, id);
                m.next_seq += 1;
            }
            Op::Ack { sink, n } => {
                let batch = self.batch(sink, 4);
                let acked: Vec<(u64, bool)> =
                    batch.iter().take(n).map(|s| (s.seq, s.replay)).collect();
                if acked.is_empty() {
                    return;
                }
                let seqs: Vec<u64> = acked.iter().map(|a| a.0).collect();
                self.spool().delivered(&name(sink), &seqs).unwrap();
                m.deliver(sink, &acked);
            }
            Op::DeadLetter {
                sink,
                pos,
                ack_prefix,
            } => {
                let batch = self.batch(sink, 4);
                if batch.is_empty() {
                    return;
                }
                let p = pos % batch.len();
                if ack_prefix && p > 0 {
                    let prefix: Vec<(u64, bool)> =
                        batch.iter().take(p).map(|s| (s.seq, s.replay)).collect();
                    let seqs: Vec<u64> = prefix.iter().map(|a| a.0).collect();
                    self.spool().delivered(&name(sink), &seqs).unwrap();
                    m.deliver(sink, &prefix);
                }
                let target = &batch[p];
                let result = self.spool().dead_letter(&name(sink), target.seq, info());
                let s = &mut m.sinks[sink];
                let next = m.events.range(s.cursor + 1..).next().map(|(q, _)| *q);
                if !target.replay && next != Some(target.seq) {
                    // Events before it are not acknowledged: refused, nothing changes.
                    let err = result.unwrap_err();
                    assert!(
                        matches!(err, SpoolError::NotNext { next: n, .. } if Some(n) == next),
                        "{err}"
                    );
                    return;
                }
                result.unwrap();
                if target.replay {
                    s.replay.remove(&target.seq);
                } else {
                    s.cursor = target.seq;
                }
                s.dead.insert(target.seq);
            }
            Op::Replay { sink, one } => {
                let which = if one {
                    match self.first_listed(sink, Some(false)) {
                        Some(d) => Selection::Ids(vec![d.event_id]),
                        None => return,
                    }
                } else {
                    Selection::All
                };
                let n = sink.map(name);
                let count = self.spool().dlq_replay(n.as_deref(), &which).unwrap();
                let mut expected = 0;
                for (i, s) in m.sinks.iter_mut().enumerate() {
                    if sink.is_some_and(|x| x != i) {
                        continue;
                    }
                    let chosen: Vec<u64> = s
                        .dead
                        .iter()
                        .copied()
                        .filter(|q| match &which {
                            Selection::All => true,
                            Selection::Ids(ids) => ids.contains(&m.appended[q]),
                        })
                        .collect();
                    for q in chosen {
                        s.dead.remove(&q);
                        s.replay.insert(q);
                        expected += 1;
                    }
                }
                assert_eq!(count, expected);
            }
            Op::Purge { sink, one } => {
                let which = if one {
                    match self.first_listed(sink, None) {
                        Some(d) => Selection::Ids(vec![d.event_id]),
                        None => return,
                    }
                } else {
                    Selection::All
                };
                let n = sink.map(name);
                let count = self
                    .spool()
                    .purge_dead_letters(n.as_deref(), &which)
                    .unwrap();
                let mut expected = 0;
                for (i, s) in m.sinks.iter_mut().enumerate() {
                    if sink.is_some_and(|x| x != i) {
                        continue;
                    }
                    let pick = |q: &u64| match &which {
                        Selection::All => true,
                        Selection::Ids(ids) => ids.contains(&m.appended[q]),
                    };
                    let before = s.dead.len() + s.replay.len();
                    s.dead.retain(|q| !pick(q));
                    s.replay.retain(|q| !pick(q));
                    expected += before - s.dead.len() - s.replay.len();
                }
                assert_eq!(count, expected);
            }
            Op::Reopen => self.reopen(),
        }
    }

    fn check(&self, m: &mut Model) {
        self.rt.block_on(self.spool().settle()).unwrap();
        let listed: BTreeSet<u64> = self
            .spool()
            .list(0, usize::MAX)
            .unwrap()
            .iter()
            .map(|s| {
                assert_eq!(Some(&s.event.id()), m.appended.get(&s.seq));
                s.seq
            })
            .collect();
        let collectable = m.collectable();
        let must_keep: BTreeSet<u64> = m
            .events
            .keys()
            .copied()
            .filter(|q| !collectable.contains(q))
            .collect();
        if self.exact {
            assert_eq!(listed, must_keep, "stored events");
        } else {
            // Blocks go as a whole: a block with one event still needed keeps the others.
            assert!(must_keep.is_subset(&listed), "{must_keep:?} ⊄ {listed:?}");
            assert!(listed.iter().all(|q| m.events.contains_key(q)));
        }
        // What the spool removed is gone from the model too.
        m.events.retain(|q, _| listed.contains(q));
        let stats = self.spool().stats();
        assert_eq!(stats.events_stored, listed.len() as u64);
        assert_eq!(stats.last_seq, m.next_seq - 1);
        for (i, s) in m.sinks.iter().enumerate() {
            let got: Vec<(u64, bool)> = self
                .batch(i, 1000)
                .iter()
                .map(|s| (s.seq, s.replay))
                .collect();
            assert_eq!(got, m.batch(i, 1000), "batch of sink {i}");
            let st = stats.sinks.iter().find(|x| x.name == name(i)).unwrap();
            assert_eq!(st.cursor, s.cursor, "cursor of sink {i}");
        }
        let dlq: BTreeSet<(String, u64, bool)> = self
            .spool()
            .dlq_list(None)
            .unwrap()
            .into_iter()
            .map(|d| {
                assert_eq!(Some(&d.event_id), m.appended.get(&d.seq));
                (d.sink, d.seq, d.replaying)
            })
            .collect();
        let want: BTreeSet<(String, u64, bool)> = m
            .sinks
            .iter()
            .enumerate()
            .flat_map(|(i, s)| {
                s.dead
                    .iter()
                    .map(move |q| (name(i), *q, false))
                    .chain(s.replay.iter().map(move |q| (name(i), *q, true)))
            })
            .collect();
        assert_eq!(dlq, want, "dead letters");
    }
}

fn run(sinks: usize, block_target: usize, ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let mut options = SpoolOptions::new(dir.path().join("spool"), (0..sinks).map(name).collect());
    options.commit_window = Duration::ZERO;
    options.block_target_bytes = block_target;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut h = Harness {
        rt,
        options,
        spool: None,
        exact: block_target == 1,
    };
    h.reopen();
    let mut m = Model {
        next_seq: 1,
        sinks: vec![MSink::default(); sinks],
        ..Model::default()
    };
    for op in &ops {
        h.step(&mut m, op);
        h.check(&mut m);
    }
    if let Some(s) = h.spool.take() {
        h.rt.block_on(s.close()).unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn spool_agrees_with_the_model(
        sinks in 1..=3usize,
        block_target in prop_oneof![Just(1usize), Just(400), Just(DEFAULT_BLOCK_TARGET)],
        ops in proptest::collection::vec(op(3), 1..48),
    ) {
        // The ops are drawn for three sinks: fold them onto the sinks there are.
        let ops = ops
            .into_iter()
            .map(|op| match op {
                Op::Ack { sink, n } => Op::Ack { sink: sink % sinks, n },
                Op::DeadLetter { sink, pos, ack_prefix } => {
                    Op::DeadLetter { sink: sink % sinks, pos, ack_prefix }
                }
                Op::Replay { sink, one } => Op::Replay { sink: sink.map(|s| s % sinks), one },
                Op::Purge { sink, one } => Op::Purge { sink: sink.map(|s| s % sinks), one },
                other => other,
            })
            .collect();
        run(sinks, block_target, ops);
    }
}
