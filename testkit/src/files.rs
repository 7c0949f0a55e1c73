//! Temporary folders and the secret files configs point at (`file:PATH` references).

use std::path::Path;

use alertgate_shared::SecretRef;

/// A fresh temporary folder, removed when dropped. Panics when the system has none to give: no
/// test can run then.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("alertgate-test-")
        .tempdir()
        .expect("creating a temporary folder")
}

/// Writes `value` (and a newline, as editors do) to `dir/name` and returns its `file:` reference.
pub fn secret_file(dir: &Path, name: &str, value: &str) -> SecretRef {
    let path = dir.join(name);
    std::fs::write(&path, format!("{value}\n"))
        .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    SecretRef::File(path)
}
