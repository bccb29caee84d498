//! The committer: the one thread that writes blocks. It numbers and stores appends in group
//! commits, quarantines damaged records, collects garbage, and enforces the quota.
//!
//! # Group commit
//!
//! The committer takes the first queued append, then everything else queued, then waits for
//! more until `commit_window` has passed since the first — or stops early once the batch is
//! at least as large as the previous one and the queue is empty (under steady load every
//! waiting appender is then in the batch, and waiting longer only adds latency), or at
//! [`MAX_BATCH`]. It encodes (and encrypts) each event with its seq, packs the records into
//! blocks of about `block_target_bytes`, inserts the blocks and then the counters (plain
//! inserts: sled recovers a prefix of its log, and the self-check counts blocks found after
//! the last counters write), flushes sled, syncs its files (`durable.rs`), and only then
//! completes the appends and publishes the new durable seq to readers. (A separate sync
//! thread that let the next batch be written during the disk wait was measured: with
//! appenders that wait for their acknowledgement there is nothing to overlap, and it was
//! slower on two cores.)
//!
//! # Quota
//!
//! What sled measured here (see the spool benchmark): the files take about 1.5 to 2 times the
//! live bytes; after the spool drains, the `db` file does **not** shrink (sled
//! keeps freed segments and truncates only a free tail), but new writes reuse the freed
//! segments, so refilling does not grow it further. A quota on the file size alone would
//! therefore never let intake resume after a backlog drained, and a quota on live bytes alone
//! would trust the amplification blindly. The rule:
//!
//! * the live bytes (blocks and quarantine, counted exactly) may use at most half of
//!   `max_bytes` — the other half is the allowance for sled's amplification;
//! * and when the files have reached `max_bytes` anyway, intake stops until less than a
//!   quarter of `max_bytes` is live (the file is then mostly free segments that sled reuses).
//!
//! Over quota a stock event is refused ([`AppendError::Full`]); a raw scan is refused too, or
//! with `DropOldest` the oldest stored raw scans (not held as dead letters) are dropped first,
//! for any new event, to free what it needs plus 1% of the quota.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tallyman_protocol::event::{Event, Kind};
use tallyman_protocol::wire;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, warn};

use super::crypto::{Nonces, SEAL_OVERHEAD};
use super::format::{self, Counters, QuarantineRecord};
use super::store::{Inner, SCAN_CHUNK};
use super::{
    Accepted, AppendError, Appended, MAX_BATCH, Problem, ProblemKind, RawScansWhenFull, SpoolError,
};

/// Blocks one garbage-collection step looks at.
const GC_BLOCKS: usize = 256;
/// Garbage-collection steps per wake before appends get their turn again.
const GC_STEPS_PER_WAKE: usize = 8;
/// Recent-id entries one housekeeping pass forgets at most.
const PRUNE_STEP: usize = 1024;
/// The size of a typical event, for `is_full`.
const TYPICAL_RECORD: u64 = 256;

/// What the committer is asked to do.
#[derive(Debug)]
// Nearly every request is an append: boxing the event would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Request {
    Append {
        event: Event,
        /// Store it only if its id is not in the recent-id index (`append_once`).
        once: bool,
        reply: Reply,
    },
    Close {
        reply: oneshot::Sender<Result<(), SpoolError>>,
    },
    PurgeQuarantine {
        reply: oneshot::Sender<Result<usize, SpoolError>>,
    },
    /// Quarantine and collect garbage until there is nothing left to do, then answer.
    Settle { reply: oneshot::Sender<()> },
    /// Answer once the commit this request is taken with is done (the watchdog's question).
    Ping { reply: oneshot::Sender<()> },
}

pub type Reply = oneshot::Sender<Result<Appended, AppendError>>;

/// One append taken from the queue.
#[derive(Debug)]
pub struct AppendRequest {
    event: Event,
    once: bool,
    reply: Reply,
}

