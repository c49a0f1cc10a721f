//! A tiny HTTP/1.1 server on loopback that answers every request with a fixed body: the "pod"
//! behind a port-forward.

use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub struct LocalHttp {
    pub address: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for LocalHttp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `body` (with `content-type: text/plain`) to every request on `127.0.0.1:<free port>`.
pub async fn serve_text(body: &'static str) -> LocalHttp {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service = service_fn(move |_request| async move {
                    Ok::<_, Infallible>(
                        Response::builder()
                            .header("content-type", "text/plain")
                            .body(Full::new(Bytes::from_static(body.as_bytes())))
                            .unwrap(),
                    )
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    LocalHttp { address, task }
}

/// Answers as an Envoy admin does, by path: `/server_info`, `/config_dump` and `/stats` with the
/// given bodies (JSON, JSON, text); 404 for anything else.
pub async fn serve_envoy_admin(
    server_info: &'static str,
    config_dump: &'static str,
    stats: &'static str,
) -> LocalHttp {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                    let (status, kind, body) = match request.uri().path() {
                        "/server_info" => (200, "application/json", server_info),
                        "/config_dump" => (200, "application/json", config_dump),
                        "/stats" => (200, "text/plain", stats),
                        _ => (404, "text/plain", "invalid path"),
                    };
                    async move {
                        Ok::<_, Infallible>(
                            Response::builder()
                                .status(status)
                                .header("content-type", kind)
                                .body(Full::new(Bytes::from_static(body.as_bytes())))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    LocalHttp { address, task }
}
