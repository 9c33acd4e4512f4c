//! Files written whole or not at all.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

/// Writes `bytes` beside `path` under a temporary name (with this process's id, so concurrent writers do not
/// collide), then renames it over `path`: a reader never sees half a file, and a crash leaves no partial one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic_with(path, |w| w.write_all(bytes))
}

/// [`write_atomic`] for a file written piece by piece (buffered), without holding it whole in memory.
pub(crate) fn write_atomic_with(path: &Path, write: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let written = File::create(&tmp).and_then(|file| {
        let mut w = BufWriter::with_capacity(1 << 20, file);
        write(&mut w)?;
        w.into_inner().map(drop).map_err(|e| e.into_error())
    });
    written.and_then(|()| std::fs::rename(&tmp, path)).inspect_err(|_| {
        std::fs::remove_file(&tmp).ok();
    })
}
