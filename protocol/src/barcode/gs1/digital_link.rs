//! GS1 Digital Link URIs (uncompressed):
//!
//! ```text
//! https://id.gs1.org/01/09501101020917/10/LOT123/21/SER0001?17=271231&3103=000500
//!  scheme + any host [/any path prefix] /key/value [/qualifier/value …] [?AI=value&…]
//! ```
//!
//! The primary keys and their ordered qualifiers come from the dictionary's `dlpkey`
//! attributes. The path is read from its end in `/AI/value` pairs until a primary key is
//! found; whatever comes before it is the resolver's own path prefix. Query parameters whose
//! key is an AI flagged `?` (a data attribute) become elements; other parameters (such as
//! `linkType`) are ignored. Values are percent-decoded; a GTIN-8, -12 or -13 key is
//! zero-padded to 14 digits.

use crate::barcode::gs1::ai::{self, AiEntry};
use crate::barcode::gs1::{Builder, Form, Message};
use crate::{Date, DecodeError, ErrorKind};

/// Short names of GS1 Digital Link 1.0 (the "convenience alphas"), still found on older
/// labels. Only the ones whose meaning is unambiguous are accepted.
const CONVENIENCE_ALPHAS: &[(&str, &str)] = &[
    ("gtin", "01"),
    ("lot", "10"),
    ("ser", "21"),
    ("exp", "17"),
    ("sscc", "00"),
    ("gln", "414"),
    ("cpv", "22"),
    ("bbd", "15"),
];

/// A percent-decoded piece of the URI with the input offset of every decoded byte.
struct Piece {
    bytes: Vec<u8>,
    positions: Vec<usize>,
    /// Offset of the piece in the input.
    start: usize,
    /// Offset just after the piece.
    end: usize,
}

pub(super) fn parse(data: &[u8], today: Date) -> Result<Message, DecodeError> {
    if let Some(i) = data.iter().position(|&b| !(0x21..=0x7e).contains(&b)) {
        return Err(DecodeError::new(
            ErrorKind::InvalidUri,
            i,
            data.get(i..i + 1).unwrap_or_default(),
            "a URI may only contain printable ASCII without spaces",
        ));
    }
    let head = data.get(..8).unwrap_or(data).to_ascii_lowercase();
    let scheme_len = if head.starts_with(b"https://") {
        8
    } else if head.starts_with(b"http://") {
        7
    } else {
        return Err(DecodeError::new(
            ErrorKind::InvalidUri,
            0,
            data.get(..8).unwrap_or(data),
            "a GS1 Digital Link URI starts with http:// or https://",
        ));
    };
    let find_from = |from: usize, stops: &[u8]| {
        data.get(from..)
            .and_then(|rest| rest.iter().position(|b| stops.contains(b)))
            .map_or(data.len(), |i| from + i)
    };
    let host_end = find_from(scheme_len, b"/?#");
    if host_end == scheme_len {
        return Err(DecodeError::new(
            ErrorKind::InvalidUri,
            scheme_len,
            b"",
            "the URI has no host name",
        ));
    }
    let path_end = find_from(host_end, b"?#");
    let query = if data.get(path_end) == Some(&b'?') {
        Some((path_end + 1, find_from(path_end + 1, b"#")))
    } else {
        None
    };

    let mut segments = split(data, host_end, path_end, b'/')?;
    if segments.first().is_some_and(|s| s.bytes.is_empty()) {
        segments.remove(0);
    }
    if segments.last().is_some_and(|s| s.bytes.is_empty()) {
        segments.pop();
    }

    let (key_index, key_entry) = primary_key(data, &segments, host_end)?;
    let mut builder = Builder::new(data, today);
    let qualifiers: Vec<(&Piece, &'static AiEntry)> = segments
        .get(key_index + 2..)
        .unwrap_or_default()
        .chunks(2)
        .filter_map(|pair| {
            let key = pair.first()?;
            Some((key, resolve(&key.bytes)?))
        })
        .collect();
    check_order(data, key_entry, &qualifiers)?;
    for pair in segments.get(key_index..).unwrap_or_default().chunks(2) {
        let (Some(key), Some(value)) = (pair.first(), pair.get(1)) else {
            continue;
        };
        let Some(entry) = resolve(&key.bytes) else {
            continue;
        };
        let (bytes, positions) = pad_gtin(entry, value);
        builder.add(entry, &bytes, &positions, value.end, key.start)?;
    }

    if let Some((start, end)) = query {
        for param in split(data, start - 1, end, b'&')? {
            let Some(eq) = param.bytes.iter().position(|&b| b == b'=') else {
                if let Some(entry) = resolve(&param.bytes) {
                    attribute_allowed(data, entry, &param)?;
                    builder.add(entry, b"", &[], param.end, param.start)?;
                }
                continue;
            };
            let key = param.bytes.get(..eq).unwrap_or_default();
            let Some(entry) = resolve(key) else {
                continue;
            };
            attribute_allowed(data, entry, &param)?;
            let value = param.bytes.get(eq + 1..).unwrap_or_default();
            let positions = param.positions.get(eq + 1..).unwrap_or_default();
            builder.add(entry, value, positions, param.end, param.start)?;
        }
    }
    builder.finish(Form::DigitalLink)
}

/// The AI a path segment or query key names: its digits, or a convenience alpha.
fn resolve(key: &[u8]) -> Option<&'static AiEntry> {
    let key = std::str::from_utf8(key).ok()?;
    if key.bytes().all(|b| b.is_ascii_digit()) {
        return ai::lookup(key);
    }
    let (_, ai) = CONVENIENCE_ALPHAS.iter().find(|(alpha, _)| *alpha == key)?;
    ai::lookup(ai)
}

