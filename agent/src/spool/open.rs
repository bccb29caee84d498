//! Opening a spool: sled, the meta keyspace, the key, the counters, the sinks, the self-check,
//! then the committer.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{Notify, mpsc, watch};
use tracing::{info, warn};

use super::crypto::Cipher;
use super::durable::{self, DiskSync};
use super::format::{self, Counters, DeadRecord, FORMAT_VERSION};
use super::store::{Inner, SCAN_CHUNK, SinkState, State};
use super::writer::Writer;
use super::{
    Check, FLUSH_EVERY_MS, MAX_BATCH, Problem, ProblemKind, SelfCheck, Spool, SpoolError,
    SpoolOptions,
};

/// A file written next to sled's once the spool exists: a database that later opens empty
/// has lost its data.
const MARKER: &str = "tallyman-spool";
/// Garbage-collection steps (of up to 256 blocks) done before `open` returns.
const OPEN_GC_STEPS: usize = 4;
/// The longest sink name (it is part of sled keys).
pub(super) const MAX_SINK_NAME: usize = 255;

pub fn open(options: SpoolOptions) -> Result<(Spool, SelfCheck), SpoolError> {
    let started = Instant::now();
    validate(&options)?;
    let cipher = options
        .encryption_key_file
        .as_deref()
        .map(Cipher::from_key_file)
        .transpose()?;
    let path = options.dir.clone();
    let created_dir = create_dir(&path)?;
    let db = open_sled(&path, options.cache_capacity_bytes)?;
    let tree = db
        .open_tree("spool")
        .map_err(Inner::storage("opening the spool tree"))?;
    let disk = DiskSync::new(&path).map_err(|e| SpoolError::Sync {
        path: e.path,
        source: e.source,
    })?;
    let (changes, _) = watch::channel(0u64);
    let inner = Arc::new(Inner {
        path: path.clone(),
        db,
        tree,
        cipher,
        disk,
        max_bytes: options.max_bytes,
        raw_scans_when_full: options.raw_scans_when_full,
        recent_ids: options.recent_ids.max(1),
        state: Mutex::new(State::default()),
        durable_seq: AtomicU64::new(0),
        changes,
        failure: Mutex::new(None),
        full: AtomicBool::new(false),
        closed: AtomicBool::new(false),
        on_disk: AtomicU64::new(0),
        gc_wake: Notify::new(),
        suspects: Mutex::new(BTreeSet::new()),
        rewind_gc: AtomicBool::new(false),
        gc_wake_flag: AtomicBool::new(false),
        commits: AtomicU64::new(0),
    });

    let created = check_format(&inner)?;
    check_key(&inner)?;
    let mut problems = Vec::new();
    let (mut counters, counters_lost) = load_counters(&inner, created)?;
    let recovered = if counters_lost {
        0
    } else {
        recover_tail(&inner, &mut counters)?
    };
    let (new_sinks, unconfigured) = load_sinks(&inner, &options.sinks, &counters)?;

    let mut writer = Writer::new(Arc::clone(&inner), counters, options.block_target_bytes);
    writer.publish();
    inner
        .durable_seq
        .store(counters.next_seq.saturating_sub(1), Ordering::Release);

    let full_check = options.check == Check::Full || counters_lost;
    if full_check {
        full_verify(&mut writer, &mut problems)?;
    } else {
        quick_verify(&mut writer, &mut problems)?;
    }
    if recovered > 0 || counters_lost || created {
        inner
            .tree
            .insert(format::META_COUNTERS, writer.counters.encode())
            .map_err(Inner::storage("writing the counters"))?;
    }
    problems.extend(missing_events(&inner)?);

    // Some garbage collection now (bounded, so that start-up stays fast however much a
    // removed sink was holding back); the committer carries on in the background.
    let before = writer.counters.events;
    for _ in 0..OPEN_GC_STEPS {
        if !writer.gc_step()? {
            break;
        }
    }
    let collected = before.saturating_sub(writer.counters.events);
    inner.sync()?;
    if created || !path.join(MARKER).exists() {
        write_marker(&path)?;
    }
    if created_dir {
        if let Some(parent) = path.parent() {
            durable::sync_dir(parent).map_err(|e| SpoolError::Sync {
                path: e.path,
                source: e.source,
            })?;
        }
    }
    writer.update_full();

    let report = {
        let st = inner.lock();
        let c = st.counters;
        SelfCheck {
            check: if full_check {
                Check::Full
            } else {
                Check::Quick
            },
            format_version: FORMAT_VERSION,
            created,
            encrypted: inner.cipher.is_some(),
            events_stored: c.events,
            last_seq: c.next_seq.saturating_sub(1),
            recovered_events: recovered,
            bytes_live: c.live_bytes(),
            bytes_on_disk: inner.on_disk.load(Ordering::Acquire),
            sinks: st.sink_stats(),
            unconfigured_sinks: unconfigured,
            new_sinks,
            dead_letters: st.sinks.values().map(|s| s.dead.len() as u64).sum(),
            quarantined: c.quarantined,
            dropped_scans: c.dropped_scans,
            collected_events: collected,
            problems,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        }
    };
    for name in &report.unconfigured_sinks {
        warn!(component_id = %name, "The spool holds a sink that is not configured; its cursor and dead letters are kept.");
    }
    info!(
        events = report.events_stored,
        last_seq = report.last_seq,
        problems = report.problems.len(),
        duration_ms = report.duration_ms,
        "Spool opened."
    );

    let (tx, rx) = mpsc::channel(MAX_BATCH);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(SpoolError::StartCommitter)?;
    let window = options.commit_window;
    std::thread::Builder::new()
        .name("spool-commit".into())
        .spawn(move || writer.run(rx, window, rt))
        .map_err(SpoolError::StartCommitter)?;
    inner.wake_gc();
    Ok((Spool { inner, tx }, report))
}

