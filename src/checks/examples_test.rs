//! The bundled `examples/` make their own failure mode the top finding, and `healthy` has nothing
//! above info, through the real pipeline: manifest loader, resolution, gather, checks.

use super::{CheckId, Finding, Settings, Severity, run_all};
use crate::evidence::TargetEvidence;
use crate::evidence::resolve::{Scope, gather};
use std::path::Path;
use std::time::Duration;

fn assemble(folder: &str) -> TargetEvidence {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(folder);
    let inventory = crate::sources::manifest::load(&[dir], "default").unwrap();
    let scope = Scope {
        namespace: None,
        all_namespaces: false,
        selector: None,
        target: None,
    };
    let mut evidence = gather(&inventory, &scope, Duration::from_secs(300), Vec::new()).unwrap();
    assert_eq!(
        evidence.targets.len(),
        1,
        "{folder}: one inference workload"
    );
    evidence.targets.remove(0)
}

fn findings(folder: &str) -> Vec<Finding> {
    let settings = Settings {
        expected_generation: Duration::from_secs(300),
    };
    let findings = run_all(&assemble(folder), &settings);
    super::test_support::assert_well_formed(&findings);
    findings
}

/// The failure mode is the only one at the highest severity, and that severity is above info.
fn assert_top(folder: &str, expected: CheckId, severity: Severity) {
    let findings = findings(folder);
    let top = findings.iter().map(|finding| finding.severity).max();
    assert_eq!(top, Some(severity), "{folder}: {findings:#?}");
    let at_top: Vec<CheckId> = findings
        .iter()
        .filter(|finding| finding.severity == severity)
        .map(|finding| finding.id)
        .collect();
    assert!(
        at_top.iter().all(|id| *id == expected),
        "{folder}: {at_top:?} at {severity}: {findings:#?}"
    );
}

#[test]
fn sidecar_overhead_example() {
    assert_top(
        "sidecar-overhead",
        CheckId::SidecarOverhead,
        Severity::Warning,
    );
}

#[test]
fn stream_timeout_example() {
    assert_top("stream-timeout", CheckId::StreamTimeout, Severity::Critical);
}

#[test]
fn connection_pool_example() {
    assert_top(
        "connection-pool",
        CheckId::ConnectionPool,
        Severity::Critical,
    );
}

#[test]
fn buffer_limit_example() {
    assert_top("buffer-limit", CheckId::BufferLimit, Severity::Warning);
}

#[test]
fn cold_start_example() {
    assert_top("cold-start", CheckId::ColdStart, Severity::Warning);
}

#[test]
fn healthy_example_has_nothing_above_info() {
    let findings = findings("healthy");
    assert!(
        findings
            .iter()
            .all(|finding| finding.severity == Severity::Info),
        "{findings:#?}"
    );
}

/// Prints every example's findings: `cargo test --lib examples_test::show -- --ignored --nocapture`.
#[test]
#[ignore]
fn show() {
    for folder in [
        "sidecar-overhead",
        "stream-timeout",
        "connection-pool",
        "buffer-limit",
        "cold-start",
        "healthy",
    ] {
        println!("===== {folder}");
        for finding in findings(folder) {
            println!("{}", serde_yaml::to_string(&finding).unwrap());
        }
    }
}
