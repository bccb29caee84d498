//! The spool benchmark (PRODUCT §9), one run, one disk: `cargo bench -p tallyman-agent --bench
//! spool`. Prints a markdown table.
//!
//! * Durable intake: many tasks append concurrently (group commit, every append flushed and
//!   fdatasync'ed before it resolves); beside it, on the same disk in the same run, a plain
//!   loop appending the same record bytes to a file with one `fdatasync` per batch of the same
//!   average size. The ratio is the figure (target ≥ 0.5, and ≥ 50,000 events/s).
//! * Accept latency (p50, p99), bytes on disk per event.
//! * Start-up with 1,000,000 events stored (open and self-check until an append is accepted),
//!   resident memory with that backlog and while draining it, measured in a child process so
//!   that its peak is its own.
//!
//! The data lives under Cargo's target directory (`CARGO_TARGET_TMPDIR`), not /tmp, which may
//! be a tmpfs. `TALLYMAN_BENCH_EVENTS` sets the backlog size (default 1,000,000).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tallyman_agent::spool::{Check, Spool, SpoolOptions};
use tallyman_protocol::event::{
    Event, EventId, FacilityId, GatewayId, Gtin14, Header, Item, Line, Location, Lot, Quantity,
    SourceName, Timestamp, Uom,
};
use tallyman_protocol::wire;

const CHILD_ENV: &str = "TALLYMAN_SPOOL_BENCH_CHILD";
/// Events per intake measurement.
const INTAKE_EVENTS: u64 = 100_000;

fn event(n: u64) -> Event {
    let mut random = [0u8; 10];
    random[2..].copy_from_slice(&n.to_be_bytes());
    let header = Header {
        id: EventId::new_v7(1_795_515_303_120 + n / 16, random),
        facility: FacilityId::new("north").unwrap(),
        gateway: GatewayId::new("gw-north-01").unwrap(),
        source: SourceName::new("dock-1").unwrap(),
        seq: 0,
        captured_at: Timestamp::from_unix_millis(1_795_515_303_120 + n as i64).unwrap(),
    };
    let line = Line::new(
        Item::Gtin(Gtin14::new("09506000134352").unwrap()),
        Quantity::new("5").unwrap(),
        Uom::new("Units").unwrap(),
    )
    .with_lot(Lot::new(format!("LOT{:06}", n % 1_000_000)).unwrap());
    Event::receipt(
        header,
        Location::new("WH/Stock/Shelf 2").unwrap(),
        vec![line],
    )
    .unwrap()
}

