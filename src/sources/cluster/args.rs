//! kubectl's connection flags, to be flattened into a subcommand's arguments.

use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

/// The default bound on each API request when `--request-timeout` is not given.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

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
}

impl Default for ClusterArgs {
    fn default() -> Self {
        Self {
            kubeconfig: None,
            context: None,
            cluster: None,
            user: None,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

impl ClusterArgs {
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
