//! The process lock: `LOCK` in the spool directory holds the pid of the relay that owns it, so
//! two relays never write the same spool (their records would interleave).

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Refuses a spool directory that another live relay process uses. A lock left by a process
/// that is gone, or whose pid now belongs to a different program (after a reboot), is taken
/// over.
pub(super) fn claim(dir: &Path) -> io::Result<()> {
    let lock = dir.join("LOCK");
    let me = std::process::id();
    let program = |pid: &str| std::fs::read_to_string(format!("/proc/{pid}/comm")).ok();
    if let Ok(text) = std::fs::read_to_string(&lock) {
        if let Ok(pid) = text.trim().parse::<u32>() {
            let same_program =
                program(&pid.to_string()).is_some_and(|p| Some(p) == program("self"));
            if pid != me && same_program {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!(
                        "in use by process {pid} (remove {} if that is not a relay)",
                        lock.display()
                    ),
                ));
            }
        }
    }
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&lock)?;
    file.write_all(format!("{me}\n").as_bytes())
}

#[cfg(test)]
mod tests {
    use crate::spool::testing::settings;
    use crate::spool::Spool;

    #[test]
    fn a_lock_left_by_a_dead_process_or_another_program_is_taken_over() {
        // (A live relay holding the lock is refused: see the process tests.)
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("LOCK"), format!("{}\n", u32::MAX - 1)).unwrap();
        assert!(Spool::open(settings(dir.path())).is_ok());
        std::fs::write(dir.path().join("LOCK"), "1\n").unwrap(); // pid 1 is init, not a relay
        assert!(Spool::open(settings(dir.path())).is_ok());
        let lock = std::fs::read_to_string(dir.path().join("LOCK")).unwrap();
        assert_eq!(lock.trim(), std::process::id().to_string());
    }
}