/// Write the marker file durably (after the new spool itself is durable).
fn write_marker(dir: &Path) -> Result<(), SpoolError> {
    use std::io::Write;
    let path = dir.join(MARKER);
    let sync_err = |source| SpoolError::Sync {
        path: path.clone(),
        source,
    };
    let mut f = std::fs::File::create(&path).map_err(sync_err)?;
    f.write_all(format!("tallyman spool, format {FORMAT_VERSION}\n").as_bytes())
        .map_err(sync_err)?;
    f.sync_all().map_err(sync_err)?;
    durable::sync_dir(dir).map_err(|e| SpoolError::Sync {
        path: e.path,
        source: e.source,
    })
}

fn validate(o: &SpoolOptions) -> Result<(), SpoolError> {
    let bad = |m: String| Err(SpoolError::InvalidOptions(m));
    if o.max_bytes == 0 {
        return bad("max_bytes must be above 0".into());
    }
    if o.cache_capacity_bytes < 256 * 1024 {
        return bad("cache_capacity_bytes must be at least 256 KiB".into());
    }
    let mut seen = BTreeSet::new();
    for s in &o.sinks {
        if s.is_empty() || s.len() > MAX_SINK_NAME {
            return bad(format!(
                "sink name {s:?} must be 1 to {MAX_SINK_NAME} bytes"
            ));
        }
        if !seen.insert(s) {
            return bad(format!("sink {s:?} is named twice"));
        }
    }
    Ok(())
}

/// Create the spool directory if needed; true if it was created.
fn create_dir(path: &Path) -> Result<bool, SpoolError> {
    if path.is_dir() {
        return Ok(false);
    }
    std::fs::create_dir_all(path).map_err(|source| SpoolError::CreateDir {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(true)
}

fn open_sled(path: &Path, cache: u64) -> Result<sled::Db, SpoolError> {
    let config = sled::Config::new()
        .path(path)
        .cache_capacity(cache)
        .flush_every_ms(Some(FLUSH_EVERY_MS))
        .mode(sled::Mode::LowSpace);
    // sled's recovery has assertions of its own: a damaged database must give an error that
    // names the path, not a panic that restarts the service into the same panic forever.
    let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| config.open()));
    let damaged = |detail: String| SpoolError::Damaged {
        path: path.to_path_buf(),
        detail,
    };
    match opened {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(sled::Error::Io(e)))
            if e.kind() == std::io::ErrorKind::Other
                && e.to_string().contains("could not acquire lock") =>
        {
            Err(SpoolError::Locked {
                path: path.to_path_buf(),
            })
        }
        Ok(Err(e @ sled::Error::Corruption { .. })) => Err(damaged(e.to_string())),
        Ok(Err(sled::Error::ReportableBug(m))) => Err(damaged(m)),
        Ok(Err(source)) => Err(SpoolError::OpenSpool {
            path: path.to_path_buf(),
            source,
        }),
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "sled failed while recovering".into());
            Err(damaged(what))
        }
    }
}

