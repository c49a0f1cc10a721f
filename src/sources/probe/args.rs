//! The `probe` subcommand's own flags (flattened into `cli::ProbeCommand`, beside TARGET, `-n`,
//! `--admin-url` and the cluster flags).

use super::tls::TlsOptions;
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProbeOutput {
    Table,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct ProbeArgs {
    /// Base URL of vLLM itself, bypassing the sidecar (e.g. a port-forward: http://127.0.0.1:8000).
    #[arg(long, value_name = "URL")]
    pub direct_url: Option<String>,

    /// Base URL through the mesh: an ingress gateway, http or https (e.g. https://llm.example.com,
    /// or a port-forward to the gateway's 443 listener: https://127.0.0.1:8443 with --mesh-host).
    #[arg(long, value_name = "URL")]
    pub mesh_url: Option<String>,

    /// Host header for the mesh path, when the gateway routes by host (e.g. llm.example.com).
    /// With an https --mesh-url that names an IP or localhost, also the TLS server name (SNI)
    /// and the name the gateway's certificate must carry.
    #[arg(long, value_name = "HOST")]
    pub mesh_host: Option<String>,

    /// PEM file of CA certificates trusted for https URLs, beside the system's roots (e.g. the
    /// CA that signed the gateway's certificate).
    #[arg(long, value_name = "FILE")]
    pub mesh_ca: Option<PathBuf>,

    /// Do not verify the certificate of https URLs (the gateway's): any certificate for any
    /// name is accepted, and the report says it was not verified. The cluster API is still
    /// verified.
    #[arg(long, conflicts_with = "mesh_ca")]
    pub mesh_insecure_skip_tls_verify: bool,

    /// Model name; default: the first model listed by /v1/models.
    #[arg(long)]
    pub model: Option<String>,

    /// Prompt to send.
    #[arg(
        long,
        default_value = "Write a long story about a lighthouse keeper and the sea."
    )]
    pub prompt: String,

    /// Output tokens to ask for (default 256; with --large, 100000 capped by the model's length).
    #[arg(long, value_name = "N")]
    pub max_tokens: Option<u32>,

    /// Stream for about this long (sized from a short warm-up's token rate; uses vLLM's
    /// min_tokens + ignore_eos). Overrides --max-tokens for streams.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// Use /v1/chat/completions instead of /v1/completions.
    #[arg(long)]
    pub chat: bool,

    /// Environment variable holding the bearer key (never printed).
    #[arg(long, value_name = "NAME", default_value = "OPENAI_API_KEY")]
    pub api_key_env: String,

    /// Streams at once per path: counts by status, share of 503, x-envoy-overloaded, failures by cause.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub concurrency: Option<u32>,

    /// One non-streaming request with a large output per path: is the body complete?
    #[arg(long)]
    pub large: bool,

    /// One non-streaming request per path whose prompt is about BYTES long (a long context), 16
    /// tokens out: does the mesh take a request body that size (413 where a filter buffers it)?
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..=64 * 1024 * 1024))]
    pub large_prompt: Option<u64>,

    /// First request on a fresh connection against one on a warm connection, per path.
    #[arg(long)]
    pub cold: bool,

    /// Probe the mesh path first (default: direct first). With --cold, the first request to a
    /// cold pod then goes through the sidecar, as a user's first request would.
    #[arg(long)]
    pub mesh_first: bool,

    /// Stream (and ask for --large bodies) on both paths at once: about half the wall time.
    /// Once the mesh stream fails, the direct one runs on a little past that point and stops.
    #[arg(long)]
    pub side_by_side: bool,

    /// Run each measurement this many times.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub repeat: u32,

    /// Speak HTTP/2 without TLS (h2c prior knowledge) instead of HTTP/1.1.
    #[arg(long)]
    pub http2: bool,

    /// Give up on one request after this long (default: 600s, or twice --duration plus 60s).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,

    /// Give up on a stream when nothing arrives for this long.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "120s")]
    pub idle_timeout: Duration,

    /// Output format.
    #[arg(short, long, value_enum, default_value_t = ProbeOutput::Table)]
    pub output: ProbeOutput,
}

impl ProbeArgs {
    /// Arguments for two URLs and defaults everywhere else (tests, the `lab` command).
    pub fn for_urls(direct_url: Option<String>, mesh_url: Option<String>) -> Self {
        Self {
            direct_url,
            mesh_url,
            mesh_host: None,
            mesh_ca: None,
            mesh_insecure_skip_tls_verify: false,
            model: None,
            prompt: "Write a long story about a lighthouse keeper and the sea.".to_string(),
            max_tokens: None,
            duration: None,
            chat: false,
            api_key_env: "OPENAI_API_KEY".to_string(),
            concurrency: None,
            large: false,
            large_prompt: None,
            cold: false,
            mesh_first: false,
            side_by_side: false,
            repeat: 1,
            http2: false,
            timeout: None,
            idle_timeout: Duration::from_secs(120),
            output: ProbeOutput::Table,
        }
    }
}

impl ProbeArgs {
    /// The TLS flags.
    pub fn tls(&self) -> TlsOptions {
        TlsOptions {
            ca_file: self.mesh_ca.clone(),
            insecure_skip_verify: self.mesh_insecure_skip_tls_verify,
        }
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    crate::units::duration::parse(text).map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Harness {
        #[command(flatten)]
        args: ProbeArgs,
    }

    #[test]
    fn flags_parse() {
        let harness = Harness::try_parse_from([
            "probe",
            "--direct-url",
            "http://127.0.0.1:8000",
            "--mesh-url",
            "http://127.0.0.1:8080",
            "--duration",
            "30s",
            "--concurrency",
            "8",
            "--chat",
            "-o",
            "json",
        ])
        .unwrap();
        let args = harness.args;
        assert_eq!(args.duration, Some(Duration::from_secs(30)));
        assert_eq!(args.concurrency, Some(8));
        assert!(args.chat);
        assert_eq!(args.output, ProbeOutput::Json);
        assert_eq!(args.api_key_env, "OPENAI_API_KEY");
        assert_eq!(args.repeat, 1);
        assert!(!args.mesh_first);
        assert_eq!(args.tls(), TlsOptions::default());
        let tls = Harness::try_parse_from([
            "probe",
            "--mesh-url",
            "https://127.0.0.1:8443",
            "--mesh-host",
            "llm.example.com",
            "--mesh-ca",
            "ca.pem",
        ])
        .unwrap()
        .args;
        assert_eq!(tls.tls().ca_file, Some(PathBuf::from("ca.pem")));
        assert!(!tls.tls().insecure_skip_verify);
        let insecure =
            Harness::try_parse_from(["probe", "--mesh-insecure-skip-tls-verify"]).unwrap();
        assert!(insecure.args.tls().insecure_skip_verify);
        assert!(
            Harness::try_parse_from([
                "probe",
                "--mesh-insecure-skip-tls-verify",
                "--mesh-ca",
                "ca.pem"
            ])
            .is_err()
        );
        assert!(Harness::try_parse_from(["probe", "--concurrency", "0"]).is_err());
        assert!(Harness::try_parse_from(["probe", "--duration", "soon"]).is_err());
    }
}
