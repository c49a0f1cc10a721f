//! Command line: kubectl-style flags and the subcommands.

use crate::checks::Severity;
use crate::cluster::args::ClusterArgs;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "kubectl-infermesh",
    version,
    about = "Find which known Istio failure mode hurts a vLLM inference service, with evidence and the fix",
    long_about = None,
    propagate_version = true
)]
pub struct Cli {
    /// Log to stderr: -v info, -vv debug, -vvv trace. Credentials are never logged.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Diagnose inference workloads from manifests (-f) or a cluster: root cause, evidence, fix.
    #[command(after_help = EXIT_CODES_HELP)]
    Diagnose(DiagnoseArgs),
}

const EXIT_CODES_HELP: &str = "Exit codes (the same in every output format):
  0  nothing at or above --fail-on
  3  a finding at or above --fail-on
  1  could not run (unreadable or malformed input, cluster unreachable or unknown context,
     missing namespace, unknown TARGET, nothing to analyse); a partial result is not an error
  2  usage error";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Wide,
    Json,
    Yaml,
    Markdown,
}

#[derive(Debug, Args)]
pub struct DiagnoseArgs {
    /// deploy/NAME, sts/NAME, pod/NAME or svc/NAME; without it, every inference workload in scope.
    pub target: Option<String>,

    /// Manifest file or folder (recursive; .yaml, .yml, .json), or - for stdin. Repeatable.
    #[arg(short = 'f', long = "filename", value_name = "PATH")]
    pub filenames: Vec<PathBuf>,

    /// Namespace to look in (default: the kubeconfig context's on a cluster; every namespace
    /// found in the manifests with -f).
    #[arg(short, long)]
    pub namespace: Option<String>,

    /// Look in every namespace.
    #[arg(short = 'A', long, conflicts_with = "namespace")]
    pub all_namespaces: bool,

    /// Label selector for inference pods (e.g. app=llm), for servers not recognised as vLLM.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,

    /// Output format.
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,

    /// Exit 3 when a finding is at or above this severity.
    #[arg(long, value_enum, default_value_t = Severity::Critical)]
    pub fail_on: Severity,

    /// The longest generation the service must allow (e.g. 300s, 5m).
    #[arg(long, value_name = "DURATION", default_value = "300s", value_parser = parse_duration)]
    pub expected_generation: Duration,

    /// Print only the fixes, as one YAML stream for `kubectl apply -f -` (workload patches as
    /// commented `kubectl patch` commands at the end), instead of the report. Applies nothing.
    #[arg(long, conflicts_with = "output")]
    pub fix: bool,

    /// Write the gathered evidence (JSON) to FILE, to reproduce this diagnosis offline.
    #[arg(long, value_name = "FILE")]
    pub save_evidence: Option<PathBuf>,

    /// Diagnose from evidence saved with --save-evidence; no cluster or manifests needed.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["filenames", "save_evidence"])]
    pub from_evidence: Option<PathBuf>,

    #[command(flatten)]
    pub cluster: ClusterArgs,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    crate::duration::parse(text).map_err(|error| error.to_string())
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
