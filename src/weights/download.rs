//! Fetching an official checkpoint once into a cache: resumable (`.part` file + HTTP Range), sha256-checked
//! against the hash prefix in its file name, renamed into place only when whole and verified.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::error::WeightsError;


/// Lowercase hex sha256 of a file.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Downloads `url` to `dest` unless `dest` already holds a file whose sha256 starts with `sha256_prefix`.
/// An interrupted download leaves `dest.part` and resumes from it on the next call; a complete file with the
/// wrong hash is deleted and reported. Processes fetching the same `dest` at once (several Ray actors on one
/// node) take turns on `dest.lock`: one downloads, the others then find the file.
pub fn fetch(url: &str, dest: &Path, sha256_prefix: &str, progress: bool) -> Result<(), WeightsError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| WeightsError::Io { path: path.clone(), source }
    };
    let present = || -> Result<bool, WeightsError> { Ok(dest.is_file() && sha256_file(dest).map_err(io(dest))?.starts_with(sha256_prefix)) };
    if present()? {
        return Ok(());
    }
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let ext = dest.extension().and_then(|e| e.to_str()).unwrap_or("");
    // Held until this function returns (the lock goes with the file handle); left on disk, since removing it
    // would let a waiter lock a file no newcomer sees.
    let lock_path = dest.with_extension(format!("{ext}.lock"));
    let lock = OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).map_err(io(&lock_path))?;
    lock.lock().map_err(io(&lock_path))?;
    if present()? {
        return Ok(()); // fetched by whoever held the lock before
    }
    let part = dest.with_extension(format!("{ext}.part"));
    let have = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    let failed = |message: String| WeightsError::Download { url: url.to_string(), message };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_body(None)
        .http_status_as_error(false)
        .build()
        .into();
    let mut request = agent.get(url);
    if have > 0 {
        request = request.header("Range", format!("bytes={have}-"));
    }
    let response = request.call().map_err(|e| failed(e.to_string()))?;
    let status = response.status().as_u16();
    let (append, start) = match status {
        206 => (true, have),
        200 => (false, 0),
        416 if have > 0 => (true, have), // the part is already whole
        _ => return Err(failed(format!("HTTP status {status}"))),
    };
    if status != 416 {
        let total = response
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .map(|len| len + start);
        let mut file = OpenOptions::new().create(true).write(true).append(append).truncate(!append).open(&part).map_err(io(&part))?;
        let bar = progress.then(|| {
            let bar = indicatif::ProgressBar::new(total.unwrap_or(0));
            bar.set_style(
                indicatif::ProgressStyle::with_template("{msg} {bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar.set_message(dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
            bar.set_position(start);
            bar
        });
        let mut body = response.into_body().into_reader();
        let mut buf = vec![0u8; 1 << 16];
        let mut written = start;
        loop {
            let n = body.read(&mut buf).map_err(|e| failed(format!("connection cut after {written} bytes ({e}); run again to resume")))?;
            if n == 0 {
                break;
            }
            file.write_all(&buf[..n]).map_err(io(&part))?;
            written += n as u64;
            if let Some(bar) = &bar {
                bar.set_position(written);
            }
        }
        file.flush().map_err(io(&part))?;
        if let Some(bar) = bar {
            bar.finish();
        }
        if let Some(total) = total.filter(|t| written < *t) {
            return Err(failed(format!("connection cut after {written} of {total} bytes; run again to resume")));
        }
    }
    let found = sha256_file(&part).map_err(io(&part))?;
    if !found.starts_with(sha256_prefix) {
        std::fs::remove_file(&part).ok();
        return Err(WeightsError::HashMismatch { origin: url.to_string(), expected: sha256_prefix.to_string(), found });
    }
    std::fs::rename(&part, dest).map_err(io(dest))
}
