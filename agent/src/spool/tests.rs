//! Spool behaviour against real sled directories.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tallyman_protocol::event::{
    Event, EventId, FacilityId, GatewayId, Gtin14, Header, Item, Kind, Line, Location, Quantity,
    RawScan, Scan, SourceName, Timestamp, Uom,
};
use tallyman_protocol::wire;

use super::format;
use super::*;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn header() -> Header {
    let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let mut random = [0u8; 10];
    random[2..].copy_from_slice(&n.to_be_bytes());
    Header {
        id: EventId::new_v7(1_795_515_303_120 + n, random),
        facility: FacilityId::new("north").unwrap(),
        gateway: GatewayId::new("gw-north-01").unwrap(),
        source: SourceName::new("dock-1").unwrap(),
        seq: 0,
        captured_at: Timestamp::from_unix_millis(1_795_515_303_120).unwrap(),
    }
}

pub fn receipt() -> Event {
    let line = Line::new(
        Item::Gtin(Gtin14::new("09506000134352").unwrap()),
        Quantity::new("5").unwrap(),
        Uom::new("Units").unwrap(),
    );
    Event::receipt(header(), Location::new("WH/Stock").unwrap(), vec![line]).unwrap()
}

pub fn scan() -> Event {
    Event::raw_scan(
        header(),
        Scan {
            raw: RawScan::new("]d201095060001343521727123110A1B2").unwrap(),
            symbology: None,
            decoded: None,
        },
    )
}

fn options(dir: &Path, sinks: &[&str]) -> SpoolOptions {
    let mut o = SpoolOptions::new(
        dir.join("spool"),
        sinks.iter().map(|s| s.to_string()).collect(),
    );
    o.commit_window = Duration::from_millis(1);
    o
}

fn info(reason: &str) -> DeadLetterInfo {
    let t = Timestamp::from_unix_millis(1_800_000_000_000).unwrap();
    DeadLetterInfo {
        reason: reason.into(),
        attempts: 3,
        last_error: Some("HTTP 422".into()),
        first_attempt_at: t,
        last_attempt_at: t,
    }
}

fn seqs(batch: &[Stored]) -> Vec<u64> {
    batch.iter().map(|s| s.seq).collect()
}

/// Open, retrying while sled still holds the lock of a handle dropped a moment ago.
fn reopen(o: &SpoolOptions) -> (Spool, SelfCheck) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match Spool::open(o.clone()) {
            Err(SpoolError::Locked { .. }) if std::time::Instant::now() < deadline => {
                std::thread::yield_now();
            }
            other => return other.unwrap(),
        }
    }
}

async fn close(spool: Spool) {
    spool.close().await.unwrap();
    drop(spool);
}

#[tokio::test]
async fn append_accept_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let o = options(dir.path(), &["hub"]);
    let (spool, check) = Spool::open(o.clone()).unwrap();
    assert!(check.created);
    assert_eq!(check.problems, vec![]);
    assert_eq!(check.new_sinks, vec!["hub".to_string()]);
    let mut sent = Vec::new();
    for i in 0..50 {
        let ev = if i % 5 == 0 { scan() } else { receipt() };
        let a = spool.append(ev.clone()).await.unwrap();
        assert_eq!(a.seq, i + 1);
        assert_eq!(a.id, ev.id());
        sent.push(ev.with_seq(a.seq));
    }
    assert_eq!(spool.stats().events_stored, 50);
    close(spool).await;

    let (spool, check) = reopen(&o);
    assert!(!check.created);
    assert_eq!(check.events_stored, 50);
    assert_eq!(check.last_seq, 50);
    assert_eq!(check.problems, vec![]);
    assert_eq!(check.sinks[0].backlog, 50);
    let listed = spool.list(0, 1000).unwrap();
    assert_eq!(
        listed.iter().map(|s| s.event.clone()).collect::<Vec<_>>(),
        sent
    );
    let found = spool.get(sent[33].id()).unwrap().unwrap();
    assert_eq!((found.seq, &found.event), (34, &sent[33]));
    assert_eq!(spool.get(receipt().id()).unwrap(), None);
    assert_eq!(seqs(&spool.list(48, 10).unwrap()), vec![49, 50]);
    assert_eq!(spool.append(receipt()).await.unwrap().seq, 51);
    close(spool).await;
}

#[tokio::test]
async fn concurrent_appends_get_distinct_gap_free_seqs() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(options(dir.path(), &["hub"])).unwrap();
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let spool = spool.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for _ in 0..20 {
                got.push(spool.append(receipt()).await.unwrap().seq);
            }
            got
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    assert_eq!(all, (1..=640).collect::<Vec<u64>>());
    let batch = spool.next_batch("hub", 1000).unwrap();
    assert_eq!(seqs(&batch), (1..=640).collect::<Vec<u64>>());
    assert!(batch.iter().all(|s| s.event.seq() == s.seq && !s.replay));
    close(spool).await;
}