fn status(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn mib_kib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn options(dir: &Path, key: Option<PathBuf>) -> SpoolOptions {
    let mut o = SpoolOptions::new(dir, vec!["hub".into()]);
    o.max_bytes = 4 * 1024 * 1024 * 1024;
    o.encryption_key_file = key;
    o
}

struct Intake {
    events: u64,
    secs: f64,
    commits: u64,
    p50: Duration,
    p99: Duration,
}

/// `events` appends from `tasks` concurrent tasks, starting at event number `from`. The
/// events are made before the clock starts: the spool is measured, not the event builder.
fn intake(
    rt: &tokio::runtime::Runtime,
    spool: &Spool,
    tasks: u64,
    from: u64,
    events: u64,
) -> Intake {
    let per_task = events / tasks;
    let work: Vec<Vec<Event>> = (0..tasks)
        .map(|t| {
            (0..per_task)
                .map(|i| event(from + t * per_task + i))
                .collect()
        })
        .collect();
    let commits_before = spool.stats().commits;
    let start = Instant::now();
    let latencies = rt.block_on(async {
        let mut handles = Vec::new();
        for evs in work {
            let spool = spool.clone();
            handles.push(tokio::spawn(async move {
                let mut lat = Vec::with_capacity(evs.len());
                for ev in evs {
                    let s = Instant::now();
                    spool.append(ev).await.unwrap();
                    lat.push(s.elapsed());
                }
                lat
            }));
        }
        let mut all = Vec::with_capacity(events as usize);
        for h in handles {
            all.extend(h.await.unwrap());
        }
        all
    });
    let secs = start.elapsed().as_secs_f64();
    let mut lat = latencies;
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    Intake {
        events: per_task * tasks,
        secs,
        commits: spool.stats().commits - commits_before,
        p50: pct(0.50),
        p99: pct(0.99),
    }
}

/// The same record bytes appended to a plain file, one fdatasync per `batch` events (the
/// bytes are made before the clock starts).
fn raw_loop(dir: &Path, events: u64, batch: u64) -> f64 {
    let path = dir.join("raw.log");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .unwrap();
    let batch = batch.max(1);
    let records: Vec<Vec<u8>> = (0..events)
        .map(|n| {
            let ev = event(n).with_seq(n + 1);
            let envelope = wire::encode(&ev).unwrap();
            // The spool's record header: seq, id, flags, length.
            let mut r = Vec::with_capacity(29 + envelope.len());
            r.extend_from_slice(&(n + 1).to_be_bytes());
            r.extend_from_slice(ev.id().as_bytes());
            r.push(0);
            r.extend_from_slice(&(envelope.len() as u32).to_be_bytes());
            r.extend_from_slice(&envelope);
            r
        })
        .collect();
    let start = Instant::now();
    let mut buf = Vec::new();
    for chunk in records.chunks(batch as usize) {
        buf.clear();
        for r in chunk {
            buf.extend_from_slice(r);
        }
        f.write_all(&buf).unwrap();
        f.sync_data().unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    drop(f);
    std::fs::remove_file(&path).unwrap();
    events as f64 / secs
}

fn fstype(dir: &Path) -> String {
    std::process::Command::new("df")
        .args(["--output=fstype,source"])
        .arg(dir)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| {
            s.lines()
                .nth(1)
                .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        })
        .unwrap_or_else(|| "unknown".into())
}

fn main() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        let (mode, dir) = spec.split_once(':').unwrap();
        child(Path::new(dir), mode);
        return;
    }
    // `cargo bench` passes `--bench`; a plain run of the binary works too.
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("spool-bench");
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).unwrap();
    let backlog: u64 = std::env::var("TALLYMAN_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    eprintln!("spool benchmark in {} ({})", base.display(), fstype(&base));

    let key = base.join("spool.key");
    std::fs::write(&key, [0x42u8; 32]).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    let mut rows = Vec::new();
    for (tasks, encrypted) in [(64u64, false), (256, false), (256, true)] {
        let dir = base.join(format!("intake-{tasks}-{encrypted}"));
        let (spool, _) = Spool::open(options(&dir, encrypted.then(|| key.clone()))).unwrap();
        // Warm up (sled's first segments, the runtime), then measure.
        intake(&rt, &spool, tasks, 0, 5_000);
        let m = intake(&rt, &spool, tasks, 10_000, INTAKE_EVENTS);
        let stats = spool.stats();
        rt.block_on(spool.close()).unwrap();
        drop(spool);
        let rate = m.events as f64 / m.secs;
        let batch = (m.events as f64 / m.commits.max(1) as f64).round() as u64;
        let raw = raw_loop(&dir, m.events, batch);
        let per_event = stats.bytes_on_disk as f64 / stats.events_stored as f64;
        eprintln!(
            "intake {tasks} tasks{}: {rate:.0}/s, batch {batch}, raw {raw:.0}/s",
            if encrypted { " encrypted" } else { "" }
        );
        rows.push((tasks, encrypted, rate, batch, raw, m.p50, m.p99, per_event));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    // The backlog for the start-up measurement.
    let dir = base.join("backlog");
    let (spool, _) = Spool::open(options(&dir, None)).unwrap();
    let fill_start = Instant::now();
    // In slices, so that the events waiting to be appended do not dominate this process's
    // memory.
    let mut filled = 0u64;
    let target = backlog / 256 * 256;
    while filled < target {
        let n = (target - filled).min(256 * 200);
        filled += intake(&rt, &spool, 256, filled, n).events;
    }
    let fill_secs = fill_start.elapsed().as_secs_f64();
    let stats = spool.stats();
    rt.block_on(spool.close()).unwrap();
    drop(spool);
    eprintln!("backlog of {filled} events written in {fill_secs:.1} s");
    let disk_per_event = stats.bytes_on_disk as f64 / stats.events_stored as f64;
    let live_per_event = stats.bytes_live as f64 / stats.events_stored as f64;
    let parent_hwm = status("VmHWM:");

    let run_child = |mode: &str| -> serde_json::Value {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .env(CHILD_ENV, format!("{mode}:{}", dir.display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let full = run_child("full");
    let lagging = run_child("lagging");
    let child = run_child("startup");

    // Refill the drained spool: sled reuses the segments it freed.
    let (spool, _) = Spool::open(options(&dir, None)).unwrap();
    let mut refilled = 0u64;
    while refilled < target {
        let n = (target - refilled).min(256 * 200);
        refilled += intake(&rt, &spool, 256, 2 * target + refilled, n).events;
    }
    let disk_after_refill = spool.stats().bytes_on_disk;
    rt.block_on(spool.close()).unwrap();
    drop(spool);

    println!();
    println!(
        "Spool benchmark: {} ({}), {} cores; events are one-line receipts (~{} bytes as a record).",
        base.display(),
        fstype(&base),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        wire::encode(&event(1)).unwrap().len() + 29
    );
    println!();
    println!(
        "| durable intake | events/s | avg batch | raw append+fdatasync, same batch | ratio | p50 accept | p99 accept |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (tasks, enc, rate, batch, raw, p50, p99, _) in &rows {
        println!(
            "| {tasks} appenders{} | {rate:.0} | {batch} | {raw:.0} | {:.2} | {:.2} ms | {:.2} ms |",
            if *enc { ", encrypted" } else { "" },
            rate / raw,
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3
        );
    }
    println!();
    println!("| measure | value |");
    println!("|---|---|");
    for (tasks, enc, .., per_event) in &rows {
        println!(
            "| bytes on disk per event after {INTAKE_EVENTS} events ({tasks} appenders{}) | {per_event:.0} |",
            if *enc { ", encrypted" } else { "" }
        );
    }
    println!(
        "| backlog of {} events: bytes on disk / live per event | {disk_per_event:.0} / {live_per_event:.0} |",
        filled
    );
    println!(
        "| start-up with {} events (open + quick self-check + first append accepted) | {:.0} ms |",
        filled,
        child["startup_ms"].as_f64().unwrap()
    );
    println!(
        "| … of which open and self-check | {:.0} ms |",
        child["open_ms"].as_f64().unwrap()
    );
    println!(
        "| full self-check (every record decoded) of {} events | {:.0} ms |",
        filled,
        full["full_check_ms"].as_f64().unwrap()
    );
    println!(
        "| peak resident memory (VmHWM) of the full self-check process | {} |",
        mib_kib(full["hwm_kib"].as_u64().unwrap())
    );
    println!(
        "| resident memory after start-up with the backlog (VmRSS) | {} |",
        mib_kib(child["rss_after_open_kib"].as_u64().unwrap())
    );
    println!(
        "| draining the backlog to one sink (next_batch 500 + delivered) | {:.0} events/s |",
        child["drain_rate"].as_f64().unwrap()
    );
    println!(
        "| peak resident memory (VmHWM) of the start-up + drain process | {} |",
        mib_kib(child["hwm_kib"].as_u64().unwrap())
    );
    println!(
        "| one sink reading the whole backlog while another holds it (nothing collected) | {:.0} events/s, peak {} |",
        lagging["rate"].as_f64().unwrap(),
        mib_kib(lagging["hwm_kib"].as_u64().unwrap())
    );
    println!(
        "| bytes on disk after the drain (sled keeps freed segments) | {} |",
        child["disk_after_drain"].as_u64().unwrap()
    );
    println!(
        "| bytes on disk after refilling it with {filled} events | {disk_after_refill} (before the drain: {}) |",
        stats.bytes_on_disk
    );
    println!(
        "| `get(id)` of the newest of {filled} events (a scan: no id index) | {:.0} ms |",
        lagging["get_ms"].as_f64().unwrap()
    );
    println!(
        "| peak resident memory (VmHWM) of the intake process (with the {INTAKE_EVENTS} events it prepares per run) | {} |",
        mib_kib(parent_hwm)
    );
    let _ = std::fs::remove_dir_all(&base);
}

/// Start-up, memory and drain with the backlog in `dir` (`mode` "startup"), or the full
/// self-check (`mode` "full"), as JSON on stdout.
fn child(dir: &Path, mode: &str) {
    if mode == "lagging" {
        // Read the whole backlog the way a sink does, with nothing collected behind it (as
        // when another sink holds everything back).
        let (spool, _) = Spool::open(options(dir, None)).unwrap();
        let start = Instant::now();
        let mut read = 0u64;
        let mut after = 0;
        loop {
            let batch = spool.list(after, 500).unwrap();
            let Some(last) = batch.last() else { break };
            read += batch.len() as u64;
            after = last.seq;
        }
        let rate = read as f64 / start.elapsed().as_secs_f64();
        // `get` by id scans the blocks (there is no id index): the newest event is the
        // worst case.
        let id = event(read - 1).id();
        let start = Instant::now();
        let found = spool.get(id).unwrap();
        let get_ms = start.elapsed().as_secs_f64() * 1e3;
        assert_eq!(found.map(|s| s.event.id()), Some(id));
        println!(
            "{}",
            serde_json::json!({
                "rate": rate,
                "hwm_kib": status("VmHWM:"),
                "read": read,
                "get_ms": get_ms,
            })
        );
        return;
    }
    if mode == "full" {
        let mut o = options(dir, None);
        o.check = Check::Full;
        let start = Instant::now();
        let (spool, check) = Spool::open(o).unwrap();
        let ms = start.elapsed().as_secs_f64() * 1e3;
        assert!(check.problems.is_empty(), "{:?}", check.problems);
        drop(spool);
        println!(
            "{}",
            serde_json::json!({ "full_check_ms": ms, "hwm_kib": status("VmHWM:") })
        );
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let start = Instant::now();
    let (spool, check) = Spool::open(options(dir, None)).unwrap();
    let open_ms = start.elapsed().as_secs_f64() * 1e3;
    rt.block_on(spool.append(event(10_000_000))).unwrap();
    let startup_ms = start.elapsed().as_secs_f64() * 1e3;
    assert!(check.problems.is_empty(), "{:?}", check.problems);
    let rss_after_open = status("VmRSS:");

    let drain_start = Instant::now();
    let mut drained = 0u64;
    loop {
        let batch = spool.next_batch("hub", 500).unwrap();
        let Some(last) = batch.last() else { break };
        drained += batch.len() as u64;
        spool.delivered("hub", &[last.seq]).unwrap();
    }
    let drain_rate = drained as f64 / drain_start.elapsed().as_secs_f64();
    rt.block_on(spool.settle()).unwrap();
    let disk_after_drain = spool.stats().bytes_on_disk;
    let hwm = status("VmHWM:");
    rt.block_on(spool.close()).unwrap();
    println!(
        "{}",
        serde_json::json!({
            "open_ms": open_ms,
            "startup_ms": startup_ms,
            "rss_after_open_kib": rss_after_open,
            "drain_rate": drain_rate,
            "hwm_kib": hwm,
            "disk_after_drain": disk_after_drain,
            "events": check.events_stored,
        })
    );
}
