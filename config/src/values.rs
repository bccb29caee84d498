//! The rules of single values that are not the protocol's newtypes: byte strings, endpoints,
//! paths, the log filter, trusted keys. Each takes the text of one value and returns the typed
//! value or one sentence saying what is wrong.

use std::path::{Component, Path, PathBuf};

use crate::diagnostic::shown;
use crate::model::{HttpUrl, LogFilter, MqttEndpoint, SinkName, TrustedKey};

/// A byte string, such as a terminator or the bytes that make a scanner beep.
///
/// The rule: the value is a TOML string, and every character of it, once TOML has read its
/// escapes, stands for the one byte of the same value, so it must be U+0000 to U+00FF. Write
/// control bytes with TOML's escapes: `"\r\n"`, `"\u0007"`, or (TOML 1.1) `"\x07"`; `"\xff"`
/// is the byte 0xFF. A character beyond U+00FF is refused rather than silently turned into its
/// UTF-8 bytes.
pub(crate) fn byte_string(s: &str) -> Result<Vec<u8>, String> {
    s.chars()
        .enumerate()
        .map(|(i, c)| {
            u8::try_from(u32::from(c)).map_err(|_| {
                format!(
                    "character {} is U+{:04X}; a byte string holds characters U+0000 to U+00FF, \
                     one byte each (write a byte as \"\\xNN\")",
                    i + 1,
                    u32::from(c)
                )
            })
        })
        .collect()
}

/// `mqtt://host[:port]` or `mqtts://host[:port]`; the port defaults to 1883 or 8883.
pub(crate) fn mqtt_endpoint(s: &str) -> Result<MqttEndpoint, String> {
    let bad = || {
        format!(
            "expected `mqtt://host:port` or `mqtts://host:port`, found `{}`",
            shown(s)
        )
    };
    let (tls, rest) = if let Some(rest) = s.strip_prefix("mqtts://") {
        (true, rest)
    } else if let Some(rest) = s.strip_prefix("mqtt://") {
        (false, rest)
    } else {
        return Err(bad());
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '?', '#']) {
        return Err(format!("{}: an MQTT endpoint has no path", bad()));
    }
    let (host, port) = authority(rest).map_err(|m| format!("{}: {m}", bad()))?;
    Ok(MqttEndpoint {
        tls,
        host,
        port: port.unwrap_or(if tls { 8883 } else { 1883 }),
    })
}

/// An `http://` or `https://` URL: a host, an optional port, an optional path and query, no
/// fragment, no user name or password, no whitespace.
pub(crate) fn http_url(s: &str) -> Result<HttpUrl, String> {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .ok_or_else(|| {
            format!(
                "expected an `https://` or `http://` URL, found `{}`",
                shown(s)
            )
        })?;
    if let Some(c) = s.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("a URL cannot contain {:?}; percent-encode it", c));
    }
    if s.contains('#') {
        return Err("a URL here has no `#fragment`".into());
    }
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    authority(rest.get(..end).unwrap_or(rest))?;
    Ok(HttpUrl(s.to_owned()))
}

/// `host[:port]`, the host a DNS name, an IPv4 address or a bracketed IPv6 address.
fn authority(s: &str) -> Result<(String, Option<u16>), String> {
    if s.contains('@') {
        return Err("no user name or password in the URL; use the credential keys".into());
    }
    let (host, port) = if let Some(v6) = s.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or("an IPv6 address is written `[addr]`")?;
        if host.is_empty()
            || !host
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return Err(format!("`{}` is not an IPv6 address", shown(host)));
        }
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or("expected `:port` after `]`")?),
        };
        (host, port)
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if host.is_empty() {
        return Err("the host is missing".into());
    }
    if !s.starts_with('[')
        && !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
    {
        return Err(format!(
            "`{}` is not a host name (letters, digits, `-`, `.`)",
            shown(host)
        ));
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => Some(n),
            _ => return Err(format!("`{}` is not a port (1 to 65535)", shown(p))),
        },
    };
    Ok((host.to_owned(), port))
}

/// A file path: not empty, no NUL byte.
pub(crate) fn path(s: &str) -> Result<PathBuf, String> {
    if s.is_empty() {
        return Err("a path cannot be empty".into());
    }
    if s.contains('\0') {
        return Err("a path cannot contain a NUL character".into());
    }
    Ok(PathBuf::from(s))
}

