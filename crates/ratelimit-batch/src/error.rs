//! What stops a whole batch (a single request's failure never does: it is written as its result).

use std::path::{Path, PathBuf};

/// Why a batch run could not go on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    /// Reading the input or writing the output failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The output file has lines that are not results (not only a torn last line): it is not
    /// this tool's output, and appending to it would mix formats.
    #[error(
        "{path}: not a results file (unreadable line after byte {offset}); choose another output"
    )]
    CorruptOutput {
        /// The file.
        path: PathBuf,
        /// Where its valid part ends.
        offset: u64,
    },
    /// The settings are invalid.
    #[error("configuration: {0}")]
    Config(String),
    /// A bug: a task failed unexpectedly.
    #[error("internal error: {0}")]
    Internal(String),
}

impl BatchError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_owned(),
            source,
        }
    }
}