#[tokio::test]
async fn cursors_are_per_sink_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let o = options(dir.path(), &["hub", "odoo"]);
    let (spool, _) = Spool::open(o.clone()).unwrap();
    for _ in 0..10 {
        spool.append(receipt()).await.unwrap();
    }
    assert_eq!(seqs(&spool.next_batch("hub", 3).unwrap()), vec![1, 2, 3]);
    spool.delivered("hub", &[1, 2, 3]).unwrap();
    assert_eq!(seqs(&spool.next_batch("hub", 3).unwrap()), vec![4, 5, 6]);
    assert_eq!(seqs(&spool.next_batch("odoo", 2).unwrap()), vec![1, 2]);
    spool.delivered("odoo", &[7]).unwrap();
    assert_eq!(seqs(&spool.next_batch("odoo", 10).unwrap()), vec![8, 9, 10]);
    // Only what both are done with is collected.
    spool.settle().await.unwrap();
    assert_eq!(
        seqs(&spool.list(0, 100).unwrap()),
        (4..=10).collect::<Vec<u64>>()
    );
    assert!(matches!(
        spool.next_batch("nope", 1),
        Err(SpoolError::UnknownSink(_))
    ));
    close(spool).await;

    let (spool, check) = reopen(&o);
    let cursors: Vec<(String, u64, u64)> = check
        .sinks
        .iter()
        .map(|s| (s.name.clone(), s.cursor, s.backlog))
        .collect();
    assert_eq!(cursors, vec![("hub".into(), 3, 7), ("odoo".into(), 7, 3)]);
    spool.delivered("hub", &[10]).unwrap();
    spool.settle().await.unwrap();
    // Both past 7: 1…7 removed.
    assert_eq!(seqs(&spool.list(0, 100).unwrap()), vec![8, 9, 10]);
    close(spool).await;
}

#[tokio::test]
async fn a_change_wakes_subscribers() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(options(dir.path(), &["hub"])).unwrap();
    let mut rx = spool.subscribe();
    rx.borrow_and_update();
    let waiter = tokio::spawn(async move { rx.changed().await.is_ok() });
    spool.append(receipt()).await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .unwrap()
            .unwrap()
    );
    close(spool).await;
}

