//! The append-only JSON-lines files the spool directory holds (segments, key journal, dead
//! letters): created readable by the owner only with a durable directory entry, and read back
//! without a torn last line.

use std::fs::{File, OpenOptions};
use std::io;
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

/// The complete lines of a journal file, each with its number and byte offset; a torn last
/// line is dropped with a warning.
pub(crate) fn complete_lines<'a>(
    path: &Path,
    data: &'a [u8],
) -> impl Iterator<Item = (usize, usize, &'a [u8])> + 'a {
    let torn = !data.is_empty() && data.last() != Some(&b'\n');
    if torn {
        tracing::warn!(file = %path.display(), "ignoring a torn last record");
    }
    data.split_inclusive(|&b| b == b'\n')
        .scan(0, |offset, line| {
            let at = *offset;
            *offset += line.len();
            Some((at, line))
        })
        .filter(|(_, l)| l.last() == Some(&b'\n'))
        .enumerate()
        .map(|(i, (at, line))| (i, at, line))
}

/// A file's contents, or `None` if it was deleted since the directory was listed (a previous
/// writer finishing its last removals).
pub(crate) fn read_if_present(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(data) => Ok(Some(data)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
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
