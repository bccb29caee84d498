//! The spool: every accepted event, durable on the gateway (PRODUCT §1, §4). The only module
//! that uses sled; nothing outside it sees a sled type, so the store can be swapped.
//!
//! # Contract
//!
//! * **Accepted means durable.** [`Spool::append`] resolves `Ok` only after the event is in
//!   sled, sled has flushed it, and every file sled wrote has been `fdatasync`ed (see
//!   `durable.rs` for which files and why). Appends that arrive together share one flush
//!   (group commit): a dedicated committer thread takes everything queued, waits up to
//!   `commit_window` for more (at most [`MAX_BATCH`] events), numbers them, writes them, syncs
//!   once, then completes them all.
//! * **Seqs** are assigned at acceptance: 1, 2, 3 … without gaps or reuse, written into the
//!   event (`Event::with_seq`) and persisted with it. An append that fails consumes no seq,
//!   except when the storage itself fails (then the spool refuses everything until restart).
//! * **Once per id, for events that bring their own id.** [`Spool::append_once`] stores an
//!   event only if no event with its id was stored with `append_once` among the last
//!   [`RECENT_IDS`] seqs (an MQTT device's event redelivered after a crash). The recent-id
//!   index is written in the same atomic sled batch as the event, so after a crash both are
//!   there or neither; a duplicate resolves once the event it repeats is durable.
//! * **Per-sink cursors.** [`Spool::next_batch`] gives a sink its replayed dead letters first,
//!   then the durable events after its cursor, in seq order, all kinds (routing is the
//!   engine's job; it acknowledges what it skips). [`Spool::delivered`] moves the cursor; it is
//!   written without a sync and becomes durable with the next commit or sled's periodic flush
//!   (every [`FLUSH_EVERY_MS`] ms), so after a crash a sink may see up to that much again:
//!   at-least-once, and the event id de-duplicates downstream.
//! * **Dead letters** ([`Spool::dead_letter`]) are synced before the call returns, move the
//!   cursor past their event, and keep it stored. Only a sink's next event (or a replay) can
//!   be dead-lettered, so no unacknowledged event is ever passed over. [`Spool::dlq_replay`]
//!   hands them back to their sink, ahead of its new events; only
//!   [`Spool::purge_dead_letters`] (an explicit command) removes them.
//! * **Garbage collection.** An event is removed once every configured sink's cursor is past
//!   it and no sink holds it as a dead letter or replay entry. Sinks found in the store but no
//!   longer configured keep their cursors and dead letters, but do not hold events back.
//!   With no sink configured nothing is removed. A sink configured at open that the store
//!   does not know starts before the oldest stored event: it gets everything still in the
//!   spool (a first start, or a sink added to the local file). A sink added while the spool
//!   is open ([`Spool::add_sink`], a pushed configuration) starts at the last durable event
//!   (a known one keeps its dead letters): it gets what is stored from then on, not whatever
//!   the other sinks happen not to have collected yet.
//! * **Quota** (see [`Spool::is_full`] and `writer.rs`): stock events are refused with
//!   [`AppendError::Full`], never dropped; raw scans are refused too, or with
//!   [`RawScansWhenFull::DropOldest`] the oldest stored raw scans are dropped (counted and
//!   reported) to make room for any new event.
//! * **Self-check at open** ([`SelfCheck`]): the format version, the key, the counters (a
//!   crash between a block write and its counters write is repaired), cursors, dead letters,
//!   and the records each sink reads next and the newest block are verified; with
//!   [`Check::Full`] every record is. A record that does not decode or decrypt is moved to the
//!   quarantine keyspace and reported, whenever it is found (also later, when a sink reads
//!   it): never a crash, never a silent drop, never a sink stuck on it.
//! * **Never a crash loop.** A database sled refuses (or panics on) is
//!   [`SpoolError::Damaged`], naming the path; so is a database that opens empty where a
//!   spool was (sled reads an unreadable log as the end of the log; a marker file next to
//!   its files tells). A directory another process holds is [`SpoolError::Locked`].
//! * **Encryption at rest** (optional): see `crypto.rs`.
//!
//! The on-disk layout is in `format.rs`; the group commit and the quota rule in `writer.rs`;
//! which files are synced and why in `durable.rs`.
//!
//! # Decisions, and what they rest on (measured with sled 0.34.7 on the 2-core dev machine)
//!
//! * **Blocks, not one sled key per event.** Consecutive events of a commit share one sled
//!   value of about [`DEFAULT_BLOCK_TARGET`] bytes. With one key per event plus an id index,
//!   1,000,000 events took 90 MiB of resident memory right after open (sled keeps a page
//!   table entry per page) and 6 µs per event to insert; with ~1 KiB blocks, 10 MiB and
//!   2–3 µs. Bigger blocks did not write faster (sled's cost follows the bytes) and make
//!   every cached page bigger.
//! * **No event-id index** for every event: it would be one sled key per event again (the
//!   recent-id index of `append_once` covers only events that bring their own id, and only
//!   the last [`RECENT_IDS`] seqs). [`Spool::get`] (a
//!   command-line lookup) scans the blocks instead, reading only the ids, which are stored in
//!   the clear: about 250 ms for the newest of 1,000,000 events.
//! * **One entry per sled iterator.** A sled 0.34 iterator that yields many entries keeps
//!   every page it visited in memory until dropped: reading a 1,000,000-event backlog with
//!   16-entry iterators peaked at 82 MiB, with one-entry iterators at 24 MiB (and ran faster).
//! * **Quick self-check by default.** Decoding every record of 1,000,000 events takes over a
//!   second; the quick check takes about 15 ms, and everything else is verified when read.
//! * **Throughput.** A commit of 256 events spends ~150 µs encoding, ~250 µs in sled inserts,
//!   ~250 µs in `Db::flush` (its own write and `sync_file_range` wait) and ~150 µs in the
//!   `fdatasync`s: two device round trips where a plain log needs one, and sled's CPU per
//!   byte on top. Across benchmark runs durable intake was 110,000–300,000 events/s
//!   (150,000–180,000 encrypted), 0.2–0.45 of a raw append+`fdatasync` loop with the same
//!   batch size: the 50,000 events/s target is met, the 0.5 ratio is not. A sync thread
//!   overlapping the next batch with the disk wait was tried and removed (see `writer.rs`).
//!   ChaCha20-Poly1305 costs ~1.8 µs per ~140-byte record here.