#[tokio::test]
async fn dead_letters_replay_and_garbage_collection() {
    let dir = tempfile::tempdir().unwrap();
    let o = options(dir.path(), &["hub", "odoo"]);
    let (spool, _) = Spool::open(o.clone()).unwrap();
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(spool.append(receipt()).await.unwrap().id);
    }
    spool.delivered("hub", &[5]).unwrap();
    spool.delivered("odoo", &[1]).unwrap();
    let d = spool.clone();
    tokio::task::spawn_blocking(move || d.dead_letter("odoo", 2, info("unknown product")))
        .await
        .unwrap()
        .unwrap();
    // Only the next event can be dead-lettered: 3 is not acknowledged yet.
    let d = spool.clone();
    let err = tokio::task::spawn_blocking(move || d.dead_letter("odoo", 4, info("bad lot")))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(
            err,
            SpoolError::NotNext {
                seq: 4,
                next: 3,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(seqs(&spool.next_batch("odoo", 10).unwrap()), vec![3, 4, 5]);
    spool.delivered("odoo", &[3]).unwrap();
    let d = spool.clone();
    tokio::task::spawn_blocking(move || d.dead_letter("odoo", 4, info("bad lot")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(spool.stats().sinks[1].cursor, 4);
    assert_eq!(seqs(&spool.next_batch("odoo", 10).unwrap()), vec![5]);
    assert!(matches!(
        spool.dead_letter("odoo", 3, info("late")),
        Err(SpoolError::NotPending { .. })
    ));
    spool.delivered("odoo", &[5]).unwrap();
    spool.settle().await.unwrap();
    // Every sink is past everything: only the dead letters keep their events.
    assert_eq!(seqs(&spool.list(0, 10).unwrap()), vec![2, 4]);
    let dlq = spool.dlq_list(None).unwrap();
    assert_eq!(
        dlq.iter()
            .map(|d| (
                d.sink.as_str(),
                d.seq,
                d.event_id,
                d.reason.as_str(),
                d.replaying
            ))
            .collect::<Vec<_>>(),
        vec![
            ("odoo", 2, ids[1], "unknown product", false),
            ("odoo", 4, ids[3], "bad lot", false)
        ]
    );
    assert_eq!(dlq[0].attempts, 3);
    assert_eq!(dlq[0].last_error.as_deref(), Some("HTTP 422"));
    assert_eq!(dlq[0].kind, Kind::Receipt);
    assert_eq!(spool.dlq_list(Some("hub")).unwrap(), vec![]);
    close(spool).await;

    // Dead letters survive a restart; replay by id hands one back, first in the batch.
    let (spool, check) = reopen(&o);
    assert_eq!(check.dead_letters, 2);
    assert_eq!(check.problems, vec![]);
    let mut rx = spool.subscribe();
    rx.borrow_and_update();
    assert_eq!(
        spool
            .dlq_replay(Some("odoo"), &Selection::Ids(vec![ids[3]]))
            .unwrap(),
        1
    );
    assert!(rx.has_changed().unwrap());
    let id6 = spool.append(receipt()).await.unwrap();
    let batch = spool.next_batch("odoo", 10).unwrap();
    assert_eq!(
        batch.iter().map(|s| (s.seq, s.replay)).collect::<Vec<_>>(),
        vec![(4, true), (6, false)]
    );
    assert_eq!(batch[0].event.id(), ids[3]);
    // The replay is rejected again: back to the dead letters, with the new reason.
    let d = spool.clone();
    tokio::task::spawn_blocking(move || d.dead_letter("odoo", 4, info("still bad")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seqs(&spool.next_batch("odoo", 10).unwrap()), vec![6]);
    assert_eq!(spool.dlq_replay(None, &Selection::All).unwrap(), 2);
    let batch = spool.next_batch("odoo", 10).unwrap();
    assert_eq!(
        batch.iter().map(|s| (s.seq, s.replay)).collect::<Vec<_>>(),
        vec![(2, true), (4, true), (6, false)]
    );
    spool.delivered("odoo", &[2, 4, 6]).unwrap();
    spool.delivered("hub", &[id6.seq]).unwrap();
    spool.settle().await.unwrap();
    assert_eq!(spool.dlq_list(None).unwrap(), vec![]);
    assert_eq!(spool.stats().events_stored, 0);
    close(spool).await;
}

#[tokio::test]
async fn purge_removes_dead_letters_and_frees_their_events() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(options(dir.path(), &["hub"])).unwrap();
    for _ in 0..3 {
        spool.append(receipt()).await.unwrap();
    }
    let d = spool.clone();
    tokio::task::spawn_blocking(move || {
        d.dead_letter("hub", 1, info("no"))?;
        d.dead_letter("hub", 2, info("no"))
    })
    .await
    .unwrap()
    .unwrap();
    spool.delivered("hub", &[3]).unwrap();
    spool.settle().await.unwrap();
    assert_eq!(spool.stats().events_stored, 2);
    let first = spool.dlq_list(None).unwrap()[0].event_id;
    assert_eq!(
        spool
            .purge_dead_letters(None, &Selection::Ids(vec![first]))
            .unwrap(),
        1
    );
    spool.settle().await.unwrap();
    assert_eq!(seqs(&spool.list(0, 10).unwrap()), vec![2]);
    assert_eq!(
        spool
            .purge_dead_letters(Some("hub"), &Selection::All)
            .unwrap(),
        1
    );
    spool.settle().await.unwrap();
    assert_eq!(spool.stats().events_stored, 0);
    close(spool).await;
}

#[tokio::test]
async fn unconfigured_sinks_are_kept_and_new_sinks_start_at_the_oldest_event() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(options(dir.path(), &["hub", "old"])).unwrap();
    for _ in 0..4 {
        spool.append(receipt()).await.unwrap();
    }
    spool.delivered("hub", &[4]).unwrap();
    spool.delivered("old", &[2]).unwrap();
    spool.settle().await.unwrap();
    assert_eq!(seqs(&spool.list(0, 10).unwrap()), vec![3, 4]);
    close(spool).await;

    let (spool, check) = reopen(&options(dir.path(), &["hub", "new"]));
    assert_eq!(check.unconfigured_sinks, vec!["old".to_string()]);
    assert_eq!(check.new_sinks, vec!["new".to_string()]);
    assert_eq!(check.problems, vec![]);
    // The new sink gets what is still stored; the old one no longer holds events back.
    assert_eq!(seqs(&spool.next_batch("new", 10).unwrap()), vec![3, 4]);
    spool.delivered("new", &[4]).unwrap();
    spool.settle().await.unwrap();
    assert_eq!(spool.stats().events_stored, 0);
    let old = spool
        .stats()
        .sinks
        .into_iter()
        .find(|s| s.name == "old")
        .unwrap();
    assert_eq!((old.cursor, old.configured), (2, false));
    close(spool).await;
}

#[tokio::test]
async fn without_sinks_nothing_is_collected() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(options(dir.path(), &[])).unwrap();
    spool.append(receipt()).await.unwrap();
    spool.settle().await.unwrap();
    assert_eq!(spool.stats().events_stored, 1);
    close(spool).await;
}

#[tokio::test]
async fn the_quota_refuses_then_resumes_after_the_backlog_drains() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(dir.path(), &["hub"]);
    o.max_bytes = 1024 * 1024;
    let (spool, _) = Spool::open(o.clone()).unwrap();
    // Fill from many tasks at once (group commits keep the test quick).
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let spool = spool.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            loop {
                match spool.append(receipt()).await {
                    Ok(_) => n += 1,
                    Err(e) => return (n, e),
                }
                assert!(n < 100_000, "the quota never applied");
            }
        }));
    }
    let mut accepted = 0u64;
    let mut full = None;
    for t in tasks {
        let (n, e) = t.await.unwrap();
        accepted += n;
        full = Some(e);
    }
    let full = full.unwrap();
    let AppendError::Full { used, max } = full else {
        panic!("expected Full, got {full:?}");
    };
    assert_eq!(max, o.max_bytes);
    assert!(used >= max / 2, "{used}");
    assert!(spool.is_full());
    assert!(spool.stats().full);
    // Scans are refused too with the default policy.
    assert!(matches!(
        spool.append(scan()).await,
        Err(AppendError::Full { .. })
    ));
    let stats = spool.stats();
    assert_eq!(stats.events_stored, accepted);
    assert!(stats.bytes_live <= o.max_bytes / 2);

    // The sink catches up: the events are collected and intake resumes.
    spool.delivered("hub", &[accepted]).unwrap();
    spool.settle().await.unwrap();
    assert_eq!(spool.stats().events_stored, 0);
    assert!(!spool.is_full());
    assert_eq!(spool.append(receipt()).await.unwrap().seq, accepted + 1);
    close(spool).await;
}

