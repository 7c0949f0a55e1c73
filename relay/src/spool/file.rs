//! The append-only JSON-lines files the spool directory holds (segments, key journal, dead
//! letters): created readable by the owner only with a durable directory entry, and read back
//! without a torn last line.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// A numbered append-only file the writer thread owns, rotated past a size.
#[derive(Debug)]
pub(crate) struct AppendFile {
    /// Open for appending.
    pub(crate) file: File,
    /// Its sequence number in the file name.
    pub(crate) number: u64,
    /// Its length as of the last complete write (offsets, rotation).
    pub(crate) written: u64,
}

impl AppendFile {
    /// Creates file `number` at `path` in `dir` (or reopens it for appending).
    pub(crate) fn create(path: &Path, dir: &Path, number: u64) -> io::Result<Self> {
        let file = create_file(path, dir)?;
        Ok(Self {
            written: file.metadata()?.len(),
            file,
            number,
        })
    }

    /// Cuts whatever a failed write left after the last complete write, so the next record
    /// starts on a line of its own.
    pub(crate) fn cut_to_written(&mut self) -> io::Result<()> {
        self.file.set_len(self.written)
    }
}

/// Calls `f` with the number, byte offset and bytes (newline included) of each complete line of
/// `path`, reading it in small pieces (a segment is never held in memory whole); a torn last
/// line is dropped with a warning. Returns the file's length, or `None` if it was deleted since
/// the directory was listed (a previous writer finishing its last removals).
pub(crate) fn for_each_line(
    path: &Path,
    mut f: impl FnMut(usize, u64, &[u8]),
) -> io::Result<Option<u64>> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut reader = BufReader::with_capacity(64 << 10, file);
    let mut line = Vec::new();
    let mut offset = 0u64;
    let mut number = 0;
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok(Some(offset));
        }
        if line.last() != Some(&b'\n') {
            tracing::warn!(file = %path.display(), "ignoring a torn last record");
        } else {
            f(number, offset, &line);
            number += 1;
        }
        offset += n as u64;
    }
}

/// Opens `path` for appending, creating it readable by the owner only.
pub(crate) fn private_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

/// [`private_append`], then syncs `dir` so the new directory entry is durable too.
pub(crate) fn create_file(path: &Path, dir: &Path) -> io::Result<File> {
    let file = private_append(path)?;
    File::open(dir)?.sync_all()?;
    Ok(file)
}
