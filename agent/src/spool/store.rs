//! The shared half of the spool: sled handles, the in-memory state, and every operation that
//! runs on the caller's thread (reads, cursor moves, dead letters). Blocks are written only by
//! the committer (`writer.rs`).
//!
//! Locking: `state` guards cursors, dead-letter sets, the held set and the counters. A change
//! to cursors or dead letters updates memory and writes sled under the lock, so what sled holds
//! never runs ahead of or behind memory in a way another thread could observe; syncs happen
//! after the lock is released. sled iterators are only ever used for a bounded number of
//! items and dropped (a long-lived sled 0.34 iterator keeps every page it visited in memory).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use sled::IVec;
use tallyman_protocol::event::{Event, EventId, Kind, Timestamp};
use tallyman_protocol::wire;
use tokio::sync::{Notify, watch};
use tracing::warn;

use super::crypto::Cipher;
use super::durable::DiskSync;
use super::format::{self, Counters, DeadRecord, RawRecord};
use super::{
    DeadLetter, DeadLetterInfo, Quarantined, RawScansWhenFull, Selection, SinkStats, SpoolError,
    Stats, Stored,
};

/// How many blocks a bounded sled iterator takes at once.
pub const SCAN_CHUNK: usize = 16;

/// One sink's position and dead letters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkState {
    pub configured: bool,
    pub cursor: u64,
    /// Seqs dead-lettered for this sink (not being replayed).
    pub dead: BTreeSet<u64>,
    /// Seqs handed back for replay.
    pub replay: BTreeSet<u64>,
}

#[derive(Debug, Default)]
pub struct State {
    pub counters: Counters,
    pub sinks: BTreeMap<String, SinkState>,
    /// Seq → how many dead-letter or replay entries (of any sink) hold it.
    pub held: BTreeMap<u64, u32>,
}

impl State {
    pub fn hold(&mut self, seq: u64) {
        *self.held.entry(seq).or_insert(0) += 1;
    }

    /// Returns true if nothing holds `seq` any more.
    pub fn release(&mut self, seq: u64) -> bool {
        match self.held.get_mut(&seq) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => {
                self.held.remove(&seq);
                true
            }
            None => true,
        }
    }

    /// The lowest cursor of the configured sinks: every event up to it is done for all of
    /// them. None without configured sinks (then nothing may be collected).
    pub fn watermark(&self) -> Option<u64> {
        self.sinks
            .values()
            .filter(|s| s.configured)
            .map(|s| s.cursor)
            .min()
    }

    pub fn sink_stats(&self) -> Vec<SinkStats> {
        let last = self.counters.next_seq.saturating_sub(1);
        self.sinks
            .iter()
            .map(|(name, s)| SinkStats {
                name: name.clone(),
                configured: s.configured,
                cursor: s.cursor,
                backlog: last.saturating_sub(s.cursor).min(self.counters.events),
                dead_letters: s.dead.len() as u64,
                replaying: s.replay.len() as u64,
            })
            .collect()
    }
}

/// Everything the spool's clones and its committer share.
#[derive(Debug)]
pub struct Inner {
    pub path: PathBuf,
    pub db: sled::Db,
    pub tree: sled::Tree,
    pub cipher: Option<Cipher>,
    pub disk: DiskSync,
    pub max_bytes: u64,
    pub raw_scans_when_full: RawScansWhenFull,
    /// How many of the last seqs the recent-id index covers.
    pub recent_ids: u64,
    pub state: Mutex<State>,
    /// Every seq up to this one is durable (or was never accepted).
    pub durable_seq: AtomicU64,
    pub changes: watch::Sender<u64>,
    pub failure: Mutex<Option<String>>,
    pub full: AtomicBool,
    pub closed: AtomicBool,
    pub on_disk: AtomicU64,
    /// Wakes the committer to collect garbage (cursors moved, holds released) or to
    /// quarantine suspects.
    pub gc_wake: Notify,
    /// Seqs (of records or blocks) a reader could not decode: the committer checks them again
    /// and quarantines what is damaged, before it collects any garbage.
    pub suspects: Mutex<BTreeSet<u64>>,
    /// A hold was released: garbage collection must look at the oldest blocks again.
    pub rewind_gc: AtomicBool,
    /// Group commits since the spool was opened (each one flush and fdatasync).
    pub commits: AtomicU64,
    /// Set with every `gc_wake` notification, so `settle` can tell whether more work came.
    pub gc_wake_flag: AtomicBool,
}

