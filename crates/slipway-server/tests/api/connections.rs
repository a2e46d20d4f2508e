//! Connection limits and timeouts, with raw TCP clients: slow headers, slow
//! bodies and idle keep-alive connections are closed after their timeout;
//! beyond `max_connections` new connections wait. The figures go to
//! [`figures::record`] (`FIGURES:` lines in target/test-figures/, printed at
//! the end of scripts/test.sh).

use crate::figures;
use crate::helpers::{spawn_with, TestApp, ADMIN};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.url.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Reads until the server closes the connection (or `limit` passes);
/// returns what was read and when the close came.
async fn read_until_closed(
    stream: &mut (impl AsyncRead + Unpin),
    limit: Duration,
) -> (String, Option<Duration>) {
    let started = Instant::now();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let left = limit.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                return (
                    String::from_utf8_lossy(&buf).into_owned(),
                    Some(started.elapsed()),
                )
            }
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => return (String::from_utf8_lossy(&buf).into_owned(), None),
        }
    }
}

fn short_timeouts(c: &mut slipway_server::config::Config) {
    c.header_read_timeout_seconds = 1;
    c.keep_alive_timeout_seconds = 2;
    c.body_read_timeout_seconds = 1;
}

#[tokio::test]
async fn slow_headers_are_disconnected() {
    let app = spawn_with(short_timeouts).await;
    let first_byte = Instant::now();
    let mut conns = Vec::new();
    for _ in 0..100 {
        let mut s = connect(&app).await;
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        conns.push(s);
    }
    // a trickle of header bytes does not extend the deadline
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        for s in conns.iter_mut() {
            let _ = s.write_all(b"X-Slow: 1\r\n").await;
        }
    }
    let mut closed = 0;
    for s in conns.iter_mut() {
        let (text, at) = read_until_closed(s, Duration::from_secs(5)).await;
        assert!(text.is_empty(), "no response to an incomplete head: {text}");
        closed += usize::from(at.is_some());
    }
    let latest = first_byte.elapsed();
    figures::record(
        "slow_headers",
        &format!(
            "{closed}/100 connections closed by the server, all within {:.2} s of their first byte (header_read_timeout_seconds = 1)",
            latest.as_secs_f64()
        ),
    );
    assert_eq!(closed, 100);
    assert!(latest < Duration::from_secs(3), "{latest:?}");
    // the server still serves
    assert_eq!(app.get("/health/live", None).await.0, 200);
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    let app = spawn_with(short_timeouts).await;
    let mut s = connect(&app).await;
    s.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // a second request on the same connection works while it is kept alive
    tokio::time::sleep(Duration::from_millis(500)).await;
    s.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let (text, at) = read_until_closed(&mut s, Duration::from_secs(6)).await;
    assert!(text.is_empty(), "{text}");
    let at = at.expect("idle connection closed");
    figures::record(
        "idle_keep_alive",
        &format!(
            "closed {:.2} s after the last response (keep_alive_timeout_seconds = 2)",
            at.as_secs_f64()
        ),
    );
    assert!(
        at >= Duration::from_millis(1800) && at < Duration::from_secs(4),
        "{at:?}"
    );
}

#[tokio::test]
async fn slow_bodies_get_408_and_are_closed() {
    let app = spawn_with(short_timeouts).await;
    let mut s = connect(&app).await;
    let head = format!(
        "POST /api/2.0/mlflow/experiments/create HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\":"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let (text, at) = read_until_closed(&mut s, Duration::from_secs(5)).await;
    figures::record(
        "slow_body",
        &format!(
            "answered and closed after {:.2} s (body_read_timeout_seconds = 1): {}",
            started.elapsed().as_secs_f64(),
            text.lines().next().unwrap_or("")
        ),
    );
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("body_read_timeout_seconds"), "{text}");
    assert!(at.is_some(), "connection closed after the 408");
}

#[tokio::test]
async fn stalled_uploads_are_aborted() {
    let app = spawn_with(short_timeouts).await;
    let mut s = connect(&app).await;
    let head = format!(
        "PUT /api/2.0/mlflow-artifacts/artifacts/0/r/artifacts/big.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\nContent-Length: 1000000\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&[7u8; 1000]).await.unwrap();
    let (text, at) = read_until_closed(&mut s, Duration::from_secs(5)).await;
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(at.is_some());
    let (status, _) = app
        .get(
            "/api/2.0/mlflow-artifacts/artifacts/0/r/artifacts/big.bin",
            Some(ADMIN),
        )
        .await;
    assert_eq!(status, 404, "nothing of the stalled upload is stored");
}

#[tokio::test]
async fn connections_beyond_the_limit_wait() {
    let app = spawn_with(|c| {
        c.max_connections = 2;
        c.header_read_timeout_seconds = 30;
    })
    .await;
    // two silent connections take both slots
    let a = connect(&app).await;
    let _b = connect(&app).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut c = connect(&app).await;
    c.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    let waited = tokio::time::timeout(Duration::from_millis(500), c.read(&mut buf)).await;
    assert!(
        waited.is_err(),
        "the third connection is not served while two are open"
    );
    drop(a);
    let started = Instant::now();
    let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf))
        .await
        .expect("served once a slot frees")
        .unwrap();
    figures::record(
        "max_connections",
        &format!(
            "max_connections = 2: third connection served {:.3} s after a slot freed",
            started.elapsed().as_secs_f64()
        ),
    );
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
}

/// `POST /login` is public: a slow sign-in form gets the same body deadline
/// as every other body (408, connection closed), however it trickles.
#[tokio::test]
async fn slow_sign_in_forms_get_408_and_are_closed() {
    let app = spawn_with(short_timeouts).await;
    let host = app.url.trim_start_matches("http://").to_string();
    let s = connect(&app).await;
    let (mut reader, mut writer) = s.into_split();
    let head = format!(
        "POST /login HTTP/1.1\r\nHost: {host}\r\nOrigin: http://{host}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ntoken="
    );
    writer.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    // a byte every 200 ms: the body would take 19 s, and each byte arriving
    // does not push the deadline back
    let trickle = tokio::spawn(async move {
        for _ in 0..30 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if writer.write_all(b"a").await.is_err() {
                break;
            }
        }
    });
    let (text, at) = read_until_closed(&mut reader, Duration::from_secs(5)).await;
    trickle.abort();
    let elapsed = started.elapsed();
    figures::record(
        "slow_sign_in_form",
        &format!(
            "POST /login trickling a byte every 200 ms: answered {:?}, connection {} after {:.2} s (body_read_timeout_seconds = 1)",
            text.lines().next().unwrap_or("nothing"),
            if at.is_some() { "closed" } else { "still open" },
            elapsed.as_secs_f64(),
        ),
    );
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("body_read_timeout_seconds"), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
    assert!(at.is_some(), "connection closed after the 408");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    // the server still signs people in
    assert_eq!(app.get("/login", None).await.0, 200);
}

/// The sign-in form has its own small size limit, whatever
/// `max_json_body_bytes` allows.
#[tokio::test]
async fn oversized_sign_in_forms_get_413() {
    let app = spawn_with(short_timeouts).await;
    let host = app.url.trim_start_matches("http://").to_string();
    let resp = app
        .client
        .post(format!("{}/login", app.url))
        .header("origin", format!("http://{host}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={}", "a".repeat(20 * 1024)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 413);
    let text = resp.text().await.unwrap();
    assert!(text.contains("16384 bytes"), "{text}");
}
