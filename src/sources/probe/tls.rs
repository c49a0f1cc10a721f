//! HTTPS for the probe: whom to trust (the system's CA roots plus `--mesh-ca`, or nobody checked
//! with `--mesh-insecure-skip-tls-verify`), which name TLS sends and checks when the URL names an
//! address (a port-forward to a gateway's 443 listener), a handshake check before the timed
//! requests that turns certificate problems into one-line errors, and a clock on the handshake
//! so a new connection's time splits into TCP and TLS.

use super::ProbeError;
use reqwest::Url;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{
    ClientSessionMemoryCache, ClientSessionStore, ResolvesClientCert, Resumption,
    Tls12ClientSessionValue, Tls13ClientSessionValue,
};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, NamedGroup, SignatureScheme};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// TLS sessions a client remembers for resumption.
const SESSION_CACHE: usize = 64;
/// Handshake starts kept unclaimed before the oldest are dropped.
const MAX_PENDING_STARTS: usize = 4096;
/// How long a finished handshake check waits to close its connection politely.
const CLOSE_WAIT: Duration = Duration::from_secs(1);
/// Names of a certificate shown in a name-mismatch error.
const SHOWN_NAMES: usize = 4;

/// The TLS flags: `--mesh-ca FILE` and `--mesh-insecure-skip-tls-verify`. They apply to every https
/// URL the probe is given (mesh and direct).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    pub ca_file: Option<PathBuf>,
    pub insecure_skip_verify: bool,
}

/// How the server's certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustBasis {
    /// Against the system's CA roots plus those of `--mesh-ca`.
    Verified {
        system_roots: usize,
        ca_file: Option<(String, usize)>,
    },
    /// `--mesh-insecure-skip-tls-verify`: any certificate is accepted.
    NotVerified,
}

impl TrustBasis {
    pub fn describe(&self) -> String {
        match self {
            TrustBasis::Verified {
                system_roots,
                ca_file: Some((file, count)),
            } => format!(
                "verified against --mesh-ca {file} ({count} CA) and {system_roots} system roots"
            ),
            TrustBasis::Verified {
                system_roots,
                ca_file: None,
            } => format!("verified against {system_roots} system roots"),
            TrustBasis::NotVerified => "NOT verified (--mesh-insecure-skip-tls-verify)".to_string(),
        }
    }
}

/// The trust every https client of one probe run shares.
#[derive(Clone)]
pub struct TlsTrust {
    provider: Arc<CryptoProvider>,
    verifier: Arc<dyn ServerCertVerifier>,
    pub basis: TrustBasis,
}

impl std::fmt::Debug for TlsTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTrust")
            .field("basis", &self.basis)
            .finish_non_exhaustive()
    }
}

impl TlsTrust {
    /// Reads the system's CA roots and `--mesh-ca`, or trusts anything with
    /// `--mesh-insecure-skip-tls-verify`.
    pub fn load(options: &TlsOptions) -> Result<Self, ProbeError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        if options.insecure_skip_verify {
            let verifier = Arc::new(AnyCertificate {
                provider: Arc::clone(&provider),
            });
            return Ok(Self {
                provider,
                verifier,
                basis: TrustBasis::NotVerified,
            });
        }
        let mut roots = rustls::RootCertStore::empty();
        let ca_file = match &options.ca_file {
            Some(path) => {
                let certificates = read_ca_file(path)?;
                let count = certificates.len();
                for certificate in certificates {
                    roots.add(certificate).map_err(|error| ProbeError::MeshCa {
                        path: path.display().to_string(),
                        reason: error.to_string(),
                    })?;
                }
                Some((path.display().to_string(), count))
            }
            None => None,
        };
        let (system_roots, _) =
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        if roots.is_empty() {
            return Err(ProbeError::NoTrustRoots);
        }
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::clone(&provider),
        )
        .build()
        .map_err(|error| ProbeError::Client(error.to_string()))?;
        Ok(Self {
            provider,
            verifier,
            basis: TrustBasis::Verified {
                system_roots,
                ca_file,
            },
        })
    }

    pub fn verified(&self) -> bool {
        self.basis != TrustBasis::NotVerified
    }

    /// A rustls config with this trust, ALPN for the HTTP version spoken, and `resumption`.
    pub(crate) fn client_config(
        &self,
        http2: bool,
        resumption: Resumption,
    ) -> Result<rustls::ClientConfig, ProbeError> {
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_safe_default_protocol_versions()
            .map_err(|error| ProbeError::Client(error.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::clone(&self.verifier))
            .with_no_client_auth();
        config.alpn_protocols = vec![if http2 {
            b"h2".to_vec()
        } else {
            b"http/1.1".to_vec()
        }];
        config.resumption = resumption;
        Ok(config)
    }
}

fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, ProbeError> {
    let shown = || path.display().to_string();
    let bytes = std::fs::read(path).map_err(|error| ProbeError::MeshCa {
        path: shown(),
        reason: error.to_string(),
    })?;
    let certificates = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| ProbeError::MeshCa {
            path: shown(),
            reason: error.to_string(),
        })?;
    if certificates.is_empty() {
        return Err(ProbeError::MeshCa {
            path: shown(),
            reason: "no PEM CERTIFICATE block in it".to_string(),
        });
    }
    Ok(certificates)
}

/// `--mesh-insecure-skip-tls-verify`: any certificate for any name is accepted; the handshake's
/// signatures are still checked, so the connection is encrypted, only not authenticated.
#[derive(Debug)]
struct AnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Notes that the server asked for a client certificate, and sends none.
#[derive(Debug, Default)]
struct ClientCertificateAsked(AtomicBool);

impl ResolvesClientCert for ClientCertificateAsked {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.0.store(true, Ordering::Relaxed);
        None
    }

    fn has_certs(&self) -> bool {
        false
    }
}

/// A session cache that also notes when each handshake starts: rustls asks its session store
/// for the key-exchange hint while it writes the ClientHello, right after the TCP connection is
/// made. The connector's timer covers TCP and TLS; the start splits them.
#[derive(Debug)]
pub(crate) struct HandshakeClock {
    sessions: ClientSessionMemoryCache,
    starts: Mutex<Vec<Instant>>,
}

impl HandshakeClock {
    pub(crate) fn new() -> Self {
        Self {
            sessions: ClientSessionMemoryCache::new(SESSION_CACHE),
            starts: Mutex::new(Vec::new()),
        }
    }

    /// The first unclaimed handshake start in `from..=to`, now claimed.
    pub(crate) fn claim_start(&self, from: Instant, to: Instant) -> Option<Instant> {
        let mut starts = self.starts.lock().unwrap_or_else(PoisonError::into_inner);
        let index = starts
            .iter()
            .position(|start| *start >= from && *start <= to)?;
        Some(starts.remove(index))
    }

    fn note_start(&self) {
        let mut starts = self.starts.lock().unwrap_or_else(PoisonError::into_inner);
        if starts.len() >= MAX_PENDING_STARTS {
            starts.remove(0);
        }
        starts.push(Instant::now());
    }
}

impl ClientSessionStore for HandshakeClock {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: NamedGroup) {
        self.sessions.set_kx_hint(server_name, group);
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<NamedGroup> {
        self.note_start();
        self.sessions.kx_hint(server_name)
    }

    fn set_tls12_session(&self, server_name: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.sessions.set_tls12_session(server_name, value);
    }

    fn tls12_session(&self, server_name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.sessions.tls12_session(server_name)
    }

    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        self.sessions.remove_tls12_session(server_name);
    }

    fn insert_tls13_ticket(
        &self,
        server_name: ServerName<'static>,
        value: Tls13ClientSessionValue,
    ) {
        self.sessions.insert_tls13_ticket(server_name, value);
    }

    fn take_tls13_ticket(
        &self,
        server_name: &ServerName<'static>,
    ) -> Option<Tls13ClientSessionValue> {
        self.sessions.take_tls13_ticket(server_name)
    }
}

/// Connect to these addresses whenever a URL's host is `name` (reqwest's `resolve`): how an https
/// request to a port-forward carries the gateway's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectTo {
    pub name: String,
    /// Ports here are ignored: the URL's port is used.
    pub addrs: Vec<SocketAddr>,
}

/// Where one path's requests go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathAddress {
    /// The base URL requested. For https its host is the name TLS sends (SNI) and the
    /// certificate must carry.
    pub base: Url,
    /// Set when the user's URL named an address (an IP or `localhost`, e.g. a port-forward) and
    /// `--mesh-host` names the server: `base` then has that name, and this says where to connect.
    pub connect_to: Option<ConnectTo>,
}

