//! `tallyman decode`: what a scan means, as JSON lines on stdout.

use std::io::{self, BufRead, Read, Write};
use std::process::ExitCode;

use anyhow::Context;
use serde_json::{Value, json};
use tallyman_protocol::barcode::{DecodeOptions, MAX_SCAN_LEN};
use tallyman_protocol::error::escape_bounded;
use tallyman_protocol::{DecodeError, ErrorKind, decode_to_summary};

use crate::cli::DecodeArgs;

/// The escape that stands for GS in arguments and stdin lines.
const GS_ESCAPE: &[u8] = b"\\x1d";

pub fn run(args: &DecodeArgs) -> anyhow::Result<ExitCode> {
    if let Some(empty) = args.gs_aliases.iter().find(|a| a.is_empty()) {
        anyhow::bail!("--gs-alias must not be empty (got {empty:?})");
    }
    let opts = DecodeOptions {
        gs_aliases: args
            .gs_aliases
            .iter()
            .map(|a| a.as_bytes().to_vec())
            .collect(),
        today: crate::clock::today(),
    };
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let mut failed = false;
    let mut one = |input: &[u8], out: &mut dyn Write| -> anyhow::Result<()> {
        let line = render(input, &opts, args.rfid);
        failed |= line.get("error").is_some();
        serde_json::to_writer(&mut *out, &line).context("writing to stdout")?;
        out.write_all(b"\n").context("writing to stdout")
    };
    if args.inputs.is_empty() {
        let stdin = io::stdin();
        let mut reader = stdin.lock();
        let mut buf = Vec::new();
        loop {
            buf.clear();
            // Bound the line: a scan longer than the decoders accept is an error, not memory.
            let n = (&mut reader)
                .take(MAX_SCAN_LEN as u64 * 4 + 2)
                .read_until(b'\n', &mut buf)
                .context("reading stdin")?;
            if n == 0 {
                break;
            }
            let overlong = !buf.ends_with(b"\n") && n > MAX_SCAN_LEN * 4;
            while buf.last().is_some_and(|&b| b == b'\n' || b == b'\r') {
                buf.pop();
            }
            if overlong {
                // Skip the rest of the over-long line so the next one starts clean.
                let mut rest = Vec::new();
                reader
                    .read_until(b'\n', &mut rest)
                    .context("reading stdin")?;
            }
            one(&buf, &mut out)?;
        }
    } else {
        for input in &args.inputs {
            one(input.as_bytes(), &mut out)?;
        }
    }
    out.flush().context("writing to stdout")?;
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// One output object: the input (escaped) and either the decoded fields or the error.
fn render(input: &[u8], opts: &DecodeOptions, rfid: bool) -> Value {
    let data = unescape_gs(input);
    let result = decode_to_summary(&data, opts, rfid);
    // The whole input, as long as a decoder would look at it.
    let shown = escape_bounded(&data, MAX_SCAN_LEN);
    match result {
        Ok(summary) => {
            let mut v = serde_json::to_value(summary).unwrap_or_else(|e| {
                json!({"error": {"kind": ErrorKind::Unrecognized, "offset": 0, "message": e.to_string()}})
            });
            if let Some(map) = v.as_object_mut() {
                map.insert("input".into(), Value::String(shown));
            }
            v
        }
        Err(DecodeError {
            kind,
            offset,
            value,
            message,
        }) => json!({
            "input": shown,
            "error": {"kind": kind, "offset": offset, "value": value, "message": message},
        }),
    }
}

/// Replace every 4-character `\x1d` escape with the GS byte.
fn unescape_gs(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut rest = input;
    while !rest.is_empty() {
        if rest.starts_with(GS_ESCAPE) {
            out.push(0x1d);
            rest = &rest[GS_ESCAPE.len()..];
        } else {
            out.push(rest[0]);
            rest = &rest[1..];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gs_escape_is_four_characters() {
        assert_eq!(unescape_gs(b"10A\\x1d21B"), b"10A\x1d21B");
        assert_eq!(unescape_gs(b"\\x1"), b"\\x1");
        assert_eq!(unescape_gs(b"\\X1D"), b"\\X1D");
    }
}