#[tokio::test]
async fn drop_oldest_drops_raw_scans_never_stock_events() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(dir.path(), &["hub"]);
    o.max_bytes = 1024 * 1024;
    o.raw_scans_when_full = RawScansWhenFull::DropOldest;
    let (spool, _) = Spool::open(o.clone()).unwrap();
    // Half scans, half stock events, from many tasks, until full: scans are dropped for new
    // events, so intake goes on until only stock is left.
    let mut tasks = Vec::new();
    for t in 0..16u64 {
        let spool = spool.clone();
        tasks.push(tokio::spawn(async move {
            let mut stock = Vec::new();
            for n in 0..200_000u64 {
                let ev = if (n + t) % 2 == 0 { scan() } else { receipt() };
                let stock_event = ev.kind() != Kind::Scan;
                let id = ev.id();
                match spool.append(ev).await {
                    Ok(a) => {
                        if stock_event {
                            stock.push((a.seq, id));
                        }
                    }
                    Err(AppendError::Full { .. }) => return stock,
                    Err(e) => panic!("{e}"),
                }
            }
            panic!("never full");
        }));
    }
    let mut stock = Vec::new();
    for t in tasks {
        stock.extend(t.await.unwrap());
    }
    stock.sort_unstable();
    let stock: Vec<EventId> = stock.into_iter().map(|(_, id)| id).collect();
    let stats = spool.stats();
    assert!(stats.dropped_scans > 0);
    // Every stock event accepted is still there.
    let mut listed = Vec::new();
    let mut after = 0;
    loop {
        let page = spool.list(after, 1000).unwrap();
        let Some(last) = page.last() else { break };
        after = last.seq;
        listed.extend(
            page.into_iter()
                .filter(|s| s.event.kind() != Kind::Scan)
                .map(|s| s.event.id()),
        );
    }
    assert_eq!(listed, stock);
    close(spool).await;
}

fn write_key(dir: &Path, name: &str, content: &[u8], mode: u32) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p
}

fn file_contains(dir: &Path, needle: &[u8]) -> bool {
    let mut found = false;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            found |= file_contains(&p, needle);
        } else {
            let b = std::fs::read(&p).unwrap();
            found |= b.windows(needle.len()).any(|w| w == needle);
        }
    }
    found
}

#[tokio::test]
async fn encryption_round_trip_wrong_key_and_permissions() {
    let dir = tempfile::tempdir().unwrap();
    let key = write_key(dir.path(), "spool.key", &[b'a'; 64], 0o600);
    let mut o = options(dir.path(), &["hub"]);
    o.encryption_key_file = Some(key);
    let (spool, check) = Spool::open(o.clone()).unwrap();
    assert!(check.encrypted);
    let ev = receipt();
    let a = spool.append(ev.clone()).await.unwrap();
    close(spool).await;
    // The envelope is nowhere in the clear.
    let plain = wire::encode(&ev.clone().with_seq(a.seq)).unwrap();
    assert!(!file_contains(&o.dir, &plain[8..]));
    assert!(!file_contains(&o.dir, b"WH/Stock"));

    let (spool, check) = reopen(&o);
    assert_eq!(check.problems, vec![]);
    assert_eq!(
        spool.next_batch("hub", 10).unwrap()[0].event,
        ev.with_seq(1)
    );
    close(spool).await;

    // Raw 32 bytes is a different key: refused before any record is touched.
    let mut wrong = o.clone();
    wrong.encryption_key_file = Some(write_key(dir.path(), "other.key", &[7u8; 32], 0o400));
    let err = Spool::open(wrong).unwrap_err();
    assert!(matches!(err, SpoolError::KeyMismatch { .. }), "{err}");
    assert!(err.to_string().contains("another encryption key"));

    let mut none = o.clone();
    none.encryption_key_file = None;
    assert!(matches!(
        Spool::open(none).unwrap_err(),
        SpoolError::KeyMissing { .. }
    ));

    let mut open_to_group = o.clone();
    open_to_group.encryption_key_file =
        Some(write_key(dir.path(), "group.key", &[b'a'; 64], 0o640));
    let err = Spool::open(open_to_group).unwrap_err();
    assert!(
        matches!(err, SpoolError::KeyPermissions { mode: 0o640, .. }),
        "{err}"
    );

    let mut short = o.clone();
    short.encryption_key_file = Some(write_key(dir.path(), "short.key", b"abc\n", 0o600));
    assert!(matches!(
        Spool::open(short).unwrap_err(),
        SpoolError::KeyFormat { len: 4, .. }
    ));

    // The right key still works after all that.
    let (spool, check) = reopen(&o);
    assert_eq!(check.events_stored, 1);
    close(spool).await;
}