mod crypto;
mod durable;
mod format;
mod open;
mod store;
mod writer;

#[cfg(test)]
mod model;
#[cfg(test)]
pub(crate) mod tests;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::Serialize;
use tallyman_protocol::event::{Event, EventId, Kind, Timestamp};
use tokio::sync::{mpsc, oneshot, watch};

use store::Inner;
use writer::Request;

/// The most events one commit takes.
pub const MAX_BATCH: usize = 4096;
/// The default block size (see [`SpoolOptions::block_target_bytes`]).
pub const DEFAULT_BLOCK_TARGET: usize = 1024;
/// sled's background flush period: the longest a cursor move waits to become durable when
/// nothing else is committed.
pub const FLUSH_EVERY_MS: u64 = 250;

/// What to do with raw `scan` events when the spool is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RawScansWhenFull {
    /// Refuse them, like stock events.
    #[default]
    Refuse,
    /// Drop the oldest stored raw scans to make room.
    DropOldest,
}

/// How much of the spool the self-check at open reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// Bounded work: meta, counters, cursors, dead letters, the next records of every sink
    /// and the newest block. The rest is verified when it is read.
    #[default]
    Quick,
    /// Every record is decoded (and decrypted); the counters are recounted.
    Full,
}

/// How to open a spool.
#[derive(Debug, Clone)]
pub struct SpoolOptions {
    /// sled's directory (created if missing).
    pub dir: PathBuf,
    /// The quota, in bytes on disk.
    pub max_bytes: u64,
    /// sled's page cache.
    pub cache_capacity_bytes: u64,
    /// How long the committer waits for more appends after the first one of a batch.
    pub commit_window: Duration,
    /// The encryption key (see `crypto.rs`); none: payloads are stored in the clear.
    pub encryption_key_file: Option<PathBuf>,
    /// The names of the configured sinks.
    pub sinks: Vec<String>,
    pub raw_scans_when_full: RawScansWhenFull,
    pub check: Check,
    /// Records are packed into blocks (one sled value each) of about this many bytes. Small
    /// blocks keep sled's pages small (its cache evicts whole pages, and late); large ones
    /// cost fewer sled keys. [`DEFAULT_BLOCK_TARGET`] is what the spool benchmark chose.
    pub block_target_bytes: usize,
    /// How many of the last seqs [`Spool::append_once`] remembers ids for
    /// ([`RECENT_IDS`]; smaller only in tests).
    pub recent_ids: u64,
}

