//! Port-forward to a pod over the API server's websocket, as a stream or as a local listener.
//!
//! Traffic forwarded this way enters the pod on loopback, so it reaches a container port without
//! passing the pod's Istio sidecar (docs/facts.md "Where each path goes"), and it reaches Envoy's admin port
//! 15000, which listens on loopback only.

use super::client::ClusterClient;
use super::error::ClusterError;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Portforwarder;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// How long a closing websocket may take to say goodbye before it is cut.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Where a forward goes: a pod's port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodPort {
    pub namespace: String,
    pub pod: String,
    pub port: u16,
}

impl std::fmt::Display for PodPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pod {}/{} port {}", self.namespace, self.pod, self.port)
    }
}

/// One byte stream to a pod's port. Dropping it ends the port-forward.
pub struct PodStream {
    stream: DuplexStream,
    forwarder: Option<Portforwarder>,
    error: Option<Pin<Box<dyn Future<Output = Option<String>> + Send>>>,
}

impl PodStream {
    /// Waits for the message the kubelet sends when it cannot reach the port (e.g. connection
    /// refused inside the pod); `None` when the forward ended without one.
    pub async fn pod_error(&mut self) -> Option<String> {
        match self.error.take() {
            Some(error) => error.await,
            None => None,
        }
    }

    /// Ends the forward politely: half-closes our side, which makes kube send a websocket
    /// close, and waits (bounded) for the server to close its side.
    pub async fn close(mut self) {
        if self.stream.shutdown().await.is_ok() {
            let mut discard = [0u8; 8192];
            let drained = async {
                loop {
                    match self.stream.read(&mut discard).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
            };
            let _ = tokio::time::timeout(CLOSE_GRACE, drained).await;
        }
        // Drop aborts whatever is left of the forwarder's task.
    }
}

impl Drop for PodStream {
    fn drop(&mut self) {
        if let Some(forwarder) = self.forwarder.take() {
            forwarder.abort();
        }
    }
}

impl AsyncRead for PodStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for PodStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Opens one port-forward stream (one websocket) to `target`; the upgrade is bounded by the
/// client's request deadline.
pub async fn open_stream(
    client: &ClusterClient,
    target: &PodPort,
) -> Result<PodStream, ClusterError> {
    let api: kube::Api<Pod> = kube::Api::namespaced(client.kube().clone(), &target.namespace);
    let what = format!("port-forward to {target}");
    let mut forwarder = client
        .call(&what, api.portforward(&target.pod, &[target.port]))
        .await?;
    let Some(stream) = forwarder.take_stream(target.port) else {
        forwarder.abort();
        return Err(ClusterError::Other {
            what,
            reason: "the port-forward gave no stream".to_string(),
        });
    };
    let error = forwarder
        .take_error(target.port)
        .map(|error| Box::pin(error) as Pin<Box<dyn Future<Output = Option<String>> + Send>>);
    Ok(PodStream {
        stream,
        forwarder: Some(forwarder),
        error,
    })
}

/// A local listener on `127.0.0.1:<free port>` that forwards each accepted connection to a pod's
/// port over its own port-forward. Closes on drop, on [`PortForward::close`], or when a signal
/// given to [`PortForward::close_on`] fires (wire Ctrl-C there).
pub struct PortForward {
    local_addr: SocketAddr,
    target: PodPort,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
    /// The last message the kubelet sent about a forwarded connection (e.g. connection refused
    /// inside the pod).
    pod_error: PodErrorSlot,
}

/// Where forwarded connections leave the kubelet's message about the pod's port.
type PodErrorSlot = std::sync::Arc<std::sync::Mutex<Option<String>>>;

impl std::fmt::Debug for PortForward {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortForward")
            .field("local_addr", &self.local_addr)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl PortForward {
    /// Opens one port-forward stream, which shows whether the API server lets us forward to the
    /// pod, then listens on loopback; the first connection accepted goes over that stream (a
    /// client that keeps its connection alive costs one port-forward request in all), later
    /// ones over streams of their own. For reads that do not care which connection is fresh
    /// (the Envoy admin).
    pub async fn start_reusing(
        client: &ClusterClient,
        target: PodPort,
    ) -> Result<Self, ClusterError> {
        Self::open(client, target, true).await
    }

    /// [`PortForward::start_reusing`], but the checking stream is closed again and every
    /// connection gets a stream of its own (a fresh connection is a fresh forward, as the
    /// probe's cold requests need).
    pub async fn start(client: &ClusterClient, target: PodPort) -> Result<Self, ClusterError> {
        Self::open(client, target, false).await
    }

    async fn open(
        client: &ClusterClient,
        target: PodPort,
        reuse_first: bool,
    ) -> Result<Self, ClusterError> {
        let mut first = Some(open_stream(client, &target).await?);
        if !reuse_first && let Some(check) = first.take() {
            check.close().await;
        }
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(|error| ClusterError::Other {
                what: format!("port-forward to {target}"),
                reason: format!("cannot listen on 127.0.0.1: {error}"),
            })?;
        let local_addr = listener.local_addr().map_err(|error| ClusterError::Other {
            what: format!("port-forward to {target}"),
            reason: error.to_string(),
        })?;
        let (stop, stopped) = watch::channel(false);
        let pod_error = PodErrorSlot::default();
        let task = tokio::spawn(accept_loop(
            listener,
            Upstreams {
                client: client.clone(),
                target: target.clone(),
                first,
                pod_error: pod_error.clone(),
            },
            stopped,
        ));
        tracing::debug!(%local_addr, %target, "port-forward listening");
        Ok(Self {
            local_addr,
            target,
            stop,
            task: Some(task),
            pod_error,
        })
    }

    /// The kubelet's message about the pod's port from a connection forwarded so far
    /// (`connection refused` when nothing listens there).
    pub fn pod_error(&self) -> Option<String> {
        self.pod_error
            .lock()
            .ok()
            .and_then(|slot| slot.clone())
            .map(|message| message.split_whitespace().collect::<Vec<_>>().join(" "))
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.local_addr)
    }