#[tokio::test]
async fn a_spool_in_use_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let o = options(dir.path(), &["hub"]);
    let (spool, _) = Spool::open(o.clone()).unwrap();
    let err = Spool::open(o.clone()).unwrap_err();
    assert!(matches!(err, SpoolError::Locked { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "the spool at {} is in use by another tallyman process",
            o.dir.display()
        )
    );
    close(spool).await;
    let (spool, _) = reopen(&o);
    close(spool).await;
}

/// Change the stored spool directly through sled (the spool must be closed and dropped).
fn with_sled(dir: &Path, f: impl FnOnce(&sled::Tree)) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let db = loop {
        match sled::open(dir) {
            Ok(db) => break db,
            Err(_) if std::time::Instant::now() < deadline => std::thread::yield_now(),
            Err(e) => panic!("{e}"),
        }
    };
    let tree = db.open_tree("spool").unwrap();
    f(&tree);
    db.flush().unwrap();
}

/// Damage the record with `seq` the way decoding notices: its envelope version (`Version`),
/// or the id in its header (`Id`). (A flipped byte inside a text field would decode to other
/// valid text: bit rot on disk is caught by sled's own checksums, not here.)
enum Damage {
    Version,
    Id,
}

fn damage_record(tree: &sled::Tree, seq: u64, how: Damage) {
    let (k, v) = tree
        .range(format::block_key(0)..=format::block_key(seq))
        .next_back()
        .unwrap()
        .unwrap();
    let key_seq = format::block_seq(&k).unwrap();
    let block = format::parse_block(key_seq, &v);
    let rec = block.records.iter().find(|r| r.seq == seq).unwrap();
    let at = match how {
        Damage::Version => rec.payload.as_ptr() as usize - v.as_ptr() as usize,
        Damage::Id => rec.bytes.as_ptr() as usize - v.as_ptr() as usize + 8 + 15,
    };
    let mut bytes = v.to_vec();
    bytes[at] ^= 0x5a;
    tree.insert(k, bytes).unwrap();
}

#[tokio::test]
async fn damaged_records_are_quarantined_at_open_and_when_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(dir.path(), &["hub"]);
    o.block_target_bytes = 1; // one record per block
    let (spool, _) = Spool::open(o.clone()).unwrap();
    for _ in 0..6 {
        spool.append(receipt()).await.unwrap();
    }
    close(spool).await;
    with_sled(&o.dir, |t| {
        damage_record(t, 2, Damage::Version);
        damage_record(t, 5, Damage::Id);
        // And a block that is not a block at all.
        t.insert(format::block_key(7), &b"garbage"[..]).unwrap();
    });

    // The full check finds all of them.
    let mut full = o.clone();
    full.check = Check::Full;
    let (spool, check) = reopen(&full);
    let found: Vec<(ProblemKind, Option<u64>)> =
        check.problems.iter().map(|p| (p.kind, p.seq)).collect();
    assert!(
        found.contains(&(ProblemKind::Quarantined, Some(2))),
        "{found:?}"
    );
    assert!(
        found.contains(&(ProblemKind::Quarantined, Some(5))),
        "{found:?}"
    );
    assert!(
        found.contains(&(ProblemKind::Quarantined, Some(7))),
        "{found:?}"
    );
    assert_eq!(check.quarantined, 3);
    assert_eq!(
        seqs(&spool.next_batch("hub", 10).unwrap()),
        vec![1, 3, 4, 6]
    );
    let q = spool.quarantine_list().unwrap();
    assert_eq!(q.iter().map(|q| q.seq).collect::<Vec<_>>(), vec![2, 5, 7]);
    assert!(
        q[0].reason.contains("envelope") || q[0].reason.contains("event"),
        "{:?}",
        q[0]
    );
    // The counters were right after quarantine (the full check recounts).
    assert!(
        !found
            .iter()
            .any(|(k, _)| *k == ProblemKind::CountersCorrected),
        "{found:?}"
    );
    assert_eq!(spool.purge_quarantine().await.unwrap(), 3);
    assert_eq!(spool.stats().quarantined, 0);
    close(spool).await;
}

