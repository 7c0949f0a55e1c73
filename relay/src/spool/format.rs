//! What a segment holds: its file name (`segment-NNNNNNNNNNNNNNNNNNNN.jsonl`) and its records,
//! one JSON object per line tagged by `t`.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Resolution;

/// One line of a segment.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub(super) enum Record {
    /// An alert answered 200: everything needed to forward it after a restart.
    Accept {
        /// Its `webhook-id`.
        id: String,
        /// The authenticated account.
        account: String,
        /// Its idempotency key (the dedupe window is rebuilt from it as well).
        key: Option<String>,
        /// Receipt time (unix ms).
        received_ms: i64,
        /// The exact envelope bytes to sign and send.
        body: String,
    },
    /// An earlier accept that left the spool.
    Resolve {
        /// The accept's id.
        id: String,
        /// How it left.
        outcome: Resolution,
    },
    /// Written only to learn whether the disk takes a record again (see `writer`), and cut
    /// again at once; ignored at replay if a crash left it there.
    Probe {
        /// Padding, so that a record of a usual size is known to fit.
        pad: String,
    },
}

/// `value` as one JSON line, newline included.
pub(crate) fn encode_line(value: &impl Serialize) -> io::Result<Vec<u8>> {
    let mut line = serde_json::to_vec(value).map_err(io::Error::other)?;
    line.push(b'\n');
    Ok(line)
}

/// Where segment `n` lives.
pub(crate) fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("segment-{n:020}.jsonl"))
}

/// The number of a segment file, or `None` if `path` is not one.
pub(super) fn segment_number(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    name.strip_prefix("segment-")?
        .strip_suffix(".jsonl")?
        .parse()
        .ok()
}