impl SpoolOptions {
    /// Options with the defaults of the configuration file: 512 MiB, a 2 ms window, no key.
    pub fn new(dir: impl Into<PathBuf>, sinks: Vec<String>) -> SpoolOptions {
        SpoolOptions {
            dir: dir.into(),
            max_bytes: 512 * 1024 * 1024,
            cache_capacity_bytes: 4 * 1024 * 1024,
            commit_window: Duration::from_millis(2),
            encryption_key_file: None,
            sinks,
            raw_scans_when_full: RawScansWhenFull::Refuse,
            check: Check::Quick,
            block_target_bytes: DEFAULT_BLOCK_TARGET,
            recent_ids: RECENT_IDS,
        }
    }
}

/// An event the spool has made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    pub seq: u64,
    pub id: EventId,
}

/// How many of the last seqs [`Spool::append_once`] remembers ids for. A redelivery comes
/// within the broker's in-flight window of the original, so this is far more than needed; it
/// costs about 60 bytes of disk per event (not counted against the quota).
pub const RECENT_IDS: u64 = 1 << 16;

/// What [`Spool::append_once`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Stored now.
    New(Accepted),
    /// An event with this id was stored before, as `seq`; nothing was stored.
    Duplicate { seq: u64 },
}

impl Appended {
    /// The seq the event is stored as (now or earlier).
    pub fn seq(&self) -> u64 {
        match self {
            Appended::New(a) => a.seq,
            Appended::Duplicate { seq } => *seq,
        }
    }
}

/// An append handed to the committer (see [`Spool::enqueue`]).
#[derive(Debug)]
#[must_use = "an append's outcome says whether the event is durable"]
pub struct Queued(oneshot::Receiver<Result<Appended, AppendError>>);

impl Queued {
    /// Resolves once the event is durable (or was refused).
    pub async fn outcome(self) -> Result<Appended, AppendError> {
        self.0.await.map_err(|_| AppendError::Closed)?
    }
}

/// A stored event handed to a sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub seq: u64,
    pub event: Event,
    /// A dead letter handed back by an operator (not a new event).
    pub replay: bool,
}

/// Why a sink gave up on an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterInfo {
    /// The business reason ("unknown product 0950…").
    pub reason: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub first_attempt_at: Timestamp,
    pub last_attempt_at: Timestamp,
}

/// A dead letter, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    pub sink: String,
    pub seq: u64,
    pub event_id: EventId,
    pub kind: Kind,
    pub reason: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub first_attempt_at: Timestamp,
    pub last_attempt_at: Timestamp,
    /// Handed back to the sink and not yet delivered again.
    pub replaying: bool,
}

/// Which dead letters a command applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    All,
    Ids(Vec<EventId>),
}

/// A quarantined record or damaged block, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Quarantined {
    /// The record's seq (for a damaged block tail: the seq after its last readable record).
    pub seq: u64,
    pub at: Option<Timestamp>,
    pub reason: String,
    /// Bytes kept, as they were found.
    pub bytes: usize,
}

/// One sink's position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SinkStats {
    pub name: String,
    /// In the configuration this spool was opened with.
    pub configured: bool,
    /// Every event up to this seq is done for the sink.
    pub cursor: u64,
    /// Events after the cursor, at most: the span of seqs after the cursor, bounded by the
    /// events stored (records quarantined or dropped after the cursor are still counted).
    pub backlog: u64,
    pub dead_letters: u64,
    pub replaying: u64,
}

