#![no_main]
//! A kubeconfig file and the proxy settings derived from it: an error or a route.
use kubectl_infermesh::sources::cluster::args::ClusterArgs;
use kubectl_infermesh::sources::cluster::kubeconfig::read_kubeconfig_with;
use kubectl_infermesh::sources::cluster::proxy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let (proxy_url, no_proxy) = text.split_once('\n').unwrap_or((text, ""));
        let server: http::Uri = "https://10.0.0.1:6443".parse().expect("a valid URI");
        let _ = proxy::route(Some(proxy_url), &server, &|_| None);
        let env = |name: &str| match name {
            "HTTPS_PROXY" => Some(proxy_url.to_string()),
            "NO_PROXY" => Some(no_proxy.to_string()),
            _ => None,
        };
        let _ = proxy::route(None, &server, &env);
    }
    let Ok(dir) = tempfile::tempdir() else { return };
    let path = dir.path().join("kubeconfig");
    if std::fs::write(&path, data).is_ok() {
        let _ = read_kubeconfig_with(&ClusterArgs::default(), Some(path.as_os_str()));
    }
});
