//! File permissions: what the relay writes to disk (the spool of accepted alerts, dead letters,
//! the dedupe key journal) is readable by its own user only. Alerts carry account names, symbols,
//! sizes and source addresses; other local users have no business reading them.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::helpers::*;

fn walk(dir: &Path, out: &mut Vec<(std::path::PathBuf, u32)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        if path.is_dir() {
            walk(&path, out);
        }
        out.push((path, mode));
    }
}

#[tokio::test]
async fn spool_dead_letter_and_key_journal_files_are_not_readable_by_other_users() {
    let relay = spawn_relay().await;
    relay.receiver.set_status(400);
    assert_eq!(relay.post_alert("perm-1").await.status, 200);
    relay.receiver.wait_received(1).await;
    until("a dead letter", || async {
        !relay.dead_letters().is_empty()
    })
    .await;
    let spool = relay.settings.spool.dir.clone();
    let mut entries = vec![(
        spool.clone(),
        std::fs::metadata(&spool).unwrap().permissions().mode() & 0o777,
    )];
    walk(&spool, &mut entries);
    assert!(entries.len() >= 3, "{entries:?}");
    let open: Vec<String> = entries
        .iter()
        .filter(|(_, mode)| mode & 0o077 != 0)
        .map(|(path, mode)| format!("{mode:o} {}", path.display()))
        .collect();
    assert!(open.is_empty(), "open to group or others: {open:#?}");
}