/// Sync, then complete the appends in `done` (written before this call, up to `last_seq`).
fn complete(inner: &Inner, last_seq: u64, done: Vec<(Reply, Appended)>) {
    let result = match inner.failure() {
        // After a failed sync nothing written since can be trusted to become durable.
        Some(why) => Err(why),
        None => inner.sync().map_err(|e| e.to_string()),
    };
    match result {
        Ok(()) => {
            inner.commits.fetch_add(1, Ordering::Relaxed);
            inner.durable_seq.fetch_max(last_seq, Ordering::AcqRel);
            for (reply, accepted) in done {
                // An appender that stopped waiting still has its event stored.
                let _ = reply.send(Ok(accepted));
            }
            inner.changes.send_modify(|v| *v = v.wrapping_add(1));
        }
        Err(why) => {
            for (reply, _) in done {
                let _ = reply.send(Err(AppendError::Failed(why.clone())));
            }
        }
    }
}

/// The committer's state: everything only it changes.
#[derive(Debug)]
pub struct Writer {
    pub inner: Arc<Inner>,
    /// The authoritative counters (published to readers after every change).
    pub counters: Counters,
    /// Blocks before this seq are settled: garbage collection starts here.
    pub gc_resume: u64,
    /// No droppable raw scan is stored in a block before this seq.
    pub scan_floor: u64,
    /// Appends in the previous commit (the group-commit heuristic).
    last_batch: usize,
    /// Bytes of records after which a new block is started.
    block_target: usize,
    /// Random nonces for encryption, drawn in bulk.
    nonces: Nonces,
}

/// A block being assembled.
#[derive(Debug, Default)]
struct NewBlock {
    first: u64,
    bytes: Vec<u8>,
    events: u64,
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Writer {
    pub fn new(inner: Arc<Inner>, counters: Counters, block_target: usize) -> Writer {
        Writer {
            inner,
            counters,
            gc_resume: 0,
            scan_floor: 0,
            last_batch: 0,
            block_target: block_target.max(1),
            nonces: Nonces::default(),
        }
    }

    pub fn publish(&self) {
        self.inner.lock().counters = self.counters;
    }

    // ---- quota ----------------------------------------------------------------------------

    fn fits(&self, live_after: u64) -> bool {
        let max = self.inner.max_bytes;
        if live_after > max / 2 {
            return false;
        }
        let on_disk = self.inner.on_disk.load(Ordering::Acquire);
        !(on_disk >= max && live_after >= max / 4)
    }

    /// The bytes charged against the quota, for `Full`.
    fn used(&self, live: u64) -> u64 {
        self.inner
            .on_disk
            .load(Ordering::Acquire)
            .max(live.saturating_mul(2))
    }

    pub fn update_full(&self) {
        let full = !self.fits(self.counters.live_bytes().saturating_add(TYPICAL_RECORD));
        let was = self.inner.full.swap(full, Ordering::AcqRel);
        if full && !was {
            warn!(
                bytes_live = self.counters.live_bytes(),
                max_bytes = self.inner.max_bytes,
                "Spool full: new events are refused until sinks catch up."
            );
        } else if was && !full {
            tracing::info!("Spool has room again.");
        }
    }

    // ---- the loop -------------------------------------------------------------------------

    /// Run until the spool is closed or every handle is dropped.
    pub fn run(
        mut self,
        mut rx: mpsc::Receiver<Request>,
        window: Duration,
        rt: tokio::runtime::Runtime,
    ) {
        let close = rt.block_on(async {
            loop {
                let first = tokio::select! {
                    biased;
                    r = rx.recv() => r,
                    _ = self.inner.gc_wake.notified() => {
                        self.housekeeping();
                        continue;
                    }
                };
                let first = first?;
                let mut appends = Vec::new();
                let mut close = None;
                let mut purges = Vec::new();
                let mut settles = Vec::new();
                let mut pings = Vec::new();
                let mut take = |r: Request, appends: &mut Vec<AppendRequest>| match r {
                    Request::Append { event, once, reply } => {
                        appends.push(AppendRequest { event, once, reply });
                    }
                    Request::Close { reply } => close = Some(reply),
                    Request::PurgeQuarantine { reply } => purges.push(reply),
                    Request::Settle { reply } => settles.push(reply),
                    Request::Ping { reply } => pings.push(reply),
                };
                take(first, &mut appends);
                let deadline = tokio::time::Instant::now() + window;
                loop {
                    if appends.len() >= MAX_BATCH {
                        break;
                    }
                    match rx.try_recv() {
                        Ok(Request::Close { reply }) => {
                            take(Request::Close { reply }, &mut appends);
                            break;
                        }
                        Ok(r) => take(r, &mut appends),
                        Err(TryRecvError::Disconnected) => break,
                        Err(TryRecvError::Empty) => {
                            if window.is_zero() || appends.len() >= self.last_batch.max(1) {
                                break;
                            }
                            match tokio::time::timeout_at(deadline, rx.recv()).await {
                                Ok(Some(Request::Close { reply })) => {
                                    take(Request::Close { reply }, &mut appends);
                                    break;
                                }
                                Ok(Some(r)) => take(r, &mut appends),
                                _ => break,
                            }
                        }
                    }
                }
                self.last_batch = appends.len();
                self.commit(appends);
                for reply in pings {
                    // The watchdog may have stopped waiting; it asks again.
                    let _ = reply.send(());
                }
                for reply in purges {
                    // The caller may have stopped waiting; the purge is done either way.
                    let _ = reply.send(self.purge_quarantine());
                }
                self.housekeeping();
                if !settles.is_empty() {
                    // Bounded: a quarantine that keeps failing asks again every time.
                    let mut rounds = 0;
                    while self.inner.gc_wake_pending() && rounds < 100_000 {
                        self.housekeeping();
                        rounds += 1;
                    }
                    for reply in settles {
                        let _ = reply.send(());
                    }
                }
                if close.is_some() {
                    return close;
                }
            }
        });
        drop(rx);
        // Whatever is left: quarantine, garbage, then the final sync.
        self.housekeeping();
        let result = self.inner.sync();
        drop(self);
        if let Some(reply) = close {
            // The closer may have given up waiting; nothing to tell then.
            let _ = reply.send(result);
        }
    }

    /// Quarantine what readers reported, then collect garbage (bounded), then the quota.
    pub fn housekeeping(&mut self) {
        if self.inner.failure().is_some() {
            return;
        }
        let suspects: BTreeSet<u64> = match self.inner.suspects.lock() {
            Ok(mut g) => std::mem::take(&mut *g),
            Err(p) => std::mem::take(&mut *p.into_inner()),
        };
        for seq in suspects {
            if let Err(e) = self.quarantine(seq) {
                warn!(seq, error = %e, "Quarantining a damaged record failed; will retry.");
                self.inner.report_bad(seq);
                return;
            }
        }
        if self.inner.rewind_gc.swap(false, Ordering::AcqRel) {
            self.gc_resume = 0;
        }
        match self.prune_recent_ids() {
            Ok(true) => self.inner.wake_gc(),
            Ok(false) => {}
            Err(e) => warn!(error = %e, "Pruning the recent-id index failed; will retry."),
        }
        for step in 0..GC_STEPS_PER_WAKE {
            match self.gc_step() {
                Ok(true) if step + 1 == GC_STEPS_PER_WAKE => self.inner.wake_gc(),
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    warn!(error = %e, "Garbage collection failed; will retry.");
                    break;
                }
            }
        }
        self.update_full();
    }

