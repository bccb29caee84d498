use std::collections::{HashMap, HashSet};
use std::os::unix::fs::PermissionsExt;
use std::time::UNIX_EPOCH;

use proptest::prelude::*;
use tallyman_protocol::event::{
    FacilityId, GatewayId, Header, Item, ItemCode, Line, Location, Quantity, SourceName, Uom,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

fn event(seq: u64) -> Event {
    let header = Header {
        id: crate::clock::new_event_id(crate::clock::now()),
        facility: FacilityId::new("north").unwrap(),
        gateway: GatewayId::new("gw-1").unwrap(),
        source: SourceName::new("dock-1").unwrap(),
        seq,
        captured_at: crate::clock::now(),
    };
    let line = Line::new(
        Item::Code(ItemCode::new("GLOVE-M").unwrap()),
        Quantity::new("1").unwrap(),
        Uom::new("Units").unwrap(),
    );
    Event::receipt(header, Location::new("WH/Stock").unwrap(), vec![line]).unwrap()
}

fn events(n: u64) -> Vec<Event> {
    (1..=n).map(event).collect()
}

// ---- Retry-After -------------------------------------------------------------------------

#[test]
fn retry_after_takes_seconds_and_all_three_http_date_forms() {
    let now = UNIX_EPOCH + Duration::from_secs(784_111_717); // Sun, 06 Nov 1994 08:48:37 GMT
    assert_eq!(
        parse_retry_after("120", now),
        Some(Duration::from_secs(120))
    );
    assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
    // Zero, empty, garbage, negative: the sink's own backoff applies.
    for v in ["0", "", " ", "soon", "-5", "1.5", "0x10"] {
        assert_eq!(parse_retry_after(v, now), None, "{v:?}");
    }
    // Absurd values are capped.
    assert_eq!(
        parse_retry_after("99999999999999999999999", now),
        Some(crate::backoff::MAX_RETRY_AFTER)
    );
    for date in [
        "Sun, 06 Nov 1994 08:49:37 GMT",  // IMF-fixdate
        "Sunday, 06-Nov-94 08:49:37 GMT", // RFC 850
        "Sun Nov  6 08:49:37 1994",       // asctime
    ] {
        assert_eq!(
            parse_retry_after(date, now),
            Some(Duration::from_secs(60)),
            "{date}"
        );
    }
    // A date in the past, or now: no wait imposed.
    assert_eq!(
        parse_retry_after("Sun, 06 Nov 1994 08:48:37 GMT", now),
        None
    );
    assert_eq!(
        parse_retry_after("Sat, 05 Nov 1994 08:49:37 GMT", now),
        None
    );
}

// ---- Idempotency-Key ---------------------------------------------------------------------

#[test]
fn the_idempotency_key_is_a_function_of_the_ids_in_order() {
    let batch = events(5);
    let key = idempotency_key(&batch);
    assert_eq!(key, idempotency_key(&batch.clone()));
    let uuid = uuid::Uuid::parse_str(&key).unwrap();
    assert_eq!(uuid.get_version_num(), 8);
    assert_eq!(uuid.get_variant(), uuid::Variant::RFC4122);
    assert_eq!(key, key.to_lowercase());

    let mut reversed = batch.clone();
    reversed.reverse();
    let shorter = &batch[..4];
    let longer: Vec<Event> = batch.iter().cloned().chain([event(6)]).collect();
    let keys: HashSet<String> = [
        key.clone(),
        idempotency_key(&reversed),
        idempotency_key(shorter),
        idempotency_key(&longer),
        idempotency_key(&batch[..1]),
        idempotency_key(&batch[1..2]),
        idempotency_key(&[]),
    ]
    .into_iter()
    .collect();
    assert_eq!(keys.len(), 7, "every list of ids has its own key");
}

#[test]
fn the_idempotency_key_is_frozen() {
    // The key is part of the hub contract: a release must not change it for the same ids.
    let ids = [
        "01937f6e-7c1a-7a4e-9b1e-3c7c2d0f8a11",
        "01937f6e-7c1b-7000-8000-000000000001",
    ];
    let batch: Vec<Event> = ids
        .iter()
        .map(|id| {
            let mut v = serde_json::to_value(event(1)).unwrap();
            v["id"] = serde_json::Value::from(*id);
            serde_json::from_value(v).unwrap()
        })
        .collect();
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    digest.update(b"tallyman batch v1\n");
    for id in ids {
        digest.update(uuid::Uuid::parse_str(id).unwrap().as_bytes());
    }
    let d = digest.finish();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d.as_ref()[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    assert_eq!(
        idempotency_key(&batch),
        uuid::Uuid::from_bytes(b).hyphenated().to_string()
    );
}

// ---- Answers -----------------------------------------------------------------------------

#[test]
fn answers_are_escaped_and_bounded() {
    assert_eq!(
        escape_answer(b"  {\"error\":\"bad\"}\n", 100),
        "{\"error\":\"bad\"}"
    );
    assert_eq!(
        escape_answer(b"a\x1bb\tc\r\nd", 100),
        "a\\u{1b}b\\tc\\r\\nd"
    );
    assert_eq!(escape_answer(b"abcdef", 3), "abc…");
    assert_eq!(escape_answer(b"\xff\xfeok", 100), "\u{fffd}\u{fffd}ok");
    assert_eq!(escape_answer("ünïcode".as_bytes(), 100), "ünïcode");
}

#[test]
fn each_status_means_delivered_retry_or_refused() {
    let now = SystemTime::now();
    let c = |code: u16, retry_after: Option<&str>| {
        classify(
            StatusCode::from_u16(code).unwrap(),
            retry_after,
            Some("https://elsewhere/"),
            "{\"error\":\"unknown product\"}",
            now,
        )
    };
    for ok in [200, 201, 202, 204, 299] {
        assert_eq!(c(ok, None), Answer::Accepted, "{ok}");
    }
    for refused in [400, 413, 422, 451, 499] {
        let Answer::Refused { reason } = c(refused, Some("5")) else {
            panic!("{refused} should refuse the batch");
        };
        assert!(
            reason.starts_with(&format!("the hub refused it: HTTP {refused}")),
            "{reason}"
        );
        assert!(
            reason.ends_with(": {\"error\":\"unknown product\"}"),
            "{reason}"
        );
    }
    assert_eq!(
        c(400, None),
        Answer::Refused {
            reason: "the hub refused it: HTTP 400 Bad Request: {\"error\":\"unknown product\"}"
                .into()
        }
    );
    for retry in [
        301, 302, 303, 307, 308, 401, 403, 404, 405, 408, 409, 410, 415, 425, 426, 429, 500, 502,
        503, 504, 599, 600, 999, 100,
    ] {
        let Answer::Retry { after, error } = c(retry, Some("30")) else {
            panic!("{retry} should be retried");
        };
        assert_eq!(after, Some(Duration::from_secs(30)), "{retry}");
        assert!(error.contains(&format!("HTTP {retry}")), "{error}");
    }
    let Answer::Retry { after, error } = c(503, None) else {
        panic!()
    };
    assert_eq!(after, None);
    assert_eq!(
        error,
        "the hub failed (HTTP 503 Service Unavailable: {\"error\":\"unknown product\"})"
    );
    let Answer::Retry { error, .. } = c(401, None) else {
        panic!()
    };
    assert!(error.contains("check the token in `token_file`"), "{error}");
    let Answer::Retry { error, .. } = c(404, None) else {
        panic!()
    };
    assert!(error.contains("check `endpoint`"), "{error}");
    let Answer::Retry { error, .. } = c(308, None) else {
        panic!()
    };
    assert!(error.contains("to https://elsewhere/"), "{error}");
    assert!(error.contains("redirects are not followed"), "{error}");
}

// ---- Splitting ---------------------------------------------------------------------------

/// A hub that refuses any batch holding a poison event, and answers "retry" to its n-th
/// request when told to. Records every batch (by event seq) and the answer it gave.
struct Fake {
    poison: HashSet<u64>,
    retry_at: Option<usize>,
    posts: Vec<(Vec<u64>, Answer)>,
}

impl Fake {
    fn new(poison: impl IntoIterator<Item = u64>, retry_at: Option<usize>) -> Fake {
        Fake {
            poison: poison.into_iter().collect(),
            retry_at,
            posts: Vec::new(),
        }
    }

    fn accepted(&self) -> HashMap<u64, usize> {
        let mut n = HashMap::new();
        for (seqs, a) in &self.posts {
            if *a == Answer::Accepted {
                for s in seqs {
                    *n.entry(*s).or_default() += 1;
                }
            }
        }
        n
    }
}

impl Post for Fake {
    fn post(&mut self, events: &[Event]) -> impl Future<Output = Answer> + Send {
        let seqs: Vec<u64> = events.iter().map(Event::seq).collect();
        let answer = if self.retry_at == Some(self.posts.len()) {
            Answer::Retry {
                after: Some(Duration::from_secs(2)),
                error: "503".into(),
            }
        } else if let Some(p) = seqs.iter().find(|s| self.poison.contains(s)) {
            Answer::Refused {
                reason: format!("poison in batch, first {p}"),
            }
        } else {
            Answer::Accepted
        };
        self.posts.push((seqs, answer.clone()));
        std::future::ready(answer)
    }

    fn name(&self) -> &str {
        "fake"
    }
}

fn run<P: Post>(post: &mut P, batch: &[Event]) -> Vec<Outcome> {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(deliver_split(post, batch))
}

#[test]
fn a_clean_batch_is_one_request() {
    let batch = events(10);
    let mut fake = Fake::new([], None);
    let out = run(&mut fake, &batch);
    assert_eq!(out, vec![Outcome::Delivered; 10]);
    assert_eq!(fake.posts.len(), 1);
    assert!(run(&mut fake, &[]).is_empty());
    assert_eq!(fake.posts.len(), 1, "an empty batch sends nothing");
}

#[test]
fn one_poison_event_is_isolated_in_log_requests() {
    let batch = events(100);
    let mut fake = Fake::new([37], None);
    let out = run(&mut fake, &batch);
    for (i, o) in out.iter().enumerate() {
        if i + 1 == 37 {
            assert_eq!(
                o,
                &Outcome::Rejected {
                    reason: "poison in batch, first 37".into()
                }
            );
        } else {
            assert_eq!(o, &Outcome::Delivered, "event {}", i + 1);
        }
    }
    // 100 → 50 → 25 → 13 → 7 → 4 → 2 → 1: 1 + 2 per level.
    assert!(
        fake.posts.len() <= 2 * 7 + 1,
        "{} requests",
        fake.posts.len()
    );
    assert!(fake.accepted().values().all(|&n| n == 1));
    assert_eq!(fake.accepted().len(), 99);
    // Parts go out in spool order.
    let firsts: Vec<u64> = fake
        .posts
        .iter()
        .filter(|(_, a)| *a == Answer::Accepted)
        .map(|(s, _)| s[0])
        .collect();
    assert!(firsts.windows(2).all(|w| w[0] < w[1]), "{firsts:?}");
}

#[test]
fn a_retry_while_splitting_stops_there() {
    let batch = events(8);
    // Requests: [1..8] refused, [1..4] refused, [1,2] accepted, [3,4] → retry.
    let mut fake = Fake::new([4], Some(3));
    let out = run(&mut fake, &batch);
    let retry = Outcome::Retry {
        after: Some(Duration::from_secs(2)),
        error: "503".into(),
    };
    assert_eq!(
        out,
        vec![
            Outcome::Delivered,
            Outcome::Delivered,
            retry.clone(),
            retry.clone(),
            retry.clone(),
            retry.clone(),
            retry.clone(),
            retry
        ]
    );
    assert_eq!(fake.posts.len(), 4, "nothing after the retry is sent");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Whatever is poisoned and wherever a retry comes: one outcome per event; delivered and
    /// rejected events form a prefix, then only retries; exactly the poison events of the
    /// prefix are rejected; every delivered event was accepted exactly once; no event of the
    /// retried suffix was accepted; never more than 2n − 1 requests.
    #[test]
    fn splitting_keeps_order_and_delivers_each_event_once(
        n in 1u64..80,
        poison in proptest::collection::hash_set(1u64..80, 0..6),
        retry_at in proptest::option::of(0usize..40),
    ) {
        let batch = events(n);
        let mut fake = Fake::new(poison.iter().copied(), retry_at);
        let out = run(&mut fake, &batch);
        prop_assert_eq!(out.len(), batch.len());
        let first_retry = out
            .iter()
            .position(|o| matches!(o, Outcome::Retry { .. }))
            .unwrap_or(out.len());
        let only_retries = out[first_retry..]
            .iter()
            .all(|o| matches!(o, Outcome::Retry { .. }));
        prop_assert!(only_retries);
        let accepted = fake.accepted();
        for (i, o) in out[..first_retry].iter().enumerate() {
            let seq = i as u64 + 1;
            if poison.contains(&seq) {
                prop_assert!(matches!(o, Outcome::Rejected { .. }), "{seq} {o:?}");
                prop_assert!(!accepted.contains_key(&seq));
            } else {
                prop_assert_eq!(o, &Outcome::Delivered);
                prop_assert_eq!(accepted.get(&seq).copied(), Some(1));
            }
        }
        for i in first_retry..out.len() {
            prop_assert!(!accepted.contains_key(&(i as u64 + 1)));
        }
        prop_assert!((fake.posts.len() as u64) < 2 * n);
        if retry_at.is_none() && poison.iter().all(|p| *p > n) {
            prop_assert_eq!(fake.posts.len(), 1);
        }
    }
}

// ---- The token file ----------------------------------------------------------------------

fn write_mode(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn bearer(h: &HeaderValue) -> String {
    h.to_str().unwrap().to_owned()
}

#[test]
fn the_token_loses_its_line_break_and_is_refused_when_everyone_can_read_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.token");
    let mut token = TokenFile::new(path.clone());
    let e = token.header().unwrap_err();
    assert!(
        e.to_string()
            .starts_with(&format!("reading the token file {}", path.display())),
        "{e}"
    );

    write_mode(&path, "abc.DEF-123\r\n", 0o640);
    let h = token.header().unwrap();
    assert_eq!(bearer(&h), "Bearer abc.DEF-123");
    assert!(h.is_sensitive());

    for mode in [0o644, 0o604, 0o602] {
        write_mode(&path, "abc\n", mode);
        let e = token.header().unwrap_err().to_string();
        assert!(e.contains("every user of the gateway"), "{e}");
        assert!(e.contains(&format!("{mode:04o}")), "{e}");
        assert!(e.contains("chmod o-rwx"), "{e}");
    }
    write_mode(&path, "\n", 0o600);
    assert!(
        token
            .header()
            .unwrap_err()
            .to_string()
            .ends_with("is empty")
    );
    write_mode(&path, "ab\tc\n", 0o600);
    assert!(
        token
            .header()
            .unwrap_err()
            .to_string()
            .contains("cannot be sent in a header")
    );
    write_mode(&path, "tökén", 0o600);
    assert!(token.header().is_err());
    write_mode(&path, &"x".repeat(20_000), 0o600);
    assert!(
        token
            .header()
            .unwrap_err()
            .to_string()
            .contains("larger than")
    );
}

#[test]
fn a_changed_token_file_is_read_again_before_the_next_request() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.token");
    write_mode(&path, "first-token\n", 0o600);
    let mut token = TokenFile::new(path.clone());
    assert_eq!(bearer(&token.header().unwrap()), "Bearer first-token");
    // Same length, written at once: within one timestamp tick the stamp may not change, so
    // a freshly changed file is not trusted yet.
    write_mode(&path, "other-token\n", 0o600);
    assert_eq!(bearer(&token.header().unwrap()), "Bearer other-token");

    // An old file: its stamp is trusted and the file is not read again...
    let old = SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(old)
        .unwrap();
    assert_eq!(bearer(&token.header().unwrap()), "Bearer other-token");
    assert!(token.cached.as_ref().unwrap().settled);
    // ... until it changes (renamed over, as rotation tools do).
    let next = dir.path().join("hub.token.new");
    write_mode(&next, "third-token\n", 0o600);
    std::fs::rename(&next, &path).unwrap();
    assert_eq!(bearer(&token.header().unwrap()), "Bearer third-token");
    // A chmod is a change too: a file that became world-readable is refused at once.
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(old)
        .unwrap();
    assert_eq!(bearer(&token.header().unwrap()), "Bearer third-token");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(token.header().is_err());
}

// ---- The real client against a raw HTTP/1.1 server ---------------------------------------

/// One request as the server saw it.
#[derive(Debug)]
struct Seen {
    head: String,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

/// What the raw server does with a request.
#[derive(Debug, Clone)]
enum Reply {
    /// Write these bytes, then close.
    Bytes(Vec<u8>),
    /// Close without answering.
    Close,
    /// Keep the connection open without answering until the client gives up.
    Silent,
}

fn http(status: &str, headers: &str, body: &str) -> Reply {
    Reply::Bytes(
        format!(
            "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

/// A server that answers each connection's first request from `replies`, in order, and sends
/// what it saw.
async fn raw_server(replies: Vec<Reply>) -> (String, tokio::sync::mpsc::UnboundedReceiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        for reply in replies {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 8192];
            let head_end = loop {
                let n = socket.read(&mut chunk).await.unwrap();
                assert!(n > 0, "the client closed before its request was complete");
                buf.extend_from_slice(&chunk[..n]);
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i + 4;
                }
            };
            let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            while buf.len() < head_end + len {
                let n = socket.read(&mut chunk).await.unwrap();
                assert!(n > 0);
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = buf[head_end..head_end + len].to_vec();
            tx.send(Seen { head, body }).unwrap();
            match reply {
                Reply::Bytes(b) => {
                    let _ = socket.write_all(&b).await;
                    let _ = socket.shutdown().await;
                }
                Reply::Close => drop(socket),
                Reply::Silent => {
                    let mut rest = Vec::new();
                    let _ = socket.read_to_end(&mut rest).await;
                }
            }
        }
    });
    (format!("http://{addr}/v1/events?site=north"), rx)
}

/// The settings of an http sink, through the configuration's own validation.
fn settings(
    endpoint: &str,
    token_file: Option<&Path>,
    ca_file: Option<&Path>,
    timeout: Duration,
) -> tallyman_config::HttpSink {
    let mut text = format!(
        "[agent]\nfacility = \"f\"\ngateway = \"g\"\n[[sources]]\nname = \"s\"\n\
         type = \"stdin\"\n[[sinks]]\nname = \"hub\"\ntype = \"http\"\n\
         endpoint = \"{endpoint}\"\n"
    );
    if let Some(t) = token_file {
        text.push_str(&format!("token_file = \"{}\"\n", t.display()));
    }
    if let Some(c) = ca_file {
        text.push_str(&format!("ca_file = \"{}\"\n", c.display()));
    }
    let config = tallyman_config::parse_str(&text, "test.toml").unwrap();
    let tallyman_config::SinkTarget::Http(mut h) = config.sinks[0].target.clone() else {
        panic!("an http sink")
    };
    h.timeout = timeout;
    h
}

fn sink(endpoint: &str, token_file: Option<PathBuf>, timeout: Duration) -> HttpSink {
    HttpSink::new(
        "hub",
        &settings(endpoint, token_file.as_deref(), None, timeout),
    )
}

#[tokio::test]
async fn a_batch_is_one_post_with_the_contract_headers() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("hub.token");
    write_mode(&token, "s3cr3t\n", 0o600);
    let (endpoint, mut seen) = raw_server(vec![http("200 OK", "", "{\"ok\":true}")]).await;
    let mut hub = sink(&endpoint, Some(token), Duration::from_secs(10));
    let batch = events(3);
    let out = hub.deliver(&batch).await;
    assert_eq!(out, vec![Outcome::Delivered; 3]);
    let req = seen.recv().await.unwrap();
    assert!(
        req.head
            .starts_with("POST /v1/events?site=north HTTP/1.1\r\n"),
        "{}",
        req.head
    );
    assert_eq!(
        req.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(
        req.header("authorization").as_deref(),
        Some("Bearer s3cr3t")
    );
    assert_eq!(req.header("idempotency-key"), Some(idempotency_key(&batch)));
    let body: Vec<Event> = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(body, batch);
    // Exactly what the file sink writes, one object per event.
    let values: Vec<serde_json::Value> = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(values[0], serde_json::to_value(&batch[0]).unwrap());
}

#[tokio::test]
async fn a_redirect_is_not_followed_and_a_refusal_is_bounded() {
    let huge = format!("{{\"error\":\"{}\"}}", "x".repeat(200_000));
    let (endpoint, mut seen) = raw_server(vec![
        http("307 Temporary Redirect", "Location: https://hub2/\r\n", ""),
        http("422 Unprocessable Entity", "", &huge),
    ])
    .await;
    let mut hub = sink(&endpoint, None, Duration::from_secs(10));
    let batch = events(1);
    let out = hub.deliver(&batch).await;
    let [Outcome::Retry { error, .. }] = &out[..] else {
        panic!("{out:?}")
    };
    assert!(error.contains("HTTP 307"), "{error}");
    assert!(error.contains("https://hub2/"), "{error}");
    assert!(seen.recv().await.unwrap().header("authorization").is_none());

    let out = hub.deliver(&batch).await;
    let [Outcome::Rejected { reason }] = &out[..] else {
        panic!("{out:?}")
    };
    assert!(
        reason.starts_with("the hub refused it: HTTP 422 Unprocessable Entity: {\"error\":\"xxx"),
        "{}",
        &reason[..80]
    );
    assert!(reason.chars().count() < MAX_REASON_CHARS + 200, "bounded");
    assert!(
        reason.ends_with("…"),
        "cut: {}",
        &reason[reason.len() - 40..]
    );
    // Only one request per attempt: the single event was not split any further.
    assert!(seen.recv().await.is_some());
    assert!(seen.try_recv().is_err());
}

#[tokio::test]
async fn lost_answers_timeouts_and_refused_connections_are_retried() {
    let (endpoint, _seen) = raw_server(vec![Reply::Close, Reply::Silent]).await;
    let mut hub = sink(&endpoint, None, Duration::from_millis(500));
    let batch = events(2);

    let out = hub.deliver(&batch).await;
    let Outcome::Retry { after: None, error } = &out[0] else {
        panic!("{out:?}")
    };
    assert!(
        error.contains("failed before its answer arrived"),
        "{error}"
    );
    assert_eq!(out[0], out[1]);

    let out = hub.deliver(&batch).await;
    let Outcome::Retry { error, .. } = &out[0] else {
        panic!("{out:?}")
    };
    assert!(error.starts_with("no answer from the hub at"), "{error}");
    assert!(error.contains("within 0.5 s"), "{error}");

    // Nobody listens there any more.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut gone = sink(
        &format!("http://127.0.0.1:{port}/"),
        None,
        Duration::from_secs(5),
    );
    let out = gone.deliver(&batch).await;
    let Outcome::Retry { error, .. } = &out[0] else {
        panic!("{out:?}")
    };
    assert!(error.starts_with("cannot connect to the hub at"), "{error}");
}

#[tokio::test]
async fn a_401_makes_the_token_be_read_again_and_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("hub.token");
    write_mode(&token, "old-token\n", 0o600);
    let (endpoint, mut seen) = raw_server(vec![
        http(
            "401 Unauthorized",
            "Retry-After: 3\r\n",
            "{\"error\":\"bad token\"}",
        ),
        http("204 No Content", "", ""),
    ])
    .await;
    let mut hub = sink(&endpoint, Some(token.clone()), Duration::from_secs(10));
    let batch = events(4);
    let out = hub.deliver(&batch).await;
    let Outcome::Retry { after, error } = &out[0] else {
        panic!("{out:?}")
    };
    assert_eq!(*after, Some(Duration::from_secs(3)));
    assert!(error.contains("HTTP 401 Unauthorized"), "{error}");
    assert!(error.contains("bad token"), "{error}");
    assert_eq!(out.len(), 4, "a credentials problem dead-letters nothing");
    assert!(hub.token.as_ref().unwrap().stale);
    assert_eq!(
        seen.recv()
            .await
            .unwrap()
            .header("authorization")
            .as_deref(),
        Some("Bearer old-token")
    );

    write_mode(&token, "new-token\n", 0o600);
    assert_eq!(hub.deliver(&batch).await, vec![Outcome::Delivered; 4]);
    assert_eq!(
        seen.recv()
            .await
            .unwrap()
            .header("authorization")
            .as_deref(),
        Some("Bearer new-token")
    );
}

#[tokio::test]
async fn a_missing_ca_file_is_a_retry_that_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let settings = settings(
        "https://127.0.0.1:9/",
        None,
        Some(&ca),
        Duration::from_secs(5),
    );
    let mut hub = HttpSink::new("hub", &settings);
    let out = hub.deliver(&events(1)).await;
    let Outcome::Retry { error, .. } = &out[0] else {
        panic!("{out:?}")
    };
    assert!(
        error.starts_with(&format!("reading the hub's CA bundle {}", ca.display())),
        "{error}"
    );
    std::fs::write(&ca, "no certificate here\n").unwrap();
    let out = hub.deliver(&events(1)).await;
    let Outcome::Retry { error, .. } = &out[0] else {
        panic!("{out:?}")
    };
    assert!(error.ends_with("no certificates in it"), "{error}");
    // A real CA: the client is built, and the request fails only because nobody listens.
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(&ca, cert.cert.pem()).unwrap();
    let out = hub.deliver(&events(1)).await;
    let Outcome::Retry { error, .. } = &out[0] else {
        panic!("{out:?}")
    };
    assert!(error.starts_with("cannot connect to the hub"), "{error}");
}
