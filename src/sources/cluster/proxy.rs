//! Which proxy reaches the API server, decided as kubectl (client-go over Go's net/http) decides:
//! the kubeconfig cluster's `proxy-url` for every request when set; else `HTTPS_PROXY` (https
//! servers) or `HTTP_PROXY` (http servers), upper case before lower case, never for `localhost`
//! or a loopback address, and not for a host `NO_PROXY` names (`*`, a domain and its subdomains,
//! `.domain` for subdomains only, an IP, a CIDR, any of them with `:port`).

use http::Uri;
use std::net::IpAddr;

/// How the API server is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Direct,
    /// HTTP CONNECT through an `http://` or `https://` proxy.
    Connect(Uri),
    /// SOCKS5 with the host name resolved by the proxy.
    Socks5(Uri),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    #[error(
        "proxy {proxy:?} (from {from}) is not a URL: {reason}; give http://HOST:PORT, https://HOST:PORT or socks5://HOST:PORT"
    )]
    Invalid {
        proxy: String,
        from: &'static str,
        reason: String,
    },
    #[error(
        "proxy {proxy:?} (from {from}) has scheme {scheme:?}; kubectl supports http, https and socks5 proxies"
    )]
    Scheme {
        proxy: String,
        from: &'static str,
        scheme: String,
    },
}

/// The route to `server`: `proxy_url` is the kubeconfig cluster's `proxy-url`; `env` reads the
/// process environment (a parameter, so tests need not touch it).
pub fn route(
    proxy_url: Option<&str>,
    server: &Uri,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Route, ProxyError> {
    if let Some(proxy) = proxy_url.map(str::trim).filter(|proxy| !proxy.is_empty()) {
        return parse(proxy, "the kubeconfig's proxy-url", false);
    }
    let https = server.scheme_str() == Some("https");
    let (names, from) = if https {
        (["HTTPS_PROXY", "https_proxy"], "HTTPS_PROXY")
    } else {
        (["HTTP_PROXY", "http_proxy"], "HTTP_PROXY")
    };
    let Some(proxy) = first_set(env, &names) else {
        return Ok(Route::Direct);
    };
    let host = server.host().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if is_local(host) {
        return Ok(Route::Direct);
    }
    let port = server.port_u16().unwrap_or(if https { 443 } else { 80 });
    if let Some(no_proxy) = first_set(env, &["NO_PROXY", "no_proxy"])
        && bypasses(&no_proxy, host, port)
    {
        return Ok(Route::Direct);
    }
    parse(&proxy, from, true)
}

fn first_set(env: &dyn Fn(&str) -> Option<String>, names: &[&str]) -> Option<String> {
    names
        .iter()
        .filter_map(|name| env(name))
        .find(|value| !value.trim().is_empty())
        .map(|value| value.trim().to_string())
}

/// Go's environment proxies may leave out the scheme (`proxy:3128` means `http://proxy:3128`).
fn parse(proxy: &str, from: &'static str, scheme_optional: bool) -> Result<Route, ProxyError> {
    let text = if scheme_optional && !proxy.contains("://") {
        format!("http://{proxy}")
    } else {
        proxy.to_string()
    };
    let uri: Uri = text
        .parse()
        .map_err(|error: http::uri::InvalidUri| ProxyError::Invalid {
            proxy: proxy.to_string(),
            from,
            reason: error.to_string(),
        })?;
    if uri.host().is_none() {
        return Err(ProxyError::Invalid {
            proxy: proxy.to_string(),
            from,
            reason: "no host".to_string(),
        });
    }
    match uri.scheme_str() {
        Some("http") | Some("https") => Ok(Route::Connect(uri)),
        Some("socks5") => Ok(Route::Socks5(uri)),
        other => Err(ProxyError::Scheme {
            proxy: proxy.to_string(),
            from,
            scheme: other.unwrap_or_default().to_string(),
        }),
    }
}

fn is_local(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

/// Whether `NO_PROXY` exempts `host:port`.
fn bypasses(no_proxy: &str, host: &str, port: u16) -> bool {
    let host = host.to_ascii_lowercase();
    let address = host.parse::<IpAddr>().ok();
    no_proxy
        .split(',')
        .map(|entry| entry.trim().to_ascii_lowercase())
        .filter(|entry| !entry.is_empty())
        .any(|entry| {
            if entry == "*" {
                return true;
            }
            if let Some((network, bits)) = entry.split_once('/') {
                return match (network.parse::<IpAddr>(), bits.parse::<u8>(), address) {
                    (Ok(network), Ok(bits), Some(address)) => in_network(address, network, bits),
                    _ => false,
                };
            }
            let (name, entry_port) = split_port(&entry);
            if entry_port.is_some_and(|entry_port| entry_port != port) {
                return false;
            }
            if let (Ok(entry_address), Some(address)) = (name.parse::<IpAddr>(), address) {
                return entry_address == address;
            }
            let name = name.strip_prefix('*').unwrap_or(name);
            match name.strip_prefix('.') {
                Some(suffix) => host.ends_with(&format!(".{suffix}")),
                None => host == name || host.ends_with(&format!(".{name}")),
            }
        })
}

/// `host:port`, `[v6]:port`, or a bare host or IPv6 address.
fn split_port(entry: &str) -> (&str, Option<u16>) {
    if let Some(rest) = entry.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((address, tail)) => (address, tail.strip_prefix(':').and_then(|p| p.parse().ok())),
            None => (entry, None),
        };
    }
    match entry.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') => match port.parse() {
            Ok(port) => (name, Some(port)),
            Err(_) => (entry, None),
        },
        _ => (entry, None),
    }
}