impl PathAddress {
    pub fn is_https(&self) -> bool {
        self.base.scheme() == "https"
    }

    /// The name TLS sends and checks: the base URL's host.
    pub fn tls_name(&self) -> String {
        match url_ip(&self.base) {
            Some(ip) => ip.to_string(),
            None => self.base.host_str().unwrap_or_default().to_string(),
        }
    }
}

/// Where the requests to `base` go, given the Host header `host`. An https URL whose host is an
/// IP or `localhost` is rewritten to `host` (without any port) so TLS sends and checks that name,
/// and the connection still goes to the URL's address. Everything else is unchanged: with a
/// DNS name in the URL, TLS uses that name, and the Host header alone carries `host`.
pub fn path_address(base: &Url, host: Option<&str>) -> Result<PathAddress, ProbeError> {
    let unchanged = PathAddress {
        base: base.clone(),
        connect_to: None,
    };
    let Some(host) = host.map(str::trim).filter(|host| !host.is_empty()) else {
        return Ok(unchanged);
    };
    if base.scheme() != "https" {
        return Ok(unchanged);
    }
    let addrs: Vec<IpAddr> = match (url_ip(base), base.host_str()) {
        (Some(ip), _) => vec![ip],
        (None, Some(name)) if name.eq_ignore_ascii_case("localhost") => vec![
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ],
        _ => return Ok(unchanged),
    };
    let name = host_name(host);
    let invalid = |reason: String| ProbeError::InvalidMeshHost {
        host: host.to_string(),
        reason,
    };
    match ServerName::try_from(name.to_string()) {
        Ok(ServerName::DnsName(_)) => {}
        Ok(_) => return Ok(unchanged),
        Err(error) => return Err(invalid(error.to_string())),
    }
    let mut rewritten = base.clone();
    rewritten
        .set_host(Some(name))
        .map_err(|error| invalid(error.to_string()))?;
    Ok(PathAddress {
        base: rewritten,
        connect_to: Some(ConnectTo {
            name: name.to_ascii_lowercase(),
            addrs: addrs.into_iter().map(|ip| SocketAddr::new(ip, 0)).collect(),
        }),
    })
}

/// The URL's host when it is an IP address (`[::1]` included).
fn url_ip(url: &Url) -> Option<IpAddr> {
    url.host_str()?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// `llm.example.com` from a Host header `llm.example.com:8443` (a bracketed IPv6 keeps its
/// brackets off).
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) && !name.contains(':') => {
            name
        }
        _ => host,
    }
}

/// One TLS handshake with the server of `address`, no HTTP request, before the timed requests:
/// a certificate or handshake problem becomes a one-line error naming `shown_url` and the fix.
/// A server that cannot be reached at all is left to the timed request to report.
pub async fn check_handshake(
    shown_url: &str,
    address: &PathAddress,
    trust: &TlsTrust,
    http2: bool,
    timeout: Duration,
) -> Result<(), ProbeError> {
    let name = address.tls_name();
    let server_name = match url_ip(&address.base) {
        Some(ip) => ServerName::IpAddress(ip.into()),
        None => ServerName::try_from(name.clone()).map_err(|error| ProbeError::InvalidUrl {
            url: shown_url.to_string(),
            reason: error.to_string(),
        })?,
    };
    let Some(port) = address.base.port_or_known_default() else {
        return Ok(());
    };
    let addrs: Vec<SocketAddr> = match &address.connect_to {
        Some(connect_to) => connect_to
            .addrs
            .iter()
            .map(|addr| SocketAddr::new(addr.ip(), port))
            .collect(),
        None => match tokio::time::timeout(timeout, tokio::net::lookup_host((name.as_str(), port)))
            .await
        {
            Ok(Ok(found)) => found.collect(),
            _ => return Ok(()),
        },
    };
    let mut tcp = None;
    for addr in addrs {
        if let Ok(Ok(stream)) =
            tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await
        {
            tcp = Some(stream);
            break;
        }
    }
    let Some(tcp) = tcp else {
        return Ok(());
    };
    let mut config = trust.client_config(http2, Resumption::disabled())?;
    let asked = Arc::new(ClientCertificateAsked::default());
    config.client_auth_cert_resolver = Arc::clone(&asked) as Arc<dyn ResolvesClientCert>;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let fail = |problem: String| ProbeError::Tls {
        url: shown_url.to_string(),
        problem,
    };
    let outcome = tokio::time::timeout(timeout, connector.connect(server_name, tcp)).await;
    if asked.0.load(Ordering::Relaxed) {
        return Err(fail(format!(
            "the server for {name} asks for a client certificate (mutual TLS, e.g. a Gateway with tls.mode MUTUAL) and the probe has none to send; probe through an HTTPS server with tls.mode SIMPLE, or a plain-HTTP port of the gateway"
        )));
    }
    match outcome {
        Err(_) => Err(fail(format!(
            "no TLS handshake with {name} within {}: check that the port serves TLS (an http:// URL if it serves plain HTTP)",
            crate::units::duration::display(timeout)
        ))),
        Ok(Err(error)) => Err(fail(handshake_problem(&error, &name))),
        Ok(Ok(mut stream)) => {
            use tokio::io::AsyncWriteExt;
            let _ = tokio::time::timeout(CLOSE_WAIT, stream.shutdown()).await;
            Ok(())
        }
    }
}

