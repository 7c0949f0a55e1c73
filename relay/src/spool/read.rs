//! Reading pending alerts back from their segments for the forwarder: each accept record is read
//! at the offset the ledger kept (one positioned read per record, one open per segment), so
//! memory holds only the batch being handed on, never the whole backlog.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use alertgate_shared::MessageId;
use bytes::Bytes;

use super::format::{segment_path, Record};
use super::ledger::{Location, Queued};
use super::SpooledAlert;

/// Why a batch could not be read.
#[derive(Debug)]
pub(super) struct ReadError {
    /// What the OS said.
    pub(super) error: io::Error,
    /// The entries, untouched, to put back in the queue.
    pub(super) entries: Vec<Queued>,
}

/// The alerts of `entries`, in their order: cached ones as they are, the others read from `dir`.
/// A record that is gone or does not parse as an accept is skipped with an error log (it cannot
/// be forwarded, and replay would skip it too); any other read error gives the batch back.
pub(super) fn load(dir: &Path, entries: Vec<Queued>) -> Result<Vec<SpooledAlert>, ReadError> {
    let mut files: HashMap<u64, Option<File>> = HashMap::new();
    let mut out = Vec::with_capacity(entries.len());
    for q in &entries {
        if let Some(a) = &q.cached {
            out.push(SpooledAlert::clone(a));
            continue;
        }
        let file = match files.get(&q.at.segment) {
            Some(f) => f.as_ref(),
            None => {
                let opened = match File::open(segment_path(dir, q.at.segment)) {
                    Ok(f) => Some(f),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                    Err(error) => return Err(ReadError { error, entries }),
                };
                files.entry(q.at.segment).or_insert(opened).as_ref()
            }
        };
        let Some(file) = file else {
            tracing::error!(
                segment = q.at.segment,
                "a pending alert's segment is gone; skipping it"
            );
            continue;
        };
        match read_at(file, q.at) {
            Ok(Some(alert)) => out.push(alert),
            Ok(None) => {
                tracing::error!(
                    segment = q.at.segment,
                    offset = q.at.offset,
                    "a pending alert's record is unreadable; skipping it"
                );
            }
            Err(error) => return Err(ReadError { error, entries }),
        }
    }
    Ok(out)
}

/// The accept record at `at`, or `None` if what is there is not one.
fn read_at(file: &File, at: Location) -> io::Result<Option<SpooledAlert>> {
    let mut line = vec![0; at.len as usize];
    match file.read_exact_at(&mut line, at.offset) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    Ok(parse_accept(&line))
}

/// An accept record's alert, or `None` if `line` is anything else.
pub(super) fn parse_accept(line: &[u8]) -> Option<SpooledAlert> {
    match serde_json::from_slice::<Record>(line).ok()? {
        Record::Accept {
            id,
            account,
            received_ms,
            body,
            ..
        } => Some(SpooledAlert {
            id: MessageId::parse(&id).ok()?,
            account,
            received_ms,
            body: Bytes::from(body),
        }),
        _ => None,
    }
}
