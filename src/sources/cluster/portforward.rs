//! Port-forward to a pod over the API server's websocket, as a stream or as a local listener.
//!
//! Traffic forwarded this way enters the pod on loopback, so it reaches a container port without
//! passing the pod's Istio sidecar (docs/facts.md "Where each path goes"), and it reaches Envoy's admin port
//! 15000, which listens on loopback only.

use super::client::ClusterClient;
use super::error::ClusterError;
use futures_util::{SinkExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

/// How long a closing websocket may take to say goodbye before it is cut.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// Bytes a forward buffers each way between the websocket and its reader.
const STREAM_BUFFER: usize = 1024 * 1024;
/// The data and error channels of the one port forwarded, and v5's close signal.
const DATA: u8 = 0;
const ERROR: u8 = 1;
const CLOSE_SIGNAL: u8 = 255;
/// How long a connection still copies after the kubelet's message, for bytes already on the way.
const AFTER_POD_ERROR: Duration = Duration::from_millis(200);
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

/// What a forward's connection has said so far: the kubelet's message about the pod's port, and
/// whether the connection has ended (closed or reset: the same to us).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForwardState {
    pub message: Option<String>,
    pub ended: bool,
}

/// One byte stream to a pod's port. Dropping it ends the port-forward.
pub struct PodStream {
    stream: DuplexStream,
    state: watch::Receiver<ForwardState>,
    task: Option<JoinHandle<()>>,
}

impl PodStream {
    /// Waits for the message the kubelet sends when it cannot reach the port (e.g. connection
    /// refused inside the pod); `None` once the forward's connection has ended without one.
    pub async fn pod_error(&mut self) -> Option<String> {
        let _ = self
            .state
            .wait_for(|state| state.message.is_some() || state.ended)
            .await;
        self.state.borrow().message.clone()
    }

    /// What the connection has said so far, to watch while the stream is in use.
    pub fn state(&self) -> watch::Receiver<ForwardState> {
        self.state.clone()
    }

    /// Ends the forward politely: half-closes our side, which makes us send a websocket close,
    /// and waits (bounded) for the server to close its side.
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
        // Drop aborts whatever is left of the connection's task.
    }
}

impl Drop for PodStream {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
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
    let what = format!("port-forward to {target}");
    let path = <Pod as kube::Resource>::url_path(&(), Some(&target.namespace));
    let request = kube::core::Request::new(path)
        .portforward(&target.pod, &[target.port])
        .map_err(kube::Error::BuildRequest);
    let connect = async {
        let connection = client.kube().connect(request?).await?;
        Ok::<_, kube::Error>(connection.into_stream())
    };
    let socket = client.call(&what, connect).await?;
    Ok(PodStream::over(socket, target.port))
}

impl PodStream {
    /// Runs the port-forward protocol for one port over an upgraded websocket.
    fn over<S>(socket: WebSocketStream<S>, port: u16) -> PodStream
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (ours, theirs) = tokio::io::duplex(STREAM_BUFFER);
        let (state, watched) = watch::channel(ForwardState::default());
        let task = tokio::spawn(pump(socket, port, theirs, state));
        PodStream {
            stream: ours,
            state: watched,
            task: Some(task),
        }
    }
}