/// Check or write the format version; true if the spool is new.
fn check_format(inner: &Inner) -> Result<bool, SpoolError> {
    let t = &inner.tree;
    match t
        .get(format::META_FORMAT)
        .map_err(Inner::storage("reading the format version"))?
    {
        Some(v) => {
            let found = <[u8; 4]>::try_from(v.as_ref())
                .map(u32::from_be_bytes)
                .map_err(|_| SpoolError::NotASpool {
                    path: inner.path.clone(),
                })?;
            if found != FORMAT_VERSION {
                return Err(SpoolError::UnsupportedFormat {
                    path: inner.path.clone(),
                    found,
                    supported: FORMAT_VERSION,
                });
            }
            Ok(false)
        }
        None => {
            let empty = t
                .first()
                .map_err(Inner::storage("reading the spool"))?
                .is_none()
                && inner
                    .db
                    .first()
                    .map_err(Inner::storage("reading the spool"))?
                    .is_none();
            if !empty {
                return Err(SpoolError::NotASpool {
                    path: inner.path.clone(),
                });
            }
            if inner.path.join(MARKER).exists() {
                // sled treats a log it cannot read as the end of the log: a destroyed
                // database opens empty. Never start over silently on top of it.
                return Err(SpoolError::Damaged {
                    path: inner.path.clone(),
                    detail: format!(
                        "the database opened empty, but {MARKER} shows it held a spool"
                    ),
                });
            }
            t.insert(format::META_FORMAT, &FORMAT_VERSION.to_be_bytes())
                .map_err(Inner::storage("writing the format version"))?;
            Ok(true)
        }
    }
}

fn check_key(inner: &Inner) -> Result<(), SpoolError> {
    let stored = inner
        .tree
        .get(format::META_KEYCHECK)
        .map_err(Inner::storage("reading the key check value"))?;
    match (stored, &inner.cipher) {
        (Some(kc), Some(c)) if c.matches(&kc) => Ok(()),
        (Some(_), Some(_)) => Err(SpoolError::KeyMismatch {
            path: inner.path.clone(),
        }),
        (Some(_), None) => Err(SpoolError::KeyMissing {
            path: inner.path.clone(),
        }),
        (None, Some(c)) => {
            let kc = c
                .key_check()
                .map_err(|e| SpoolError::Failed(e.to_string()))?;
            inner
                .tree
                .insert(format::META_KEYCHECK, kc)
                .map_err(Inner::storage("writing the key check value"))?;
            Ok(())
        }
        (None, None) => Ok(()),
    }
}

/// The counters, and whether they were missing or unreadable in an existing spool (then they
/// are rebuilt by the full check).
fn load_counters(inner: &Inner, created: bool) -> Result<(Counters, bool), SpoolError> {
    let stored = inner
        .tree
        .get(format::META_COUNTERS)
        .map_err(Inner::storage("reading the counters"))?;
    match stored.as_deref().map(Counters::decode) {
        Some(Some(c)) => Ok((c, false)),
        _ if created => Ok((Counters::new(), false)),
        _ => Ok((Counters::new(), true)),
    }
}

/// Count blocks written after the last counters write (a crash in between).
fn recover_tail(inner: &Inner, counters: &mut Counters) -> Result<u64, SpoolError> {
    let mut recovered = 0u64;
    loop {
        let blocks = inner.blocks_from(counters.next_seq, SCAN_CHUNK)?;
        for (key, value) in &blocks {
            let block = format::parse_block(*key, value);
            counters.events += block.records.len() as u64;
            counters.block_bytes += value.len() as u64;
            recovered += block.records.len() as u64;
            let last = block.records.last().map_or(*key, |r| r.seq);
            counters.next_seq = counters.next_seq.max(last.saturating_add(1));
        }
        if blocks.len() < SCAN_CHUNK {
            break;
        }
    }
    if recovered > 0 {
        info!(
            events = recovered,
            "Spool: counted events written just before the last stop."
        );
    }
    Ok(recovered)
}

