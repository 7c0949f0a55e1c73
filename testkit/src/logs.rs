//! The shared half of the "secrets in logs" tests: collect every line a service wrote, add what
//! `check-config` prints at debug level, and look for secrets in all of it.

use std::path::Path;
use std::process::Command;

use anyhow::Context as _;

/// Runs `bin check-config --config CONFIG` with `RUST_LOG=debug` and returns whether it passed
/// and every line it printed (stdout, then stderr).
pub fn check_config_lines(bin: &Path, config: &Path) -> anyhow::Result<(bool, Vec<String>)> {
    let out = Command::new(bin)
        .args(["check-config", "--config"])
        .arg(config)
        .env("RUST_LOG", "debug")
        .output()
        .with_context(|| format!("running {} check-config", bin.display()))?;
    let lines = [&out.stdout, &out.stderr]
        .into_iter()
        .flat_map(|bytes| {
            String::from_utf8_lossy(bytes)
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    Ok((out.status.success(), lines))
}

/// Panics, naming what leaked and where, if any line contains one of `needles`
/// (`(what, text)` pairs); also when there are fewer than `at_least` lines, too few to mean
/// anything.
pub fn assert_never_logged(lines: &[String], at_least: usize, needles: &[(&str, &str)]) {
    assert!(
        lines.len() >= at_least,
        "too few log lines to mean anything ({} < {at_least}): {lines:#?}",
        lines.len()
    );
    for (what, needle) in needles {
        assert!(
            !needle.is_empty(),
            "{what}: an empty needle matches everything"
        );
        let leaks: Vec<&String> = lines.iter().filter(|l| l.contains(needle)).collect();
        assert!(leaks.is_empty(), "{what} was logged: {leaks:#?}");
    }
}