/// Counts for `tallyman spool stats` and health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub events_stored: u64,
    /// The last seq accepted (0: none yet).
    pub last_seq: u64,
    pub bytes_live: u64,
    pub bytes_on_disk: u64,
    pub max_bytes: u64,
    pub full: bool,
    pub sinks: Vec<SinkStats>,
    pub dead_letters: u64,
    pub quarantined: u64,
    pub dropped_scans: u64,
    pub encrypted: bool,
    /// Group commits since the spool was opened (one flush and fdatasync each).
    pub commits: u64,
}

/// Something the self-check found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub kind: ProblemKind,
    pub seq: Option<u64>,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// A record did not decode or decrypt; it was moved to quarantine.
    Quarantined,
    /// A dead letter or replay entry whose event is not stored.
    MissingEvent,
    /// The counters did not match the blocks (full check); they were corrected.
    CountersCorrected,
}

/// What the self-check at open found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SelfCheck {
    pub check: Check,
    pub format_version: u32,
    /// The directory held no spool; an empty one was made.
    pub created: bool,
    pub encrypted: bool,
    pub events_stored: u64,
    pub last_seq: u64,
    /// Events found written after the last counters write (a crash between the two); counted.
    pub recovered_events: u64,
    pub bytes_live: u64,
    pub bytes_on_disk: u64,
    pub sinks: Vec<SinkStats>,
    /// Sinks in the store that are not configured: kept, reported, not holding events back.
    pub unconfigured_sinks: Vec<String>,
    /// Configured sinks the store did not know; they start before the oldest stored event.
    pub new_sinks: Vec<String>,
    pub dead_letters: u64,
    /// Entries in quarantine (ever, until purged).
    pub quarantined: u64,
    pub dropped_scans: u64,
    /// Events removed at open because every sink was done with them.
    pub collected_events: u64,
    pub problems: Vec<Problem>,
    pub duration_ms: u64,
}

/// Why a spool cannot be opened or an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("the spool at {path} is in use by another tallyman process")]
    Locked { path: PathBuf },
    #[error("opening the spool at {path}: {source}")]
    OpenSpool { path: PathBuf, source: sled::Error },
    #[error(
        "the spool at {path} is damaged and cannot be opened ({detail}); move the directory aside to start with an empty spool, and keep it for analysis"
    )]
    Damaged { path: PathBuf, detail: String },
    #[error("the spool at {path} has format version {found}; this build reads version {supported}")]
    UnsupportedFormat {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("{path} holds a database that is not a tallyman spool")]
    NotASpool { path: PathBuf },
    #[error("the spool at {path} was written with another encryption key than the one configured")]
    KeyMismatch { path: PathBuf },
    #[error("the spool at {path} holds encrypted events but no encryption_key_file is configured")]
    KeyMissing { path: PathBuf },
    #[error("reading the spool encryption key {path}: {source}")]
    ReadKey {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the spool encryption key {path} is accessible to group or others (mode {mode:o}); make it readable by the service user only (chmod 600)"
    )]
    KeyPermissions { path: PathBuf, mode: u32 },
    #[error(
        "the spool encryption key {path} must hold 32 raw bytes or 64 hexadecimal characters ({len} bytes found)"
    )]
    KeyFormat { path: PathBuf, len: u64 },
    #[error("creating the spool directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid spool options: {0}")]
    InvalidOptions(String),
    #[error("starting the spool committer: {0}")]
    StartCommitter(std::io::Error),
    #[error("spool storage failed while {op}: {source}")]
    Storage {
        op: &'static str,
        source: sled::Error,
    },
    #[error("syncing {path} to disk: {source}")]
    Sync {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no sink named {0:?} in the spool")]
    UnknownSink(String),
    #[error("no event with seq {0} is stored")]
    NoSuchEvent(u64),
    #[error("sink {sink:?} is already past seq {seq}")]
    NotPending { sink: String, seq: u64 },
    #[error(
        "sink {sink:?} cannot dead-letter seq {seq} before it acknowledges seq {next}, its next event"
    )]
    NotNext { sink: String, seq: u64, next: u64 },
    #[error("the spool is closed")]
    Closed,
    #[error("the spool stopped accepting writes after a storage failure: {0}")]
    Failed(String),
}

