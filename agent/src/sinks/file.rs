//! The file sink: events as JSON lines appended to a file under the data directory.
//! An event is *delivered* only after the file's own `fdatasync` returned.

use std::io::Write;
use std::path::{Path, PathBuf};

use tallyman_protocol::event::Event;

use super::{DeliverFuture, Outcome, Sink};

/// Appends JSON lines to one file.
#[derive(Debug)]
pub struct FileSink {
    path: PathBuf,
    /// Whether the tail of the file was checked since start-up.
    repaired: bool,
}

impl FileSink {
    pub fn new(path: impl Into<PathBuf>) -> FileSink {
        FileSink {
            path: path.into(),
            repaired: false,
        }
    }

    /// A crash in the middle of a write can leave a partial last line. Its events were not
    /// reported delivered, so they come again: cut the partial line so that every line of the
    /// file stays one whole JSON object.
    fn repair(path: &Path) -> std::io::Result<()> {
        use std::io::{Read, Seek, SeekFrom};
        let mut file = match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let len = file.metadata()?.len();
        let mut keep = len;
        let mut chunk = vec![0u8; 64 * 1024];
        while keep > 0 {
            let step = keep.min(chunk.len() as u64);
            let start = keep - step;
            let buf = chunk.get_mut(..step as usize).unwrap_or_default();
            file.seek(SeekFrom::Start(start))?;
            file.read_exact(buf)?;
            if let Some(i) = buf.iter().rposition(|&b| b == b'\n') {
                keep = start + i as u64 + 1;
                break;
            }
            keep = start;
        }
        if keep < len {
            tracing::warn!(path = %path.display(), cut = len - keep, "Cut a partial last line left by a crash; its events are written again.");
            file.set_len(keep)?;
            file.sync_all()?;
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append the batch and make it durable. Opening per batch keeps the sink correct when an
    /// operator rotates or removes the file (a new one is created).
    fn write_batch(path: &Path, batch: &[Event]) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(batch.len() * 400);
        for event in batch {
            serde_json::to_writer(&mut buf, event).map_err(std::io::Error::other)?;
            buf.push(b'\n');
        }
        let created = !path.exists();
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        file.write_all(&buf)?;
        file.sync_data()?;
        if created {
            // The new file's directory entry must survive a power cut too.
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::File::open(dir)?.sync_all()?;
            }
        }
        Ok(())
    }
}

impl Sink for FileSink {
    fn deliver<'a>(&'a mut self, batch: &'a [Event]) -> DeliverFuture<'a> {
        let path = self.path.clone();
        let batch = batch.to_vec();
        let repair = !self.repaired;
        Box::pin(async move {
            let n = batch.len();
            let result = tokio::task::spawn_blocking(move || {
                if repair {
                    FileSink::repair(&path)?;
                }
                FileSink::write_batch(&path, &batch)
            })
            .await;
            if matches!(result, Ok(Ok(()))) {
                self.repaired = true;
            }
            let outcome = match result {
                Ok(Ok(())) => Outcome::Delivered,
                Ok(Err(e)) => Outcome::Retry {
                    after: None,
                    error: format!("writing the file: {e}"),
                },
                Err(e) => Outcome::Retry {
                    after: None,
                    error: format!("writer task failed: {e}"),
                },
            };
            vec![outcome; n]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repair_cuts_only_a_partial_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.jsonl");
        std::fs::write(&path, b"{\"a\":1}\n{\"b\":2}\n{\"c\":").unwrap();
        FileSink::repair(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"a\":1}\n{\"b\":2}\n");
        FileSink::repair(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"a\":1}\n{\"b\":2}\n");
        std::fs::write(&path, b"partial").unwrap();
        FileSink::repair(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"");
        FileSink::repair(&dir.path().join("missing")).unwrap();
    }
}
