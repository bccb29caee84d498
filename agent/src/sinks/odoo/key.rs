//! The API key file: read at start, checked before every delivery and read again whenever it
//! changed, so a key is rotated by writing the new one into the file, with no restart.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Largest key file accepted (an Odoo API key is 40 hex characters).
pub const MAX_KEY_BYTES: u64 = 4096;

/// How old a file must be for its stamp to tell every later change (timestamps are coarse).
const RACY: Duration = Duration::from_secs(1);

/// What identifies a version of a file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mode: u32,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Stamp {
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mode: meta.mode(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }

    /// The stamp of `path` now; `None` when it cannot be read.
    pub fn now(path: &Path) -> Option<Stamp> {
        std::fs::metadata(path).ok().map(|m| Stamp::of(&m))
    }
}

/// The key file and what was last read from it.
#[derive(Debug)]
pub struct KeyFile {
    path: PathBuf,
    cached: Option<Cached>,
}

#[derive(Debug)]
struct Cached {
    stamp: Stamp,
    /// Taken when the file was old enough for the stamp to be trusted.
    settled: bool,
    key: Arc<str>,
}

impl KeyFile {
    pub fn new(path: PathBuf) -> KeyFile {
        KeyFile { path, cached: None }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The key, from the cache unless the file changed; and whether it differs from the key
    /// returned before.
    pub fn current(&mut self) -> Result<(Arc<str>, bool), String> {
        let meta = std::fs::metadata(&self.path).map_err(|e| self.read_error(&e))?;
        if let Some(c) = &self.cached {
            if c.settled && c.stamp == Stamp::of(&meta) {
                return Ok((Arc::clone(&c.key), false));
            }
        }
        let read_at = SystemTime::now();
        let (stamp, mtime, key) = self.read()?;
        let settled = mtime.is_some_and(|m| m + RACY < read_at);
        let changed = self.cached.as_ref().is_some_and(|c| c.key != key);
        self.cached = Some(Cached {
            stamp,
            settled,
            key: Arc::clone(&key),
        });
        Ok((key, changed))
    }

    /// The stamp the cached key was read with (`None` before a successful read).
    pub fn stamp(&self) -> Option<Stamp> {
        self.cached.as_ref().map(|c| c.stamp)
    }

    fn read_error(&self, e: &std::io::Error) -> String {
        format!("reading the Odoo API key file {}: {e}", self.path.display())
    }

    fn read(&self) -> Result<(Stamp, Option<SystemTime>, Arc<str>), String> {
        use std::io::Read;
        let path = &self.path;
        let file = std::fs::File::open(path).map_err(|e| self.read_error(&e))?;
        let meta = file.metadata().map_err(|e| self.read_error(&e))?;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o006 != 0 {
            return Err(format!(
                "the Odoo API key file {} may be read or written by every user of the gateway \
                 (mode {mode:04o}); it is not used until only its owner and group can (chmod \
                 o-rwx)",
                path.display()
            ));
        }
        let mut bytes = Vec::new();
        file.take(MAX_KEY_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| self.read_error(&e))?;
        if bytes.len() as u64 > MAX_KEY_BYTES {
            return Err(format!(
                "the Odoo API key file {} is larger than {MAX_KEY_BYTES} bytes: it is not a key",
                path.display()
            ));
        }
        let text = String::from_utf8_lossy(&bytes);
        let key = text.trim_end_matches(['\n', '\r']);
        if key.is_empty() {
            return Err(format!("the Odoo API key file {} is empty", path.display()));
        }
        if !key.bytes().all(|b| (0x21..0x7f).contains(&b)) {
            return Err(format!(
                "the Odoo API key file {} holds spaces, control characters or non-ASCII text; \
                 an API key is one line of 40 hexadecimal characters",
                path.display()
            ));
        }
        Ok((Stamp::of(&meta), meta.modified().ok(), Arc::from(key)))
    }
}
