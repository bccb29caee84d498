//! The single sections: `[agent]`, `[spool]`, `[log]`, `[mqtt]`, `[remote]`, `[health]`.

use std::collections::HashMap;
use std::time::Duration;

use tallyman_protocol::event::{FacilityId, GatewayId};

use super::{check, check_opt, choice, int, list, required, text, unique};
use crate::defaults as d;
use crate::diagnostic::Report;
use crate::model::{
    Agent, ClientCert, Health, Log, LogFormat, Mqtt, Remote, Spool, TrustedKey, WhenFull,
};
use crate::raw::RawTable;
use crate::values;

pub(super) fn agent(r: &mut Report<'_>, t: &RawTable) -> Option<Agent> {
    let facility = required(r, t, "facility", |s| {
        FacilityId::new(s).map_err(|e| e.message)
    });
    let gateway = required(r, t, "gateway", |s| {
        GatewayId::new(s).map_err(|e| e.message)
    });
    let data_dir =
        check_opt(r, t, "data_dir", values::path).map(|p| p.unwrap_or_else(|| d::DATA_DIR.into()));
    Some(Agent {
        facility: facility?,
        gateway: gateway?,
        data_dir: data_dir?,
    })
}

pub(super) fn spool(r: &mut Report<'_>, t: &RawTable) -> Option<Spool> {
    let max_size_mb = int(
        r,
        t,
        "max_size_mb",
        d::SPOOL_MAX_SIZE_MB,
        (1, 1 << 20),
        "MiB",
    );
    let commit_window_ms = int(
        r,
        t,
        "commit_window_ms",
        d::SPOOL_COMMIT_WINDOW_MS,
        (0, 1000),
        "milliseconds",
    );
    let cache_mb = int(
        r,
        t,
        "cache_capacity_mb",
        d::SPOOL_CACHE_CAPACITY_MB,
        (1, 1 << 16),
        "MiB",
    );
    let key_file = check_opt(r, t, "encryption_key_file", values::path);
    let when_full = choice(
        r,
        t,
        "raw_scans_when_full",
        WhenFull::Refuse,
        &[
            ("refuse", WhenFull::Refuse),
            ("drop_oldest", WhenFull::DropOldest),
        ],
    );
    Some(Spool {
        max_size_bytes: max_size_mb? * d::MIB,
        commit_window: Duration::from_millis(commit_window_ms?),
        cache_capacity_bytes: cache_mb? * d::MIB,
        encryption_key_file: key_file?,
        raw_scans_when_full: when_full?,
    })
}

pub(super) fn log(r: &mut Report<'_>, t: &RawTable) -> Option<Log> {
    let format = choice(
        r,
        t,
        "format",
        LogFormat::Text,
        &[("text", LogFormat::Text), ("json", LogFormat::Json)],
    );
    let level = match t.entry("level") {
        None => values::log_filter(d::LOG_LEVEL).ok(),
        Some(_) => check(r, text(t, "level"), values::log_filter),
    };
    Some(Log {
        format: format?,
        level: level?,
    })
}

pub(super) fn mqtt(r: &mut Report<'_>, t: &RawTable, agent: Option<&Agent>) -> Option<Mqtt> {
    let endpoint = required(r, t, "endpoint", values::mqtt_endpoint);
    let client_id = match t.entry("client_id") {
        Some(_) => check(r, text(t, "client_id"), values::client_id),
        // Without a valid [agent] there is no default, and no Config either.
        None => agent.map(|a| d::mqtt_client_id(a.facility.as_str(), a.gateway.as_str())),
    };
    let ca_file = check_opt(r, t, "ca_file", values::path);
    let cert_file = check_opt(r, t, "cert_file", values::path);
    let key_file = check_opt(r, t, "key_file", values::path);
    // TLS files make no sense on a plain connection: they would be silently unused.
    if endpoint.as_ref().is_some_and(|e| !e.tls) {
        for name in ["ca_file", "cert_file", "key_file"] {
            if let Some(e) = t.entry(name) {
                r.error(
                    e.key_at,
                    &e.path,
                    format!("`{name}` needs an `mqtts://` endpoint; this one is `mqtt://`"),
                );
            }
        }
    }
    let client_cert = match (cert_file, key_file) {
        (Some(Some(cert_file)), Some(Some(key_file))) => Some(Some(ClientCert {
            cert_file,
            key_file,
        })),
        (Some(None), Some(None)) => Some(None),
        (Some(Some(_)), Some(None)) => {
            missing_partner(r, t, "cert_file", "key_file");
            None
        }
        (Some(None), Some(Some(_))) => {
            missing_partner(r, t, "key_file", "cert_file");
            None
        }
        _ => None,
    };
    let keep_alive = int(
        r,
        t,
        "keep_alive_secs",
        d::MQTT_KEEP_ALIVE_SECS,
        (5, 65535),
        "seconds",
    );
    let username = check_opt(r, t, "username", |s| values::plain_text(s, 256));
    let password_file = check_opt(r, t, "password_file", values::path);
    if let (None, Some(e)) = (t.entry("username"), t.entry("password_file")) {
        r.error(
            e.key_at,
            &e.path,
            "`password_file` needs `username` (MQTT sends no password without a user name)",
        );
    }
    Some(Mqtt {
        endpoint: endpoint?,
        client_id: client_id?,
        ca_file: ca_file?,
        client_cert: client_cert?,
        keep_alive: Duration::from_secs(keep_alive?),
        username: username?,
        password_file: password_file?,
    })
}

fn missing_partner(r: &mut Report<'_>, t: &RawTable, present: &str, absent: &str) {
    if let Some(e) = t.entry(present) {
        r.error(
            e.key_at,
            &e.path,
            format!(
                "`{present}` needs `{absent}` too: a client certificate and its key go together"
            ),
        );
    }
}

pub(super) fn remote(r: &mut Report<'_>, t: &RawTable) -> Option<Remote> {
    let keys = match list(t, "trusted_keys") {
        Some(None) => {
            r.error(
                t.at,
                &t.key_path("trusted_keys"),
                "missing required key `trusted_keys`",
            );
            None
        }
        Some(Some([])) => {
            if let Some(e) = t.entry("trusted_keys") {
                r.error(
                    e.value_at,
                    &e.path,
                    "list at least one trusted key, or leave out `[remote]`",
                );
            }
            None
        }
        Some(Some(items)) => {
            let mut keys: Vec<TrustedKey> = Vec::new();
            let mut ok = true;
            let mut seen = HashMap::new();
            for item in items {
                match check(r, Some(item.into()), values::trusted_key) {
                    Some(k) => {
                        let id = super::Text {
                            value: &k.id,
                            at: item.at,
                            path: &item.path,
                        };
                        ok &= unique(r, &mut seen, "key id", id, &item.path);
                        keys.push(k);
                    }
                    None => ok = false,
                }
            }
            ok.then_some(keys)
        }
        None => None,
    };
    let rollback = int(
        r,
        t,
        "rollback_after_secs",
        d::REMOTE_ROLLBACK_AFTER_SECS,
        (10, 86_400),
        "seconds",
    );
    Some(Remote {
        trusted_keys: keys?,
        rollback_after: Duration::from_secs(rollback?),
    })
}

pub(super) fn health(r: &mut Report<'_>, t: &RawTable) -> Option<Health> {
    let interval = int(
        r,
        t,
        "interval_secs",
        d::HEALTH_INTERVAL_SECS,
        (1, 86_400),
        "seconds",
    );
    Some(Health {
        interval: Duration::from_secs(interval?),
    })
}