#[tokio::test]
async fn a_record_damaged_past_the_quick_check_is_quarantined_when_a_sink_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(dir.path(), &["hub"]);
    o.block_target_bytes = 1;
    let (spool, _) = Spool::open(o.clone()).unwrap();
    for _ in 0..20 {
        spool.append(receipt()).await.unwrap();
    }
    close(spool).await;
    with_sled(&o.dir, |t| damage_record(t, 10, Damage::Version));
    let (spool, check) = reopen(&o);
    // The quick check reads the head and the tail only.
    assert_eq!(check.problems, vec![]);
    let batch = spool.next_batch("hub", 100).unwrap();
    assert_eq!(batch.len(), 19);
    assert!(!seqs(&batch).contains(&10));
    spool.settle().await.unwrap();
    assert_eq!(spool.quarantine_list().unwrap()[0].seq, 10);
    assert_eq!(spool.stats().quarantined, 1);
    assert_eq!(spool.stats().events_stored, 19);
    close(spool).await;
}

#[tokio::test]
async fn blocks_written_after_the_last_counters_are_counted_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let o = options(dir.path(), &["hub"]);
    let (spool, _) = Spool::open(o.clone()).unwrap();
    spool.append(receipt()).await.unwrap();
    close(spool).await;
    // As if the process died between writing a block and the counters.
    let ev = receipt().with_seq(2);
    let mut block = Vec::new();
    format::push_record(
        &mut block,
        2,
        ev.id().as_bytes(),
        0,
        &wire::encode(&ev).unwrap(),
    );
    with_sled(&o.dir, |t| {
        t.insert(format::block_key(2), block).unwrap();
    });
    let (spool, check) = reopen(&o);
    assert_eq!(check.recovered_events, 1);
    assert_eq!(check.events_stored, 2);
    assert_eq!(check.problems, vec![]);
    assert_eq!(spool.append(receipt()).await.unwrap().seq, 3);
    close(spool).await;
}

#[tokio::test]
async fn unknown_formats_and_foreign_databases_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let o = options(dir.path(), &["hub"]);
    let (spool, _) = Spool::open(o.clone()).unwrap();
    close(spool).await;
    with_sled(&o.dir, |t| {
        t.insert(format::META_FORMAT, &99u32.to_be_bytes()).unwrap();
    });
    let err = reopen_err(&o);
    assert!(
        matches!(
            err,
            SpoolError::UnsupportedFormat {
                found: 99,
                supported: 1,
                ..
            }
        ),
        "{err}"
    );

    let other = dir.path().join("other");
    {
        let db = sled::open(&other).unwrap();
        db.insert(b"x", b"y").unwrap();
        db.flush().unwrap();
    }
    let mut o2 = o.clone();
    o2.dir = other;
    assert!(matches!(reopen_err(&o2), SpoolError::NotASpool { .. }));
}

fn reopen_err(o: &SpoolOptions) -> SpoolError {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match Spool::open(o.clone()) {
            Err(SpoolError::Locked { .. }) if std::time::Instant::now() < deadline => {
                std::thread::yield_now();
            }
            Err(e) => return e,
            Ok(_) => panic!("opened"),
        }
    }
}

#[tokio::test]
async fn a_database_sled_cannot_open_is_a_clear_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let o = options(dir.path(), &["hub"]);
    let (spool, _) = Spool::open(o.clone()).unwrap();
    spool.append(receipt()).await.unwrap();
    close(spool).await;
    // Overwrite sled's configuration file with garbage.
    std::fs::write(o.dir.join("conf"), b"not a sled configuration at all").unwrap();
    let err = reopen_err(&o);
    assert!(matches!(err, SpoolError::Damaged { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&o.dir.display().to_string()), "{text}");
}

#[tokio::test]
async fn a_spool_whose_database_comes_up_empty_is_not_silently_recreated() {
    let dir = tempfile::tempdir().unwrap();
    let o = options(dir.path(), &["hub"]);
    let (spool, _) = Spool::open(o.clone()).unwrap();
    for _ in 0..100 {
        spool.append(receipt()).await.unwrap();
    }
    close(spool).await;
    // sled reads a log it cannot parse as the end of the log: with the whole log and the
    // snapshots destroyed it opens an empty database.
    let db = o.dir.join("db");
    let len = std::fs::metadata(&db).unwrap().len() as usize;
    std::fs::write(&db, vec![0xab; len]).unwrap();
    for e in std::fs::read_dir(&o.dir).unwrap() {
        let p = e.unwrap().path();
        if p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("snap.")
        {
            std::fs::remove_file(p).unwrap();
        }
    }
    let err = reopen_err(&o);
    assert!(matches!(err, SpoolError::Damaged { .. }), "{err:?}");
    assert!(err.to_string().contains("empty"), "{err}");
}

