//! Fixtures shared by the spool's unit tests (and the key journal's).

use std::path::Path;

use alertgate_shared::MessageId;
use bytes::Bytes;

use super::{NewEntry, Spool, SpooledAlert};
use crate::config::SpoolSettings;

/// A small spool in `dir`.
pub(crate) fn settings(dir: &Path) -> SpoolSettings {
    SpoolSettings {
        dir: dir.to_owned(),
        max_pending: 10,
        max_bytes: 1 << 20,
        segment_bytes: 1 << 20,
    }
}

/// An alert for account `main` with idempotency key `key`.
pub(crate) fn entry(key: &str, received_ms: i64) -> NewEntry {
    let alert = SpooledAlert {
        id: MessageId::generate(),
        account: "main".into(),
        received_ms,
        body: Bytes::from(format!(r#"{{"type":"tradingview.alert","k":"{key}"}}"#)),
    };
    NewEntry {
        alert,
        key: Some(key.to_owned()),
    }
}

/// How many files in `dir` start with `prefix`.
pub(crate) fn files(dir: &Path, prefix: &str) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_str()
                .unwrap()
                .starts_with(prefix)
        })
        .count()
}

/// Every pending entry not handed out yet, oldest first (what the forwarder would take).
pub(crate) async fn take_all(spool: &Spool) -> Vec<SpooledAlert> {
    spool.take(usize::MAX).await.unwrap()
}
