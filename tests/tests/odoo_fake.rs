//! The fake Odoo (`tallyman_tests::odoo`) against what real Odoo 16–19 answered.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tallyman_tests::hub::Pki;
use tallyman_tests::odoo::{FakeOdoo, Version};

/// A blocking JSON client for the fake (reqwest on its own current-thread runtime).
struct Client {
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
    base: String,
}

/// What came back: status, content type, headers, the body as text and as JSON.
#[derive(Debug)]
struct Answer {
    status: u16,
    content_type: String,
    headers: reqwest::header::HeaderMap,
    text: String,
    json: Value,
}

impl Client {
    fn new(odoo: &FakeOdoo) -> Client {
        Client::with_roots(odoo, None)
    }

    fn with_roots(odoo: &FakeOdoo, ca_pem: Option<&str>) -> Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(20));
        if let Some(pem) = ca_pem {
            use rustls::pki_types::CertificateDer;
            use rustls::pki_types::pem::PemObject;
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                roots.add(cert.unwrap()).unwrap();
            }
            let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
            builder = builder.tls_backend_preconfigured(tls);
        }
        Client {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            http: builder.build().unwrap(),
            base: odoo.url(),
        }
    }

    /// Send a request; `Err` when no answer came (connection closed, timeout).
    fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: Option<Vec<u8>>,
    ) -> Result<Answer, reqwest::Error> {
        self.rt.block_on(async {
            let mut rb = self.http.request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}{path}", self.base),
            );
            for (k, v) in headers {
                rb = rb.header(*k, v);
            }
            if let Some(b) = body {
                rb = rb.body(b);
            }
            let r = rb.send().await?;
            let status = r.status().as_u16();
            let headers = r.headers().clone();
            let content_type = headers
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            let text = r.text().await?;
            let json = serde_json::from_str(&text).unwrap_or(Value::Null);
            Ok(Answer {
                status,
                content_type,
                headers,
                text,
                json,
            })
        })
    }

    fn post_json(&self, path: &str, headers: &[(&str, String)], body: &Value) -> Answer {
        let mut h = vec![("Content-Type", "application/json".to_owned())];
        h.extend(headers.iter().cloned());
        self.send("POST", path, &h, Some(body.to_string().into_bytes()))
            .unwrap()
    }

    /// `POST /jsonrpc` with `params`.
    fn jsonrpc(&self, params: Value) -> Answer {
        self.post_json(
            "/jsonrpc",
            &[],
            &json!({"jsonrpc": "2.0", "method": "call", "params": params, "id": 1}),
        )
    }
}

#[test]
fn common_version_and_authenticate_per_version() {
    for v in Version::ALL {
        let odoo = FakeOdoo::start(v);
        let c = Client::new(&odoo);
        let a = c.jsonrpc(json!({"service": "common", "method": "version", "args": []}));
        assert_eq!(a.status, 200);
        assert_eq!(a.content_type, "application/json; charset=utf-8");
        let r = &a.json["result"];
        assert_eq!(r["server_version_info"][0], json!(v.major()), "{v}");
        assert_eq!(r["server_serie"], json!(v.to_string()));
        if v == Version::V18 {
            assert_eq!(r["server_version"], json!("18.0+e-20241005"));
        }
        let auth = |login: &str, secret: &str| {
            c.jsonrpc(json!({"service": "common", "method": "authenticate",
                "args": [odoo.database(), login, secret, {}]}))
                .json["result"]
                .clone()
        };
        assert_eq!(auth("admin", "admin"), json!(2));
        assert_eq!(auth("admin", &odoo.admin_key()), json!(2));
        assert_eq!(
            auth(odoo.bot_login(), &odoo.bot_key()),
            json!(odoo.bot_uid())
        );
        assert_eq!(auth(odoo.bot_login(), "wrong"), json!(false));
    }
}

#[test]
fn tls_with_the_test_ca_and_unknown_paths() {
    let pki = Pki::new();
    let odoo = FakeOdoo::start_tls(Version::V19, &pki);
    assert!(odoo.url().starts_with("https://localhost:"));
    let c = Client::with_roots(&odoo, Some(&pki.ca_pem));
    let a = c.jsonrpc(json!({"service": "common", "method": "version", "args": []}));
    assert_eq!(a.json["result"]["server_version"], json!("19.0"));
    let a = c.send("GET", "/no/such/page", &[], None).unwrap();
    assert_eq!(a.status, 404);
    assert!(a.text.contains("Not Found"), "{}", a.text);
    assert!(a.headers.get("content-type").is_some());
}