    // ---- appends --------------------------------------------------------------------------

    pub fn commit(&mut self, appends: Vec<AppendRequest>) {
        let mut blocks: Vec<NewBlock> = Vec::new();
        let mut cur = NewBlock::default();
        let mut done: Vec<(Reply, Appended)> = Vec::new();
        let mut pending: u64 = 0;
        let mut next = self.counters.next_seq;
        // Ids recorded in this batch, for `append_once` (seq order).
        let mut recent: Vec<([u8; 16], u64)> = Vec::new();
        for AppendRequest { event, once, reply } in appends {
            if let Some(why) = self.inner.failure() {
                let _ = reply.send(Err(AppendError::Failed(why)));
                continue;
            }
            let seq = next;
            let id = event.id();
            if once {
                match self.stored_as(id.as_bytes(), &recent) {
                    Ok(Some(earlier)) => {
                        // Answered with the batch: the earlier one may be in it.
                        done.push((reply, Appended::Duplicate { seq: earlier }));
                        continue;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        let _ = reply.send(Err(AppendError::Failed(e.to_string())));
                        continue;
                    }
                }
            }
            let scan = event.kind() == Kind::Scan;
            let envelope = match wire::encode(&event.with_seq(seq)) {
                Ok(e) => e,
                Err(e) => {
                    // The caller learns why; an ignored send means it stopped waiting.
                    let _ = reply.send(Err(AppendError::Encode(e.to_string())));
                    continue;
                }
            };
            let mut flags = if scan { format::FLAG_SCAN } else { 0 };
            let nonce = match &self.inner.cipher {
                Some(_) => match self.nonces.next() {
                    Ok(n) => {
                        flags |= format::FLAG_ENCRYPTED;
                        Some(n)
                    }
                    Err(e) => {
                        let _ = reply.send(Err(AppendError::Encrypt(e.to_string())));
                        continue;
                    }
                },
                None => None,
            };
            let payload_len = envelope.len() + nonce.map_or(0, |_| SEAL_OVERHEAD);
            let rec_len = (format::RECORD_HEADER + payload_len + 1) as u64;
            if !self.fits(self.counters.live_bytes() + pending + rec_len) {
                if self.inner.raw_scans_when_full == RawScansWhenFull::DropOldest {
                    let need = rec_len + pending + self.inner.max_bytes / 100;
                    if let Err(e) = self.drop_scans(need) {
                        warn!(error = %e, "Dropping raw scans to make room failed.");
                    }
                }
                if !self.fits(self.counters.live_bytes() + pending + rec_len) {
                    let used = self.used(self.counters.live_bytes() + pending);
                    let _ = reply.send(Err(AppendError::Full {
                        used,
                        max: self.inner.max_bytes,
                    }));
                    continue;
                }
            }
            if !cur.bytes.is_empty() && cur.bytes.len() + rec_len as usize > self.block_target {
                pending += cur.bytes.len() as u64;
                blocks.push(std::mem::take(&mut cur));
            }
            if cur.bytes.is_empty() {
                cur.first = seq;
            }
            let mark = cur.bytes.len();
            format::push_record_header(&mut cur.bytes, seq, id.as_bytes(), flags, payload_len);
            match (&self.inner.cipher, nonce) {
                (Some(c), Some(n)) => {
                    if let Err(e) = c.seal_into(seq, id.as_bytes(), n, &envelope, &mut cur.bytes) {
                        cur.bytes.truncate(mark);
                        let _ = reply.send(Err(AppendError::Encrypt(e.to_string())));
                        continue;
                    }
                }
                _ => cur.bytes.extend_from_slice(&envelope),
            }
            cur.events += 1;
            next += 1;
            if once {
                recent.push((*id.as_bytes(), seq));
            }
            done.push((reply, Appended::New(Accepted { seq, id })));
        }
        if !cur.bytes.is_empty() {
            blocks.push(cur);
        }
        if blocks.is_empty() {
            // Nothing new: only duplicates of events already durable (or nothing at all).
            for (reply, appended) in done {
                let _ = reply.send(Ok(appended));
            }
            return;
        }
        match self.write_blocks(&blocks, &recent, next) {
            Ok(()) => {
                self.publish();
                debug!(
                    events = done.len(),
                    blocks = blocks.len(),
                    "Written; syncing."
                );
                complete(&self.inner, next.saturating_sub(1), done);
            }
            Err(e) => {
                let why = e.to_string();
                self.inner.fail(why.clone());
                for (reply, _) in done {
                    let _ = reply.send(Err(AppendError::Failed(why.clone())));
                }
            }
        }
    }