const TRUST_FIX: &str = "give the CA that signed it with --mesh-ca FILE (PEM), or --mesh-insecure-skip-tls-verify to skip the check";

/// What went wrong in a handshake, and what to do, in words.
fn handshake_problem(error: &std::io::Error, name: &str) -> String {
    match error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => tls_problem(tls, name),
        None => match error.kind() {
            std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::BrokenPipe => format!(
                "the server closed the connection during the TLS handshake for {name} ({error}): the port may not serve TLS, or serve no certificate for {name}; check --mesh-host, or use an http:// URL"
            ),
            _ => format!("the TLS handshake for {name} failed: {error}"),
        },
    }
}

fn tls_problem(error: &rustls::Error, name: &str) -> String {
    use rustls::Error;
    match error {
        Error::InvalidCertificate(certificate) => certificate_problem(certificate, name),
        Error::AlertReceived(alert) => format!(
            "the server refused the TLS handshake for {name} ({alert:?} alert): check that --mesh-host is a name the gateway serves over TLS"
        ),
        Error::InvalidMessage(_)
        | Error::InappropriateMessage { .. }
        | Error::InappropriateHandshakeMessage { .. } => format!(
            "the TLS handshake for {name} failed ({error}): the port may not serve TLS; use an http:// URL if it serves plain HTTP"
        ),
        other => format!("the TLS handshake for {name} failed: {other}"),
    }
}

