use clap::{CommandFactory, FromArgMatches};
use kubectl_infermesh::cli::{self, Cli};
use std::process::ExitCode;

fn main() -> ExitCode {
    let argv0 = std::env::args_os().next();
    let command = Cli::command().bin_name(cli::display_name(argv0.as_deref()));
    let cli = match command
        .try_get_matches()
        .and_then(|matches| Cli::from_arg_matches(&matches))
    {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(if error.use_stderr() { 2 } else { 0 });
        }
    };
    let _ = cli;
    ExitCode::SUCCESS
}
