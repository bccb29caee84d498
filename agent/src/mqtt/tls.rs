//! TLS for the MQTT connection: the rustls client configuration (ring) built from the files the
//! `[mqtt]` section names, and plain-language reasons for handshake failures.
//!
//! The files are read again at every connection attempt (see `connection.rs`), so a rotated
//! certificate, key or CA bundle is picked up at the next reconnect without a restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{AlertDescription, CertificateError, ClientConfig, RootCertStore};
use tallyman_config::Mqtt;

/// Why the TLS configuration (or the password) could not be built. Each variant names the
/// file and what was wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading the CA bundle {path}: {source}")]
    ReadCa {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("reading the CA bundle {path}: {message}")]
    ParseCa { path: PathBuf, message: String },
    #[error("reading the CA bundle {path}: no certificates in it")]
    EmptyCa { path: PathBuf },
    #[error(
        "no CA certificates found in the system's trust store (install ca-certificates, or set \
         `ca_file` in [mqtt])"
    )]
    NoSystemRoots,
    #[error("reading the client certificate {path}: {source}")]
    ReadCert {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("reading the client certificate {path}: {message}")]
    ParseCert { path: PathBuf, message: String },
    #[error("reading the client certificate {path}: no certificates in it")]
    EmptyCert { path: PathBuf },
    #[error("reading the client key {path}: {source}")]
    ReadKey {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("reading the client key {path}: no private key in it (PKCS#8, PKCS#1 or SEC1 PEM)")]
    NoKey { path: PathBuf },
    #[error("reading the client key {path}: {message}")]
    ParseKey { path: PathBuf, message: String },
    #[error("the client certificate {cert} and key {key} cannot be used together: {message}")]
    ClientAuth {
        cert: PathBuf,
        key: PathBuf,
        message: String,
    },
    #[error("setting up TLS: {0}")]
    Setup(String),
    #[error("reading the MQTT password file {path}: {source}")]
    ReadPassword {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("reading the MQTT password file {path}: the password is not UTF-8 text")]
    PasswordNotText { path: PathBuf },
}

/// The rustls client configuration of `[mqtt]`: the CA bundle of `ca_file` (else the system's
/// roots), and the client certificate and key of `cert_file`/`key_file` when configured.
pub fn client_config(mqtt: &Mqtt) -> Result<ClientConfig, TlsError> {
    let roots = match &mqtt.ca_file {
        Some(path) => ca_bundle(path)?,
        None => system_roots()?,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?
        .with_root_certificates(roots);
    match &mqtt.client_cert {
        None => Ok(builder.with_no_client_auth()),
        Some(c) => {
            let certs = cert_chain(&c.cert_file)?;
            let key = private_key(&c.key_file)?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| TlsError::ClientAuth {
                    cert: c.cert_file.clone(),
                    key: c.key_file.clone(),
                    message: e.to_string(),
                })
        }
    }
}

/// The password of `password_file`: the file's text without its trailing line break.
pub fn password(path: &Path) -> Result<String, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::ReadPassword {
        path: path.to_owned(),
        source,
    })?;
    let mut text =
        String::from_utf8(bytes).map_err(|_| TlsError::PasswordNotText { path: path.into() })?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(text)
}

fn ca_bundle(path: &Path) -> Result<RootCertStore, TlsError> {
    let pem = std::fs::read(path).map_err(|source| TlsError::ReadCa {
        path: path.to_owned(),
        source,
    })?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| TlsError::ParseCa {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        roots.add(cert).map_err(|e| TlsError::ParseCa {
            path: path.to_owned(),
            message: format!("a certificate is not a usable trust anchor: {e}"),
        })?;
    }
    if roots.is_empty() {
        return Err(TlsError::EmptyCa {
            path: path.to_owned(),
        });
    }
    Ok(roots)
}

fn system_roots() -> Result<RootCertStore, TlsError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    // Unparsable system certificates are skipped: one bad file must not take the others down.
    let (_added, _ignored) = roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        return Err(TlsError::NoSystemRoots);
    }
    Ok(roots)
}

fn cert_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = std::fs::read(path).map_err(|source| TlsError::ReadCert {
        path: path.to_owned(),
        source,
    })?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::ParseCert {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::EmptyCert {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = std::fs::read(path).map_err(|source| TlsError::ReadKey {
        path: path.to_owned(),
        source,
    })?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoKey {
            path: path.to_owned(),
        },
        e => TlsError::ParseKey {
            path: path.to_owned(),
            message: e.to_string(),
        },
    })
}

