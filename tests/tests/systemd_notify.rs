//! The real binary and its service manager: readiness, status, watchdog and stopping
//! notifications on a socket the test binds as `NOTIFY_SOCKET`, and SIGTERM during start-up.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsStr;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use tallyman_tests::agent::{Agent, signal, stdin_to_file_config};
use tallyman_tests::manager::{Manager, Message};
use tallyman_tests::tallyman_bin;

const WAIT: Duration = Duration::from_secs(30);

fn start(config: &Path, dir: &Path, manager: &Manager, watchdog_usec: &str) -> Agent {
    Agent::start_with_env(
        &tallyman_bin(),
        config,
        &dir.join("agent.log"),
        &[
            ("NOTIFY_SOCKET", manager.path().as_os_str()),
            ("WATCHDOG_USEC", OsStr::new(watchdog_usec)),
        ],
    )
}

fn position(messages: &[Message], line: &str) -> Option<usize> {
    messages.iter().position(|m| m.has(line))
}

fn log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default()
}

#[test]
fn ready_after_start_watchdog_while_running_stopping_then_exit_0() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let config = stdin_to_file_config(dir.path(), "consume", "");
    let manager = Manager::bind(dir.path());
    // A 400 ms watchdog: a ping every 200 ms.
    let mut agent = start(&config, dir.path(), &manager, "400000");

    assert!(
        manager.wait_for(WAIT, |m| position(m, "READY=1").is_some()),
        "no READY=1: {:?}\n{}",
        manager.messages(),
        log(dir.path())
    );
    let messages = manager.messages();
    let ready = position(&messages, "READY=1").unwrap();
    let statuses: Vec<&str> = messages[..ready]
        .iter()
        .filter_map(Message::status)
        .collect();
    assert_eq!(
        statuses.first().copied(),
        Some("Starting: reading the configuration"),
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .any(|s| s.starts_with("Starting: opening the spool")),
        "{statuses:?}"
    );
    assert_eq!(
        messages[ready].status(),
        Some("Running: 1 sources, 1 sinks, configuration from the local file")
    );
    assert!(log(dir.path()).contains("Agent running."));

    // The agent works while it says so.
    agent
        .send(&["01095011010209171730123121C1".to_string()])
        .unwrap();
    assert!(agent.wait_feedback(WAIT, |fb| fb.lines.len() == 1));
    assert_eq!(agent.feedback_lines()[0]["result"], "accepted");

    // Pings keep coming after READY=1, about every 200 ms, and the status follows the parts.
    assert!(
        manager.wait_for(WAIT, |m| {
            let after = &m[ready..];
            after.iter().filter(|m| m.has("WATCHDOG=1")).count() >= 5
                && after
                    .iter()
                    .filter_map(Message::status)
                    .any(|s| s.starts_with("Running: sources 1 "))
        }),
        "{:?}",
        manager.messages()
    );
    let pings: Vec<_> = manager
        .messages()
        .into_iter()
        .filter(|m| m.has("WATCHDOG=1"))
        .collect();
    for pair in pings.windows(2) {
        let gap = pair[1].at - pair[0].at;
        // Half the timeout; well inside the timeout however loaded the machine is.
        assert!(gap < Duration::from_secs(5), "{gap:?} between two pings");
    }

    let (status, _) = agent.terminate(WAIT);
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "{}",
        log(dir.path())
    );
    let messages = manager.messages();
    let stopping = position(&messages, "STOPPING=1").expect("STOPPING=1");
    assert!(stopping > ready);
    assert_eq!(
        messages[stopping].status(),
        Some("Stopping on SIGTERM: intake first, then sinks")
    );
    assert!(log(dir.path()).contains("Stopped."));
}

#[test]
fn a_sigterm_while_the_configuration_is_read_stops_gracefully() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let text = std::fs::read(stdin_to_file_config(dir.path(), "consume", "")).unwrap();
    // The configuration is a FIFO: start-up waits in the middle of reading it until the test
    // writes it, after the signal.
    let fifo = dir.path().join("tallyman-fifo.toml");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let manager = Manager::bind(dir.path());
    let agent = start(&fifo, dir.path(), &manager, "400000");
    assert!(
        manager.wait_for(WAIT, |m| m
            .iter()
            .any(|m| m.status() == Some("Starting: reading the configuration"))),
        "{:?}",
        manager.messages()
    );
    signal(agent.pid(), "TERM").unwrap();
    // Opening the FIFO for writing meets the agent's open; then it reads the whole file. In a
    // thread: were the agent killed by the signal, the open would wait for a reader forever,
    // and the exit status below tells what happened.
    std::thread::spawn(move || {
        std::fs::OpenOptions::new()
            .write(true)
            .open(&fifo)
            .and_then(|mut f| f.write_all(&text))
    });

    let (status, _) = agent.terminate(WAIT);
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "{}",
        log(dir.path())
    );
    let messages = manager.messages();
    assert!(position(&messages, "STOPPING=1").is_some(), "{messages:?}");
    assert!(position(&messages, "READY=1").is_none(), "{messages:?}");
    let log = log(dir.path());
    assert!(
        log.contains("signal=\"SIGTERM\"") || log.contains("signal=SIGTERM"),
        "{log}"
    );
    // The signal is seen before the spool is opened or, when the runtime's signal driver has
    // not handed it over yet, at the end of that step: start-up goes no further either way.
    assert!(
        log.contains("Stopped before start-up began.")
            || log.contains("Stopping before start-up finished."),
        "{log}"
    );
    assert!(!log.contains("Agent running."), "{log}");
}

#[test]
fn a_sigterm_as_soon_as_the_handlers_are_in_place_exits_0() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let config = stdin_to_file_config(dir.path(), "consume", "");
    let manager = Manager::bind(dir.path());
    let agent = start(&config, dir.path(), &manager, "400000");
    // The first notification is sent once SIGTERM and SIGINT are handled: signal at once,
    // somewhere in start-up (reading the configuration, the spool's self-check, the apply)
    // or, at the latest, right after it.
    assert!(
        manager.wait_for(WAIT, |m| !m.is_empty()),
        "no notification: {}",
        log(dir.path())
    );
    signal(agent.pid(), "TERM").unwrap();
    let (status, _) = agent.terminate(WAIT);
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "{}",
        log(dir.path())
    );
    let messages = manager.messages();
    let stopping = position(&messages, "STOPPING=1").expect("STOPPING=1");
    if let Some(ready) = position(&messages, "READY=1") {
        assert!(ready < stopping, "{messages:?}");
    }
    let log = log(dir.path());
    assert!(log.contains("Stopping: intake first, then sinks."), "{log}");
    assert!(
        log.contains("Stopped.") || log.contains("Stopped before start-up began."),
        "{log}"
    );
}

#[test]
fn without_notify_socket_the_agent_runs_and_stops_as_before() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let config = stdin_to_file_config(dir.path(), "consume", "");
    // A watchdog without a socket to ping means nothing.
    let mut agent = Agent::start_with_env(
        &tallyman_bin(),
        &config,
        &dir.path().join("agent.log"),
        &[("WATCHDOG_USEC", OsStr::new("400000"))],
    );
    agent
        .send(&["01095011010209171730123121C1".to_string()])
        .unwrap();
    assert!(agent.wait_feedback(WAIT, |fb| fb.lines.len() == 1));
    let (status, _) = agent.terminate(WAIT);
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "{}",
        log(dir.path())
    );
    assert!(!log(dir.path()).contains("notification"));
}
