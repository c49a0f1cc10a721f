//! The kubelet's side of a websocket port-forward: per requested port, a data channel (2·i) and
//! an error channel (2·i+1), each opened by a frame carrying the port as 2 bytes little-endian;
//! then data frames `[channel, bytes…]` both ways. A port that cannot be reached gets a message on
//! its error channel, as the kubelet writes it.

use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

/// The subprotocols the server agrees to, preferred first. kube-rs offers v5 then v4; the
/// kubelet's port-forward speaks the v4 binary framing (v5 frames port-forward the same way).
pub const SUBPROTOCOLS: &[&str] = &[
    "v4.channel.k8s.io",
    "v5.channel.k8s.io",
    "portforward.k8s.io",
];

/// The first subprotocol of ours the client offered (`Sec-WebSocket-Protocol: a, b`).
pub fn negotiate(offered: &str) -> Option<&'static str> {
    let offered: Vec<&str> = offered.split(',').map(str::trim).collect();
    SUBPROTOCOLS
        .iter()
        .copied()
        .find(|protocol| offered.contains(protocol))
}

/// `ports=8000` or `ports=8000,15000` (kube-rs encodes the comma).
pub fn parse_ports(query: &[(String, String)]) -> Result<Vec<u16>, String> {
    let mut ports = Vec::new();
    for (key, value) in query {
        if key == "ports" {
            for port in value.split(',') {
                ports.push(
                    port.trim()
                        .parse::<u16>()
                        .map_err(|_| format!("invalid port {port:?}"))?,
                );
            }
        }
    }
    if ports.is_empty() {
        return Err("at least one port must be given in ports=".to_string());
    }
    Ok(ports)
}

/// One forwarded port: where it goes inside the "pod" (a loopback address), if anywhere.
pub struct PortTarget {
    pub port: u16,
    pub address: Option<SocketAddr>,
}

/// How long a reset waits for the message to be on its way: a reset discards the unsent.
const RESET_AFTER: std::time::Duration = std::time::Duration::from_millis(20);

/// What the server does with a forward whose port refuses, after writing the kubelet's message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RefusedForward {
    /// As the kubelet does (`pkg/kubelet/cri/streaming/portforward/websocket.go`: `portForward`
    /// closes the port's data and error streams behind the message, and the connection closes
    /// once every port's forward has ended): a close frame, then the connection is dropped
    /// without waiting for the client's close, unread bytes and all (a reset if the client had
    /// sent some).
    #[default]
    Close,
    /// The message, then the TCP connection is reset right behind it (no close frame).
    Reset,
    /// The message, and the connection stays open until the client closes it (as an API server
    /// that keeps a refused forward open).
    KeepOpen,
}

/// Serves one upgraded connection until either side closes, adding the bytes the client sends
/// to its data channels to `client_bytes`.
pub async fn serve(
    upgraded: hyper::upgrade::Upgraded,
    pod: String,
    targets: Vec<PortTarget>,
    client_bytes: &AtomicU64,
    refused: RefusedForward,
) {
    // The TLS stream under the upgrade, so that a reset can close its socket with SO_LINGER 0.
    match upgraded.downcast::<TokioIo<TlsStream<TcpStream>>>() {
        Ok(parts) => {
            let tls = parts.io.into_inner();
            if refused == RefusedForward::Reset {
                let _ = tls.get_ref().0.set_zero_linger();
            }
            let socket = WebSocketStream::from_partially_read(
                tls,
                parts.read_buf.to_vec(),
                Role::Server,
                None,
            )
            .await;
            run(socket, pod, targets, client_bytes, refused).await;
        }
        Err(upgraded) => {
            let socket =
                WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
            run(socket, pod, targets, client_bytes, refused).await;
        }
    }
}

async fn run<S>(
    socket: WebSocketStream<S>,
    pod: String,
    targets: Vec<PortTarget>,
    client_bytes: &AtomicU64,
    refused: RefusedForward,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut sink, mut incoming) = socket.split();
    let (to_client, mut outgoing) = mpsc::channel::<(usize, Message)>(32);
    let mut writers: Vec<Option<OwnedWriteHalf>> = Vec::new();
    // Ports whose forward has not ended.
    let mut open_ports = 0usize;

    for (index, target) in targets.iter().enumerate() {
        let data_channel = (2 * index) as u8;
        let [low, high] = target.port.to_le_bytes();
        for channel in [data_channel, data_channel + 1] {
            if sink
                .send(Message::binary(vec![channel, low, high]))
                .await
                .is_err()
            {
                return;
            }
        }
        let connected = match target.address {
            Some(address) => TcpStream::connect(address)
                .await
                .map_err(|error| error.to_string()),
            None => Err("connect: connection refused".to_string()),
        };
        match connected {
            Ok(stream) => {
                let (mut reader, writer) = stream.into_split();
                writers.push(Some(writer));
                open_ports += 1;
                let to_client = to_client.clone();
                tokio::spawn(async move {
                    let mut buffer = vec![0u8; 16 * 1024];
                    loop {
                        match reader.read(&mut buffer).await {
                            Ok(0) | Err(_) => break,
                            Ok(read) => {
                                let mut frame = Vec::with_capacity(read + 1);
                                frame.push(data_channel);
                                frame.extend_from_slice(&buffer[..read]);
                                if to_client
                                    .send((index, Message::binary(frame)))
                                    .await
                                    .is_err()
                                {
                                    return;
                                }
                            }
                        }
                    }
                    // The port's connection ended: so has its forward.
                    let _ = to_client.send((index, Message::Close(None))).await;
                });
            }
            Err(reason) => {
                writers.push(None);
                let message = format!(
                    "error forwarding port {} to pod {pod}, uid : failed to connect to localhost:{} inside namespace of the pod: IPv4: dial tcp4 127.0.0.1:{}: {reason}",
                    target.port, target.port, target.port
                );
                let mut frame = vec![data_channel + 1];
                frame.extend_from_slice(message.as_bytes());
                let _ = sink.send(Message::binary(frame)).await;
                let _ = sink.flush().await;
            }
        }
    }
    drop(to_client);
    if open_ports == 0 {
        match refused {
            RefusedForward::Close => {
                let _ = sink.send(Message::Close(None)).await;
                return;
            }
            RefusedForward::Reset => {
                // Dropped with SO_LINGER 0: a reset, which also discards what the kernel has not
                // sent yet, so first a moment for the message to leave (a reset *behind* it).
                tokio::time::sleep(RESET_AFTER).await;
                return;
            }
            RefusedForward::KeepOpen => {}
        }
    }

    loop {
        tokio::select! {
            frame = incoming.next() => match frame {
                Some(Ok(Message::Binary(bytes))) if !bytes.is_empty() => {
                    let channel = bytes[0] as usize;
                    // Clients write only to data channels; anything else is ignored.
                    if channel % 2 == 0
                        && let Some(Some(writer)) = writers.get_mut(channel / 2)
                    {
                        client_bytes.fetch_add(bytes.len() as u64 - 1, Ordering::SeqCst);
                        if writer.write_all(&bytes[1..]).await.is_err() {
                            break;
                        }
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
            frame = outgoing.recv(), if open_ports > 0 => match frame {
                Some((_, frame)) if frame.is_close() => {
                    open_ports -= 1;
                    // The connection closes once every port's forward has ended.
                    if open_ports == 0 {
                        let _ = sink.send(frame).await;
                        break;
                    }
                }
                Some((_, frame)) => {
                    if sink.send(frame).await.is_err() {
                        break;
                    }
                }
                None => break,
            },
        }
    }
    let _ = sink.close().await;
}
