//! A spool on a full disk, driven as an operator saw it: a 200 KB tmpfs as `spool.dir`, the
//! receiver answering 503 so alerts pile up until the relay answers 503, then the receiver back.
//! Everything answered 200 is delivered, the space is reclaimed without writing first, and new
//! alerts are accepted again. Needs `mount` (root); prints "skipped: ..." where it is refused.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::helpers::*;

/// A small tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs {
    /// The mount point.
    dir: PathBuf,
    /// Holds the mount point's parent.
    _parent: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount -o size=` reads it), or says why it cannot.
    fn mount(size: &str) -> Result<Self, String> {
        let parent = tempfile::tempdir().map_err(|e| e.to_string())?;
        let dir = parent.path().join("spool");
        std::fs::create_dir(&dir).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(&dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs refused: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Self {
            dir,
            _parent: parent,
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy, so a file still open somewhere cannot leave the mount behind.
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

fn segment_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_str().unwrap().starts_with("segment-")
        })
        .count()
}

/// Waits up to 10 s for `/readyz` to answer `status`.
async fn wait_ready(relay: &TestRelay, status: u16) {
    for _ in 0..1_000 {
        if relay.get("/readyz").await.status == status {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("/readyz never answered {status}");
}

#[tokio::test]
async fn a_spool_on_a_full_disk_delivers_everything_reclaims_the_space_and_accepts_again() {
    let tmpfs = match Tmpfs::mount("200k") {
        Ok(t) => t,
        Err(why) => {
            println!("skipped: a spool on a full disk needs a tmpfs: {why}");
            return;
        }
    };
    let spool_dir = tmpfs.dir.clone();
    let relay = spawn_relay_with(move |s, _| s.spool.dir = spool_dir).await;
    relay.receiver.set_status(503);
    assert_eq!(relay.get("/readyz").await.status, 200);

    // Alerts pile up until nothing more can be stored.
    let mut accepted = HashSet::new();
    let mut refused = None;
    for i in 0..5_000 {
        let answer = relay.post_alert(&format!("fill-{i}")).await;
        match answer.status {
            200 => {
                accepted.insert(answer.json()["id"].as_str().unwrap().to_owned());
            }
            503 => {
                refused = Some(answer);
                break;
            }
            other => panic!("unexpected {other}: {}", answer.text),
        }
    }
    let refused = refused.expect("a 200 KB spool fills up");
    println!(
        "{} alerts fitted in the spool before it answered 503",
        accepted.len()
    );
    assert_eq!(refused.json()["error"], "unavailable");
    assert!(accepted.len() > 50, "only {} fitted", accepted.len());
    assert_eq!(
        relay.get("/readyz").await.status,
        503,
        "not ready while full"
    );
    // Resends while full are refused too, without a file per failed write.
    for i in 0..20 {
        assert_eq!(relay.post_alert(&format!("more-{i}")).await.status, 503);
    }
    assert!(
        segment_files(&tmpfs.dir) <= 2,
        "{} segment files",
        segment_files(&tmpfs.dir)
    );

    // The receiver is back: every alert answered 200 is delivered...
    relay.receiver.set_status(200);
    let mut delivered = HashSet::new();
    for _ in 0..3_000 {
        delivered = relay
            .receiver
            .delivered()
            .iter()
            .map(|r| r.header("webhook-id").to_owned())
            .collect();
        if accepted.is_subset(&delivered) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        accepted.is_subset(&delivered),
        "{} of {} delivered",
        accepted.intersection(&delivered).count(),
        accepted.len()
    );

    // ...its space is reclaimed, the relay is ready again and new alerts are accepted.
    wait_ready(&relay, 200).await;
    let after = relay.post_alert("after-recovery").await;
    assert_eq!(after.status, 200, "{}", after.text);
    let id = after.json()["id"].as_str().unwrap().to_owned();
    until("the new alert delivered", || async {
        relay
            .receiver
            .delivered()
            .iter()
            .any(|r| r.header("webhook-id") == id)
    })
    .await;
    for i in 0..20 {
        assert_eq!(relay.post_alert(&format!("later-{i}")).await.status, 200);
    }
    assert!(
        segment_files(&tmpfs.dir) <= 2,
        "{} segment files",
        segment_files(&tmpfs.dir)
    );
    relay.stop().await;
}