fn in_network(address: IpAddr, network: IpAddr, bits: u8) -> bool {
    match (address, network) {
        (IpAddr::V4(address), IpAddr::V4(network)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(address) & mask == u32::from(network) & mask
        }
        (IpAddr::V6(address), IpAddr::V6(network)) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(address) & mask == u128::from(network) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
        move |key| map.get(key).cloned()
    }

    fn route_to(server: &str, proxy_url: Option<&str>, pairs: &[(&str, &str)]) -> Route {
        route(proxy_url, &server.parse().unwrap(), &env(pairs)).unwrap()
    }

    fn connect(uri: &str) -> Route {
        Route::Connect(uri.parse().unwrap())
    }

    #[test]
    fn the_kubeconfig_proxy_url_is_used_for_every_server() {
        assert_eq!(
            route_to(
                "https://127.0.0.1:6443",
                Some("socks5://127.0.0.1:1080"),
                &[]
            ),
            Route::Socks5("socks5://127.0.0.1:1080".parse().unwrap())
        );
        assert_eq!(
            route_to(
                "https://kube.test:6443",
                Some("http://proxy:3128"),
                &[("NO_PROXY", "*")]
            ),
            connect("http://proxy:3128")
        );
    }

    #[test]
    fn the_environment_picks_by_the_servers_scheme() {
        let pairs = [
            ("HTTPS_PROXY", "http://secure-proxy:3128"),
            ("http_proxy", "plain-proxy:8080"),
        ];
        assert_eq!(
            route_to("https://kube.test", None, &pairs),
            connect("http://secure-proxy:3128")
        );
        assert_eq!(
            route_to("http://kube.test", None, &pairs),
            connect("http://plain-proxy:8080")
        );
        assert_eq!(route_to("https://kube.test", None, &[]), Route::Direct);
        // Upper case wins, an empty value does not count.
        assert_eq!(
            route_to(
                "https://kube.test",
                None,
                &[("HTTPS_PROXY", ""), ("https_proxy", "http://lower:1")]
            ),
            connect("http://lower:1")
        );
    }

    #[test]
    fn loopback_servers_never_take_an_environment_proxy() {
        let pairs = [("HTTPS_PROXY", "http://proxy:3128")];
        for server in [
            "https://127.0.0.1:6443",
            "https://localhost:6443",
            "https://[::1]:6443",
        ] {
            assert_eq!(route_to(server, None, &pairs), Route::Direct, "{server}");
        }
    }

    #[test]
    fn no_proxy_matches_as_go_does() {
        let with = |no_proxy: &str, server: &str| {
            route_to(
                server,
                None,
                &[("HTTPS_PROXY", "http://proxy:3128"), ("no_proxy", no_proxy)],
            ) == Route::Direct
        };
        assert!(with("*", "https://kube.test"));
        assert!(with("example.com", "https://example.com"));
        assert!(with("example.com", "https://api.example.com"));
        assert!(!with("example.com", "https://notexample.com"));
        assert!(with(".example.com", "https://api.example.com"));
        assert!(!with(".example.com", "https://example.com"));
        assert!(with("*.example.com", "https://api.example.com"));
        assert!(with("10.0.0.0/8", "https://10.1.2.3:6443"));
        assert!(!with("10.0.0.0/8", "https://11.1.2.3:6443"));
        assert!(with("10.1.2.3", "https://10.1.2.3:6443"));
        assert!(with("kube.test:6443", "https://kube.test:6443"));
        assert!(!with("kube.test:7443", "https://kube.test:6443"));
        assert!(with(" other.org , kube.test ", "https://kube.test"));
        assert!(with("fd00::/8", "https://[fd00::1]:6443"));
    }

    #[test]
    fn bad_proxies_are_one_line_errors_naming_their_source() {
        let server: Uri = "https://kube.test".parse().unwrap();
        let error = route(Some("ftp://proxy:21"), &server, &env(&[])).unwrap_err();
        assert!(
            error.to_string().contains("kubeconfig's proxy-url"),
            "{error}"
        );
        assert!(
            error.to_string().contains("http, https and socks5"),
            "{error}"
        );
        let error = route(None, &server, &env(&[("HTTPS_PROXY", "http://")])).unwrap_err();
        assert!(error.to_string().contains("HTTPS_PROXY"), "{error}");
    }
}
