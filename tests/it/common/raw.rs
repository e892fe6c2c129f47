//! HTTP/1.1 over a bare TCP socket, for what a well-behaved client cannot
//! send: trickled headers and bodies, oversized headers, chunked bodies,
//! connections held open doing nothing.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Answer, TIMEOUT};

/// Connects to `addr`.
pub async fn connect(addr: SocketAddr) -> TcpStream {
    tokio::time::timeout(TIMEOUT, TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect")
}

/// Writes `parts` one after another, waiting `gap` between them (a slow
/// sender), ignoring write errors (the server may close early).
pub async fn trickle(stream: &mut TcpStream, parts: &[&[u8]], gap: Duration) {
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(gap).await;
        }
        if stream.write_all(part).await.is_err() {
            return;
        }
    }
}

/// Reads one answer: status line, headers, and a `Content-Length` body.
/// `None` when the server closed the connection without an answer.
pub async fn read_answer(stream: &mut TcpStream) -> Option<Answer> {
    tokio::time::timeout(TIMEOUT, read(stream))
        .await
        .expect("an answer or a close in time")
}

async fn read<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> Option<Answer> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status: u16 = head.split(' ').nth(1)?.parse().ok()?;
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let end = buf.len().min(head_end + length);
    let mut headers = http::HeaderMap::new();
    for line in head.lines().skip(1) {
        if let Some((k, v)) = line.split_once(':')
            && let (Ok(k), Ok(v)) = (
                http::HeaderName::from_bytes(k.trim().as_bytes()),
                http::HeaderValue::from_str(v.trim()),
            )
        {
            headers.append(k, v);
        }
    }
    Some(Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&buf[head_end..end]).into_owned(),
    })
}

/// Waits until the server closes the connection (reads until EOF, dropping
/// whatever arrives); fails the test after [`TIMEOUT`].
pub async fn closed_by_server(stream: &mut TcpStream) {
    let mut sink = [0u8; 4096];
    tokio::time::timeout(TIMEOUT, async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .expect("the server closes the connection in time");
}

/// A POST of `body` with a correct Content-Length and extra header lines.
pub fn post(path: &str, extra_headers: &str, body: &[u8]) -> Vec<u8> {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nhost: bridge\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n{extra_headers}\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    req
}

/// Sends `request` while reading the answer, so that an answer the server
/// gives before reading the whole body (413) is seen even when it then stops
/// reading; `None` when it closed without one.
pub async fn exchange(addr: SocketAddr, request: Vec<u8>) -> Option<Answer> {
    let stream = connect(addr).await;
    let (mut reader, mut write) = stream.into_split();
    let writer = tokio::spawn(async move {
        // The server may close early; what it answered is what counts.
        let _ = write.write_all(&request).await;
        write
    });
    let answer = tokio::time::timeout(TIMEOUT, read(&mut reader))
        .await
        .expect("an answer or a close in time");
    writer.abort();
    answer
}

/// A request with a `Content-Length` body and `connection: close`.
pub fn build(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut req = format!("{method} {path} HTTP/1.1\r\nhost: bridge\r\nconnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method != "GET" {
        req.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut req = req.into_bytes();
    req.extend_from_slice(body);
    req
}
