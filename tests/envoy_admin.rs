#![allow(clippy::unwrap_used)]
//! The admin client against things that are not a healthy Envoy: a closed port, a server that
//! never answers, an HTML page, HTTP errors, oversized answers. Each gives its one-line error
//! within a bounded time.

use kubectl_infermesh::evidence::envoy::EnvoyEvidence;
use kubectl_infermesh::evidence::envoy::role::EnvoyRole;
use kubectl_infermesh::sources::envoy::admin::{AdminClient, AdminError};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A loopback server answering every request with `response(path)` (raw HTTP/1.1 bytes), or
/// never answering when it returns `None`.
async fn fake_server(response: fn(&str) -> Option<Vec<u8>>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buffer = [0u8; 1024];
                while !head.windows(4).any(|window| window == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(read) => head.extend_from_slice(&buffer[..read]),
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                match response(&path) {
                    Some(bytes) => {
                        let _ = stream.write_all(&bytes).await;
                        let _ = stream.shutdown().await;
                    }
                    None => {
                        // Hold the connection open without answering.
                        tokio::time::sleep(Duration::from_secs(30)).await;
                    }
                }
            });
        }
    });
    addr
}

fn http(status: &str, content_type: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn client(addr: SocketAddr) -> AdminClient {
    AdminClient::new(&format!("http://{addr}"))
        .unwrap()
        .with_timeout(Duration::from_millis(500))
}

fn one_line(error: &AdminError) -> String {
    let text = error.to_string();
    assert!(!text.contains('\n'), "error is not one line: {text}");
    text
}

#[tokio::test]
async fn a_closed_port_is_refused_with_a_hint() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let error = client(addr).server_info().await.unwrap_err();
    assert!(matches!(error, AdminError::Refused { .. }), "{error:?}");
    let text = one_line(&error);
    assert!(text.contains(&addr.to_string()), "{text}");
    assert!(text.contains("port 15000 is forwarded"), "{text}");

    // Gathering evidence never fails: each unreadable endpoint becomes a gap.
    let evidence = EnvoyEvidence::gather(&client(addr), "pod/gw", "vllm", 8000).await;
    assert_eq!(evidence.role.role, EnvoyRole::Unrelated);
    let what: Vec<&str> = evidence.gaps.iter().map(|gap| gap.what.as_str()).collect();
    assert!(what.contains(&"Envoy /server_info of pod/gw"), "{what:?}");
    assert!(what.contains(&"Envoy /config_dump of pod/gw"), "{what:?}");
    assert!(what.contains(&"Envoy /stats of pod/gw"), "{what:?}");
    assert!(
        evidence.gaps[0].reason.contains("refused"),
        "{:?}",
        evidence.gaps
    );
}

#[tokio::test]
async fn a_silent_server_times_out_in_bounded_time() {
    let addr = fake_server(|_| None).await;
    let started = Instant::now();
    let error = client(addr).stats().await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(error, AdminError::Timeout { .. }), "{error:?}");
    let text = one_line(&error);
    assert!(text.contains("500ms"), "{text}");
    assert!(text.contains("/stats"), "{text}");
}

#[tokio::test]
async fn an_html_page_is_not_envoy() {
    let addr = fake_server(|_| {
        Some(http(
            "200 OK",
            "text/html; charset=utf-8",
            "<!DOCTYPE html><html><body>Grafana</body></html>",
        ))
    })
    .await;
    for error in [
        client(addr).server_info().await.unwrap_err(),
        client(addr).stats().await.unwrap_err(),
        client(addr)
            .config_dump_text(&Default::default())
            .await
            .unwrap_err(),
        client(addr).ready().await.unwrap_err(),
    ] {
        assert!(matches!(error, AdminError::NotEnvoy { .. }), "{error:?}");
        let text = one_line(&error);
        assert!(text.contains("HTML"), "{text}");
        assert!(text.contains("admin port (15000)"), "{text}");
    }
}

#[tokio::test]
async fn an_app_answering_json_or_text_is_not_envoy() {
    let addr = fake_server(|path| {
        Some(if path.starts_with("/stats") {
            http(
                "200 OK",
                "application/json",
                r#"{"object":"list","data":[]}"#,
            )
        } else {
            http("200 OK", "text/plain", "hello from vllm")
        })
    })
    .await;
    let error = client(addr).stats().await.unwrap_err();
    assert!(matches!(error, AdminError::NotEnvoy { .. }), "{error:?}");
    assert!(one_line(&error).contains("line 1"), "{error}");
    let error = client(addr).server_info().await.unwrap_err();
    assert!(matches!(error, AdminError::NotEnvoy { .. }), "{error:?}");
    let error = client(addr)
        .config_dump_text(&Default::default())
        .await
        .unwrap_err();
    assert!(matches!(error, AdminError::NotEnvoy { .. }), "{error:?}");
}

#[tokio::test]
async fn http_errors_carry_status_and_body() {
    let addr = fake_server(|path| {
        Some(if path.starts_with("/ready") {
            http("503 Service Unavailable", "text/plain", "DRAINING\n")
        } else {
            http(
                "404 Not Found",
                "text/plain",
                "invalid path. admin commands are:",
            )
        })
    })
    .await;
    let error = client(addr).clusters().await.unwrap_err();
    match &error {
        AdminError::Status { status, body, .. } => {
            assert_eq!(*status, 404);
            assert!(body.contains("invalid path"));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(
        one_line(&error).contains("/clusters?format=json"),
        "{error}"
    );
    // A draining Envoy answers /ready with 503: a state, not an error.
    assert_eq!(client(addr).ready().await.unwrap(), "DRAINING");
}

#[tokio::test]
async fn oversized_answers_are_cut_at_the_cap() {
    let addr = fake_server(|path| {
        Some(if path.starts_with("/stats") {
            // No content-length: the cap applies while reading.
            let mut body = String::new();
            for index in 0..2000 {
                body.push_str(&format!("cluster.c{index}.upstream_rq_total: {index}\n"));
            }
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n{body}"
            )
            .into_bytes()
        } else {
            http(
                "200 OK",
                "application/json",
                &format!(r#"{{"version":"{}"}}"#, "x".repeat(4000)),
            )
        })
    })
    .await;
    let small = client(addr).with_max_response_bytes(1024);
    let error = small.stats_text().await.unwrap_err();
    assert!(
        matches!(error, AdminError::TooLarge { limit: 1024, .. }),
        "{error:?}"
    );
    assert!(one_line(&error).contains("?resource="), "{error}");
    let error = small.server_info().await.unwrap_err();
    assert!(matches!(error, AdminError::TooLarge { .. }), "{error:?}");
    // Under a larger cap, the same answers are read whole.
    let stats = client(addr).stats().await.unwrap();
    assert_eq!(stats.get("cluster.c1999.upstream_rq_total"), Some(1999));
}
