//! Dead letters: alerts the relay gave up on (refused by the receiver, or expired), kept in
//! `dead/dead-letters.jsonl` with their reason and envelope so an operator can look or replay.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::file::private_append;

/// A dead letter as written to `dead/dead-letters.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The message id.
    pub id: String,
    /// The account.
    pub account: String,
    /// `rejected_<status>` or `expired`.
    pub reason: String,
    /// When it was accepted (unix ms).
    pub received_ms: i64,
    /// When it was given up (unix ms).
    pub dead_ms: i64,
    /// The envelope that was (or would have been) sent.
    pub envelope: String,
}

/// Where the dead letters of the spool in `dir` go.
pub(crate) fn dead_letter_path(dir: &Path) -> PathBuf {
    dir.join("dead").join("dead-letters.jsonl")
}

/// The writer thread's dead-letter file, opened on first use and reopened after a failure.
#[derive(Debug)]
pub(super) struct DeadLetterFile {
    /// `dead/dead-letters.jsonl`.
    path: PathBuf,
    /// Open for appending, once a letter has been written.
    file: Option<File>,
}

impl DeadLetterFile {
    /// The dead-letter file of the spool in `dir` (not opened yet).
    pub(super) fn new(dir: &Path) -> Self {
        Self {
            path: dead_letter_path(dir),
            file: None,
        }
    }

    /// Appends `buf` (whole lines) and syncs it.
    pub(super) fn write(&mut self, buf: &[u8]) -> io::Result<()> {
        if self.file.is_none() {
            self.file = Some(private_append(&self.path)?);
        }
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("no dead-letter file"))?;
        let result = file.write_all(buf).and_then(|_| file.sync_data());
        if result.is_err() {
            self.file = None;
        }
        result
    }
}