/// Why an event was not accepted.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AppendError {
    #[error("the spool is full ({used} of {max} bytes)")]
    Full { used: u64, max: u64 },
    #[error("the spool is closed")]
    Closed,
    #[error("the spool stopped accepting events after a storage failure: {0}")]
    Failed(String),
    #[error("the event could not be encoded: {0}")]
    Encode(String),
    #[error("the event could not be encrypted: {0}")]
    Encrypt(String),
}

/// The spool. Cheap to clone; every clone is the same spool.
#[derive(Debug, Clone)]
pub struct Spool {
    inner: Arc<Inner>,
    tx: mpsc::Sender<Request>,
}

impl Spool {
    /// Open (or create) the spool in `options.dir`, check it, and start its committer.
    pub fn open(options: SpoolOptions) -> Result<(Spool, SelfCheck), SpoolError> {
        open::open(options)
    }

    /// Store `event` durably and give it the next seq. Resolves once the event is durable.
    pub async fn append(&self, event: Event) -> Result<Accepted, AppendError> {
        let id = event.id();
        match self.enqueue(event).await?.outcome().await? {
            Appended::New(accepted) => Ok(accepted),
            // Not asked to look for duplicates, so this does not happen; the event is stored.
            Appended::Duplicate { seq } => Ok(Accepted { seq, id }),
        }
    }

    /// Store `event` unless an event with its id was stored with `append_once` among the last
    /// [`RECENT_IDS`] events: for events that arrive with their own id and may arrive twice (an
    /// MQTT redelivery after a crash). The id is recorded in the same atomic write as the
    /// event, so after a crash either both are there or neither. Resolves once the event (or
    /// the earlier one it duplicates) is durable.
    pub async fn append_once(&self, event: Event) -> Result<Appended, AppendError> {
        self.enqueue_once(event).await?.outcome().await
    }

    /// Hand `event` to the committer and return as soon as it is queued (waiting only for room
    /// in the queue); [`Queued::outcome`] resolves once it is durable. Events one task queues
    /// one after another get seqs in that order, while their durability is awaited together —
    /// how a source keeps several appends in one group commit without reordering them.
    pub async fn enqueue(&self, event: Event) -> Result<Queued, AppendError> {
        self.request_append(event, false).await
    }

    /// [`Spool::enqueue`] with the de-duplication of [`Spool::append_once`].
    pub async fn enqueue_once(&self, event: Event) -> Result<Queued, AppendError> {
        self.request_append(event, true).await
    }

