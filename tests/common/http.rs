//! A tiny HTTP/1.1 file server on 127.0.0.1 for the downloader tests (Range requests, cut connections).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// Serves `body` for a bounded number of requests; the first `cut_first` responses stop after half the body.
/// Records each request's Range header.
pub fn serve(body: Vec<u8>, requests: usize, cut_first: usize) -> (String, Arc<Mutex<Vec<Option<String>>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/ckpt_20200101-00000000.pth", listener.local_addr().unwrap());
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen = log.clone();
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().take(requests).enumerate() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut range = None;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
                    range = Some(v.trim().trim_end_matches('-').to_string());
                }
            }
            seen.lock().unwrap().push(range.clone());
            let start: usize = range.as_deref().map(|r| r.parse().unwrap()).unwrap_or(0);
            let rest = &body[start..];
            let status = if start > 0 { "206 Partial Content" } else { "200 OK" };
            let head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", rest.len());
            stream.write_all(head.as_bytes()).unwrap();
            let send = if n < cut_first { &rest[..rest.len() / 2] } else { rest };
            stream.write_all(send).ok();
            // Dropping the stream closes the connection, mid-body when cut.
        }
    });
    (url, log)
}