/// Split `data[start..end]` at `sep` (the byte at `start` is the separator before the first
/// piece) and percent-decode every piece.
fn split(data: &[u8], start: usize, end: usize, sep: u8) -> Result<Vec<Piece>, DecodeError> {
    let mut out = Vec::new();
    let mut from = start + 1;
    if start >= end {
        return Ok(out);
    }
    loop {
        let to = data
            .get(from..end)
            .and_then(|r| r.iter().position(|&b| b == sep))
            .map_or(end, |i| from + i);
        out.push(percent_decode(data, from, to)?);
        if to >= end {
            break;
        }
        from = to + 1;
    }
    Ok(out)
}

fn percent_decode(data: &[u8], start: usize, end: usize) -> Result<Piece, DecodeError> {
    let mut bytes = Vec::new();
    let mut positions = Vec::new();
    let mut i = start;
    while i < end {
        let Some(&b) = data.get(i) else { break };
        if b == b'%' {
            let hex = data
                .get(i + 1..i + 3)
                .filter(|_| i + 3 <= end)
                .and_then(|h| std::str::from_utf8(h).ok())
                .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()))
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            let Some(decoded) = hex else {
                return Err(DecodeError::new(
                    ErrorKind::InvalidUri,
                    i,
                    data.get(i..(i + 3).min(end)).unwrap_or_default(),
                    "'%' must be followed by two hex digits",
                ));
            };
            bytes.push(decoded);
            positions.push(i);
            i += 3;
        } else {
            bytes.push(b);
            positions.push(i);
            i += 1;
        }
    }
    Ok(Piece {
        bytes,
        positions,
        start,
        end,
    })
}

/// Find the primary key: read the path backwards in `/AI/value` pairs.
fn primary_key(
    data: &[u8],
    segments: &[Piece],
    path_start: usize,
) -> Result<(usize, &'static AiEntry), DecodeError> {
    let mut end = segments.len();
    while end >= 2 {
        let Some(key) = segments.get(end - 2) else {
            break;
        };
        match resolve(&key.bytes) {
            Some(entry) if entry.is_dl_primary_key() => return Ok((end - 2, entry)),
            Some(_) => end -= 2,
            None if (2..=4).contains(&key.bytes.len())
                && key.bytes.iter().all(u8::is_ascii_digit) =>
            {
                return Err(DecodeError::new(
                    ErrorKind::UnknownAi,
                    key.start,
                    &key.bytes,
                    format!(
                        "({}) is not a GS1 Application Identifier",
                        crate::error::escape(&key.bytes)
                    ),
                ));
            }
            None => break,
        }
    }
    Err(DecodeError::new(
        ErrorKind::InvalidUri,
        path_start,
        data.get(path_start..).unwrap_or_default(),
        "no GS1 Digital Link primary key (such as /01/ with a GTIN) in the path",
    ))
}

