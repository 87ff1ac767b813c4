//! The output file: what an earlier run already finished (for resuming), and appending results
//! one whole line at a time so the file stays valid JSONL whenever the run stops.

use std::collections::HashSet;
use std::io::SeekFrom;
use std::path::Path;

use tokio::fs::{File, OpenOptions};
use tokio::io::{AsyncBufReadExt, AsyncSeekExt, AsyncWriteExt, BufReader};

use crate::error::BatchError;
use crate::record::Outcome;

/// What an earlier run left in the output.
#[derive(Debug, Default)]
pub(crate) struct Earlier {
    /// Ids not to send again.
    pub(crate) done: HashSet<String>,
    /// A torn last line (the run was killed mid-write) was cut off.
    pub(crate) repaired: bool,
}

/// Reads an existing output file line by line: every id with a result (or, with
/// `retry_errors`, every id that succeeded) is done. A last line without its newline, or that is
/// not a result, is a write the earlier run did not finish: it is cut off so appending keeps the
/// file valid. A missing file is an empty one.
pub(crate) async fn scan(path: &Path, retry_errors: bool) -> Result<Earlier, BatchError> {
    let file = match File::open(path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Earlier::default()),
        Err(e) => return Err(BatchError::io(path, e)),
    };
    let mut reader = BufReader::new(file);
    let mut earlier = Earlier::default();
    let mut good_end: u64 = 0;
    let mut offset: u64 = 0;
    let mut line = Vec::new();
    let mut bad_tail = false;
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .await
            .map_err(|e| BatchError::io(path, e))?;
        if n == 0 {
            break;
        }
        offset += n as u64;
        let complete = line.last() == Some(&b'\n');
        match serde_json::from_slice::<Outcome>(&line) {
            Ok(outcome) if complete => {
                if !retry_errors || outcome.is_success() {
                    earlier.done.insert(outcome.custom_id);
                }
                good_end = offset;
                bad_tail = false;
            }
            _ if line.iter().all(u8::is_ascii_whitespace) && complete => {
                good_end = offset;
            }
            _ => {
                // Only a torn last line is expected; anything after it means the file is not ours.
                if bad_tail {
                    return Err(BatchError::CorruptOutput {
                        path: path.to_owned(),
                        offset: good_end,
                    });
                }
                bad_tail = true;
            }
        }
    }
    if bad_tail {
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .await
            .map_err(|e| BatchError::io(path, e))?;
        file.set_len(good_end)
            .await
            .map_err(|e| BatchError::io(path, e))?;
        earlier.repaired = true;
        tracing::warn!(path = %path.display(), at = good_end, "cut off a torn last line of the output");
    }
    Ok(earlier)
}

/// Appends results, each as one line written whole and flushed.
pub(crate) struct Writer {
    file: File,
    path: std::path::PathBuf,
}

impl Writer {
    pub(crate) async fn open(path: &Path) -> Result<Self, BatchError> {
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .await
            .map_err(|e| BatchError::io(path, e))?;
        file.seek(SeekFrom::End(0))
            .await
            .map_err(|e| BatchError::io(path, e))?;
        Ok(Self {
            file,
            path: path.to_owned(),
        })
    }

    pub(crate) async fn write(&mut self, outcome: &Outcome) -> Result<(), BatchError> {
        let mut line =
            serde_json::to_vec(outcome).map_err(|e| BatchError::Internal(e.to_string()))?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .await
            .map_err(|e| BatchError::io(&self.path, e))?;
        self.file
            .flush()
            .await
            .map_err(|e| BatchError::io(&self.path, e))
    }

    pub(crate) async fn finish(mut self) -> Result<(), BatchError> {
        self.file
            .flush()
            .await
            .map_err(|e| BatchError::io(&self.path, e))?;
        self.file
            .sync_all()
            .await
            .map_err(|e| BatchError::io(&self.path, e))
    }
}
