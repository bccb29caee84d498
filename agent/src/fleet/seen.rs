//! The command ids a gateway has received, so that a signed command replayed (by anyone who
//! can publish on the broker) is refused.
//!
//! * An id is remembered until its command expires; after that the command is refused as
//!   expired anyway. A command lives at most 24 h, so the set is bounded by the commands of one
//!   day, and at most [`MAX_SEEN`] (beyond that new commands are refused until old ones expire).
//! * The set is kept in `DATA_DIR/fleet/seen-commands.json`, replaced atomically *before* the
//!   command runs, so that a restart does not reopen a replay window.
//! * A file that cannot be read as such a set (damaged) is not trusted: the agent then refuses
//!   every command issued before it found the damage (`not_before`) — those could be replays —
//!   for the 24 h such a command could live; commands issued later run as usual.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use tallyman_protocol::event::Timestamp;
use tallyman_protocol::signed::{MAX_COMMAND_LIFETIME_MS, Refused};
use tracing::warn;
use uuid::Uuid;

use super::atomic_file;

/// The file, under the data directory.
pub const FILE: &str = "fleet/seen-commands.json";
/// Most ids remembered at once.
pub const MAX_SEEN: usize = 4096;
/// The largest file read (4,096 ids take about 300 KB).
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Why a command id was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SeenError {
    /// Seen before, or issued before the record of seen ids was lost.
    #[error(transparent)]
    Refused(Refused),
    #[error("{MAX_SEEN} commands received within their lifetime already; try again later")]
    Full,
    #[error("recording the command id in {path}: {source}; the command was not run")]
    Persist {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Why the file could not be opened at all.
#[derive(Debug, thiserror::Error)]
#[error("reading {path}: {source}")]
pub struct OpenError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    /// Command id → when the command expires.
    ids: BTreeMap<Uuid, Timestamp>,
    /// Commands issued before this are refused (set when a damaged file was found).
    #[serde(default)]
    not_before: Option<Timestamp>,
}

/// The persisted set of seen command ids.
#[derive(Debug)]
pub struct SeenIds {
    path: PathBuf,
    record: Mutex<Record>,
}

impl SeenIds {
    /// Load `DATA_DIR/fleet/seen-commands.json` (none yet: an empty set). `now` is when a
    /// damaged file is found.
    pub fn open(data_dir: &Path, now: Timestamp) -> Result<SeenIds, OpenError> {
        let path = data_dir.join(FILE);
        let record = match std::fs::File::open(&path) {
            Ok(file) => {
                let mut bytes = Vec::new();
                file.take(MAX_FILE_BYTES + 1)
                    .read_to_end(&mut bytes)
                    .map_err(|source| OpenError {
                        path: path.clone(),
                        source,
                    })?;
                match serde_json::from_slice::<Record>(&bytes) {
                    Ok(r) if bytes.len() as u64 <= MAX_FILE_BYTES => r,
                    Ok(_) | Err(_) => {
                        warn!(path = %path.display(), "The record of received commands is damaged; commands issued before now are refused for 24 h.");
                        Record {
                            ids: BTreeMap::new(),
                            not_before: Some(now),
                        }
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Record::default(),
            Err(source) => return Err(OpenError { path, source }),
        };
        Ok(SeenIds {
            path,
            record: Mutex::new(record),
        })
    }

    /// Accept command `id`, issued at `issued` and expiring at `expires`, at `now`: refused if
    /// seen before; else remembered durably (blocking: it syncs) and accepted.
    pub fn remember(
        &self,
        id: Uuid,
        issued: Timestamp,
        expires: Timestamp,
        now: Timestamp,
    ) -> Result<(), SeenError> {
        let mut record = self.record.lock().unwrap_or_else(PoisonError::into_inner);
        if record.ids.contains_key(&id) {
            return Err(SeenError::Refused(Refused::ReplayedCommand { id }));
        }
        if let Some(floor) = record.not_before {
            if issued < floor {
                return Err(SeenError::Refused(Refused::ReplayedCommand { id }));
            }
        }
        let mut next = record.clone();
        next.ids.retain(|_, at| *at > now);
        // The floor matters only while a command issued before it could still be valid.
        if next.not_before.is_some_and(|f| {
            now.unix_millis() > f.unix_millis().saturating_add(MAX_COMMAND_LIFETIME_MS)
        }) {
            next.not_before = None;
        }
        if next.ids.len() >= MAX_SEEN {
            return Err(SeenError::Full);
        }
        next.ids.insert(id, expires);
        // A map of UUIDs to timestamps always serialises.
        let bytes = serde_json::to_vec(&next).unwrap_or_default();
        atomic_file::write(&self.path, &bytes).map_err(|source| SeenError::Persist {
            path: self.path.clone(),
            source,
        })?;
        *record = next;
        Ok(())
    }

    /// How many ids are remembered.
    pub fn len(&self) -> usize {
        self.record
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .ids
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse(s).unwrap()
    }

    fn id(n: u128) -> Uuid {
        // Version 7, variant bits set.
        Uuid::from_u128((0x0196_0000_0000_7000_8000_0000_0000_0000u128) | n)
    }

    const ISSUED: &str = "2026-03-01T10:00:00Z";
    const EXPIRES: &str = "2026-03-01T10:10:00Z";
    const NOW: &str = "2026-03-01T10:01:00Z";

    #[test]
    fn a_seen_id_is_refused_also_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let seen = SeenIds::open(dir.path(), ts(NOW)).unwrap();
        assert!(seen.is_empty());
        seen.remember(id(1), ts(ISSUED), ts(EXPIRES), ts(NOW))
            .unwrap();
        let again = seen.remember(id(1), ts(ISSUED), ts(EXPIRES), ts(NOW));
        assert_eq!(
            again.unwrap_err().to_string(),
            format!("command id {} was already received (a replay)", id(1))
        );
        seen.remember(id(2), ts(ISSUED), ts(EXPIRES), ts(NOW))
            .unwrap();

        let reopened = SeenIds::open(dir.path(), ts(NOW)).unwrap();
        assert_eq!(reopened.len(), 2);
        assert!(matches!(
            reopened.remember(id(2), ts(ISSUED), ts(EXPIRES), ts(NOW)),
            Err(SeenError::Refused(Refused::ReplayedCommand { .. }))
        ));
    }

    #[test]
    fn expired_ids_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let seen = SeenIds::open(dir.path(), ts(NOW)).unwrap();
        seen.remember(id(1), ts(ISSUED), ts(EXPIRES), ts(NOW))
            .unwrap();
        let later = ts("2026-03-01T10:10:00Z");
        seen.remember(id(2), later, ts("2026-03-01T10:20:00Z"), later)
            .unwrap();
        assert_eq!(seen.len(), 1);
        let on_disk: Record =
            serde_json::from_slice(&std::fs::read(dir.path().join(FILE)).unwrap()).unwrap();
        assert_eq!(on_disk.ids.keys().copied().collect::<Vec<_>>(), vec![id(2)]);
    }

    #[test]
    fn the_set_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let seen = SeenIds::open(dir.path(), ts(NOW)).unwrap();
        {
            let mut r = seen.record.lock().unwrap();
            for n in 0..MAX_SEEN as u128 {
                r.ids.insert(id(n + 100), ts(EXPIRES));
            }
        }
        assert!(matches!(
            seen.remember(id(1), ts(ISSUED), ts(EXPIRES), ts(NOW)),
            Err(SeenError::Full)
        ));
        // Once they expire there is room again.
        let later = ts("2026-03-01T10:11:00Z");
        seen.remember(id(1), later, ts("2026-03-01T10:20:00Z"), later)
            .unwrap();
        assert_eq!(seen.len(), 1);
    }

    #[test]
    fn a_damaged_file_refuses_commands_issued_before_it_was_found() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("fleet")).unwrap();
        std::fs::write(dir.path().join(FILE), b"{\"ids\": [garbage").unwrap();
        let seen = SeenIds::open(dir.path(), ts(NOW)).unwrap();
        assert!(matches!(
            seen.remember(id(1), ts(ISSUED), ts(EXPIRES), ts(NOW)),
            Err(SeenError::Refused(_))
        ));
        seen.remember(id(2), ts(NOW), ts(EXPIRES), ts(NOW)).unwrap();
        // The floor is kept across a restart, and dropped a day later.
        let reopened = SeenIds::open(dir.path(), ts(NOW)).unwrap();
        assert!(
            reopened
                .remember(id(3), ts(ISSUED), ts(EXPIRES), ts(NOW))
                .is_err()
        );
        let day_later = ts("2026-03-02T10:02:00Z");
        reopened
            .remember(id(4), day_later, ts("2026-03-02T10:10:00Z"), day_later)
            .unwrap();
        let r = reopened.record.lock().unwrap();
        assert_eq!(r.not_before, None);
    }

    #[test]
    fn a_failed_write_runs_nothing_and_remembers_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let seen = SeenIds::open(dir.path(), ts(NOW)).unwrap();
        // `fleet` is a file: the record cannot be written.
        std::fs::write(dir.path().join("fleet"), b"").unwrap();
        let r = seen.remember(id(1), ts(ISSUED), ts(EXPIRES), ts(NOW));
        assert!(matches!(r, Err(SeenError::Persist { .. })), "{r:?}");
        assert!(seen.is_empty());
    }
}
