//! The MQTT connection over TLS with client certificates (mutual TLS), against a mosquitto TLS
//! listener that requires a client certificate. Certificates are made here with rcgen: a test
//! CA, the broker's certificate (SAN 127.0.0.1 and localhost), a client certificate for the
//! gateway and one for a device, and a second CA that signed nothing the broker uses.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tallyman_tests::agent::{Agent, read_outbox};
use tallyman_tests::broker::{
    Broker, BrokerConfig, Device, DeviceOptions, TlsListener, agent_config, password_file,
    receipt_json, topic,
};

/// A CA: its certificate (PEM, DER) and what signs with it.
struct Ca {
    pem: String,
    der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

fn ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Ca {
        pem: cert.pem(),
        der: cert.der().clone(),
        issuer: Issuer::new(params, key),
    }
}

/// A certificate signed by `ca`: (certificate PEM, certificate DER, key PEM, key DER).
fn leaf(
    ca: &Ca,
    name: &str,
    sans: &[&str],
    usage: ExtendedKeyUsagePurpose,
) -> (String, CertificateDer<'static>, String, Vec<u8>) {
    let mut params =
        CertificateParams::new(sans.iter().map(|s| (*s).to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![usage];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    (
        cert.pem(),
        cert.der().clone(),
        key.serialize_pem(),
        key.serialize_der(),
    )
}

/// Everything a TLS test needs, written into `dir`.
struct Pki {
    ca_file: PathBuf,
    wrong_ca_file: PathBuf,
    gateway_cert: PathBuf,
    gateway_key: PathBuf,
    broker: TlsListener,
    device_tls: Arc<rustls::ClientConfig>,
}

fn pki(dir: &Path) -> Pki {
    let root = ca("tallyman test CA");
    let other = ca("some other CA");
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let (server_pem, _, server_key, _) = leaf(
        &root,
        "broker",
        &["127.0.0.1", "localhost"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let (gw_pem, _, gw_key, _) = leaf(
        &root,
        "gw-test",
        &["gw-test"],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let (_, dev_der, _, dev_key) = leaf(
        &root,
        "handheld",
        &["handheld"],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.der.clone()).unwrap();
    let device_tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(
        vec![dev_der],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(dev_key)),
    )
    .unwrap();
    let ca_file = write("ca.pem", &root.pem);
    Pki {
        wrong_ca_file: write("other-ca.pem", &other.pem),
        gateway_cert: write("gw.pem", &gw_pem),
        gateway_key: write("gw.key", &gw_key),
        broker: TlsListener {
            cafile: ca_file.clone(),
            certfile: write("broker.pem", &server_pem),
            keyfile: write("broker.key", &server_key),
            require_certificate: true,
        },
        ca_file,
        device_tls: Arc::new(device_tls),
    }
}

fn tls_broker(pki: &Pki) -> Broker {
    Broker::start_with(&BrokerConfig {
        tls: Some(pki.broker.clone()),
        ..BrokerConfig::default()
    })
}

fn device(broker: &Broker, pki: &Pki, id: &str) -> Device {
    let mut o = DeviceOptions::new(id);
    o.tls = Some(Arc::clone(&pki.device_tls));
    Device::connect_with(broker.port(), &o)
}

fn wait_log(path: &Path, timeout: Duration, cond: impl Fn(&str) -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond(&std::fs::read_to_string(path).unwrap_or_default()) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn mqtts(broker: &Broker, ca: &Path, client: Option<(&Path, &Path)>) -> String {
    let mut s = format!(
        "endpoint = \"mqtts://127.0.0.1:{}\"\nca_file = \"{}\"\n",
        broker.port(),
        ca.display()
    );
    if let Some((cert, key)) = client {
        s.push_str(&format!(
            "cert_file = \"{}\"\nkey_file = \"{}\"\n",
            cert.display(),
            key.display()
        ));
    }
    s
}

#[test]
fn mutual_tls_with_the_right_ca_and_certificate_connects_and_stores() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let pki = pki(dir.path());
    let broker = tls_broker(&pki);
    let config = agent_config(
        dir.path(),
        broker.port(),
        &mqtts(
            &broker,
            &pki.ca_file,
            Some((&pki.gateway_cert, &pki.gateway_key)),
        ),
    );
    let log = dir.path().join("agent.log");
    let agent = Agent::start(&config, &log);

    let it = device(&broker, &pki, "it-tls");
    it.subscribe(&topic("status"));
    assert!(
        it.wait(Duration::from_secs(20), |s| s
            .on(&topic("status"))
            .iter()
            .any(|m| m.json()["state"] == "online")),
        "no online status over TLS; agent log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let (id, json) = receipt_json(1, "test", "gw-test");
    it.publish(&topic("in/events"), json);
    let outbox = dir.path().join("data/outbox.jsonl");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !read_outbox(&outbox).contains_key(&id) {
        assert!(
            Instant::now() < deadline,
            "the event sent over TLS was not stored"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, _) = agent.terminate(Duration::from_secs(20));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}

#[test]
fn a_broker_signed_by_another_ca_is_refused_with_the_reason_and_retried() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let pki = pki(dir.path());
    let broker = tls_broker(&pki);
    let config = agent_config(
        dir.path(),
        broker.port(),
        &mqtts(
            &broker,
            &pki.wrong_ca_file,
            Some((&pki.gateway_cert, &pki.gateway_key)),
        ),
    );
    let log = dir.path().join("agent.log");
    let agent = Agent::start(&config, &log);
    // Two refused attempts: it retries, and it did not crash in between.
    assert!(
        wait_log(&log, Duration::from_secs(20), |l| l
            .matches("the broker's certificate is not trusted")
            .count()
            >= 2),
        "agent log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let text = std::fs::read_to_string(&log).unwrap();
    println!(
        "{}",
        text.lines()
            .find(|l| l.contains("not trusted"))
            .unwrap_or_default()
    );
    assert!(
        text.contains(&pki.wrong_ca_file.display().to_string()),
        "{text}"
    );
    let (status, _) = agent.terminate(Duration::from_secs(20));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}

#[test]
fn without_a_client_certificate_the_broker_refuses_and_the_log_says_so() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let pki = pki(dir.path());
    let broker = tls_broker(&pki);
    let config = agent_config(
        dir.path(),
        broker.port(),
        &mqtts(&broker, &pki.ca_file, None),
    );
    let log = dir.path().join("agent.log");
    let agent = Agent::start(&config, &log);
    assert!(
        wait_log(&log, Duration::from_secs(20), |l| l
            .matches("client certificate")
            .count()
            >= 2),
        "agent log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let text = std::fs::read_to_string(&log).unwrap();
    println!(
        "{}",
        text.lines()
            .find(|l| l.contains("client certificate"))
            .unwrap_or_default()
    );
    let (status, _) = agent.terminate(Duration::from_secs(20));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}

#[test]
fn the_password_file_logs_in_and_a_wrong_password_is_reported() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let passwords = dir.path().join("mosquitto.passwd");
    password_file(&passwords, "gw-test", "s3cret pass");
    let broker = Broker::start_with(&BrokerConfig {
        password_file: Some(passwords),
        ..BrokerConfig::default()
    });
    // The file ends with a newline, which is not part of the password.
    let secret = dir.path().join("mqtt.pass");
    std::fs::write(&secret, "s3cret pass\n").unwrap();
    let credentials = format!(
        "username = \"gw-test\"\npassword_file = \"{}\"\n",
        secret.display()
    );
    let config = agent_config(dir.path(), broker.port(), &credentials);
    let log = dir.path().join("agent.log");
    let agent = Agent::start(&config, &log);
    assert!(
        wait_log(&log, Duration::from_secs(20), |l| l
            .contains("Connected to the MQTT broker")),
        "agent log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let (status, _) = agent.terminate(Duration::from_secs(20));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");

    // mosquitto answers a wrong password with "not authorised" (CONNACK code 5).
    std::fs::write(&secret, "wrong\n").unwrap();
    let agent = Agent::start(&config, &log);
    assert!(
        wait_log(&log, Duration::from_secs(20), |l| l
            .contains("the broker refused the connection: not authorised")),
        "agent log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let (status, _) = agent.terminate(Duration::from_secs(20));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}

/// Replace `path` whole, as an operator's tooling does: write a temporary file next to it, then
/// rename it over the old one (a reader sees the old file or the new one, never half of one).
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// The log from byte `from` on (what was written since then).
fn since(log: &str, from: usize) -> &str {
    log.get(from..).unwrap_or_default()
}

#[test]
fn a_rotated_client_certificate_is_used_at_the_next_connection() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let pki = pki(dir.path());
    let broker = tls_broker(&pki);
    // The gateway starts with a certificate and key from a CA the broker does not trust.
    let stranger = ca("a CA the broker does not know");
    let (old_cert, _, old_key, _) = leaf(
        &stranger,
        "gw-test",
        &["gw-test"],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let cert_file = dir.path().join("gateway.pem");
    let key_file = dir.path().join("gateway.key");
    std::fs::write(&cert_file, &old_cert).unwrap();
    std::fs::write(&key_file, &old_key).unwrap();
    let config = agent_config(
        dir.path(),
        broker.port(),
        &mqtts(&broker, &pki.ca_file, Some((&cert_file, &key_file))),
    );
    let log = dir.path().join("agent.log");
    let agent = Agent::start(&config, &log);
    let refused = "the broker refused the gateway's client certificate";
    // Refused twice (it retries), with the reason, and never connected.
    assert!(
        wait_log(&log, Duration::from_secs(20), |l| l
            .matches(refused)
            .count()
            >= 2),
        "agent log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let before = std::fs::read_to_string(&log).unwrap();
    assert!(!before.contains("onnected to the MQTT broker"), "{before}");
    println!(
        "{}",
        before
            .lines()
            .find(|l| l.contains(refused))
            .unwrap_or_default()
    );

    // The new certificate and key, from the CA the broker trusts, renamed over the old files.
    let started = Instant::now();
    replace(
        &key_file,
        &std::fs::read_to_string(&pki.gateway_key).unwrap(),
    );
    replace(
        &cert_file,
        &std::fs::read_to_string(&pki.gateway_cert).unwrap(),
    );
    assert!(
        wait_log(&log, Duration::from_secs(20), |l| since(l, before.len())
            .contains("Reconnected to the MQTT broker.")),
        "the rotated certificate was not used; agent log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    println!("connected {:?} after the rotation", started.elapsed());

    // And it works: a device's event reaches the outbox.
    let it = device(&broker, &pki, "it-tls");
    let (id, json) = receipt_json(1, "test", "gw-test");
    it.publish(&topic("in/events"), json);
    let outbox = dir.path().join("data/outbox.jsonl");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !read_outbox(&outbox).contains_key(&id) {
        assert!(
            Instant::now() < deadline,
            "the event sent after the rotation was not stored; agent log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The same process all along: started once, and still running until told to stop.
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.matches("Agent running.").count(), 1, "{text}");
    let (status, _) = agent.terminate(Duration::from_secs(20));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}

#[test]
fn a_rotated_password_is_used_at_the_next_connection() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let passwords = dir.path().join("mosquitto.passwd");
    password_file(&passwords, "gw-test", "first secret");
    let mut broker = Broker::start_with(&BrokerConfig {
        password_file: Some(passwords.clone()),
        ..BrokerConfig::default()
    });
    let secret = dir.path().join("mqtt.pass");
    std::fs::write(&secret, "first secret\n").unwrap();
    let credentials = format!(
        "username = \"gw-test\"\npassword_file = \"{}\"\n",
        secret.display()
    );
    let config = agent_config(dir.path(), broker.port(), &credentials);
    let log = dir.path().join("agent.log");
    let agent = Agent::start(&config, &log);
    assert!(
        wait_log(&log, Duration::from_secs(20), |l| l
            .contains("Connected to the MQTT broker.")),
        "agent log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    // The broker comes back with a new password: the old one is refused, and retried.
    let mark = std::fs::read_to_string(&log).unwrap().len();
    broker.stop();
    password_file(&passwords, "gw-test", "second secret");
    broker.restart();
    let refused = "the broker refused the connection: not authorised";
    assert!(
        wait_log(&log, Duration::from_secs(20), |l| since(l, mark)
            .matches(refused)
            .count()
            >= 2),
        "the new password file was not in force; agent log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    // The agent's password file is replaced: the next attempt logs in with it.
    let mark = std::fs::read_to_string(&log).unwrap().len();
    let started = Instant::now();
    replace(&secret, "second secret\n");
    assert!(
        wait_log(&log, Duration::from_secs(20), |l| since(l, mark)
            .contains("Reconnected to the MQTT broker.")),
        "the rotated password was not used; agent log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    println!("connected {:?} after the rotation", started.elapsed());
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.matches("Agent running.").count(), 1, "{text}");
    let (status, _) = agent.terminate(Duration::from_secs(20));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}