/// The kubelet's port-forward over one websocket (`pkg/kubelet/cri/streaming/portforward/
/// websocket.go`): channel 0 carries the port's data, channel 1 its error; each opens with a
/// frame of the port (2 bytes little-endian). When the pod's port cannot be reached the kubelet
/// writes its message on the error channel, closes both, and the connection closes once every
/// port's forward has ended. So the frames from the server are read first and always: the error
/// is kept the moment it is read, whether a close or a reset follows, and our data waits until
/// both channels are open (the error, when there is one, comes right behind them).
async fn pump<S>(
    socket: WebSocketStream<S>,
    port: u16,
    local: DuplexStream,
    state: watch::Sender<ForwardState>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut incoming) = socket.split();
    let (mut from_local, mut to_local) = tokio::io::split(local);
    let mut opened = [false; 2];
    let mut sending = true;
    let mut delivering = true;
    let mut error_text: Vec<u8> = Vec::new();
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let both_open = opened[0] && opened[1];
        tokio::select! {
            biased;
            frame = incoming.next() => match frame {
                Some(Ok(Message::Binary(bytes))) => {
                    let Some((&channel, payload)) = bytes.split_first() else {
                        continue;
                    };
                    match channel {
                        DATA | ERROR if !opened[channel as usize] => {
                            if payload != port.to_le_bytes() {
                                let message = format!(
                                    "the port-forward opened channel {channel} with {payload:?}, not port {port}"
                                );
                                state.send_modify(|state| state.message = Some(message));
                                break;
                            }
                            opened[channel as usize] = true;
                        }
                        DATA if delivering => {
                            // Nobody reading our side any more: keep reading the server.
                            delivering = to_local.write_all(payload).await.is_ok();
                        }
                        ERROR => {
                            error_text.extend_from_slice(payload);
                            let message = normalize(&error_text);
                            state.send_modify(|state| state.message = Some(message));
                        }
                        // v5.channel.k8s.io: the server closed one channel.
                        CLOSE_SIGNAL if payload.first() == Some(&DATA) => {
                            let _ = to_local.shutdown().await;
                            delivering = false;
                        }
                        _ => {}
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
            read = from_local.read(&mut buffer), if sending && both_open => match read {
                Ok(0) | Err(_) => {
                    sending = false;
                    // Our side is done: close, then read until the server closes too.
                    if sink.send(Message::Close(None)).await.is_err() {
                        break;
                    }
                }
                Ok(read) => {
                    let mut frame = Vec::with_capacity(read + 1);
                    frame.push(DATA);
                    frame.extend_from_slice(&buffer[..read]);
                    if sink.send(Message::binary(frame)).await.is_err() {
                        break;
                    }
                }
            },
        }
    }
    let _ = to_local.shutdown().await;
    state.send_modify(|state| state.ended = true);
}

/// The kubelet's message on one line.
fn normalize(text: &[u8]) -> String {
    String::from_utf8_lossy(text)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// A local listener on `127.0.0.1:<free port>` that forwards each accepted connection to a pod's
/// port over its own port-forward. Closes on drop, on [`PortForward::close`], or when a signal
/// given to [`PortForward::close_on`] fires (wire Ctrl-C there).
pub struct PortForward {
    local_addr: SocketAddr,
    target: PodPort,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
    /// What the forwarded connections have said: the kubelet's last message about the pod's
    /// port (e.g. connection refused inside the pod), and how many are still open.
    forwards: Forwards,
}

/// The forwarded connections as a whole, shared by the listener's connections.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ForwardsState {
    message: Option<String>,
    /// Connections accepted and not yet ended.
    open: usize,
}

type Forwards = std::sync::Arc<watch::Sender<ForwardsState>>;

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
        let forwards = Forwards::new(watch::channel(ForwardsState::default()).0);
        if let Some(first) = &first {
            // The kubelet says a port refuses right after the upgrade, before any connection.
            tokio::spawn(keep_message(first.state(), forwards.clone()));
        }
        let task = tokio::spawn(accept_loop(
            listener,
            Upstreams {
                client: client.clone(),
                target: target.clone(),
                first,
                forwards: forwards.clone(),
            },
            stopped,
        ));
        tracing::debug!(%local_addr, %target, "port-forward listening");
        Ok(Self {
            local_addr,
            target,
            stop,
            task: Some(task),
            forwards,
        })
    }

    /// The kubelet's message about the pod's port from a forward so far (`connection refused`
    /// when nothing listens there).
    pub fn pod_error(&self) -> Option<String> {
        self.forwards.borrow().message.clone()
    }

    /// After a connection through the forward failed: the kubelet's message, waiting only
    /// while a forwarded connection is still open (at most `bound`). A forward whose connection
    /// has closed or been reset has said all it will.
    pub async fn failure(&self, bound: Duration) -> Option<String> {
        let mut state = self.forwards.subscribe();
        let settled = state.wait_for(|state| state.message.is_some() || state.open == 0);
        let _ = tokio::time::timeout(bound, settled).await;
        self.pod_error()
    }

    /// Waits for the kubelet's message about the pod's port; pending while there is none.
    pub async fn pod_error_arrives(&self) -> String {
        let mut state = self.forwards.subscribe();
        let message = state
            .wait_for(|state| state.message.is_some())
            .await
            .map(|state| state.message.clone().unwrap_or_default());
        match message {
            Ok(message) => message,
            Err(_) => std::future::pending().await,
        }
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

/// Copies a stream's message, when it has one, to the forward's: until the stream ends.
async fn keep_message(mut stream: watch::Receiver<ForwardState>, forwards: Forwards) {
    let _ = stream
        .wait_for(|state| state.message.is_some() || state.ended)
        .await;
    let message = stream.borrow().message.clone();
    if let Some(message) = message {
        forwards.send_modify(|state| state.message = Some(message));
    }
}

/// Where accepted connections go: the stream opened by `start` first, then new ones.
struct Upstreams {
    client: ClusterClient,
    target: PodPort,
    first: Option<PodStream>,
    forwards: Forwards,
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
                    // Counted here, so a reader that saw its request fail knows one is open.
                    upstreams.forwards.send_modify(|state| state.open += 1);
                    let ended = Ended(upstreams.forwards.clone());
                    connections.spawn(forward_connection(
                        socket,
                        upstreams.first.take(),
                        upstreams.client.clone(),
                        upstreams.target.clone(),
                        ended,
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

/// One forwarded connection's place in the count: it ends when dropped, aborted or not.
struct Ended(Forwards);

impl Ended {
    fn keep(&self, message: Option<String>) {
        if let Some(message) = message {
            // Said once per cause by whoever reads the forward (`PortForward::pod_error`).
            self.0.send_modify(|state| state.message = Some(message));
        }
    }
}

impl Drop for Ended {
    fn drop(&mut self) {
        self.0
            .send_modify(|state| state.open = state.open.saturating_sub(1));
    }
}

async fn forward_connection(
    mut socket: TcpStream,
    first: Option<PodStream>,
    client: ClusterClient,
    target: PodPort,
    ended: Ended,
) {
    let mut upstream = match Upstreams::next(first, &client, &target).await {
        Ok(upstream) => upstream,
        Err(error) => {
            tracing::debug!("{error}");
            return;
        }
    };
    let mut state = upstream.state();
    let last = upstream.state();
    let pod_error = async move {
        let message = state
            .wait_for(|state| state.message.is_some())
            .await
            .map(|state| state.message.clone());
        match message {
            Ok(message) => message,
            // The stream ended without a message: the copy ends with it.
            Err(_) => std::future::pending().await,
        }
    };
    let copied = {
        let copy = tokio::io::copy_bidirectional(&mut socket, &mut upstream);
        tokio::pin!(copy);
        tokio::select! {
        copied = &mut copy => Some(copied),
        message = pod_error => {
            // Known at once to whoever reads the forward; the kubelet closes the forward
            // behind its message, so what is in flight gets a moment to arrive.
            tracing::debug!(%target, "port-forward failed inside the pod: {message:?}");
            ended.keep(message);
            tokio::time::timeout(AFTER_POD_ERROR, &mut copy).await.ok()
        }
        }
    };
    if let Some(Err(error)) = copied {
        tracing::debug!(%target, "port-forward connection ended: {error}");
    }
    ended.keep(last.borrow().message.clone());
    drop(socket);
    upstream.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::protocol::Role;

    const PORT: u16 = 15000;
    const BOUND: Duration = Duration::from_secs(10);

    /// A forward over an in-memory connection, and the server's end of it.
    async fn pair() -> (PodStream, WebSocketStream<DuplexStream>) {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let client = WebSocketStream::from_raw_socket(client, Role::Client, None).await;
        let server = WebSocketStream::from_raw_socket(server, Role::Server, None).await;
        (PodStream::over(client, PORT), server)
    }

    fn frame(channel: u8, bytes: &[u8]) -> Message {
        let mut frame = vec![channel];
        frame.extend_from_slice(bytes);
        Message::binary(frame)
    }

    async fn open_channels(server: &mut WebSocketStream<DuplexStream>) {
        for channel in [DATA, ERROR] {
            server
                .send(frame(channel, &PORT.to_le_bytes()))
                .await
                .unwrap();
        }
    }

    #[tokio::test]
    async fn the_message_is_kept_when_the_connection_drops_right_behind_it() {
        let (mut stream, mut server) = pair().await;
        open_channels(&mut server).await;
        server
            .send(frame(
                ERROR,
                b"error forwarding port 15000:\n connection refused",
            ))
            .await
            .unwrap();
        // No close frame: the connection just ends, as a reset does.
        drop(server);
        let message = tokio::time::timeout(BOUND, stream.pod_error())
            .await
            .unwrap();
        assert_eq!(
            message.as_deref(),
            Some("error forwarding port 15000: connection refused")
        );
        let mut state = stream.state();
        tokio::time::timeout(BOUND, state.wait_for(|state| state.ended))
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn a_close_without_a_message_ends_the_wait_at_once() {
        let (mut stream, mut server) = pair().await;
        open_channels(&mut server).await;
        server.send(Message::Close(None)).await.unwrap();
        let message = tokio::time::timeout(BOUND, stream.pod_error())
            .await
            .unwrap();
        assert_eq!(message, None);
        let mut rest = Vec::new();
        let read = tokio::time::timeout(BOUND, stream.read_to_end(&mut rest)).await;
        assert!(matches!(read, Ok(Ok(0))), "{read:?}");
    }

    #[tokio::test]
    async fn data_waits_for_both_channels_then_flows_both_ways() {
        let (mut stream, mut server) = pair().await;
        stream.write_all(b"GET /ready").await.unwrap();
        // Nothing is sent before the kubelet has opened the port's channels.
        let early = tokio::time::timeout(Duration::from_millis(200), server.next()).await;
        assert!(early.is_err(), "sent before the channels opened: {early:?}");
        open_channels(&mut server).await;
        let sent = tokio::time::timeout(BOUND, server.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(sent, frame(DATA, b"GET /ready"));
        server.send(frame(DATA, b"LIVE")).await.unwrap();
        let mut answer = [0u8; 4];
        tokio::time::timeout(BOUND, stream.read_exact(&mut answer))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&answer, b"LIVE");
    }

    #[tokio::test]
    async fn a_channel_opened_for_another_port_is_said() {
        let (mut stream, mut server) = pair().await;
        server
            .send(frame(DATA, &8000u16.to_le_bytes()))
            .await
            .unwrap();
        let message = tokio::time::timeout(BOUND, stream.pod_error())
            .await
            .unwrap()
            .unwrap();
        assert!(message.contains("not port 15000"), "{message}");
    }
}
