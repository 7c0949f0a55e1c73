//! File permissions on the receiver's side: the journal (orders, positions, every envelope) is
//! readable by the receiver's user only. (`certs` writes its keys 0600: receiver/tests/api.)

use std::os::unix::fs::PermissionsExt;

use crate::helpers::*;

#[tokio::test]
async fn the_journal_database_and_its_directory_are_not_readable_by_other_users() {
    let app = spawn_app().await;
    let (_, a) = app.send(&buy("1")).await;
    assert_eq!(a.outcome(), "filled");
    let db = app.work.db_path();
    let dir = db.parent().unwrap().to_owned();
    let mut open = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            open.push(format!("{mode:o} {}", path.display()));
        }
    }
    let dir_mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert!(open.is_empty(), "open to group or others: {open:#?}");
    assert_eq!(dir_mode & 0o077, 0, "{dir_mode:o} {}", dir.display());
}
