//! The checks on real Envoy evidence: config_dump and /stats captured from Envoy pairs that
//! reproduced each failure mode (`tests/envoy_capture.rs`, `tests/fixtures/envoy/scenarios/`).

use super::test_support::{assert_well_formed, endpoint_target, scenario_pair, settings};
use super::{Basis, CheckId, Finding, Severity, run_all};

fn above_info(findings: &[Finding]) -> Vec<&Finding> {
    findings
        .iter()
        .filter(|finding| finding.severity > Severity::Info)
        .collect()
}

#[test]
fn explore() {
    for scenario in ["healthy", "route-timeout", "route-timeout-trimmed-stats", "stream-idle-timeout", "circuit-breaker", "buffer-filter", "edge-gateway-profile"] {
        let target = endpoint_target(scenario_pair(scenario));
        let findings = run_all(&target, &settings());
        assert_well_formed(&findings);
        println!("=== {scenario}");
        for f in &findings {
            println!("{}", serde_yaml::to_string(f).unwrap());
        }
        let _ = (above_info(&findings), Basis::Runtime, CheckId::StreamTimeout);
    }
}
