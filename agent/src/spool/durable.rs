//! Making sled's files durable: what `Db::flush` does not do (stack.md §4).
//!
//! sled 0.34's `flush()` writes its log buffers and calls `sync_file_range(WAIT_BEFORE | WRITE
//! | WAIT_AFTER)` on the written range, never `fsync`/`fdatasync`. That starts and waits for the
//! data write-back but persists neither the file's size nor other metadata, and issues no
//! cache flush to the device, so an acknowledged flush can be lost on power loss. After every
//! `flush()` the spool therefore calls [`DiskSync::sync`], which:
//!
//! * `fdatasync`s `db` — the log, where every insert and removal lands. `fdatasync` persists
//!   the data and the metadata needed to read it back (the file size as it grows), and flushes
//!   the device cache.
//! * `fdatasync`s every file of the directory it has not synced at its current length:
//!   - `blobs/<lsn>`: sled writes a value or page larger than a quarter of a segment (128 KiB)
//!     to its own file (created, written, never synced by sled), and the log entry that points
//!     to it is only readable if the blob is;
//!   - `snap.<lsn>`: snapshots of the page table, which sled writes, `fsync`s and then renames
//!     into place; a completed rename needs the directory synced to survive;
//!   - `conf`: written once when the database is created, never synced by sled.
//!
//!   Blobs, snapshots and `conf` never change after they are complete, so a file is synced
//!   again only when its length differs from the one last synced (a blob caught while sled was
//!   still writing it grows, and is synced again). Files named `snap.*.generating` are
//!   snapshots sled is still writing; it syncs them itself before renaming them.
//! * `fsync`s the directory (and `blobs/`) whenever the set of names in it changed since the
//!   last sync: creations and renames are directory metadata.
//!
//! The listing costs two `readdir`s per commit; with no new file nothing else is synced.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Syncs the files of one sled directory.
#[derive(Debug)]
pub struct DiskSync {
    dir: PathBuf,
    db: File,
    /// Name → length at the last sync, per directory (the spool directory and `blobs/`).
    known: Mutex<Known>,
}

#[derive(Debug, Default)]
struct Known {
    top: BTreeMap<String, u64>,
    blobs: BTreeMap<String, u64>,
}

/// The bytes the directory takes, as last listed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OnDisk {
    pub bytes: u64,
}

/// A failed sync, with the path that failed.
#[derive(Debug)]
pub struct SyncError {
    pub path: PathBuf,
    pub source: io::Error,
}

fn err(path: &Path) -> impl FnOnce(io::Error) -> SyncError + '_ {
    move |source| SyncError {
        path: path.to_path_buf(),
        source,
    }
}

impl DiskSync {
    /// For the sled directory `dir`, which sled has opened (so `db` exists).
    pub fn new(dir: &Path) -> Result<DiskSync, SyncError> {
        let db_path = dir.join("db");
        let db = File::open(&db_path).map_err(err(&db_path))?;
        Ok(DiskSync {
            dir: dir.to_path_buf(),
            db,
            known: Mutex::new(Known::default()),
        })
    }

    /// Make everything sled has written so far durable (call right after `Db::flush`).
    pub fn sync(&self) -> Result<OnDisk, SyncError> {
        let db_path = self.dir.join("db");
        self.db.sync_data().map_err(err(&db_path))?;
        // One sync of the listing at a time; a poisoned lock only means another sync failed,
        // and the next one lists everything again.
        let mut known = match self.known.lock() {
            Ok(k) => k,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut bytes = 0u64;
        let blobs_dir = self.dir.join("blobs");
        let (blob_bytes, blobs_changed) = sync_new_files(&blobs_dir, &mut known.blobs, None)?;
        bytes = bytes.saturating_add(blob_bytes);
        if blobs_changed {
            sync_dir(&blobs_dir)?;
        }
        let (top_bytes, top_changed) = sync_new_files(&self.dir, &mut known.top, Some("db"))?;
        bytes = bytes.saturating_add(top_bytes);
        if top_changed || blobs_changed {
            // A new `blobs/` entry is reached through the directory too.
            sync_dir(&self.dir)?;
        }
        Ok(OnDisk { bytes })
    }
}

/// Sync files in `dir` that are new or changed length since `known`; `skip` is synced by the
/// caller (its length still counts). Returns the bytes of the files and whether the set of
/// names changed.
fn sync_new_files(
    dir: &Path,
    known: &mut BTreeMap<String, u64>,
    skip: Option<&str>,
) -> Result<(u64, bool), SyncError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        // No `blobs/` (yet): nothing to sync there.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((0, !known.is_empty())),
        Err(e) => return Err(err(dir)(e)),
    };
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    let mut bytes = 0u64;
    let mut changed = false;
    for entry in entries {
        let entry = entry.map_err(err(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let meta = match entry.metadata() {
            Ok(m) => m,
            // Removed between the listing and now (sled drops old blobs and snapshots).
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(err(&path)(e)),
        };
        if !meta.is_file() {
            // `blobs/` itself, listed separately.
            continue;
        }
        let len = meta.len();
        bytes = bytes.saturating_add(len);
        if name.ends_with(".generating") || Some(name.as_str()) == skip {
            seen.insert(name, len);
            continue;
        }
        if known.get(&name) != Some(&len) {
            match File::open(&path) {
                Ok(f) => f.sync_data().map_err(err(&path))?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(err(&path)(e)),
            }
            if !known.contains_key(&name) {
                changed = true;
            }
        }
        seen.insert(name, len);
    }
    if known.keys().any(|k| !seen.contains_key(k)) {
        changed = true;
    }
    *known = seen;
    Ok((bytes, changed))
}

/// `fsync` a directory, so that creations, renames and removals in it are durable.
pub fn sync_dir(dir: &Path) -> Result<(), SyncError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(err(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_bytes_and_notices_new_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("db"), [0u8; 100]).unwrap();
        std::fs::create_dir(dir.path().join("blobs")).unwrap();
        let s = DiskSync::new(dir.path()).unwrap();
        assert_eq!(s.sync().unwrap().bytes, 100);
        std::fs::write(dir.path().join("conf"), [0u8; 10]).unwrap();
        std::fs::write(dir.path().join("blobs/7"), [0u8; 5]).unwrap();
        std::fs::write(dir.path().join("snap.1.generating"), [0u8; 1]).unwrap();
        assert_eq!(s.sync().unwrap().bytes, 116);
        {
            let known = s.known.lock().unwrap();
            assert_eq!(known.blobs.get("7"), Some(&5));
            assert_eq!(known.top.get("conf"), Some(&10));
        }
        std::fs::remove_file(dir.path().join("blobs/7")).unwrap();
        assert_eq!(s.sync().unwrap().bytes, 111);
        assert!(s.known.lock().unwrap().blobs.is_empty());
    }
}