#[tokio::test]
async fn closed_spools_refuse_appends() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(options(dir.path(), &["hub"])).unwrap();
    spool.close().await.unwrap();
    assert!(matches!(
        spool.append(receipt()).await,
        Err(AppendError::Closed)
    ));
    // Closing twice is fine.
    spool.close().await.unwrap();
}

#[test]
fn options_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(dir.path(), &["hub", "hub"]);
    assert!(matches!(
        Spool::open(o.clone()),
        Err(SpoolError::InvalidOptions(_))
    ));
    o.sinks = vec![String::new()];
    assert!(matches!(
        Spool::open(o.clone()),
        Err(SpoolError::InvalidOptions(_))
    ));
    o.sinks = vec![];
    o.max_bytes = 0;
    assert!(matches!(Spool::open(o), Err(SpoolError::InvalidOptions(_))));
}

#[test]
fn the_spool_is_send_and_sync() {
    fn is<T: Send + Sync + Clone>() {}
    is::<Spool>();
}

#[tokio::test]
async fn an_event_larger_than_a_sled_segment_quarter_goes_to_a_blob_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let o = options(dir.path(), &["hub"]);
    let (spool, _) = Spool::open(o.clone()).unwrap();
    // 1000 lines with long lots: about 200 KB, above sled's blob threshold (128 KiB).
    let lot = tallyman_protocol::event::Lot::new("€".repeat(64)).unwrap();
    let lines: Vec<Line> = (0..1000)
        .map(|_| {
            Line::new(
                Item::Gtin(Gtin14::new("09506000134352").unwrap()),
                Quantity::new("5").unwrap(),
                Uom::new("Units").unwrap(),
            )
            .with_lot(lot.clone())
        })
        .collect();
    let big = Event::receipt(header(), Location::new("WH/Stock").unwrap(), lines).unwrap();
    assert!(wire::encode(&big).unwrap().len() > 150_000);
    let small = receipt();
    spool.append(big.clone()).await.unwrap();
    spool.append(small.clone()).await.unwrap();
    let blobs = std::fs::read_dir(o.dir.join("blobs")).unwrap().count();
    assert!(blobs > 0, "the big block should be a sled blob");
    close(spool).await;
    let (spool, check) = reopen(&o);
    assert_eq!(check.problems, vec![]);
    let listed: Vec<Event> = spool
        .list(0, 10)
        .unwrap()
        .into_iter()
        .map(|s| s.event)
        .collect();
    assert_eq!(listed, vec![big.with_seq(1), small.with_seq(2)]);
    close(spool).await;
}

#[tokio::test]
async fn lost_counters_are_rebuilt_and_seqs_never_reused() {
    let dir = tempfile::tempdir().unwrap();
    let o = options(dir.path(), &["hub"]);
    let (spool, _) = Spool::open(o.clone()).unwrap();
    for _ in 0..5 {
        spool.append(receipt()).await.unwrap();
    }
    // Everything delivered and collected: no block is left to count seqs from.
    spool.delivered("hub", &[5]).unwrap();
    spool.settle().await.unwrap();
    assert_eq!(spool.stats().events_stored, 0);
    close(spool).await;
    with_sled(&o.dir, |t| {
        t.remove(format::META_COUNTERS).unwrap();
    });
    let (spool, check) = reopen(&o);
    assert_eq!(check.check, Check::Full);
    assert!(
        check
            .problems
            .iter()
            .any(|p| p.kind == ProblemKind::CountersCorrected),
        "{:?}",
        check.problems
    );
    // The cursor shows seqs up to 5 were given.
    assert_eq!(spool.append(receipt()).await.unwrap().seq, 6);
    close(spool).await;
}

#[tokio::test]
async fn append_once_stores_an_id_once_across_batches_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(dir.path(), &["hub"]);
    o.recent_ids = 8;
    let (spool, _) = Spool::open(o.clone()).unwrap();
    let first = receipt();
    let Appended::New(a) = spool.append_once(first.clone()).await.unwrap() else {
        panic!("a new id is stored");
    };
    assert_eq!(
        spool.append_once(first.clone()).await.unwrap(),
        Appended::Duplicate { seq: a.seq }
    );
    // The same id twice in one group commit: one stored, the other told which seq.
    let twin = receipt();
    let (x, y) = tokio::join!(
        spool.append_once(twin.clone()),
        spool.append_once(twin.clone())
    );
    let mut outcomes = [x.unwrap(), y.unwrap()];
    outcomes.sort_by_key(|o| matches!(o, Appended::Duplicate { .. }));
    let Appended::New(t) = outcomes[0] else {
        panic!("one of the twins is stored: {outcomes:?}");
    };
    assert_eq!(outcomes[1], Appended::Duplicate { seq: t.seq });
    // Plain appends do not look at the index.
    assert_eq!(spool.append(first.clone()).await.unwrap().seq, t.seq + 1);
    assert_eq!(spool.stats().events_stored, 3);
    close(spool).await;

    // The index is durable: still a duplicate after a restart.
    let (spool, check) = reopen(&o);
    assert_eq!(check.problems, vec![]);
    assert_eq!(
        spool.append_once(twin.clone()).await.unwrap(),
        Appended::Duplicate { seq: t.seq }
    );
    // After `recent_ids` more events the oldest ids are forgotten (and pruned from disk).
    for _ in 0..10 {
        spool.append(receipt()).await.unwrap();
    }
    spool.settle().await.unwrap();
    assert!(matches!(
        spool.append_once(first.clone()).await.unwrap(),
        Appended::New(_)
    ));
    close(spool).await;
    let (mut order_keys, mut id_keys) = (0, 0);
    with_sled(&o.dir, |tree| {
        order_keys = tree
            .range(format::recent_order_key(0)..format::recent_order_key(u64::MAX))
            .count();
        id_keys = tree.scan_prefix(b"i").count();
    });
    // Left: the re-stored `first` (seq 15), within the last 8 seqs; everything older pruned.
    assert_eq!((order_keys, id_keys), (1, 1), "the index was pruned");
}

