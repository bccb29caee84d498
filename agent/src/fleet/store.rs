//! The files of remote configuration, in `DATA_DIR/fleet/`:
//!
//! * `current.json` — the last-known-good signed document, verbatim (as received: it is
//!   verified again at every start);
//! * `pending.json` — the document being applied, until it is committed (renamed to
//!   `current.json`) or rolled back (removed). One found at start-up means the agent stopped
//!   during an apply: it is discarded;
//! * `state.json` — what the agent decided last ([`StateFile`]): the highest version attempted,
//!   the last `config/state` document, and the digests of documents already decided, so that
//!   a document received again (a retained one, at every connection) changes nothing.
//!
//! Every write is atomic and durable: the bytes go to `NAME.tmp`, which is fsynced, renamed
//! over `NAME`, and the directory is fsynced. So after a crash each file is the old or the new
//! one, whole. The commit is one rename, also followed by an fsync of the directory.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tallyman_protocol::event::Timestamp;

/// The folder below the data directory.
pub const DIR: &str = "fleet";
pub const CURRENT: &str = "current.json";
pub const PENDING: &str = "pending.json";
pub const STATE: &str = "state.json";
/// How many decided documents are remembered by digest.
pub const SEEN: usize = 32;
/// The largest file read back (a signed document is at most 256 KiB).
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Why a file of the fleet directory could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("creating {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("renaming {from} to {to}: {source}")]
    Rename {
        from: PathBuf,
        to: PathBuf,
        source: std::io::Error,
    },
    #[error("removing {path}: {source}")]
    Remove {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("syncing the directory {path}: {source}")]
    SyncDir {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What happened to a configuration document (`config/state` `status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Applied,
    Rejected,
    RolledBack,
    Pending,
}

/// The retained `config/state` document (PRODUCT §6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateDoc {
    /// The document's version; null when it could not be read that far (not signed, bad
    /// signature, unknown key).
    pub version: Option<u64>,
    pub status: Status,
    pub reason: Option<String>,
    /// The version running when this was published (null: the local file). While `pending`,
    /// the version that ran before, to which the agent returns if this one fails.
    pub running_version: Option<u64>,
    pub at: Timestamp,
}

impl StateDoc {
    pub fn to_json(&self) -> Vec<u8> {
        // Numbers, strings and a timestamp always serialise.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// `state.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateFile {
    /// The highest version of a document signed for this gateway that was decided on
    /// (applied, rejected, rolled back, or pending): a document must be newer.
    pub highest_attempted: Option<u64>,
    /// The last `config/state` published.
    pub last: Option<StateDoc>,
    /// SHA-256 (hex) of documents already decided, newest first, at most [`SEEN`].
    #[serde(default)]
    pub seen: Vec<String>,
}

impl StateFile {
    /// Remember a decided document (newest first, bounded).
    pub fn remember(&mut self, digest: &str) {
        self.seen.retain(|d| d != digest);
        self.seen.insert(0, digest.to_owned());
        self.seen.truncate(SEEN);
    }

    pub fn has_seen(&self, digest: &str) -> bool {
        self.seen.iter().any(|d| d == digest)
    }

    /// A version was decided on.
    pub fn attempted(&mut self, version: u64) {
        self.highest_attempted = Some(self.highest_attempted.map_or(version, |h| h.max(version)));
    }
}

/// What the fleet directory held at start-up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Files {
    pub current: Option<Vec<u8>>,
    pub pending: Option<Vec<u8>>,
    pub state: StateFile,
    /// `state.json` existed but could not be read as one; it is replaced at the next write.
    pub state_damaged: Option<String>,
}

/// The fleet directory.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// The store below `data_dir` (the folder is created if missing).
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        let dir = data_dir.join(DIR);
        std::fs::create_dir_all(&dir).map_err(|source| StoreError::CreateDir {
            path: dir.clone(),
            source,
        })?;
        Ok(Store { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Read the three files (a leftover `*.tmp` of an interrupted write is ignored).
    pub fn load(&self) -> Result<Files, StoreError> {
        let current = self.read(CURRENT)?;
        let pending = self.read(PENDING)?;
        let (state, state_damaged) = match self.read(STATE)? {
            None => (StateFile::default(), None),
            Some(bytes) => match serde_json::from_slice(&bytes) {
                Ok(s) => (s, None),
                Err(e) => (StateFile::default(), Some(e.to_string())),
            },
        };
        Ok(Files {
            current,
            pending,
            state,
            state_damaged,
        })
    }

    /// Write `document` as `pending.json`.
    pub fn write_pending(&self, document: &[u8]) -> Result<(), StoreError> {
        self.write(PENDING, document)
    }

    /// Write `state.json`.
    pub fn write_state(&self, state: &StateFile) -> Result<(), StoreError> {
        // Plain data always serialises.
        let bytes = serde_json::to_vec_pretty(state).unwrap_or_default();
        self.write(STATE, &bytes)
    }

    /// The pending document becomes the last-known-good: `pending.json` is renamed over
    /// `current.json`.
    pub fn commit(&self) -> Result<(), StoreError> {
        let (from, to) = (self.dir.join(PENDING), self.dir.join(CURRENT));
        std::fs::rename(&from, &to).map_err(|source| StoreError::Rename { from, to, source })?;
        self.sync_dir()
    }

    /// Remove `pending.json` (rolled back, or found at start-up); nothing if there is none.
    pub fn discard_pending(&self) -> Result<(), StoreError> {
        let path = self.dir.join(PENDING);
        match std::fs::remove_file(&path) {
            Ok(()) => self.sync_dir(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StoreError::Remove { path, source }),
        }
    }

    fn read(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        use std::io::Read;
        let path = self.dir.join(name);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StoreError::Read { path, source }),
        };
        let mut bytes = Vec::new();
        file.take(MAX_FILE_BYTES)
            .read_to_end(&mut bytes)
            .map_err(|source| StoreError::Read { path, source })?;
        Ok(Some(bytes))
    }

    /// `NAME.tmp`, fsync, rename over `NAME`, fsync the directory.
    fn write(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.dir.join(name);
        let tmp = self.dir.join(format!("{name}.tmp"));
        let written =
            File::create(&tmp).and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()));
        written.map_err(|source| StoreError::Write {
            path: tmp.clone(),
            source,
        })?;
        std::fs::rename(&tmp, &path).map_err(|source| StoreError::Rename {
            from: tmp,
            to: path,
            source,
        })?;
        self.sync_dir()
    }

    fn sync_dir(&self) -> Result<(), StoreError> {
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|source| StoreError::SyncDir {
                path: self.dir.clone(),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(version: u64) -> StateDoc {
        StateDoc {
            version: Some(version),
            status: Status::RolledBack,
            reason: Some("the central broker was not reachable".into()),
            running_version: None,
            at: Timestamp::from_unix_millis(1_800_000_000_000).unwrap(),
        }
    }

    #[test]
    fn files_are_replaced_whole_and_the_commit_is_a_rename() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.load().unwrap(), Files::default());

        store.write_pending(b"{\"v\":1}").unwrap();
        let mut state = StateFile::default();
        state.attempted(1);
        state.remember("aa");
        state.last = Some(doc(1));
        store.write_state(&state).unwrap();
        let files = store.load().unwrap();
        assert_eq!(files.pending.as_deref(), Some(&b"{\"v\":1}"[..]));
        assert_eq!(files.current, None);
        assert_eq!(files.state, state);

        store.commit().unwrap();
        let files = store.load().unwrap();
        assert_eq!(files.current.as_deref(), Some(&b"{\"v\":1}"[..]));
        assert_eq!(files.pending, None);
        // Nothing left behind but the three names.
        let mut names: Vec<String> = std::fs::read_dir(store.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, vec![CURRENT.to_owned(), STATE.to_owned()]);

        // A rolled-back apply: pending goes, current stays.
        store.write_pending(b"{\"v\":2}").unwrap();
        store.discard_pending().unwrap();
        store.discard_pending().unwrap();
        let files = store.load().unwrap();
        assert_eq!(files.pending, None);
        assert_eq!(files.current.as_deref(), Some(&b"{\"v\":1}"[..]));
    }

    #[test]
    fn an_interrupted_write_leaves_the_old_file_and_a_damaged_state_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.write_pending(b"old").unwrap();
        // A crash after the temporary file was written, before the rename.
        std::fs::write(store.dir().join(format!("{PENDING}.tmp")), b"new, half").unwrap();
        assert_eq!(store.load().unwrap().pending.as_deref(), Some(&b"old"[..]));
        store.write_pending(b"new").unwrap();
        assert_eq!(store.load().unwrap().pending.as_deref(), Some(&b"new"[..]));

        std::fs::write(store.dir().join(STATE), b"{not json").unwrap();
        let files = store.load().unwrap();
        assert_eq!(files.state, StateFile::default());
        assert!(files.state_damaged.is_some());
    }

    #[test]
    fn the_state_remembers_a_bounded_set_of_documents_and_the_highest_version() {
        let mut s = StateFile::default();
        for n in 0..(SEEN as u64 + 5) {
            s.remember(&format!("{n:064x}"));
            s.attempted(n % 7);
        }
        assert_eq!(s.seen.len(), SEEN);
        assert!(s.has_seen(&format!("{:064x}", SEEN as u64 + 4)));
        assert!(!s.has_seen(&format!("{:064x}", 0)));
        assert_eq!(s.highest_attempted, Some(6));
        s.remember(&format!("{:064x}", SEEN as u64));
        assert_eq!(s.seen[0], format!("{:064x}", SEEN as u64));
        assert_eq!(s.seen.len(), SEEN);
        // The state document as it is published.
        let json: serde_json::Value = serde_json::from_slice(&doc(3).to_json()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "version": 3,
                "status": "rolled_back",
                "reason": "the central broker was not reachable",
                "running_version": null,
                "at": "2027-01-15T08:00:00.000Z"
            })
        );
    }
}