/// What reading one record gave: the event, or why the record is damaged.
pub type Decoded = Result<Event, String>;

impl Inner {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-changed in a way that
        // matters more than stopping would: keep going with it.
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    pub fn failure(&self) -> Option<String> {
        match self.failure.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    pub fn fail(&self, why: String) {
        let mut g = match self.failure.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if g.is_none() {
            tracing::error!(error = %why, "Spool storage failed; refusing new events until restart.");
            *g = Some(why);
        }
    }

    /// Ask the committer to quarantine what is at `seq` (it checks again before it moves
    /// anything, and before any garbage collection could remove it).
    pub fn report_bad(&self, seq: u64) {
        let mut s = match self.suspects.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        s.insert(seq);
        self.wake_gc();
    }

    /// Whether the committer has been asked to collect garbage or quarantine (consumes the
    /// request).
    pub fn gc_wake_pending(&self) -> bool {
        let suspects = match self.suspects.lock() {
            Ok(g) => !g.is_empty(),
            Err(p) => !p.into_inner().is_empty(),
        };
        suspects || self.gc_wake_flag.swap(false, Ordering::AcqRel)
    }

    pub fn wake_gc(&self) {
        self.gc_wake_flag.store(true, Ordering::Release);
        self.gc_wake.notify_one();
    }

    fn check_usable(&self) -> Result<(), SpoolError> {
        if let Some(why) = self.failure() {
            return Err(SpoolError::Failed(why));
        }
        Ok(())
    }

    pub fn storage(op: &'static str) -> impl FnOnce(sled::Error) -> SpoolError {
        move |source| SpoolError::Storage { op, source }
    }

    /// Flush sled and sync its files: after this, everything written so far is durable.
    pub fn sync(&self) -> Result<(), SpoolError> {
        let res = self
            .db
            .flush()
            .map_err(Inner::storage("flushing"))
            .and_then(|_| {
                self.disk.sync().map_err(|e| SpoolError::Sync {
                    path: e.path,
                    source: e.source,
                })
            });
        match res {
            Ok(on_disk) => {
                self.on_disk.store(on_disk.bytes, Ordering::Release);
                Ok(())
            }
            Err(e) => {
                // After a failed fsync the kernel may have dropped the dirty pages: nothing
                // written since the last good sync can be trusted to be durable.
                self.fail(e.to_string());
                Err(e)
            }
        }
    }

    // ---- reading blocks -------------------------------------------------------------------

    /// The block that would hold `seq`: the one with the greatest first seq ≤ `seq`.
    pub fn block_at(&self, seq: u64) -> Result<Option<(u64, IVec)>, SpoolError> {
        // One entry from the back: as short as `first_in`.
        let found = self
            .tree
            .range(format::block_key(0)..=format::block_key(seq))
            .next_back()
            .transpose()
            .map_err(Inner::storage("reading a block"))?;
        Ok(found.and_then(|(k, v)| format::block_seq(&k).map(|s| (s, v))))
    }

    /// Up to `limit` blocks starting at or after `seq`, in order.
    pub fn blocks_from(&self, seq: u64, limit: usize) -> Result<Vec<(u64, IVec)>, SpoolError> {
        let mut out = Vec::new();
        let mut from = seq;
        while out.len() < limit {
            let Some((k, v)) = self.first_in(&format::block_key(from), &format::BLOCK_END)? else {
                break;
            };
            let Some(s) = format::block_seq(&k) else {
                break;
            };
            out.push((s, v));
            match s.checked_add(1) {
                Some(n) => from = n,
                None => break,
            }
        }
        Ok(out)
    }

    /// The first entry with a key in `from..end`. Every walk over the spool goes one entry at
    /// a time: a sled 0.34 iterator that yields many entries keeps the pages it visited in
    /// memory until it is dropped (measured: reading a 1,000,000-event backlog with 16-entry
    /// iterators peaked at 82 MiB, with one-entry iterators at 24 MiB, and ran faster).
    pub fn first_in(&self, from: &[u8], end: &[u8]) -> Result<Option<(IVec, IVec)>, SpoolError> {
        self.tree
            .range(from..end)
            .next()
            .transpose()
            .map_err(Inner::storage("reading the spool"))
    }

    /// Visit every entry whose key starts with the one-byte `prefix`, in key order.
    pub fn for_each_in(
        &self,
        prefix: &[u8; 1],
        mut f: impl FnMut(&[u8], &[u8]),
    ) -> Result<(), SpoolError> {
        let end = [prefix[0].saturating_add(1)];
        let mut from = prefix.to_vec();
        while let Some((k, v)) = self.first_in(&from, &end)? {
            f(&k, &v);
            from = k.to_vec();
            from.push(0);
        }
        Ok(())
    }

    /// The event in a record, checked against the record's seq and id.
    pub fn decode(&self, rec: &RawRecord<'_>) -> Decoded {
        let plain;
        let envelope: &[u8] = if rec.is_encrypted() {
            let Some(cipher) = &self.cipher else {
                return Err("the record is encrypted and no key is configured".into());
            };
            match cipher.open(rec.seq, &rec.id, rec.payload) {
                Ok(p) => {
                    plain = p;
                    &plain
                }
                Err(e) => return Err(e.to_string()),
            }
        } else {
            rec.payload
        };
        match wire::decode(envelope) {
            Ok(ev) if ev.seq() != rec.seq => Err(format!(
                "the event inside has seq {}, the record {}",
                ev.seq(),
                rec.seq
            )),
            Ok(ev) if ev.id().as_bytes() != &rec.id => {
                Err("the event inside has another id than the record".into())
            }
            Ok(ev) if (ev.kind() == Kind::Scan) != rec.is_scan() => {
                Err("the record's scan flag does not match the event's kind".into())
            }
            Ok(ev) => Ok(ev),
            Err(e) => Err(e.to_string()),
        }
    }

    /// The stored event with this seq. A damaged record is reported to the committer for
    /// quarantine and read as absent.
    pub fn event_at(&self, seq: u64) -> Result<Option<Event>, SpoolError> {
        let Some((key, value)) = self.block_at(seq)? else {
            return Ok(None);
        };
        let block = format::parse_block(key, &value);
        let Some(rec) = block.records.iter().find(|r| r.seq == seq) else {
            if block.damage.is_some() {
                self.report_bad(key);
            }
            return Ok(None);
        };
        match self.decode(rec) {
            Ok(ev) => Ok(Some(ev)),
            Err(_) => {
                self.report_bad(seq);
                Ok(None)
            }
        }
    }

    /// Read durable events with seq in (`after`, `until`] in order, up to `max`, skipping seqs
    /// for which `skip` is true. Damaged records are reported and skipped.
    fn read_forward(
        &self,
        after: u64,
        until: u64,
        max: usize,
        out: &mut Vec<Stored>,
    ) -> Result<(), SpoolError> {
        if max == 0 || after >= until {
            return Ok(());
        }
        let start = after.saturating_add(1);
        // The block holding `start`, then the blocks after it.
        let mut blocks: Vec<(u64, IVec)> = self.block_at(start)?.into_iter().collect();
        let mut next_key = start.saturating_add(1);
        let mut more = true;
        let goal = out.len().saturating_add(max);
        loop {
            for (key, value) in &blocks {
                let block = format::parse_block(*key, value);
                if block.damage.is_some() {
                    self.report_bad(*key);
                }
                for rec in &block.records {
                    if rec.seq <= after {
                        continue;
                    }
                    if rec.seq > until || out.len() >= goal {
                        return Ok(());
                    }
                    match self.decode(rec) {
                        Ok(event) => out.push(Stored {
                            seq: rec.seq,
                            event,
                            replay: false,
                        }),
                        Err(_) => self.report_bad(rec.seq),
                    }
                }
            }
            if !more || out.len() >= goal || next_key > until {
                return Ok(());
            }
            blocks = self.blocks_from(next_key, 16)?;
            more = blocks.len() == 16;
            match blocks.last() {
                Some((k, _)) => next_key = k.saturating_add(1),
                None => return Ok(()),
            }
        }
    }

    // ---- sinks ----------------------------------------------------------------------------

    /// Configure `sink` while the spool is open. A configured sink keeps its cursor; any other
    /// starts at the last durable event, so it gets the events made durable from now on (one
    /// the store knows keeps its dead letters). Returns the sink's cursor and whether it was
    /// (re)started at the end. Blocking: the cursor is synced before it returns.
    pub fn add_sink(&self, sink: &str) -> Result<(u64, bool), SpoolError> {
        self.check_usable()?;
        if sink.is_empty() || sink.len() > super::open::MAX_SINK_NAME {
            return Err(SpoolError::InvalidOptions(format!(
                "sink name {sink:?} must be 1 to {} bytes",
                super::open::MAX_SINK_NAME
            )));
        }
        let mut st = self.lock();
        if let Some(s) = st.sinks.get(sink).filter(|s| s.configured) {
            return Ok((s.cursor, false));
        }
        // An unconfigured sink held nothing back: what is still stored after its cursor is an
        // accident of the other sinks' progress, so it starts at the end too.
        let start = self
            .durable_seq
            .load(Ordering::Acquire)
            .max(st.sinks.get(sink).map_or(0, |s| s.cursor));
        self.tree
            .insert(format::cursor_key(sink), &format::encode_u64(start))
            .map_err(Inner::storage("writing a cursor"))?;
        let s = st.sinks.entry(sink.to_string()).or_default();
        s.cursor = start;
        s.configured = true;
        drop(st);
        // Durable before the sink runs: after a crash the next open must not find an older
        // cursor of a sink removed earlier (it would hand that sink old events).
        self.sync()?;
        Ok((start, true))
    }

    /// `sink` is no longer configured: its cursor and dead letters are kept, and it holds no
    /// event back any more. Unknown sinks are ignored.
    pub fn retire_sink(&self, sink: &str) {
        let mut st = self.lock();
        if let Some(s) = st.sinks.get_mut(sink) {
            if s.configured {
                s.configured = false;
                drop(st);
                // The watermark may have moved.
                self.wake_gc();
            }
        }
    }

    pub fn next_batch(&self, sink: &str, max: usize) -> Result<Vec<Stored>, SpoolError> {
        let (cursor, replays) = {
            let st = self.lock();
            let s = st
                .sinks
                .get(sink)
                .ok_or_else(|| SpoolError::UnknownSink(sink.to_string()))?;
            (
                s.cursor,
                s.replay.iter().take(max).copied().collect::<Vec<u64>>(),
            )
        };
        let mut out = Vec::new();
        for seq in replays {
            match self.event_at(seq)? {
                Some(event) => out.push(Stored {
                    seq,
                    event,
                    replay: true,
                }),
                None => {
                    // Its event is gone (quarantined since): nothing left to replay.
                    warn!(component_id = %sink, seq, "Replay entry without a readable event; dropped from the replay queue.");
                    self.delivered(sink, &[seq])?;
                }
            }
        }
        let durable = self.durable_seq.load(Ordering::Acquire);
        let room = max.saturating_sub(out.len());
        self.read_forward(cursor, durable, room, &mut out)?;
        Ok(out)
    }

    pub fn delivered(&self, sink: &str, seqs: &[u64]) -> Result<(), SpoolError> {
        let mut st = self.lock();
        let st = &mut *st;
        let s = st
            .sinks
            .get_mut(sink)
            .ok_or_else(|| SpoolError::UnknownSink(sink.to_string()))?;
        let mut batch = sled::Batch::default();
        let mut released = false;
        let mut to_release = Vec::new();
        let mut cursor = s.cursor;
        for &seq in seqs {
            if s.replay.remove(&seq) {
                batch.remove(format::replay_key(sink, seq));
                to_release.push(seq);
            } else if seq > cursor {
                cursor = seq;
            }
        }
        let durable = self.durable_seq.load(Ordering::Acquire);
        let cursor = cursor.min(durable.max(s.cursor));
        let moved = cursor != s.cursor;
        if moved {
            batch.insert(
                format::cursor_key(sink).as_slice(),
                &format::encode_u64(cursor),
            );
        }
        if !moved && to_release.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.tree.apply_batch(batch) {
            for seq in to_release {
                s.replay.insert(seq);
            }
            return Err(SpoolError::Storage {
                op: "moving a cursor",
                source: e,
            });
        }
        s.cursor = cursor;
        let configured = s.configured;
        for seq in to_release {
            released |= st.release(seq);
        }
        if released {
            self.rewind_gc.store(true, Ordering::Release);
        }
        if released || (moved && configured) {
            self.wake_gc();
        }
        Ok(())
    }

    pub fn dead_letter(
        &self,
        sink: &str,
        seq: u64,
        info: DeadLetterInfo,
    ) -> Result<(), SpoolError> {
        self.check_usable()?;
        let cursor_now = {
            let st = self.lock();
            let s = st
                .sinks
                .get(sink)
                .ok_or_else(|| SpoolError::UnknownSink(sink.to_string()))?;
            if seq <= s.cursor && !s.replay.contains(&seq) && !s.dead.contains(&seq) {
                return Err(SpoolError::NotPending {
                    sink: sink.to_string(),
                    seq,
                });
            }
            s.cursor
        };
        let event = self.event_at(seq)?.ok_or(SpoolError::NoSuchEvent(seq))?;
        let record = DeadRecord {
            event_id: event.id(),
            kind: event.kind(),
            reason: info.reason,
            attempts: info.attempts,
            last_error: info.last_error,
            first_attempt_at: info.first_attempt_at,
            last_attempt_at: info.last_attempt_at,
        };
        let value = serde_json::to_vec(&record).map_err(|e| SpoolError::Failed(e.to_string()))?;
        // Only the sink's next event can be dead-lettered (besides replays): an event before
        // it that the sink has not acknowledged would be passed over unseen.
        if seq > cursor_now.saturating_add(1) {
            let mut before = Vec::new();
            self.read_forward(cursor_now, seq - 1, 1, &mut before)?;
            if let Some(first) = before.first() {
                return Err(SpoolError::NotNext {
                    sink: sink.to_string(),
                    seq,
                    next: first.seq,
                });
            }
        }
        {
            let mut st = self.lock();
            let st = &mut *st;
            let s = st
                .sinks
                .get_mut(sink)
                .ok_or_else(|| SpoolError::UnknownSink(sink.to_string()))?;
            let from_replay = s.replay.contains(&seq);
            let again = s.dead.contains(&seq);
            if !from_replay && !again && seq <= s.cursor {
                return Err(SpoolError::NotPending {
                    sink: sink.to_string(),
                    seq,
                });
            }
            if seq > self.durable_seq.load(Ordering::Acquire) {
                return Err(SpoolError::NoSuchEvent(seq));
            }
            let mut batch = sled::Batch::default();
            batch.insert(format::dead_key(sink, seq), value);
            if from_replay {
                batch.remove(format::replay_key(sink, seq));
            }
            if !from_replay && !again && s.cursor != cursor_now && seq > s.cursor + 1 {
                // The cursor moved meanwhile, not far enough.
                return Err(SpoolError::NotNext {
                    sink: sink.to_string(),
                    seq,
                    next: s.cursor + 1,
                });
            }
            let cursor = if from_replay {
                s.cursor
            } else {
                s.cursor.max(seq)
            };
            if cursor != s.cursor {
                batch.insert(
                    format::cursor_key(sink).as_slice(),
                    &format::encode_u64(cursor),
                );
            }
            self.tree
                .apply_batch(batch)
                .map_err(Inner::storage("storing a dead letter"))?;
            let newly_held = !from_replay && !again;
            s.replay.remove(&seq);
            s.dead.insert(seq);
            s.cursor = cursor;
            if newly_held {
                st.hold(seq);
            }
        }
        self.sync()?;
        self.wake_gc();
        Ok(())
    }

    /// Every dead-letter and replay entry, decoded, optionally of one sink.
    fn dead_entries(&self, sink: Option<&str>) -> Result<Vec<DeadLetter>, SpoolError> {
        let mut out = Vec::new();
        for (prefix, replaying) in [(format::DEAD_PREFIX, false), (format::REPLAY_PREFIX, true)] {
            self.for_each_in(&prefix, |k, v| {
                let parsed = if replaying {
                    format::parse_replay_key(k)
                } else {
                    format::parse_dead_key(k)
                };
                let Some((name, seq)) = parsed else { return };
                if sink.is_some_and(|s| s != name) {
                    return;
                }
                match serde_json::from_slice::<DeadRecord>(v) {
                    Ok(r) => out.push(DeadLetter {
                        sink: name.to_string(),
                        seq,
                        event_id: r.event_id,
                        kind: r.kind,
                        reason: r.reason,
                        attempts: r.attempts,
                        last_error: r.last_error,
                        first_attempt_at: r.first_attempt_at,
                        last_attempt_at: r.last_attempt_at,
                        replaying,
                    }),
                    Err(e) => {
                        warn!(component_id = %name, seq, error = %e, "Unreadable dead-letter entry; skipped.");
                    }
                }
            })?;
        }
        out.sort_by(|a, b| (&a.sink, a.seq).cmp(&(&b.sink, b.seq)));
        Ok(out)
    }

    pub fn dlq_list(&self, sink: Option<&str>) -> Result<Vec<DeadLetter>, SpoolError> {
        self.dead_entries(sink)
    }

    fn selected(which: &Selection, d: &DeadLetter) -> bool {
        match which {
            Selection::All => true,
            Selection::Ids(ids) => ids.contains(&d.event_id),
        }
    }

    pub fn dlq_replay(&self, sink: Option<&str>, which: &Selection) -> Result<usize, SpoolError> {
        self.check_usable()?;
        let entries = self.dead_entries(sink)?;
        let count = {
            let mut st = self.lock();
            let mut batch = sled::Batch::default();
            let mut moves = Vec::new();
            for d in entries
                .iter()
                .filter(|d| !d.replaying && Inner::selected(which, d))
            {
                let Some(s) = st.sinks.get(&d.sink) else {
                    continue;
                };
                if !s.dead.contains(&d.seq) {
                    continue;
                }
                let Ok(value) = self.tree.get(format::dead_key(&d.sink, d.seq)) else {
                    continue;
                };
                let Some(value) = value else { continue };
                batch.remove(format::dead_key(&d.sink, d.seq));
                batch.insert(format::replay_key(&d.sink, d.seq), value);
                moves.push((d.sink.clone(), d.seq));
            }
            if moves.is_empty() {
                return Ok(0);
            }
            self.tree
                .apply_batch(batch)
                .map_err(Inner::storage("moving dead letters to replay"))?;
            for (name, seq) in &moves {
                if let Some(s) = st.sinks.get_mut(name) {
                    s.dead.remove(seq);
                    s.replay.insert(*seq);
                }
            }
            moves.len()
        };
        self.sync()?;
        self.changes.send_modify(|v| *v = v.wrapping_add(1));
        Ok(count)
    }

    pub fn purge_dead_letters(
        &self,
        sink: Option<&str>,
        which: &Selection,
    ) -> Result<usize, SpoolError> {
        self.check_usable()?;
        let entries = self.dead_entries(sink)?;
        let count = {
            let mut st = self.lock();
            let mut batch = sled::Batch::default();
            let mut gone = Vec::new();
            for d in entries.iter().filter(|d| Inner::selected(which, d)) {
                let key = if d.replaying {
                    format::replay_key(&d.sink, d.seq)
                } else {
                    format::dead_key(&d.sink, d.seq)
                };
                batch.remove(key);
                gone.push((d.sink.clone(), d.seq, d.replaying));
            }
            if gone.is_empty() {
                return Ok(0);
            }
            self.tree
                .apply_batch(batch)
                .map_err(Inner::storage("purging dead letters"))?;
            for (name, seq, replaying) in &gone {
                let was = st.sinks.get_mut(name).is_some_and(|s| {
                    if *replaying {
                        s.replay.remove(seq)
                    } else {
                        s.dead.remove(seq)
                    }
                });
                if was && st.release(*seq) {
                    self.rewind_gc.store(true, Ordering::Release);
                }
            }
            gone.len()
        };
        self.sync()?;
        self.wake_gc();
        Ok(count)
    }

    // ---- inspection -----------------------------------------------------------------------

    pub fn stats(&self) -> Stats {
        let st = self.lock();
        let c = st.counters;
        Stats {
            events_stored: c.events,
            last_seq: c.next_seq.saturating_sub(1),
            bytes_live: c.live_bytes(),
            bytes_on_disk: self.on_disk.load(Ordering::Acquire),
            max_bytes: self.max_bytes,
            full: self.full.load(Ordering::Acquire),
            sinks: st.sink_stats(),
            dead_letters: st.sinks.values().map(|s| s.dead.len() as u64).sum(),
            quarantined: c.quarantined,
            dropped_scans: c.dropped_scans,
            encrypted: self.cipher.is_some(),
            commits: self.commits.load(Ordering::Relaxed),
        }
    }

    pub fn quarantine_list(&self) -> Result<Vec<Quarantined>, SpoolError> {
        let mut out = Vec::new();
        self.for_each_in(&format::QUARANTINE_PREFIX, |k, v| {
            let Some(seq) = format::quarantine_seq(k) else {
                return;
            };
            let q = format::QuarantineRecord::decode(v);
            out.push(Quarantined {
                seq,
                at: q
                    .as_ref()
                    .and_then(|q| Timestamp::from_unix_millis(q.at_unix_millis)),
                reason: q.as_ref().map(|q| q.reason.clone()).unwrap_or_default(),
                bytes: q.map_or(v.len(), |q| q.bytes.len()),
            });
        })?;
        Ok(out)
    }

    pub fn get(&self, id: EventId) -> Result<Option<Stored>, SpoolError> {
        let want = id.as_bytes();
        let mut from = 0u64;
        loop {
            let blocks = self.blocks_from(from, SCAN_CHUNK)?;
            for (key, value) in &blocks {
                let block = format::parse_block(*key, value);
                if let Some(rec) = block.records.iter().find(|r| &r.id == want) {
                    return match self.decode(rec) {
                        Ok(event) => Ok(Some(Stored {
                            seq: rec.seq,
                            event,
                            replay: false,
                        })),
                        Err(_) => {
                            self.report_bad(rec.seq);
                            Ok(None)
                        }
                    };
                }
            }
            match blocks.last() {
                Some((k, _)) if blocks.len() == SCAN_CHUNK => from = k.saturating_add(1),
                _ => return Ok(None),
            }
        }
    }

    pub fn list(&self, after: u64, limit: usize) -> Result<Vec<Stored>, SpoolError> {
        let mut out = Vec::new();
        let durable = self.durable_seq.load(Ordering::Acquire);
        self.read_forward(after, durable, limit, &mut out)?;
        Ok(out)
    }
}