/// What a TLS failure means for the people who must fix it, when the error (or one it wraps)
/// comes from rustls. `ca` names where the trusted CAs come from; `client_cert` says whether a
/// client certificate was offered.
pub fn explain(error: &rustls::Error, ca: &str, client_cert: bool) -> String {
    use rustls::Error as E;
    match error {
        E::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => format!(
                "the broker's certificate is not trusted: it is not signed by a CA in {ca} \
                 (unknown issuer)"
            ),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "the broker's certificate is not valid for the endpoint's host name (check the \
                 host in `endpoint` and the certificate's subject alternative names)"
                    .to_owned()
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "the broker's certificate has expired".to_owned()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "the broker's certificate is not valid yet (is the gateway's clock right?)"
                    .to_owned()
            }
            CertificateError::Revoked => "the broker's certificate is revoked".to_owned(),
            other => format!("the broker's certificate is not trusted: {other:?}"),
        },
        E::AlertReceived(alert) => match alert {
            AlertDescription::CertificateRequired => {
                if client_cert {
                    "the broker requires a client certificate and did not get one it accepts"
                        .to_owned()
                } else {
                    "the broker requires a client certificate: set `cert_file` and `key_file` \
                     in [mqtt]"
                        .to_owned()
                }
            }
            AlertDescription::HandshakeFailure if !client_cert => {
                "the broker refused the TLS handshake (it may require a client certificate: \
                 set `cert_file` and `key_file` in [mqtt])"
                    .to_owned()
            }
            AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateRevoked
            | AlertDescription::AccessDenied
            | AlertDescription::DecryptError
                if client_cert =>
            {
                format!("the broker refused the gateway's client certificate (TLS alert {alert:?})")
            }
            other => format!("the broker ended the TLS handshake (TLS alert {other:?})"),
        },
        other => format!("TLS: {other}"),
    }
}

/// The rustls error in `error` or in anything it wraps (io errors included).
pub fn find_rustls<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    // Bounded walk: error chains are short, and a cycle must not hang the agent.
    for _ in 0..16 {
        let e = current?;
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        // io::Error::source() skips the error it wraps: look at it directly.
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            if let Some(r) = find_rustls(inner) {
                return Some(r);
            }
        }
        current = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use tallyman_config::{ClientCert, MqttEndpoint};

    fn mqtt(ca: Option<PathBuf>, cert: Option<ClientCert>) -> Mqtt {
        Mqtt {
            endpoint: MqttEndpoint {
                tls: true,
                host: "localhost".into(),
                port: 8883,
            },
            client_id: "t".into(),
            ca_file: ca,
            client_cert: cert,
            keep_alive: std::time::Duration::from_secs(30),
            username: None,
            password_file: None,
        }
    }

    #[test]
    fn file_errors_name_the_file_and_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = client_config(&mqtt(Some(missing.clone()), None)).unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("reading the CA bundle {}: ", missing.display())),
            "{e}"
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = client_config(&mqtt(Some(empty.clone()), None)).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "reading the CA bundle {}: no certificates in it",
                empty.display()
            )
        );

        let ca = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca.cert.pem()).unwrap();
        assert!(client_config(&mqtt(Some(ca_file.clone()), None)).is_ok());

        let key_file = dir.path().join("key.pem");
        std::fs::write(&key_file, "no key here\n").unwrap();
        let cert = ClientCert {
            cert_file: ca_file.clone(),
            key_file: key_file.clone(),
        };
        let e = client_config(&mqtt(Some(ca_file.clone()), Some(cert))).unwrap_err();
        assert!(e.to_string().contains("no private key in it"), "{e}");

        std::fs::write(&key_file, ca.signing_key.serialize_pem()).unwrap();
        let cert = ClientCert {
            cert_file: ca_file.clone(),
            key_file: key_file.clone(),
        };
        assert!(client_config(&mqtt(Some(ca_file.clone()), Some(cert))).is_ok());

        // A key that is not the certificate's.
        let other = rcgen::KeyPair::generate().unwrap();
        std::fs::write(&key_file, other.serialize_pem()).unwrap();
        let cert = ClientCert {
            cert_file: ca_file.clone(),
            key_file,
        };
        let e = client_config(&mqtt(Some(ca_file), Some(cert))).unwrap_err();
        assert!(e.to_string().contains("cannot be used together"), "{e}");
    }

    #[test]
    fn the_password_loses_only_its_line_break() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "s3cret \r\n").unwrap();
        assert_eq!(password(&p).unwrap(), "s3cret ");
        std::fs::write(&p, "s3cret").unwrap();
        assert_eq!(password(&p).unwrap(), "s3cret");
        let e = password(&dir.path().join("none")).unwrap_err();
        assert!(
            e.to_string().starts_with("reading the MQTT password file"),
            "{e}"
        );
    }

    #[test]
    fn rustls_errors_are_found_inside_io_errors() {
        let inner = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, inner);
        let found = find_rustls(&io).unwrap();
        let text = explain(found, "/etc/ca.pem", false);
        assert!(text.contains("not trusted"), "{text}");
        assert!(text.contains("/etc/ca.pem"), "{text}");
        let alert = rustls::Error::AlertReceived(AlertDescription::CertificateRequired);
        assert!(explain(&alert, "x", false).contains("requires a client certificate"));
    }
}