    async fn request_append(&self, event: Event, once: bool) -> Result<Queued, AppendError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(AppendError::Closed);
        }
        if let Some(why) = self.inner.failure() {
            return Err(AppendError::Failed(why));
        }
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::Append { event, once, reply })
            .await
            .map_err(|_| AppendError::Closed)?;
        Ok(Queued(rx))
    }

    /// Up to `max` events for `sink`: its replayed dead letters first, then the durable events
    /// after its cursor in seq order. Reading does not move anything: the same events come
    /// again until they are acknowledged.
    pub fn next_batch(&self, sink: &str, max: usize) -> Result<Vec<Stored>, SpoolError> {
        self.inner.next_batch(sink, max)
    }

    /// Configure `sink` while the spool is open (a configuration applied at runtime). A sink
    /// configured already keeps its cursor; any other starts at the last durable event: it
    /// gets the events made durable from now on, not a backlog. One the store knows from
    /// before (removed earlier) keeps its dead letters; since an unconfigured sink holds no
    /// event back, what was still stored after its old cursor is not handed to it. (At
    /// [`Spool::open`] a sink the store does not know starts before the oldest stored event,
    /// and a known one resumes at its cursor: see the module contract.) Returns its cursor
    /// and whether it was (re)started at the end. Durable before it returns; blocking (it
    /// syncs when it writes): from async code call it through `spawn_blocking`.
    pub fn add_sink(&self, sink: &str) -> Result<(u64, bool), SpoolError> {
        self.inner.add_sink(sink)
    }

    /// `sink` is no longer configured (removed by a configuration applied at runtime): its
    /// cursor and dead letters stay, it no longer holds events back.
    pub fn retire_sink(&self, sink: &str) {
        self.inner.retire_sink(sink);
    }

    /// `sink` is done with these events (delivered, or not routed to it): each replay entry
    /// among them is removed; otherwise the cursor moves to the highest of them (cumulative:
    /// acknowledge in seq order). Durable lazily (see the module contract).
    pub fn delivered(&self, sink: &str, seqs: &[u64]) -> Result<(), SpoolError> {
        self.inner.delivered(sink, seqs)
    }

    /// `sink` gave up on event `seq`: keep it as a dead letter, durably, before returning,
    /// and move the sink's cursor past it. `seq` must be the sink's next event (everything
    /// before it acknowledged: [`SpoolError::NotNext`] otherwise) or one of its replays.
    /// Blocking (it syncs): from async code call it through `spawn_blocking`.
    pub fn dead_letter(
        &self,
        sink: &str,
        seq: u64,
        info: DeadLetterInfo,
    ) -> Result<(), SpoolError> {
        self.inner.dead_letter(sink, seq, info)
    }

    /// Dead letters (and those being replayed), of one sink or all, by sink then seq.
    pub fn dlq_list(&self, sink: Option<&str>) -> Result<Vec<DeadLetter>, SpoolError> {
        self.inner.dlq_list(sink)
    }

    /// Hand dead letters back to their sinks; returns how many. Durable before returning.
    pub fn dlq_replay(&self, sink: Option<&str>, which: &Selection) -> Result<usize, SpoolError> {
        self.inner.dlq_replay(sink, which)
    }

    /// Remove dead letters for good (an explicit operator command); returns how many.
    pub fn purge_dead_letters(
        &self,
        sink: Option<&str>,
        which: &Selection,
    ) -> Result<usize, SpoolError> {
        self.inner.purge_dead_letters(sink, which)
    }

    /// A receiver whose value changes after every commit that made events durable and every
    /// replay: call `borrow_and_update` (or `mark_unchanged`) before `next_batch`, and await
    /// `changed()` when the batch was empty.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    /// Whether a typical event would be refused now (health goes red).
    pub fn is_full(&self) -> bool {
        self.inner.full.load(Ordering::Acquire)
    }

    pub fn stats(&self) -> Stats {
        self.inner.stats()
    }

    /// The stored event with this id (a scan over the stored blocks: for the command line).
    pub fn get(&self, id: EventId) -> Result<Option<Stored>, SpoolError> {
        self.inner.get(id)
    }

    /// Up to `limit` stored events with seq above `after_seq`, in seq order.
    pub fn list(&self, after_seq: u64, limit: usize) -> Result<Vec<Stored>, SpoolError> {
        self.inner.list(after_seq, limit)
    }

    /// The quarantined records and block tails (the quarantine is small; listed whole).
    pub fn quarantine_list(&self) -> Result<Vec<Quarantined>, SpoolError> {
        self.inner.quarantine_list()
    }

    /// Remove everything in quarantine (an explicit operator command); returns how many.
    pub async fn purge_quarantine(&self) -> Result<usize, SpoolError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::PurgeQuarantine { reply })
            .await
            .map_err(|_| SpoolError::Closed)?;
        rx.await.map_err(|_| SpoolError::Closed)?
    }

    /// Quarantine what readers found damaged and collect garbage until nothing is left to
    /// do (normally both happen in the background), then return.
    pub async fn settle(&self) -> Result<(), SpoolError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::Settle { reply })
            .await
            .map_err(|_| SpoolError::Closed)?;
        rx.await.map_err(|_| SpoolError::Closed)
    }

    /// Resolves once the committer has taken this request and finished the commit it came
    /// with: the committer is alive and not stuck behind a write (the service watchdog asks
    /// this). A spool that refuses events (full, or after a storage failure) still answers.
    pub async fn ping(&self) -> Result<(), SpoolError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::Ping { reply })
            .await
            .map_err(|_| SpoolError::Closed)?;
        rx.await.map_err(|_| SpoolError::Closed)
    }

    /// Commit what is queued, flush and sync, and stop the committer. Later appends fail with
    /// `Closed`. sled's files close when the last clone of the spool is dropped.
    pub async fn close(&self) -> Result<(), SpoolError> {
        self.inner.closed.store(true, Ordering::Release);
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Request::Close { reply }).await.is_err() {
            // The committer is gone already (closed before).
            return Ok(());
        }
        rx.await.unwrap_or(Ok(()))
    }
}