fn certificate_problem(error: &CertificateError, name: &str) -> String {
    match error {
        CertificateError::UnknownIssuer => format!(
            "the server's TLS certificate for {name} is not signed by a trusted CA (unknown issuer); {TRUST_FIX}"
        ),
        CertificateError::NotValidForName => format!(
            "the server's TLS certificate is not valid for {name}; give --mesh-host a name the certificate carries, or --mesh-insecure-skip-tls-verify"
        ),
        CertificateError::NotValidForNameContext { presented, .. } => {
            let mut shown: Vec<&str> = presented
                .iter()
                .take(SHOWN_NAMES)
                .map(|name| presented_name(name))
                .collect();
            if presented.len() > SHOWN_NAMES {
                shown.push("…");
            }
            format!(
                "the server's TLS certificate is not valid for {name} (it names {}); give --mesh-host a name the certificate carries, or --mesh-insecure-skip-tls-verify",
                shown.join(", ")
            )
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => format!(
            "the server's TLS certificate for {name} has expired; renew the gateway's certificate, or --mesh-insecure-skip-tls-verify to skip the check"
        ),
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => format!(
            "the server's TLS certificate for {name} is not valid yet (check this machine's clock); or --mesh-insecure-skip-tls-verify to skip the check"
        ),
        other => format!(
            "the server's TLS certificate for {name} was rejected ({}); {TRUST_FIX}",
            rustls::Error::InvalidCertificate(other.clone())
        ),
    }
}

/// `llm.example.com` from webpki's `DnsName("llm.example.com")`; other forms as they are.
fn presented_name(presented: &str) -> &str {
    match (presented.find('"'), presented.rfind('"')) {
        (Some(first), Some(last)) if last > first => &presented[first + 1..last],
        _ => presented,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    #[test]
    fn an_address_url_takes_the_mesh_host_as_tls_name() {
        let address =
            path_address(&url("https://127.0.0.1:8443/v1"), Some("llm.example.com")).unwrap();
        assert_eq!(address.base.as_str(), "https://llm.example.com:8443/v1");
        assert_eq!(address.tls_name(), "llm.example.com");
        let connect_to = address.connect_to.unwrap();
        assert_eq!(connect_to.name, "llm.example.com");
        assert_eq!(connect_to.addrs, [SocketAddr::from(([127, 0, 0, 1], 0))]);

        let local =
            path_address(&url("https://localhost:8443"), Some("LLM.example.com:8443")).unwrap();
        assert_eq!(local.base.as_str(), "https://llm.example.com:8443/");
        assert_eq!(local.connect_to.unwrap().addrs.len(), 2);

        let v6 = path_address(&url("https://[::1]:8443"), Some("llm.example.com")).unwrap();
        assert_eq!(v6.base.host_str(), Some("llm.example.com"));
    }

    #[test]
    fn other_urls_are_left_alone() {
        for (base, host) in [
            ("http://127.0.0.1:8080", Some("llm.example.com")),
            ("https://gw.example.com", Some("llm.example.com")),
            ("https://127.0.0.1:8443", None),
            ("https://127.0.0.1:8443", Some("10.0.0.1")),
        ] {
            let address = path_address(&url(base), host).unwrap();
            assert_eq!(address.base, url(base), "{base} {host:?}");
            assert_eq!(address.connect_to, None);
        }
        assert!(path_address(&url("https://127.0.0.1"), Some("bad host!")).is_err());
    }

    #[test]
    fn host_names_lose_their_port() {
        assert_eq!(host_name("llm.example.com:8443"), "llm.example.com");
        assert_eq!(host_name("llm.example.com"), "llm.example.com");
        assert_eq!(host_name("[::1]:443"), "::1");
    }

    #[test]
    fn insecure_trust_says_so() {
        let trust = TlsTrust::load(&TlsOptions {
            ca_file: None,
            insecure_skip_verify: true,
        })
        .unwrap();
        assert!(!trust.verified());
        assert!(trust.basis.describe().contains("NOT verified"));
        let config = trust.client_config(false, Resumption::disabled()).unwrap();
        assert_eq!(config.alpn_protocols, [b"http/1.1".to_vec()]);
    }

    #[test]
    fn a_bad_ca_file_is_a_one_line_error() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("ca.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let load = |path: &Path| {
            TlsTrust::load(&TlsOptions {
                ca_file: Some(path.to_path_buf()),
                insecure_skip_verify: false,
            })
            .unwrap_err()
            .to_string()
        };
        let error = load(&empty);
        assert!(
            error.contains("--mesh-ca") && error.contains("no PEM"),
            "{error}"
        );
        let missing = load(&dir.path().join("missing.pem"));
        assert!(missing.contains("missing.pem"), "{missing}");
        assert!(!error.contains('\n') && !missing.contains('\n'));
    }

    #[test]
    fn certificate_errors_name_the_fix() {
        let unknown = certificate_problem(&CertificateError::UnknownIssuer, "llm.example.com");
        assert!(
            unknown.contains("--mesh-ca FILE")
                && unknown.contains("--mesh-insecure-skip-tls-verify"),
            "{unknown}"
        );
        let mismatch = certificate_problem(
            &CertificateError::NotValidForNameContext {
                expected: ServerName::try_from("wrong.example.com").unwrap(),
                presented: vec!["DnsName(\"llm.example.com\")".to_string()],
            },
            "wrong.example.com",
        );
        assert!(
            mismatch.contains("not valid for wrong.example.com (it names llm.example.com)")
                && mismatch.contains("--mesh-host"),
            "{mismatch}"
        );
    }

    #[test]
    fn the_clock_hands_each_start_out_once() {
        let clock = HandshakeClock::new();
        let before = Instant::now();
        let name = ServerName::try_from("llm.example.com").unwrap();
        assert_eq!(clock.kx_hint(&name), None);
        let after = Instant::now();
        assert!(clock.claim_start(before, after).is_some());
        assert!(clock.claim_start(before, after).is_none());
    }
}