/// A path below the data directory: relative, naming a file, never going up with `..`.
pub(crate) fn data_relative_path(s: &str) -> Result<PathBuf, String> {
    let p = path(s)?;
    let rel = Path::new(&p);
    if rel.is_absolute() || rel.has_root() {
        return Err(format!(
            "`{}` is absolute; this path is relative to `data_dir`",
            shown(s)
        ));
    }
    let mut named = false;
    for c in rel.components() {
        match c {
            Component::ParentDir => {
                return Err(format!(
                    "`{}` leaves `data_dir` with `..`; it must stay inside",
                    shown(s)
                ));
            }
            Component::Normal(_) => named = true,
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    if !named || s.ends_with('/') {
        return Err(format!("`{}` does not name a file", shown(s)));
    }
    Ok(p)
}

/// A sink name: 1 to 64 ASCII letters, digits, `-` or `_`.
pub(crate) fn sink_name(s: &str) -> Result<SinkName, String> {
    if s.is_empty() {
        return Err("a sink name cannot be empty".into());
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(format!(
            "a sink name may contain only ASCII letters, digits, `-` and `_`, not {c:?}"
        ));
    }
    if s.len() > 64 {
        return Err(format!(
            "a sink name is at most 64 characters, this one has {}",
            s.len()
        ));
    }
    Ok(SinkName(s.to_owned()))
}

/// An MQTT client id: 1 to 256 printable ASCII characters, no space.
pub(crate) fn client_id(s: &str) -> Result<String, String> {
    if s.is_empty() || s.len() > 256 || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("a client id is 1 to 256 printable ASCII characters, no spaces".into());
    }
    Ok(s.to_owned())
}

/// A short text without control characters (database, login, user name, command prefix).
pub(crate) fn plain_text(s: &str, max: usize) -> Result<String, String> {
    if s.is_empty() {
        return Err("cannot be empty".into());
    }
    if let Some(c) = s.chars().find(|c| c.is_control()) {
        return Err(format!("cannot contain control characters ({c:?})"));
    }
    let n = s.chars().count();
    if n > max {
        return Err(format!("at most {max} characters, this one has {n}"));
    }
    Ok(s.to_owned())
}

const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// `level` or `target=level`, comma-separated.
pub(crate) fn log_filter(s: &str) -> Result<LogFilter, String> {
    if s.trim().is_empty() {
        return Err("a log level cannot be empty; e.g. \"info\"".into());
    }
    for directive in s.split(',') {
        let d = directive.trim();
        if d.is_empty() {
            return Err("empty directive between commas".into());
        }
        let (target, level) = match d.split_once('=') {
            Some((t, l)) => (Some(t.trim()), l.trim()),
            None => (None, d),
        };
        if let Some(t) = target {
            let ok = !t.is_empty()
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '-'));
            if !ok {
                return Err(format!(
                    "`{}` is not a target (a module path such as `tallyman_agent::spool`)",
                    shown(t)
                ));
            }
        }
        if !LEVELS.iter().any(|l| l.eq_ignore_ascii_case(level)) {
            let mut m = format!(
                "`{}` is not a level (trace, debug, info, warn, error, off)",
                shown(level)
            );
            if let Some(s) = crate::suggest::closest(level, LEVELS) {
                m.push_str(&format!("; did you mean `{s}`?"));
            }
            return Err(m);
        }
    }
    Ok(LogFilter(s.to_owned()))
}

/// `KEY_ID:<base64 Ed25519 public key>`.
pub(crate) fn trusted_key(s: &str) -> Result<TrustedKey, String> {
    let form =
        "a trusted key is `KEY_ID:<base64 Ed25519 public key>`, as `tallyman keygen` writes it";
    let (id, b64) = s
        .split_once(':')
        .ok_or_else(|| format!("{form}; no `:` found"))?;
    let id_ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if !id_ok {
        return Err(format!(
            "key id `{}` must be 1 to 64 ASCII letters, digits, `.`, `-` or `_`",
            shown(id)
        ));
    }
    let bytes = base64_decode(b64).map_err(|m| format!("key `{id}`: {m}"))?;
    let public_key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
        format!(
            "key `{id}`: an Ed25519 public key is 32 bytes, this one has {}",
            bytes.len()
        )
    })?;
    Ok(TrustedKey {
        id: id.to_owned(),
        public_key,
    })
}

