//! What is wrong with a configuration file, where, and how it is shown.

use std::io;
use std::path::PathBuf;

/// One problem in a configuration file.
///
/// `line` and `col` are 1-based; a column counts characters (Unicode scalar values), not
/// bytes. `key_path` names the key the way a reader finds it: `agent.facility`,
/// `sources[1].baud`, `remote.trusted_keys[0]` — array indices count from 0. It is empty for
/// a TOML syntax error, which has no key yet.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Diagnostic {
    pub line: usize,
    pub col: usize,
    pub key_path: String,
    pub message: String,
}

impl Diagnostic {
    /// `file:line:col key.path: message` (`file:line:col: message` without a key path).
    pub fn render(&self, file: &str) -> String {
        if self.key_path.is_empty() {
            format!("{file}:{}:{}: {}", self.line, self.col, self.message)
        } else {
            format!(
                "{file}:{}:{} {}: {}",
                self.line, self.col, self.key_path, self.message
            )
        }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigErrors {
    /// The file could not be read at all.
    #[error("cannot read configuration file {}: {source}", path.display())]
    ReadFile { path: PathBuf, source: io::Error },
    /// The file was read; these are all of its problems, in file order.
    #[error("{}", render_all(file, diagnostics))]
    Invalid {
        /// The file name as given by the caller, used in every rendered line.
        file: String,
        diagnostics: Vec<Diagnostic>,
    },
}

impl ConfigErrors {
    /// Every problem found (none for [`ConfigErrors::ReadFile`]).
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            ConfigErrors::ReadFile { .. } => &[],
            ConfigErrors::Invalid { diagnostics, .. } => diagnostics,
        }
    }
}

fn render_all(file: &str, diagnostics: &[Diagnostic]) -> String {
    let lines: Vec<String> = diagnostics.iter().map(|d| d.render(file)).collect();
    lines.join("\n")
}

/// Byte offsets → 1-based line and character column.
#[derive(Debug)]
pub(crate) struct Lines<'a> {
    text: &'a str,
    /// Byte offset of the start of each line.
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(
            text.bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'\n')
                .map(|(i, _)| i + 1),
        );
        Lines { text, starts }
    }

    /// The line and column of a byte offset (clamped to the text).
    pub(crate) fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        // The last line starting at or before the offset; `starts[0] == 0` so there is one.
        let line = self.starts.partition_point(|&s| s <= offset).max(1);
        let start = self.starts.get(line - 1).copied().unwrap_or(0);
        let col = match self.text.get(start..offset) {
            Some(prefix) => prefix.chars().count(),
            // Not on a character boundary (never from the TOML parser): count bytes instead.
            None => offset - start,
        };
        (line, col + 1)
    }
}

/// Collects diagnostics with their positions resolved.
#[derive(Debug)]
pub(crate) struct Report<'a> {
    lines: Lines<'a>,
    diagnostics: Vec<Diagnostic>,
}

impl<'a> Report<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Report {
            lines: Lines::new(text),
            diagnostics: Vec::new(),
        }
    }

    /// Records a problem at a byte offset of the text.
    pub(crate) fn error(&mut self, offset: usize, key_path: &str, message: impl Into<String>) {
        let (line, col) = self.lines.position(offset);
        self.diagnostics.push(Diagnostic {
            line,
            col,
            key_path: key_path.to_owned(),
            message: message.into(),
        });
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.diagnostics.is_empty()
    }

    /// The problems in file order, each once.
    pub(crate) fn into_diagnostics(self) -> Vec<Diagnostic> {
        let mut d = self.diagnostics;
        d.sort_by_key(|x| (x.line, x.col));
        d.dedup();
        d
    }
}

/// A user-supplied text fit for a message: control characters escaped, at most 64 characters.
pub(crate) fn shown(s: &str) -> String {
    const MAX: usize = 64;
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i == MAX {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_characters_from_one() {
        let l = Lines::new("ab\néé = 1\n\nx");
        assert_eq!(l.position(0), (1, 1));
        assert_eq!(l.position(2), (1, 3));
        assert_eq!(l.position(3), (2, 1));
        assert_eq!(l.position(7), (2, 3));
        assert_eq!(l.position(12), (3, 1));
        assert_eq!(l.position(13), (4, 1));
        assert_eq!(l.position(14), (4, 2));
        assert_eq!(l.position(999), (4, 2));
        // Inside a multi-byte character: bytes, no panic.
        assert_eq!(l.position(4), (2, 2));
    }

    #[test]
    fn rendering() {
        let d = Diagnostic {
            line: 3,
            col: 7,
            key_path: "sinks[1].endpoint".into(),
            message: "bad".into(),
        };
        assert_eq!(d.render("a.toml"), "a.toml:3:7 sinks[1].endpoint: bad");
        let d = Diagnostic {
            key_path: String::new(),
            ..d
        };
        assert_eq!(d.render("a.toml"), "a.toml:3:7: bad");
    }

    #[test]
    fn shown_escapes_and_bounds() {
        assert_eq!(shown("a\nb"), "a\\nb");
        assert_eq!(shown(&"x".repeat(70)), format!("{}…", "x".repeat(64)));
        assert_eq!(shown("WH/Stock é"), "WH/Stock é");
    }
}
