//! kubectl's connection flags, to be flattened into a subcommand's arguments: the kubeconfig
//! selectors and the global flags that override what the kubeconfig says, spelled as kubectl
//! spells them.

use clap::Args;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// The default bound on each API request when `--request-timeout` is not given.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A credential given on the command line: never shown by `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl std::str::FromStr for Secret {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        Ok(Secret(text.to_string()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct ClusterArgs {
    /// Path to the kubeconfig file (default: $KUBECONFIG, several paths merged, else ~/.kube/config).
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,

    /// The kubeconfig context to use (default: the current context).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,

    /// The kubeconfig cluster to use instead of the context's.
    #[arg(long, value_name = "NAME")]
    pub cluster: Option<String>,

    /// The kubeconfig user to use instead of the context's.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,

    /// Bound on each API request (e.g. 5s, 2m); 0 waits as long as the server takes, but
    /// connecting is still bounded.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "30s",
        value_parser = parse_request_timeout
    )]
    pub request_timeout: Duration,

    /// The API server's address, instead of the kubeconfig cluster's (as kubectl's -s).
    #[arg(short = 's', long, value_name = "URL")]
    pub server: Option<String>,

    /// A bearer token for the API server, instead of the kubeconfig user's credentials.
    #[arg(long, value_name = "TOKEN", hide_env_values = true)]
    pub token: Option<Secret>,

    /// A CA certificate file (PEM) that the API server's certificate must chain to.
    #[arg(long, value_name = "PATH")]
    pub certificate_authority: Option<PathBuf>,

    /// A client certificate file (PEM) for TLS client authentication.
    #[arg(long, value_name = "PATH")]
    pub client_certificate: Option<PathBuf>,

    /// The client certificate's key file (PEM: PKCS#1, PKCS#8 or SEC1).
    #[arg(long, value_name = "PATH")]
    pub client_key: Option<PathBuf>,

    /// Do not check the API server's certificate (as kubectl); on `probe` and `diagnose --probe`
    /// an https mesh URL's certificate is not checked either.
    #[arg(long)]
    pub insecure_skip_tls_verify: bool,

    /// The name the API server's certificate must carry, when it differs from the server's
    /// host (sent as SNI).
    #[arg(long, value_name = "NAME")]
    pub tls_server_name: Option<String>,

    /// The user to impersonate (a user or a service account: system:serviceaccount:NS:NAME).
    #[arg(long = "as", value_name = "USER")]
    pub impersonate: Option<String>,

    /// A group to impersonate; repeat for several.
    #[arg(long = "as-group", value_name = "GROUP")]
    pub impersonate_groups: Vec<String>,

    /// The UID to impersonate.
    #[arg(long = "as-uid", value_name = "UID")]
    pub impersonate_uid: Option<String>,
}

impl Default for ClusterArgs {
    fn default() -> Self {
        Self {
            kubeconfig: None,
            context: None,
            cluster: None,
            user: None,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            server: None,
            token: None,
            certificate_authority: None,
            client_certificate: None,
            client_key: None,
            insecure_skip_tls_verify: false,
            tls_server_name: None,
            impersonate: None,
            impersonate_groups: Vec::new(),
            impersonate_uid: None,
        }
    }
}

impl ClusterArgs {
    /// Whether a flag names a cluster or how to reach it (a run without one may be Envoy-only).
    pub fn points_at_a_cluster(&self) -> bool {
        self.kubeconfig.is_some()
            || self.context.is_some()
            || self.cluster.is_some()
            || self.user.is_some()
            || self.server.is_some()
            || self.token.is_some()
            || self.certificate_authority.is_some()
            || self.client_certificate.is_some()
            || self.client_key.is_some()
            || self.tls_server_name.is_some()
            || self.impersonate.is_some()
            || !self.impersonate_groups.is_empty()
            || self.impersonate_uid.is_some()
    }

    /// The per-request deadline: `None` for `--request-timeout 0`.
    pub fn request_deadline(&self) -> Option<Duration> {
        (!self.request_timeout.is_zero()).then_some(self.request_timeout)
    }
}

fn parse_request_timeout(text: &str) -> Result<Duration, String> {
    crate::units::duration::parse(text).map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Harness {
        #[command(flatten)]
        cluster: ClusterArgs,
    }

    fn parse(args: &[&str]) -> Result<ClusterArgs, clap::Error> {
        let argv = std::iter::once("test").chain(args.iter().copied());
        Harness::try_parse_from(argv).map(|harness| harness.cluster)
    }

    #[test]
    fn defaults_match_default_impl() {
        assert_eq!(parse(&[]).unwrap(), ClusterArgs::default());
        assert_eq!(
            ClusterArgs::default().request_deadline(),
            Some(DEFAULT_REQUEST_TIMEOUT)
        );
    }

    #[test]
    fn reads_kubectl_flags() {
        let args = parse(&[
            "--kubeconfig",
            "/tmp/kc",
            "--context",
            "prod",
            "--cluster",
            "c1",
            "--user",
            "u1",
            "--request-timeout",
            "2m",
        ])
        .unwrap();
        assert_eq!(args.kubeconfig, Some(PathBuf::from("/tmp/kc")));
        assert_eq!(args.context.as_deref(), Some("prod"));
        assert_eq!(args.cluster.as_deref(), Some("c1"));
        assert_eq!(args.user.as_deref(), Some("u1"));
        assert_eq!(args.request_timeout, Duration::from_secs(120));
    }

    #[test]
    fn reads_kubectl_global_flags_and_hides_the_token() {
        let args = parse(&[
            "-s",
            "https://10.0.0.1:6443",
            "--token",
            "flag-token-value",
            "--certificate-authority",
            "ca.pem",
            "--client-certificate",
            "c.pem",
            "--client-key",
            "k.pem",
            "--insecure-skip-tls-verify",
            "--tls-server-name",
            "kube.internal",
            "--as",
            "jane",
            "--as-group",
            "ops",
            "--as-group",
            "sre",
            "--as-uid",
            "42",
        ])
        .unwrap();
        assert_eq!(args.server.as_deref(), Some("https://10.0.0.1:6443"));
        assert_eq!(
            args.token.as_ref().map(Secret::expose),
            Some("flag-token-value")
        );
        assert_eq!(args.certificate_authority, Some(PathBuf::from("ca.pem")));
        assert_eq!(args.client_certificate, Some(PathBuf::from("c.pem")));
        assert_eq!(args.client_key, Some(PathBuf::from("k.pem")));
        assert!(args.insecure_skip_tls_verify);
        assert_eq!(args.tls_server_name.as_deref(), Some("kube.internal"));
        assert_eq!(args.impersonate.as_deref(), Some("jane"));
        assert_eq!(args.impersonate_groups, vec!["ops", "sre"]);
        assert_eq!(args.impersonate_uid.as_deref(), Some("42"));
        assert!(args.points_at_a_cluster());
        assert!(!ClusterArgs::default().points_at_a_cluster());
        let debug = format!("{args:?}");
        assert!(!debug.contains("flag-token-value"), "{debug}");
    }

    #[test]
    fn request_timeout_zero_means_no_deadline() {
        let args = parse(&["--request-timeout", "0"]).unwrap();
        assert_eq!(args.request_deadline(), None);
        let args = parse(&["--request-timeout", "5s"]).unwrap();
        assert_eq!(args.request_deadline(), Some(Duration::from_secs(5)));
    }

    #[test]
    fn rejects_a_timeout_without_unit() {
        let error = parse(&["--request-timeout", "15"]).unwrap_err();
        assert!(error.to_string().contains("invalid duration"), "{error}");
    }
}