/// Standard base64 (RFC 4648 §4), padding optional, canonical (unused bits zero).
fn base64_decode(s: &str) -> Result<Vec<u8>, String> {
    fn sextet(c: u8) -> Option<u32> {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        Some(u32::from(v))
    }
    let not_b64 = "not valid base64 (standard alphabet `A-Z a-z 0-9 + /`)";
    let body = s.trim_end_matches('=');
    let pad = s.len() - body.len();
    if body.is_empty() || pad > 2 || (pad > 0 && s.len() % 4 != 0) || body.len() % 4 == 1 {
        return Err(not_b64.into());
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for &c in body.as_bytes() {
        let v = sextet(c).ok_or(not_b64)?;
        acc = ((acc << 6) | v) & 0xffff;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    if acc & ((1 << bits) - 1) != 0 {
        return Err(format!(
            "{not_b64}: its last character has bits set past the data"
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_strings() {
        assert_eq!(byte_string("\r\n").unwrap(), b"\r\n");
        assert_eq!(byte_string("\u{7}").unwrap(), [7]);
        assert_eq!(byte_string("\u{ff}<GS>").unwrap(), b"\xff<GS>");
        assert_eq!(byte_string("").unwrap(), b"");
        let e = byte_string("a€").unwrap_err();
        assert!(e.starts_with("character 2 is U+20AC"), "{e}");
    }

    #[test]
    fn mqtt_endpoints() {
        let e = mqtt_endpoint("mqtts://broker.example.org:8883").unwrap();
        assert!(e.tls);
        assert_eq!((e.host.as_str(), e.port), ("broker.example.org", 8883));
        let e = mqtt_endpoint("mqtt://localhost").unwrap();
        assert_eq!((e.tls, e.port), (false, 1883));
        assert_eq!(e.to_string(), "mqtt://localhost:1883");
        let e = mqtt_endpoint("mqtt://[::1]:1884").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("::1", 1884));
        assert_eq!(e.to_string(), "mqtt://[::1]:1884");
        assert_eq!(mqtt_endpoint("mqtts://b/").unwrap().port, 8883);
        for bad in [
            "tcp://b:1883",
            "b:1883",
            "mqtt://",
            "mqtt://:1883",
            "mqtt://b:0",
            "mqtt://b:70000",
            "mqtt://b:+1",
            "mqtt://b:x",
            "mqtt://b/topic",
            "mqtt://u:p@b",
            "mqtt://b c",
            "mqtt://[zz]:1",
            "mqtt://[::1",
            "MQTT://b",
        ] {
            assert!(mqtt_endpoint(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn http_urls() {
        assert!(http_url("https://erp.example.org").unwrap().is_https());
        assert!(!http_url("http://127.0.0.1:8069/").unwrap().is_https());
        assert!(http_url("https://hub.example.org/v1/events?x=1").is_ok());
        for bad in [
            "ftp://x",
            "https://",
            "https:///x",
            "https://a b",
            "https://x#f",
            "https://u@x",
            "https://x:99999",
        ] {
            assert!(http_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn data_relative_paths() {
        assert_eq!(
            data_relative_path("outbox.jsonl").unwrap(),
            PathBuf::from("outbox.jsonl")
        );
        assert!(data_relative_path("out/box.jsonl").is_ok());
        assert!(data_relative_path("./box.jsonl").is_ok());
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/..",
            ".",
            "dir/",
            "a\0b",
        ] {
            assert!(data_relative_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn log_filters() {
        for ok in [
            "info",
            "WARN",
            "info,tallyman_agent::spool=debug",
            "rumqttc = off",
        ] {
            assert!(log_filter(ok).is_ok(), "{ok}");
        }
        for bad in ["", "loud", "info,", "a b=info", "=info", "x=verbose"] {
            assert!(log_filter(bad).is_err(), "{bad}");
        }
        assert!(
            log_filter("inof")
                .unwrap_err()
                .contains("did you mean `info`?")
        );
    }

    #[test]
    fn trusted_keys() {
        // 32 bytes 0..=31, standard base64 with and without padding.
        let b64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        let k = trusted_key(&format!("central-it-2026:{b64}")).unwrap();
        assert_eq!(k.id, "central-it-2026");
        assert_eq!(k.public_key[31], 31);
        assert!(trusted_key(&format!("k:{}", b64.trim_end_matches('='))).is_ok());
        for bad in [
            "nokey",
            ":AAEC",
            "k:",
            "k:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9=",
            "k:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8==",
            "k:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==",
            "k:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd-h8=",
            "bad id:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        ] {
            assert!(trusted_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn base64_round_values() {
        assert_eq!(base64_decode("TWFu").unwrap(), b"Man");
        assert_eq!(base64_decode("TWE=").unwrap(), b"Ma");
        assert_eq!(base64_decode("TWE").unwrap(), b"Ma");
        assert_eq!(base64_decode("TQ==").unwrap(), b"M");
        assert!(base64_decode("TQ=").is_err());
        assert!(base64_decode("T").is_err());
        assert!(base64_decode("TR==").is_err());
    }
}
