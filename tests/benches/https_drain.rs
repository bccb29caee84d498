//! Draining a backlog to the hub over HTTPS: the real agent (release binary, stdin source,
//! http sink) builds a backlog while the test hub refuses its token (401), then the hub takes
//! the token and the clock runs from the first accepted batch to the last. The hub is the test
//! hub (`tallyman_tests::hub`: axum over rustls, it parses every batch and counts every event),
//! on the same machine.
//!
//! ```sh
//! cargo bench -p tallyman-tests --bench https_drain
//! TALLYMAN_BENCH_EVENTS=50000 TALLYMAN_BENCH_BATCH=500 cargo bench -p tallyman-tests --bench https_drain
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use tallyman_tests::agent::Agent;
use tallyman_tests::hub::{Given, Hub, Pki};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let events = env_or("TALLYMAN_BENCH_EVENTS", 20_000) as usize;
    let batch = env_or("TALLYMAN_BENCH_BATCH", 100);
    let pki = Pki::new();
    let hub = Hub::start(&pki);
    hub.set_token(Some("not-yet"));

    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let token = dir.path().join("hub.token");
    std::fs::write(&token, "bench-token\n").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = dir.path().join("tallyman.toml");
    std::fs::write(
        &config,
        format!(
            r#"[agent]
facility = "test"
gateway = "gw-test"
data_dir = "{data}"

[[sources]]
name = "stdin"
type = "stdin"
workflow = "consume"
location = "WH/Stock"

[[sinks]]
name = "hub"
type = "http"
endpoint = "{endpoint}"
token_file = "{token}"
ca_file = "{ca}"
batch_size = {batch}
retry = {{ initial_ms = 50, max_ms = 200 }}
"#,
            data = dir.path().join("data").display(),
            endpoint = hub.endpoint(),
            token = token.display(),
            ca = ca.display(),
        ),
    )
    .unwrap();

    let mut agent = Agent::start(&config, &dir.path().join("agent.log"));
    let scans: Vec<String> = (0..events)
        .map(|n| format!("01095011010209171730123121S{n:07}"))
        .collect();
    for chunk in scans.chunks(1000) {
        agent.send(chunk).unwrap();
    }
    assert!(agent.wait_feedback(Duration::from_secs(600), |fb| fb.lines.len() >= events));
    println!("backlog: {events} events stored; the hub now takes the token");

    hub.set_token(Some("bench-token"));
    let started = Instant::now();
    assert!(
        hub.wait(Duration::from_secs(600), |s| s.accepted.len() >= events),
        "the backlog was not drained"
    );
    let wall = started.elapsed();
    let (first, last, requests) = hub.with(|s| {
        let ok: Vec<Instant> = s
            .requests
            .iter()
            .filter(|r| r.given == Given::Ok)
            .map(|r| r.at)
            .collect();
        (ok[0], *ok.last().unwrap(), ok.len())
    });
    let span = last - first;
    let _ = agent.terminate(Duration::from_secs(30));
    println!(
        "drained {events} events in {requests} requests of up to {batch}: {:.0} events/s from the \
         first accepted batch to the last ({:.3} s; {:.3} s from the hub taking the token)",
        events as f64 / span.as_secs_f64(),
        span.as_secs_f64(),
        wall.as_secs_f64(),
    );
}
