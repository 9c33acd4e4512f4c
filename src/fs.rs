//! Files written whole or not at all.

use std::path::Path;

/// Writes `bytes` beside `path` under a temporary name (with this process's id, so concurrent writers do not
/// collide), then renames it over `path`: a reader never sees half a file, and a crash leaves no partial one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path)).inspect_err(|_| {
        std::fs::remove_file(&tmp).ok();
    })
}