    /// The seq an event with this id was stored as by `append_once`, if it is in the
    /// recent-id index or among `batch` (ids of this batch not written yet).
    fn stored_as(
        &self,
        id: &[u8; 16],
        batch: &[([u8; 16], u64)],
    ) -> Result<Option<u64>, SpoolError> {
        if let Some((_, seq)) = batch.iter().find(|(i, _)| i == id) {
            return Ok(Some(*seq));
        }
        let found = self
            .inner
            .tree
            .get(format::recent_id_key(id))
            .map_err(Inner::storage("reading the recent-id index"))?;
        Ok(found.and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok().map(u64::from_be_bytes)))
    }

    /// Write the blocks and the recent-id entries of a batch in one atomic sled batch (after a
    /// crash an event and the record of its id are both there or both missing), then the
    /// counters.
    fn write_blocks(
        &mut self,
        blocks: &[NewBlock],
        recent: &[([u8; 16], u64)],
        next: u64,
    ) -> Result<(), SpoolError> {
        let mut counters = self.counters;
        let mut batch = sled::Batch::default();
        for b in blocks {
            batch.insert(&format::block_key(b.first), b.bytes.as_slice());
            counters.events += b.events;
            counters.block_bytes += b.bytes.len() as u64;
        }
        for (id, seq) in recent {
            batch.insert(&format::recent_id_key(id), &seq.to_be_bytes());
            batch.insert(&format::recent_order_key(*seq), id);
        }
        self.inner
            .tree
            .apply_batch(batch)
            .map_err(Inner::storage("writing events"))?;
        counters.next_seq = next;
        self.inner
            .tree
            .insert(format::META_COUNTERS, counters.encode())
            .map_err(Inner::storage("writing the counters"))?;
        self.counters = counters;
        Ok(())
    }

    /// Forget the ids of events stored more than `recent_ids` seqs ago, at most
    /// [`PRUNE_STEP`] of them; true if there may be more.
    fn prune_recent_ids(&mut self) -> Result<bool, SpoolError> {
        let floor = self.counters.next_seq.saturating_sub(self.inner.recent_ids);
        if floor == 0 {
            return Ok(false);
        }
        let mut batch = sled::Batch::default();
        let mut pruned = 0;
        for entry in self
            .inner
            .tree
            .range(format::recent_order_key(0)..format::recent_order_key(floor))
            .take(PRUNE_STEP)
        {
            let (key, id) = entry.map_err(Inner::storage("reading the recent-id index"))?;
            if format::recent_order_seq(&key).is_none() {
                continue;
            }
            if let Ok(id) = <[u8; 16]>::try_from(id.as_ref()) {
                batch.remove(&format::recent_id_key(&id));
            }
            batch.remove(key);
            pruned += 1;
        }
        if pruned > 0 {
            self.inner
                .tree
                .apply_batch(batch)
                .map_err(Inner::storage("pruning the recent-id index"))?;
        }
        Ok(pruned == PRUNE_STEP)
    }

    // ---- quarantine -----------------------------------------------------------------------

    /// Move the damaged records of the block holding `seq` (and a damaged block tail) to the
    /// quarantine keyspace. Records that decode are left alone.
    pub fn quarantine(&mut self, seq: u64) -> Result<Vec<Problem>, SpoolError> {
        let Some((key, value)) = self.inner.block_at(seq)? else {
            return Ok(Vec::new());
        };
        let block = format::parse_block(key, &value);
        let mut keep: Vec<&[u8]> = Vec::new();
        let mut batch = sled::Batch::default();
        let mut problems = Vec::new();
        let mut moved = 0u64;
        let mut moved_bytes = 0u64;
        let mut bad_seqs = Vec::new();
        let at = now_millis();
        for rec in &block.records {
            match self.inner.decode(rec) {
                Ok(_) => keep.push(rec.bytes),
                Err(reason) => {
                    let q = QuarantineRecord {
                        at_unix_millis: at,
                        reason: reason.clone(),
                        bytes: rec.bytes.to_vec(),
                    }
                    .encode();
                    moved_bytes += q.len() as u64;
                    batch.insert(format::quarantine_key(rec.seq, 0).to_vec(), q);
                    moved += 1;
                    bad_seqs.push(rec.seq);
                    error!(seq = rec.seq, error = %reason, "Damaged spool record moved to quarantine.");
                    problems.push(Problem {
                        kind: ProblemKind::Quarantined,
                        seq: Some(rec.seq),
                        detail: reason,
                    });
                }
            }
        }
        if let Some(d) = &block.damage {
            let tail_seq = block
                .records
                .last()
                .map_or(key, |r| r.seq.saturating_add(1));
            let reason = format!("damaged block at byte {}: {}", d.offset, d.reason);
            let q = QuarantineRecord {
                at_unix_millis: at,
                reason: reason.clone(),
                bytes: value.get(d.offset..).unwrap_or_default().to_vec(),
            }
            .encode();
            moved_bytes += q.len() as u64;
            batch.insert(format::quarantine_key(tail_seq, 1).to_vec(), q);
            moved += 1;
            error!(seq = tail_seq, error = %reason, "Damaged spool block moved to quarantine.");
            problems.push(Problem {
                kind: ProblemKind::Quarantined,
                seq: Some(tail_seq),
                detail: reason,
            });
        }
        if moved == 0 {
            return Ok(problems);
        }
        let new_len = if keep.is_empty() {
            batch.remove(format::block_key(key).to_vec());
            0
        } else {
            let mut rebuilt = vec![format::BLOCK_V1];
            for r in &keep {
                rebuilt.extend_from_slice(r);
            }
            let n = rebuilt.len();
            batch.insert(format::block_key(key).to_vec(), rebuilt);
            n
        };
        let mut st = self.inner.lock();
        // Replay entries of a quarantined record cannot be served any more.
        let mut released = Vec::new();
        for (name, s) in st.sinks.iter_mut() {
            for seq in &bad_seqs {
                if s.replay.contains(seq) {
                    batch.remove(format::replay_key(name, *seq));
                    released.push((name.clone(), *seq));
                }
            }
        }
        let mut counters = self.counters;
        counters.events = counters
            .events
            .saturating_sub(block.records.len() as u64 - keep.len() as u64);
        counters.block_bytes = counters
            .block_bytes
            .saturating_sub((value.len() - new_len) as u64);
        counters.quarantined += moved;
        counters.quarantine_bytes += moved_bytes;
        batch.insert(format::META_COUNTERS, counters.encode());
        self.inner
            .tree
            .apply_batch(batch)
            .map_err(Inner::storage("quarantining a record"))?;
        self.counters = counters;
        st.counters = counters;
        for (name, seq) in released {
            if let Some(s) = st.sinks.get_mut(&name) {
                s.replay.remove(&seq);
            }
            if st.release(seq) {
                self.gc_resume = 0;
            }
        }
        Ok(problems)
    }

    /// Remove every quarantined entry (an explicit operator command); returns how many.
    fn purge_quarantine(&mut self) -> Result<usize, SpoolError> {
        let mut keys = Vec::new();
        self.inner
            .for_each_in(&format::QUARANTINE_PREFIX, |k, _| keys.push(k.to_vec()))?;
        for chunk in keys.chunks(SCAN_CHUNK) {
            let mut batch = sled::Batch::default();
            for k in chunk {
                batch.remove(k.as_slice());
            }
            self.inner
                .tree
                .apply_batch(batch)
                .map_err(Inner::storage("purging the quarantine"))?;
        }
        let purged = self.counters.quarantined;
        let mut counters = self.counters;
        counters.quarantined = 0;
        counters.quarantine_bytes = 0;
        self.inner
            .tree
            .insert(format::META_COUNTERS, counters.encode())
            .map_err(Inner::storage("writing the counters"))?;
        self.counters = counters;
        self.publish();
        self.inner.sync()?;
        Ok(usize::try_from(purged).unwrap_or(usize::MAX))
    }

    // ---- garbage collection ---------------------------------------------------------------

    /// Remove (or shrink to their held records) up to [`GC_BLOCKS`] blocks that every
    /// configured sink is done with. Returns whether there may be more.
    pub fn gc_step(&mut self) -> Result<bool, SpoolError> {
        let mut st = self.inner.lock();
        let Some(wm) = st.watermark() else {
            return Ok(false);
        };
        if wm < self.gc_resume {
            return Ok(false);
        }
        let mut batch = sled::Batch::default();
        let mut removed_events = 0u64;
        let mut freed = 0u64;
        let mut resume = self.gc_resume;
        let mut processed = 0usize;
        // Blocks are read one ahead, only as far as the watermark: a sink that lags costs
        // two lookups per commit, not a walk.
        let mut current = self.inner.blocks_from(self.gc_resume, 1)?.pop();
        while let Some((first, value)) = current.take() {
            if processed == GC_BLOCKS {
                break;
            }
            let next = self.inner.blocks_from(first.saturating_add(1), 1)?.pop();
            let end = match &next {
                Some((n, _)) => n.saturating_sub(1),
                None => self.counters.next_seq.saturating_sub(1),
            };
            if end > wm {
                break;
            }
            let block = format::parse_block(first, &value);
            if block.damage.is_some() {
                // Quarantine it first; it stays until then.
                drop(st);
                self.inner.report_bad(first);
                return Ok(false);
            }
            if st.held.range(first..=end).next().is_none() {
                batch.remove(format::block_key(first).to_vec());
                removed_events += block.records.len() as u64;
                freed += value.len() as u64;
            } else {
                let keep: Vec<_> = block
                    .records
                    .iter()
                    .filter(|r| st.held.contains_key(&r.seq))
                    .collect();
                if keep.len() < block.records.len() {
                    let mut rebuilt = vec![format::BLOCK_V1];
                    for r in &keep {
                        rebuilt.extend_from_slice(r.bytes);
                    }
                    removed_events += (block.records.len() - keep.len()) as u64;
                    freed += (value.len() - rebuilt.len()) as u64;
                    batch.insert(format::block_key(first).to_vec(), rebuilt);
                }
            }
            resume = end.saturating_add(1);
            processed += 1;
            current = next;
        }
        if processed == 0 {
            return Ok(false);
        }
        let mut counters = self.counters;
        counters.events = counters.events.saturating_sub(removed_events);
        counters.block_bytes = counters.block_bytes.saturating_sub(freed);
        batch.insert(format::META_COUNTERS, counters.encode());
        self.inner
            .tree
            .apply_batch(batch)
            .map_err(Inner::storage("removing delivered events"))?;
        self.counters = counters;
        st.counters = counters;
        self.gc_resume = resume;
        if removed_events > 0 {
            debug!(
                events = removed_events,
                bytes = freed,
                "Delivered events removed."
            );
        }
        Ok(processed == GC_BLOCKS)
    }

    // ---- dropping raw scans ---------------------------------------------------------------

    /// Drop the oldest stored raw scans not held as dead letters until `need` bytes are free
    /// (or none is left). Returns the bytes freed.
    fn drop_scans(&mut self, need: u64) -> Result<u64, SpoolError> {
        let mut st = self.inner.lock();
        let mut batch = sled::Batch::default();
        let mut freed = 0u64;
        let mut dropped = 0u64;
        let mut removed_events = 0u64;
        let mut pos = self.scan_floor;
        let mut floor = self.scan_floor;
        'outer: loop {
            let blocks = self.inner.blocks_from(pos, SCAN_CHUNK)?;
            let Some((last, _)) = blocks.last() else {
                break;
            };
            pos = last.saturating_add(1);
            for (key, value) in &blocks {
                let block = format::parse_block(*key, value);
                if block.damage.is_some() {
                    continue;
                }
                let (gone, keep): (Vec<&format::RawRecord<'_>>, Vec<&format::RawRecord<'_>>) =
                    block
                        .records
                        .iter()
                        .partition(|r| r.is_scan() && !st.held.contains_key(&r.seq));
                if !gone.is_empty() {
                    let new_len = if keep.is_empty() {
                        batch.remove(format::block_key(*key).to_vec());
                        0
                    } else {
                        let mut rebuilt = vec![format::BLOCK_V1];
                        for r in &keep {
                            rebuilt.extend_from_slice(r.bytes);
                        }
                        let n = rebuilt.len();
                        batch.insert(format::block_key(*key).to_vec(), rebuilt);
                        n
                    };
                    freed += (value.len() - new_len) as u64;
                    dropped += gone.len() as u64;
                    removed_events += gone.len() as u64;
                }
                floor = key.saturating_add(1);
                if freed >= need {
                    break 'outer;
                }
            }
            if blocks.len() < SCAN_CHUNK {
                break;
            }
        }
        self.scan_floor = floor;
        if dropped == 0 {
            return Ok(0);
        }
        let mut counters = self.counters;
        counters.events = counters.events.saturating_sub(removed_events);
        counters.block_bytes = counters.block_bytes.saturating_sub(freed);
        counters.dropped_scans += dropped;
        batch.insert(format::META_COUNTERS, counters.encode());
        self.inner
            .tree
            .apply_batch(batch)
            .map_err(Inner::storage("dropping raw scans"))?;
        self.counters = counters;
        st.counters = counters;
        warn!(
            scans = dropped,
            bytes = freed,
            "Spool full: oldest raw scans dropped to make room."
        );
        Ok(freed)
    }
}
