//! The durability order, proven on the real binary with strace: before an *accepted* line
//! reaches stdout, every spool file written since the previous acceptance has been
//! fdatasync'ed or fsync'ed (sled's own flush only calls sync_file_range, which is not enough).
//!
//! The sink is made to fail (its outbox path is a directory) so that no cursor moves: every
//! spool write in the trace belongs to an append. Scans are sent one at a time, each after the
//! previous one's feedback, so acceptances cannot interleave with later appends.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::process::{Command, Stdio};
use std::time::Duration;

use tallyman_tests::agent::{Agent, signal, stdin_to_file_config};
use tallyman_tests::tallyman_bin;

const SCANS: usize = 30;

#[test]
fn every_spool_write_is_synced_before_accepted_is_printed() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let config = stdin_to_file_config(dir.path(), "consume", "");
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("outbox.jsonl")).unwrap();
    let trace = dir.path().join("strace.txt");
    let log = dir.path().join("agent.log");

    // strace in front of the real binary: the Agent helper runs whatever `tallyman_bin()`
    // names, so wrap it in a tiny script.
    let wrapper = dir.path().join("traced-tallyman");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec strace -f -y -s 4096 -o '{}' -e trace=write,writev,pwrite64,pwritev,pwritev2,fsync,fdatasync,sync_file_range '{}' \"$@\"\n",
            trace.display(),
            tallyman_bin().display()
        ),
    )
    .unwrap();
    Command::new("chmod")
        .arg("+x")
        .arg(&wrapper)
        .status()
        .unwrap();
    assert!(
        Command::new("strace")
            .arg("-V")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success()),
        "strace is needed (tests/run installs it)"
    );

    let mut agent = Agent::start_with(&wrapper, &config, &log);
    for n in 0..SCANS {
        agent
            .send(&[format!("01095011010209171730123121T{n:04}")])
            .unwrap();
        assert!(
            agent.wait_feedback(Duration::from_secs(30), |fb| fb.lines.len() > n),
            "no feedback for scan {n}"
        );
    }
    let lines = agent.feedback_lines();
    assert!(lines.iter().all(|l| l["result"] == "accepted"), "{lines:?}");
    // Stop the traced agent itself (a signal to strace would only detach it); strace exits
    // with it.
    let children =
        std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", agent.pid())).unwrap();
    let traced: i32 = children.split_whitespace().next().unwrap().parse().unwrap();
    signal(traced, "TERM").unwrap();
    let (status, _) = agent.terminate(Duration::from_secs(30));
    assert!(status.is_some());

    let trace = std::fs::read_to_string(&trace).unwrap();
    let spool_dir = data.join("spool");
    let spool_prefix = format!("<{}", spool_dir.display());
    let (acceptances, syncs) = check_trace(&trace, &spool_prefix);
    assert_eq!(acceptances, SCANS, "every accepted line seen in the trace");
    assert!(
        syncs >= SCANS,
        "at least one fdatasync per acceptance, saw {syncs}"
    );
}

/// Walk the trace in completion order. Returns (acceptances, syncs of spool files).
fn check_trace(trace: &str, spool_prefix: &str) -> (usize, usize) {
    let mut dirty: HashSet<String> = HashSet::new();
    let mut unfinished: HashMap<String, String> = HashMap::new(); // pid -> the call's text
    let (mut acceptances, mut syncs) = (0, 0);
    for raw in trace.lines() {
        let (pid, rest) = raw.split_once(' ').unwrap_or(("", raw));
        let rest = rest.trim_start();
        let call = if let Some(head) = rest.strip_suffix(" <unfinished ...>") {
            unfinished.insert(pid.to_string(), head.to_string());
            continue;
        } else if rest.starts_with("<... ") {
            match unfinished.remove(pid) {
                Some(head) => head,
                None => continue,
            }
        } else {
            rest.to_string()
        };
        let name = call.split('(').next().unwrap_or("");
        let path = call
            .split_once('<')
            .and_then(|(_, p)| p.split_once('>'))
            .map(|(p, _)| format!("<{p}"))
            .unwrap_or_default();
        let in_spool = path.starts_with(spool_prefix);
        match name {
            "write" | "writev" | "pwrite64" | "pwritev" | "pwritev2" if in_spool => {
                dirty.insert(path);
            }
            "fsync" | "fdatasync" if in_spool => {
                syncs += 1;
                dirty.remove(&path);
            }
            "write" if call.starts_with("write(1<") && call.contains("accepted") => {
                acceptances += 1;
                assert!(
                    dirty.is_empty(),
                    "accepted line written while these spool files had unsynced writes: {dirty:?}\n{raw}"
                );
            }
            _ => {}
        }
    }
    (acceptances, syncs)
}

/// The checker itself: a write to a spool file followed by an accepted line without a sync in
/// between must fail; with the sync (even completed in another thread) it passes.
#[test]
#[should_panic(expected = "unsynced writes")]
fn the_check_catches_a_missing_sync() {
    let trace = "\
10 pwrite64(5</d/spool/db>, \"x\", 1, 0) = 1
10 sync_file_range(5</d/spool/db>, 0, 0, 7) = 0
11 write(1<pipe:[7]>, \"{\\\"result\\\":\\\"accepted\\\"}\\n\", 24) = 24
";
    check_trace(trace, "</d/spool");
}

#[test]
fn the_check_follows_unfinished_calls() {
    let trace = "\
10 pwrite64(5</d/spool/db>, \"x\", 1, 0) = 1
10 fdatasync(5</d/spool/db> <unfinished ...>
11 write(2<pipe:[8]>, \"log\", 3) = 3
10 <... fdatasync resumed>) = 0
11 write(1<pipe:[7]>, \"{\\\"result\\\":\\\"accepted\\\"}\\n\", 24) = 24
";
    assert_eq!(check_trace(trace, "</d/spool"), (1, 1));
}