/// Visit every key/value under the one-byte `prefix`.
fn scan_prefix(
    inner: &Inner,
    prefix: &[u8; 1],
    f: impl FnMut(&[u8], &[u8]),
) -> Result<(), SpoolError> {
    inner.for_each_in(prefix, f)
}

/// Load cursors and dead letters; add configured sinks the store does not know. Returns the
/// new sinks and the unconfigured ones.
fn load_sinks(
    inner: &Inner,
    configured: &[String],
    counters: &Counters,
) -> Result<(Vec<String>, Vec<String>), SpoolError> {
    let mut st = inner.lock();
    st.counters = *counters;
    scan_prefix(inner, &format::CURSOR_PREFIX, |k, v| {
        if let (Some(name), Some(cursor)) = (format::cursor_sink(k), format::decode_u64(v)) {
            st.sinks.entry(name.to_string()).or_default().cursor = cursor;
        }
    })?;
    let mut held = Vec::new();
    scan_prefix(inner, &format::DEAD_PREFIX, |k, _| {
        if let Some((name, seq)) = format::parse_dead_key(k) {
            st.sinks
                .entry(name.to_string())
                .or_default()
                .dead
                .insert(seq);
            held.push(seq);
        }
    })?;
    scan_prefix(inner, &format::REPLAY_PREFIX, |k, _| {
        if let Some((name, seq)) = format::parse_replay_key(k) {
            st.sinks
                .entry(name.to_string())
                .or_default()
                .replay
                .insert(seq);
            held.push(seq);
        }
    })?;
    for seq in held {
        st.hold(seq);
    }
    // A new sink starts before the oldest stored event.
    let oldest = inner
        .blocks_from(0, 1)?
        .first()
        .map_or(counters.next_seq, |(k, _)| *k);
    let start = oldest.saturating_sub(1);
    let mut new_sinks = Vec::new();
    for name in configured {
        let s = st.sinks.entry(name.clone()).or_insert_with(|| {
            new_sinks.push(name.clone());
            SinkState {
                cursor: start,
                ..SinkState::default()
            }
        });
        s.configured = true;
    }
    for name in &new_sinks {
        inner
            .tree
            .insert(format::cursor_key(name), &format::encode_u64(start))
            .map_err(Inner::storage("writing a cursor"))?;
    }
    let unconfigured = st
        .sinks
        .iter()
        .filter(|(_, s)| !s.configured)
        .map(|(n, _)| n.clone())
        .collect();
    Ok((new_sinks, unconfigured))
}

/// Decode every record of the block stored at `key`; quarantine what fails.
fn verify_block(
    writer: &mut Writer,
    key: u64,
    value: &[u8],
    problems: &mut Vec<Problem>,
) -> Result<(), SpoolError> {
    let block = format::parse_block(key, value);
    let bad = block.damage.is_some()
        || block
            .records
            .iter()
            .any(|r| writer.inner.decode(r).is_err());
    if bad {
        problems.extend(writer.quarantine(key)?);
    }
    Ok(())
}

/// The bounded check: the newest block and the blocks each configured sink reads next.
fn quick_verify(writer: &mut Writer, problems: &mut Vec<Problem>) -> Result<(), SpoolError> {
    let inner = Arc::clone(&writer.inner);
    let mut keys = BTreeSet::new();
    let last = inner
        .tree
        .range(format::block_key(0)..format::BLOCK_END)
        // One entry from the back (see `Inner::first_in`).
        .next_back()
        .transpose()
        .map_err(Inner::storage("reading the newest block"))?;
    if let Some(k) = last.as_ref().and_then(|(k, _)| format::block_seq(k)) {
        keys.insert(k);
    }
    let cursors: Vec<u64> = inner
        .lock()
        .sinks
        .values()
        .filter(|s| s.configured)
        .map(|s| s.cursor)
        .collect();
    for c in cursors {
        if let Some((k, _)) = inner.block_at(c.saturating_add(1))? {
            keys.insert(k);
        }
        if let Some((k, _)) = inner.blocks_from(c.saturating_add(2), 1)?.first() {
            keys.insert(*k);
        }
    }
    for k in keys {
        if let Some(v) = inner
            .tree
            .get(format::block_key(k))
            .map_err(Inner::storage("reading a block"))?
        {
            verify_block(writer, k, &v, problems)?;
        }
    }
    Ok(())
}