#[tokio::test]
async fn append_once_of_an_event_refused_as_full_is_not_remembered() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(dir.path(), &["hub"]);
    o.max_bytes = 64 * 1024;
    let (spool, _) = Spool::open(o.clone()).unwrap();
    let mut refused = None;
    for _ in 0..10_000 {
        let ev = receipt();
        match spool.append_once(ev.clone()).await {
            Ok(_) => {}
            Err(AppendError::Full { .. }) => {
                refused = Some(ev);
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    let refused = refused.expect("the spool fills");
    // Drain, then the refused event is stored when it comes again.
    let batch = spool.next_batch("hub", 100_000).unwrap();
    spool.delivered("hub", &seqs(&batch)).unwrap();
    spool.settle().await.unwrap();
    assert!(matches!(
        spool.append_once(refused).await.unwrap(),
        Appended::New(_)
    ));
    close(spool).await;
}

#[tokio::test]
async fn a_sink_added_at_runtime_starts_at_the_end_and_a_retired_one_holds_nothing_back() {
    let dir = tempfile::tempdir().unwrap();
    let o = options(dir.path(), &["hub"]);
    let (spool, _) = Spool::open(o.clone()).unwrap();
    for _ in 0..5 {
        spool.append(receipt()).await.unwrap();
    }
    // New: at the last durable event; it sees only what comes after.
    assert_eq!(spool.add_sink("odoo").unwrap(), (5, true));
    assert!(spool.next_batch("odoo", 10).unwrap().is_empty());
    spool.append(receipt()).await.unwrap();
    assert_eq!(seqs(&spool.next_batch("odoo", 10).unwrap()), vec![6]);
    // Configured again: keeps its cursor.
    assert_eq!(spool.add_sink("hub").unwrap(), (0, false));
    assert!(spool.add_sink("").is_err());

    // `hub` is behind: it holds every event back until it is retired.
    spool.delivered("odoo", &[6]).unwrap();
    spool.settle().await.unwrap();
    assert_eq!(spool.stats().events_stored, 6);
    spool.retire_sink("hub");
    spool.retire_sink("nobody");
    spool.settle().await.unwrap();
    assert_eq!(spool.stats().events_stored, 0);
    spool.append(receipt()).await.unwrap();
    // Configured again while open: at the end, not at its old cursor.
    assert_eq!(spool.add_sink("hub").unwrap(), (7, true));
    assert!(spool.next_batch("hub", 10).unwrap().is_empty());
    spool.retire_sink("hub");
    let hub = spool
        .stats()
        .sinks
        .into_iter()
        .find(|s| s.name == "hub")
        .unwrap();
    assert_eq!((hub.configured, hub.cursor), (false, 7));
    close(spool).await;

    // The added sink's cursor survives a restart; at open it is a known sink.
    let (spool, check) = reopen(&options(dir.path(), &["hub", "odoo"]));
    assert!(check.new_sinks.is_empty(), "{:?}", check.new_sinks);
    let odoo = check.sinks.iter().find(|s| s.name == "odoo").unwrap();
    assert_eq!(odoo.cursor, 6);
    let hub = check.sinks.iter().find(|s| s.name == "hub").unwrap();
    assert_eq!(hub.cursor, 7);
    close(spool).await;
}

#[tokio::test]
async fn a_ping_is_answered_after_the_commit_it_joins_and_fails_once_closed() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(options(dir.path(), &["hub"])).unwrap();
    spool.ping().await.unwrap();
    // Queued behind an append: answered only once that append is durable.
    let queued = spool.enqueue(receipt()).await.unwrap();
    spool.ping().await.unwrap();
    assert_eq!(spool.stats().events_stored, 1);
    assert_eq!(queued.outcome().await.unwrap().seq(), 1);
    let spool2 = spool.clone();
    close(spool).await;
    assert!(matches!(spool2.ping().await, Err(SpoolError::Closed)));
}
