//! The HTTP stack to the API server, built as kubectl's: TCP (bounded connect) through the
//! proxy kubectl would use (`proxy` module: CONNECT or SOCKS5), TLS with kubectl's trust
//! (`trust` module) and the kubeconfig's client certificate and `tls-server-name`, then kube's
//! own layers (base URL, credentials, impersonation headers). HTTP/1.1 only, so port-forward
//! websockets upgrade on the same connections.

use super::proxy::{self, ProxyError, Route};
use super::trust::KubectlTrust;
use hyper_rustls::{FixedServerNameResolver, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::proxy::{SocksV5, Tunnel};
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use hyper_util::rt::TokioExecutor;
use kube::client::ConfigExt;
use rustls::pki_types::ServerName;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    #[error("{0}")]
    Kube(#[from] kube::Error),
    #[error("tls-server-name {name:?} is not a valid TLS server name")]
    ServerName { name: String },
}

/// A client for `config`; `proxy_url` is the kubeconfig cluster's `proxy-url` (kube's loader
/// also reads the environment, with rules that are not kubectl's, so the route is decided here).
pub fn client(
    mut config: kube::Config,
    proxy_url: Option<&str>,
    connect_timeout: Duration,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<kube::Client, TransportError> {
    let route = proxy::route(proxy_url, &config.cluster_url, env)?;
    config.proxy_url = None;
    let tls = tls_config(&config)?;
    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    tcp.set_connect_timeout(Some(connect_timeout));
    match route {
        Route::Direct => {
            let connector = api_tls(&config, &tls, tcp)?;
            finish(config, connector)
        }
        Route::Socks5(proxy_uri) => {
            let socks = SocksV5::new(proxy_uri.clone(), tcp);
            let socks = match userinfo(&proxy_uri) {
                Some((user, password)) => socks.with_auth(user, password),
                None => socks,
            };
            let connector = api_tls(&config, &tls, socks)?;
            finish(config, connector)
        }
        Route::Connect(proxy_uri) => {
            // An https proxy is itself reached over TLS, checked with the same trust (as Go).
            let to_proxy = HttpsConnectorBuilder::new()
                .with_tls_config(tls.clone())
                .https_or_http()
                .enable_http1()
                .wrap_connector(tcp);
            let mut tunnel = Tunnel::new(proxy_uri.clone(), to_proxy);
            if let Some(header) = basic_auth(&proxy_uri) {
                tunnel = tunnel.with_auth(header);
            }
            let connector = api_tls(&config, &tls, tunnel)?;
            finish(config, connector)
        }
    }
}

/// kube's TLS settings (client certificate and key, CA, `insecure-skip-tls-verify`) with the
/// server certificate checked as kubectl checks it.
fn tls_config(config: &kube::Config) -> Result<rustls::ClientConfig, TransportError> {
    let mut tls = config.rustls_client_config()?;
    if !config.accept_invalid_certs
        && let Some(roots) = &config.root_cert
    {
        let provider = tls.crypto_provider().clone();
        tls.dangerous()
            .set_certificate_verifier(Arc::new(KubectlTrust::new(roots, provider)));
    }
    Ok(tls)
}

fn api_tls<C>(
    config: &kube::Config,
    tls: &rustls::ClientConfig,
    connector: C,
) -> Result<HttpsConnector<C>, TransportError> {
    let builder = HttpsConnectorBuilder::new()
        .with_tls_config(tls.clone())
        .https_or_http();
    let builder = match &config.tls_server_name {
        Some(name) => {
            let server_name = ServerName::try_from(name.clone())
                .map_err(|_| TransportError::ServerName { name: name.clone() })?;
            builder.with_server_name_resolver(FixedServerNameResolver::new(server_name))
        }
        None => builder,
    };
    Ok(builder.enable_http1().wrap_connector(connector))
}

fn finish<C>(config: kube::Config, connector: C) -> Result<kube::Client, TransportError>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    let http: hyper_util::client::legacy::Client<C, kube::client::Body> =
        hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(connector);
    let service = tower::ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(tower::BoxError::from)
        .service(http);
    Ok(kube::Client::new(service, config.default_namespace))
}

/// `Proxy-Authorization: Basic …` from the proxy URL's `user:password@`, percent-decoded.
fn basic_auth(proxy: &http::Uri) -> Option<http::HeaderValue> {
    let (user, password) = userinfo(proxy)?;
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let mut header = http::HeaderValue::from_str(&format!("Basic {encoded}")).ok()?;
    header.set_sensitive(true);
    Some(header)
}

fn userinfo(proxy: &http::Uri) -> Option<(String, String)> {
    let authority = proxy.authority()?.as_str();
    let (userinfo, _) = authority.rsplit_once('@')?;
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    Some((percent_decode(user), percent_decode(password)))
}

fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_credentials_come_from_the_url_decoded() {
        let uri: http::Uri = "http://ops:p%40ss%3Aword@proxy:3128".parse().unwrap();
        assert_eq!(
            userinfo(&uri),
            Some(("ops".to_string(), "p@ss:word".to_string()))
        );
        let header = basic_auth(&uri).unwrap();
        assert!(header.is_sensitive());
        assert_eq!(header.to_str().unwrap(), "Basic b3BzOnBAc3M6d29yZA==");
        let bare: http::Uri = "http://proxy:3128".parse().unwrap();
        assert_eq!(userinfo(&bare), None);
    }
}