    pub fn target(&self) -> &PodPort {
        &self.target
    }

    /// Closes the forward when `signal` completes, e.g. `async { tokio::signal::ctrl_c().await.ok(); }`.
    pub fn close_on<F>(&self, signal: F)
    where
        F: Future + Send + 'static,
    {
        let stop = self.stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = signal => { let _ = stop.send(true); }
                // The forward is gone already: stop waiting for the signal.
                _ = stop.closed() => {}
            }
        });
    }

    /// Stops listening and ends every forwarded connection.
    pub async fn close(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(CLOSE_GRACE, task).await.is_err() {
                abort.abort();
            }
        }
    }
}

impl Drop for PortForward {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Where accepted connections go: the stream opened by `start` first, then new ones.
struct Upstreams {
    client: ClusterClient,
    target: PodPort,
    first: Option<PodStream>,
    pod_error: PodErrorSlot,
}

impl Upstreams {
    async fn next(
        first: Option<PodStream>,
        client: &ClusterClient,
        target: &PodPort,
    ) -> Result<PodStream, ClusterError> {
        match first {
            Some(stream) => Ok(stream),
            None => open_stream(client, target).await,
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    mut upstreams: Upstreams,
    mut stopped: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    let stop = async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => {
                    connections.spawn(forward_connection(
                        socket,
                        upstreams.first.take(),
                        upstreams.client.clone(),
                        upstreams.target.clone(),
                        upstreams.pod_error.clone(),
                    ));
                }
                Err(error) => {
                    tracing::warn!(target = %upstreams.target, "port-forward accept failed: {error}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    // Dropping the JoinSet aborts the open connections; their websockets close with them. A
    // first stream never used is dropped with `upstreams`, which ends its forward.
}

async fn forward_connection(
    mut socket: TcpStream,
    first: Option<PodStream>,
    client: ClusterClient,
    target: PodPort,
    pod_error_slot: PodErrorSlot,
) {
    let mut upstream = match Upstreams::next(first, &client, &target).await {
        Ok(upstream) => upstream,
        Err(error) => {
            tracing::debug!("{error}");
            return;
        }
    };
    let pod_error = upstream.error.take();
    let pod_error = async move {
        match pod_error {
            Some(error) => match error.await {
                Some(message) => message,
                None => std::future::pending().await,
            },
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        copied = tokio::io::copy_bidirectional(&mut socket, &mut upstream) => {
            if let Err(error) = copied {
                tracing::debug!(%target, "port-forward connection ended: {error}");
            }
        }
        message = pod_error => {
            // Said once per cause by whoever reads the forward (`PortForward::pod_error`).
            tracing::debug!(%target, "port-forward failed inside the pod: {message}");
            if let Ok(mut slot) = pod_error_slot.lock() {
                *slot = Some(message);
            }
        }
    }
    upstream.close().await;
}