/// The qualifiers after the primary key must follow one of its ordered sequences.
fn check_order(
    data: &[u8],
    key: &AiEntry,
    qualifiers: &[(&Piece, &'static AiEntry)],
) -> Result<(), DecodeError> {
    let alternatives = key.dl_qualifiers.unwrap_or_default();
    let mut best: Option<usize> = None;
    for alt in alternatives
        .iter()
        .copied()
        .chain(std::iter::once(&[] as &[&str]))
    {
        let mut next = 0;
        let mut matched = 0;
        for (_, q) in qualifiers {
            match alt
                .get(next..)
                .and_then(|rest| rest.iter().position(|a| *a == q.ai))
            {
                Some(i) => {
                    next += i + 1;
                    matched += 1;
                }
                None => break,
            }
        }
        if matched == qualifiers.len() {
            return Ok(());
        }
        best = Some(best.map_or(matched, |b| b.max(matched)));
    }
    let bad = best.unwrap_or(0);
    let Some((piece, entry)) = qualifiers.get(bad) else {
        return Ok(());
    };
    let allowed: Vec<String> = alternatives
        .iter()
        .map(|alt| {
            alt.iter()
                .map(|a| format!("({a})"))
                .collect::<Vec<_>>()
                .join(" then ")
        })
        .collect();
    let known = alternatives.iter().any(|alt| alt.contains(&entry.ai));
    let message = if allowed.is_empty() {
        format!("({}) takes no qualifiers in a Digital Link path", key.ai)
    } else if known {
        format!(
            "({}) is out of order: after ({}) the qualifiers come in the order {}",
            entry.ai,
            key.ai,
            allowed.join(", or ")
        )
    } else {
        format!(
            "({}) cannot qualify ({}) in a Digital Link path; allowed: {}",
            entry.ai,
            key.ai,
            allowed.join(", or ")
        )
    };
    Err(DecodeError::new(
        ErrorKind::InvalidStructure,
        piece.start,
        data.get(piece.start..piece.end).unwrap_or_default(),
        message,
    ))
}

/// A query parameter that names an AI must name a data attribute.
fn attribute_allowed(data: &[u8], entry: &AiEntry, param: &Piece) -> Result<(), DecodeError> {
    if entry.dl_attribute {
        return Ok(());
    }
    Err(DecodeError::new(
        ErrorKind::InvalidStructure,
        param.start,
        data.get(param.start..param.end).unwrap_or_default(),
        format!(
            "({}) {} is not allowed as a Digital Link query attribute",
            entry.ai, entry.title
        ),
    ))
}

/// A GTIN-8, -12 or -13 under key (01), zero-padded to GTIN-14.
fn pad_gtin(entry: &AiEntry, value: &Piece) -> (Vec<u8>, Vec<usize>) {
    let short = matches!(value.bytes.len(), 8 | 12 | 13);
    if entry.ai != "01" || !short || !value.bytes.iter().all(u8::is_ascii_digit) {
        return (value.bytes.clone(), value.positions.clone());
    }
    let pad = 14 - value.bytes.len();
    let mut bytes = vec![b'0'; pad];
    bytes.extend_from_slice(&value.bytes);
    let mut positions = vec![value.start; pad];
    positions.extend_from_slice(&value.positions);
    (bytes, positions)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> Date {
        Date::new(2026, 11, 24).unwrap()
    }

    fn ais(uri: &str) -> Vec<(String, String)> {
        parse(uri.as_bytes(), today())
            .unwrap()
            .elements
            .into_iter()
            .map(|e| (e.ai, e.value))
            .collect()
    }

    fn err(uri: &str) -> (ErrorKind, usize) {
        let e = parse(uri.as_bytes(), today()).unwrap_err();
        (e.kind, e.offset)
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn reads_keys_qualifiers_and_attributes() {
        assert_eq!(
            ais("https://id.gs1.org/01/09501101020917/10/AB%2F1/21/S1?17=271231&linkType=all"),
            pairs(&[
                ("01", "09501101020917"),
                ("10", "AB/1"),
                ("21", "S1"),
                ("17", "271231")
            ])
        );
        assert_eq!(
            ais("HTTP://example.com/shop/products/01/9501101020917"),
            pairs(&[("01", "09501101020917")])
        );
        assert_eq!(
            ais("https://example.com/414/9501101020917/254/A1/"),
            pairs(&[("414", "9501101020917"), ("254", "A1")])
        );
        assert_eq!(
            ais("https://example.com/gtin/09501101020917/lot/L1/ser/S1?exp=270200#top"),
            pairs(&[
                ("01", "09501101020917"),
                ("10", "L1"),
                ("21", "S1"),
                ("17", "270200")
            ])
        );
    }

    #[test]
    fn errors() {
        assert_eq!(
            err("https://x.org/01/09501101020917/21/S/10/L"),
            (ErrorKind::InvalidStructure, 37)
        );
        assert_eq!(
            err("https://x.org/01/09501101020917/254/S"),
            (ErrorKind::InvalidStructure, 32)
        );
        assert_eq!(
            err("https://x.org/01/09501101020917/22/C/235/T"),
            (ErrorKind::InvalidStructure, 37)
        );
        assert_eq!(err("https://x.org/10/LOT"), (ErrorKind::InvalidUri, 13));
        assert_eq!(err("https://x.org/01/0950%2"), (ErrorKind::InvalidUri, 21));
        assert_eq!(err("https://x.org/01/0950%G0"), (ErrorKind::InvalidUri, 21));
        assert_eq!(
            err("https://x.org/01/09501101020918"),
            (ErrorKind::CheckDigit, 30)
        );
        assert_eq!(
            err("https://x.org/01/9501101020918"),
            (ErrorKind::CheckDigit, 29)
        );
        assert_eq!(
            err("https://x.org/01/09501101020917?21=S"),
            (ErrorKind::InvalidStructure, 32)
        );
        assert_eq!(
            err("https://x.org/01/09501101020917?17=271332"),
            (ErrorKind::InvalidDate, 37)
        );
        assert_eq!(
            err("https://x.org/01/09501101020917/23/1"),
            (ErrorKind::UnknownAi, 32)
        );
        assert_eq!(
            err("ftp://x.org/01/09501101020917"),
            (ErrorKind::InvalidUri, 0)
        );
        assert_eq!(
            err("https:///01/09501101020917"),
            (ErrorKind::InvalidUri, 8)
        );
        assert_eq!(err("https://x.org/01/0950 1"), (ErrorKind::InvalidUri, 21));
    }
}
