//! Loopback proxies for tests, as bastions and corporate networks run them: an HTTP CONNECT
//! proxy and a SOCKS5 proxy (no authentication, host names resolved by the proxy). Each resolves
//! the names it was given to loopback addresses, so a client reaches `kube.test` only through it,
//! and counts the tunnels it opened.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, copy_bidirectional};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// How long a client may take to say where it wants to go.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyKind {
    Connect,
    Socks5,
}

pub struct TestProxy {
    address: SocketAddr,
    kind: ProxyKind,
    tunnels: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestProxy {
    /// Starts a proxy of `kind` on `127.0.0.1:<free port>` that resolves `hosts` (name ->
    /// loopback address); other names must be IP literals.
    pub async fn start(kind: ProxyKind, hosts: &[(&str, SocketAddr)]) -> TestProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let hosts: Arc<HashMap<String, std::net::IpAddr>> = Arc::new(
            hosts
                .iter()
                .map(|(name, address)| (name.to_string(), address.ip()))
                .collect(),
        );
        let tunnels = Arc::new(AtomicU64::new(0));
        let counter = tunnels.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let hosts = hosts.clone();
                let counter = counter.clone();
                tokio::spawn(async move {
                    let opened = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
                        match kind {
                            ProxyKind::Connect => open_connect(client, &hosts).await,
                            ProxyKind::Socks5 => open_socks5(client, &hosts).await,
                        }
                    })
                    .await;
                    if let Ok(Some((mut client, mut upstream))) = opened {
                        counter.fetch_add(1, Ordering::SeqCst);
                        let _ = copy_bidirectional(&mut client, &mut upstream).await;
                    }
                });
            }
        });
        TestProxy {
            address,
            kind,
            tunnels,
            task,
        }
    }

    /// `http://127.0.0.1:PORT` or `socks5://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        match self.kind {
            ProxyKind::Connect => format!("http://{}", self.address),
            ProxyKind::Socks5 => format!("socks5://{}", self.address),
        }
    }

    /// Tunnels opened so far.
    pub fn tunnels(&self) -> u64 {
        self.tunnels.load(Ordering::SeqCst)
    }
}

fn resolve(hosts: &HashMap<String, std::net::IpAddr>, host: &str, port: u16) -> Option<SocketAddr> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip = hosts.get(host).copied().or_else(|| host.parse().ok())?;
    Some(SocketAddr::new(ip, port))
}

/// `CONNECT host:port HTTP/1.1` … `\r\n\r\n`, answered `200` once the upstream is connected.
async fn open_connect(
    mut client: TcpStream,
    hosts: &HashMap<String, std::net::IpAddr>,
) -> Option<(TcpStream, TcpStream)> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16 * 1024 || client.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    let mut words = head.lines().next()?.split_whitespace();
    if words.next()? != "CONNECT" {
        let _ = client
            .write_all(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n")
            .await;
        return None;
    }
    let target = words.next()?;
    let (host, port) = target.rsplit_once(':')?;
    let Some(upstream) = connect(resolve(hosts, host, port.parse().ok()?)).await else {
        let _ = client
            .write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n")
            .await;
        return None;
    };
    client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await
        .ok()?;
    Some((client, upstream))
}

/// RFC 1928 with the "no authentication" method and the CONNECT command.
async fn open_socks5(
    mut client: TcpStream,
    hosts: &HashMap<String, std::net::IpAddr>,
) -> Option<(TcpStream, TcpStream)> {
    let mut greeting = [0u8; 2];
    client.read_exact(&mut greeting).await.ok()?;
    if greeting[0] != 5 {
        return None;
    }
    let mut methods = vec![0u8; usize::from(greeting[1])];
    client.read_exact(&mut methods).await.ok()?;
    if !methods.contains(&0) {
        client.write_all(&[5, 0xff]).await.ok()?;
        return None;
    }
    client.write_all(&[5, 0]).await.ok()?;
    let mut request = [0u8; 4];
    client.read_exact(&mut request).await.ok()?;
    if request[0] != 5 || request[1] != 1 {
        return None;
    }
    let host = match request[3] {
        1 => {
            let mut octets = [0u8; 4];
            client.read_exact(&mut octets).await.ok()?;
            std::net::Ipv4Addr::from(octets).to_string()
        }
        3 => {
            let mut length = [0u8; 1];
            client.read_exact(&mut length).await.ok()?;
            let mut name = vec![0u8; usize::from(length[0])];
            client.read_exact(&mut name).await.ok()?;
            String::from_utf8(name).ok()?
        }
        4 => {
            let mut octets = [0u8; 16];
            client.read_exact(&mut octets).await.ok()?;
            std::net::Ipv6Addr::from(octets).to_string()
        }
        _ => return None,
    };
    let mut port = [0u8; 2];
    client.read_exact(&mut port).await.ok()?;
    let port = u16::from_be_bytes(port);
    let Some(upstream) = connect(resolve(hosts, &host, port)).await else {
        // Host unreachable.
        let _ = client.write_all(&[5, 4, 0, 1, 0, 0, 0, 0, 0, 0]).await;
        return None;
    };
    client
        .write_all(&[5, 0, 0, 1, 127, 0, 0, 1, 0, 0])
        .await
        .ok()?;
    Some((client, upstream))
}

async fn connect(address: Option<SocketAddr>) -> Option<TcpStream> {
    TcpStream::connect(address?).await.ok()
}
