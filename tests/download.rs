//! The checkpoint downloader against a local HTTP server on 127.0.0.1: a whole download, a wrong hash, a cut
//! connection that the next call resumes with a Range request, several fetches of one file at once.

mod common;

use std::path::PathBuf;

use common::http::serve;
use common::scratch_file;

use mask_rcnn_burn::error::WeightsError;
use mask_rcnn_burn::weights::download::{fetch, sha256_file};

fn body() -> Vec<u8> {
    (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect()
}

/// The download's destination, in the running test's own scratch folder.
fn scratch(name: &str) -> PathBuf {
    scratch_file("download", &format!("{name}-ckpt.pth"))
}

fn sha_of(bytes: &[u8]) -> String {
    let p = scratch_file("download", "sha-input");
    std::fs::write(&p, bytes).unwrap();
    sha256_file(&p).unwrap()
}

#[test]
fn downloads_verifies_and_then_reuses() {
    let (url, log) = serve(body(), 1, 0);
    let dest = scratch("ok");
    let sha = sha_of(&body());
    fetch(&url, &dest, &sha[..8], false).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), body());
    // Present and verified: no second request (the server would refuse it).
    fetch(&url, &dest, &sha[..8], false).unwrap();
    assert_eq!(log.lock().unwrap().len(), 1);
}

#[test]
fn a_wrong_hash_is_an_error_and_leaves_no_file() {
    let (url, _) = serve(body(), 1, 0);
    let dest = scratch("badhash");
    let e = fetch(&url, &dest, "deadbeef", false).unwrap_err();
    assert!(matches!(&e, WeightsError::HashMismatch { expected, .. } if expected == "deadbeef"), "{e}");
    assert!(!dest.exists());
    assert!(!dest.with_extension("pth.part").exists());
}

#[test]
fn a_cut_connection_resumes_where_it_stopped() {
    let (url, log) = serve(body(), 2, 1);
    let dest = scratch("cut");
    let sha = sha_of(&body());
    let e = fetch(&url, &dest, &sha[..8], false).unwrap_err();
    assert!(matches!(e, WeightsError::Download { .. }), "{e}");
    assert!(e.to_string().contains("resume"), "{e}");
    assert!(!dest.exists(), "a partial download must not take the final name");
    let part = std::fs::metadata(dest.with_extension("pth.part")).unwrap().len();
    assert_eq!(part, 150_000);
    fetch(&url, &dest, &sha[..8], false).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), body());
    assert_eq!(*log.lock().unwrap(), vec![None, Some("150000".to_string())]);
}

#[test]
fn fetches_of_one_file_at_once_download_it_once() {
    // Four at once (as Ray actors starting on one node): a server that answers one request; without the lock the
    // others write the same `.part` or find the server gone.
    let (url, log) = serve(body(), 1, 0);
    let dest = scratch("together");
    let sha = sha_of(&body());
    std::thread::scope(|s| {
        let fetches: Vec<_> = (0..4).map(|_| s.spawn(|| fetch(&url, &dest, &sha[..8], false))).collect();
        for f in fetches {
            f.join().unwrap().unwrap();
        }
    });
    assert_eq!(std::fs::read(&dest).unwrap(), body());
    assert_eq!(log.lock().unwrap().len(), 1);
}