/// Every block: decode every record, quarantine failures, recount the counters.
fn full_verify(writer: &mut Writer, problems: &mut Vec<Problem>) -> Result<(), SpoolError> {
    let inner = Arc::clone(&writer.inner);
    let mut from = 0u64;
    loop {
        let blocks = inner.blocks_from(from, SCAN_CHUNK)?;
        for (key, value) in &blocks {
            verify_block(writer, *key, value, problems)?;
        }
        match blocks.last() {
            Some((k, _)) if blocks.len() == SCAN_CHUNK => from = k.saturating_add(1),
            _ => break,
        }
    }
    // Recount.
    let mut c = Counters {
        next_seq: writer.counters.next_seq,
        dropped_scans: writer.counters.dropped_scans,
        ..Counters::default()
    };
    let mut from = 0u64;
    loop {
        let blocks = inner.blocks_from(from, SCAN_CHUNK)?;
        for (key, value) in &blocks {
            let block = format::parse_block(*key, value);
            c.events += block.records.len() as u64;
            c.block_bytes += value.len() as u64;
            if let Some(r) = block.records.last() {
                c.next_seq = c.next_seq.max(r.seq.saturating_add(1));
            }
        }
        match blocks.last() {
            Some((k, _)) if blocks.len() == SCAN_CHUNK => from = k.saturating_add(1),
            _ => break,
        }
    }
    scan_prefix(&inner, &format::QUARANTINE_PREFIX, |k, v| {
        c.quarantined += 1;
        c.quarantine_bytes += v.len() as u64;
        if let Some(q) = format::quarantine_seq(k) {
            c.next_seq = c.next_seq.max(q.saturating_add(1));
        }
    })?;
    // Seqs are never given twice: whatever a sink has seen was given already.
    let seen = {
        let st = inner.lock();
        st.sinks
            .values()
            .flat_map(|s| {
                std::iter::once(s.cursor)
                    .chain(s.dead.iter().copied())
                    .chain(s.replay.iter().copied())
            })
            .max()
            .unwrap_or(0)
    };
    c.next_seq = c.next_seq.max(seen.saturating_add(1));
    if c != writer.counters {
        problems.push(Problem {
            kind: ProblemKind::CountersCorrected,
            seq: None,
            detail: format!(
                "counters were {:?}, the blocks hold {:?}",
                writer.counters, c
            ),
        });
        inner
            .tree
            .insert(format::META_COUNTERS, c.encode())
            .map_err(Inner::storage("writing the counters"))?;
        writer.counters = c;
        writer.publish();
    }
    Ok(())
}

/// Dead-letter and replay entries whose event is not stored.
fn missing_events(inner: &Inner) -> Result<Vec<Problem>, SpoolError> {
    let entries: Vec<(String, u64, bool)> = {
        let st = inner.lock();
        st.sinks
            .iter()
            .flat_map(|(n, s)| {
                s.dead
                    .iter()
                    .map(move |q| (n.clone(), *q, false))
                    .chain(s.replay.iter().map(move |q| (n.clone(), *q, true)))
            })
            .collect()
    };
    let mut problems = Vec::new();
    for (sink, seq, replay) in entries {
        let present = match inner.block_at(seq)? {
            Some((k, v)) => format::parse_block(k, &v)
                .records
                .iter()
                .any(|r| r.seq == seq),
            None => false,
        };
        if !present {
            let what = if replay {
                "replay entry"
            } else {
                "dead letter"
            };
            let id = inner
                .tree
                .get(if replay {
                    format::replay_key(&sink, seq)
                } else {
                    format::dead_key(&sink, seq)
                })
                .ok()
                .flatten()
                .and_then(|v| serde_json::from_slice::<DeadRecord>(&v).ok())
                .map(|r| r.event_id.to_string())
                .unwrap_or_default();
            problems.push(Problem {
                kind: ProblemKind::MissingEvent,
                seq: Some(seq),
                detail: format!("{what} of sink {sink:?} for event {id}: the event is not stored"),
            });
        }
    }
    Ok(problems)
}
