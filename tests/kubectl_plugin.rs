#![allow(clippy::unwrap_used)]
//! The release archive as users get it, run by real kubectl (`KUBECTL`, as
//! tests/kubectl_parity.rs finds it): `scripts/release.sh --pack` packs the binary this test
//! build made (stripped, as the release profile strips) (the packing step of a release, without the musl LTO builds, which would cost CI
//! many minutes: the release workflow and `scripts/release.sh VERSION` run those), the archive is
//! unpacked into a temporary folder that is the only plugin folder on PATH, and kubectl finds
//! the plugin (`kubectl plugin list`), runs `kubectl infermesh --help` and
//! `kubectl infermesh diagnose -f examples/` printing what the binary prints. The archive's
//! .sha256 and the krew manifest `--render` writes carry the archive's real sha256.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn sha256(path: &Path) -> String {
    let output = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum (coreutils)");
    assert!(output.status.success());
    String::from_utf8(output.stdout).unwrap()[..64].to_string()
}

/// `scripts/release.sh ARGS…` from the repository root.
fn release(args: &[&str]) -> Output {
    let output = Command::new("bash")
        .arg(root().join("scripts/release.sh"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "release.sh {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

struct Unpacked {
    _dir: tempfile::TempDir,
    dist: PathBuf,
    archive: PathBuf,
    bin: PathBuf,
}

/// The test build's binary, stripped as the release profile strips it (a third of the size, so
/// packing it is quick).
fn stripped_binary(dir: &Path) -> PathBuf {
    let binary = dir.join("kubectl-infermesh");
    std::fs::copy(env!("CARGO_BIN_EXE_kubectl-infermesh"), &binary).unwrap();
    let strip = Command::new("strip")
        .arg(&binary)
        .status()
        .expect("strip (binutils) strips the test binary before packing");
    assert!(strip.success());
    binary
}

fn packed_and_unpacked() -> Unpacked {
    let dir = tempfile::tempdir().unwrap();
    let dist = dir.path().join("dist");
    let binary = stripped_binary(dir.path());
    let packed = release(&[
        "--pack",
        binary.to_str().unwrap(),
        dist.to_str().unwrap(),
        "--platform",
        "linux_amd64",
    ]);
    let archive = PathBuf::from(String::from_utf8(packed.stdout).unwrap().trim());
    let expected = format!(
        "kubectl-infermesh_v{}_linux_amd64.tar.gz",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(
        archive.file_name().unwrap().to_str(),
        Some(expected.as_str())
    );
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let untar = Command::new("tar")
        .arg("-xzf")
        .arg(&archive)
        .arg("-C")
        .arg(&bin)
        .status()
        .unwrap();
    assert!(untar.success());
    Unpacked {
        _dir: dir,
        dist,
        archive,
        bin,
    }
}

/// Real kubectl with only the unpacked folder (and the system's) on PATH.
fn kubectl(bin: &Path, args: &[&str]) -> Output {
    Command::new(support::kubectl_bin::kubectl())
        .args(args)
        .current_dir(root())
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("KUBECONFIG", bin.join("no-kubeconfig"))
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn direct(bin: &Path, args: &[&str]) -> Output {
    Command::new(bin.join("kubectl-infermesh"))
        .args(args)
        .current_dir(root())
        .env("KUBECONFIG", bin.join("no-kubeconfig"))
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

#[test]
fn the_archive_holds_the_plugin_its_completion_license_and_readme() {
    let unpacked = packed_and_unpacked();
    let mut names: Vec<String> = std::fs::read_dir(&unpacked.bin)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "LICENSE",
            "README.md",
            "kubectl-infermesh",
            "kubectl_complete-infermesh"
        ]
    );
    use std::os::unix::fs::PermissionsExt;
    for executable in ["kubectl-infermesh", "kubectl_complete-infermesh"] {
        let mode = std::fs::metadata(unpacked.bin.join(executable))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111, "{executable} is executable");
    }
    // The checksum file is sha256sum's format for the archive.
    let sha = sha256(&unpacked.archive);
    let recorded = std::fs::read_to_string(unpacked.archive.with_extension("gz.sha256")).unwrap();
    let name = unpacked.archive.file_name().unwrap().to_str().unwrap();
    assert_eq!(recorded, format!("{sha}  {name}\n"));
    let check = Command::new("sha256sum")
        .args(["-c", &format!("{name}.sha256")])
        .current_dir(&unpacked.dist)
        .status()
        .unwrap();
    assert!(check.success());

    // The rendered krew manifest carries that sha256; platforms not packed keep placeholders.
    release(&["--render", unpacked.dist.to_str().unwrap()]);
    let manifest = std::fs::read_to_string(unpacked.dist.join("krew-manifest.yaml")).unwrap();
    let parsed: serde_json::Value = serde_yaml::from_str(&manifest).unwrap();
    let platforms = parsed["spec"]["platforms"].as_array().unwrap();
    let linux_amd64 = platforms
        .iter()
        .find(|platform| {
            platform["selector"]["matchLabels"]["os"] == "linux"
                && platform["selector"]["matchLabels"]["arch"] == "amd64"
        })
        .unwrap();
    assert_eq!(linux_amd64["sha256"], sha.as_str(), "{manifest}");
    assert!(linux_amd64["uri"].as_str().unwrap().ends_with(name));
    assert_eq!(manifest.matches("@SHA256_").count(), 3, "{manifest}");
    assert!(!manifest.contains("@VERSION@"));
    // Packing again gives the same bytes: the archive is reproducible.
    let again = tempfile::tempdir().unwrap();
    let binary = stripped_binary(again.path());
    let repacked = release(&[
        "--pack",
        binary.to_str().unwrap(),
        again.path().join("dist").to_str().unwrap(),
        "--platform",
        "linux_amd64",
    ]);
    let repacked = PathBuf::from(String::from_utf8(repacked.stdout).unwrap().trim());
    assert_eq!(sha256(&repacked), sha);
}

#[test]
fn real_kubectl_finds_and_runs_the_unpacked_plugin() {
    let unpacked = packed_and_unpacked();
    let listed = kubectl(&unpacked.bin, &["plugin", "list"]);
    let stdout = String::from_utf8_lossy(&listed.stdout);
    let plugin = unpacked.bin.join("kubectl-infermesh");
    assert!(
        stdout
            .lines()
            .any(|line| line.trim() == plugin.display().to_string()),
        "{stdout}\n{}",
        String::from_utf8_lossy(&listed.stderr)
    );

    for args in [
        vec!["--help"],
        vec!["--version"],
        vec!["diagnose", "-f", "examples/"],
    ] {
        let mut through_kubectl = vec!["infermesh"];
        through_kubectl.extend(&args);
        let via = kubectl(&unpacked.bin, &through_kubectl);
        let own = direct(&unpacked.bin, &args);
        assert_eq!(
            String::from_utf8_lossy(&via.stdout),
            String::from_utf8_lossy(&own.stdout),
            "kubectl {through_kubectl:?}"
        );
        assert_eq!(via.status.code(), own.status.code(), "{args:?}");
        assert!(!own.stdout.is_empty(), "{args:?}");
    }
    let help = kubectl(&unpacked.bin, &["infermesh", "--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("Usage: kubectl infermesh"), "{help}");
    let diagnosed = kubectl(&unpacked.bin, &["infermesh", "diagnose", "-f", "examples/"]);
    // Some examples are broken on purpose: critical findings, exit 3.
    assert_eq!(diagnosed.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&diagnosed.stdout).contains("Root cause"));
}

#[test]
fn release_refuses_a_version_that_is_not_cargos() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        vec!["9.9.9"],
        vec![
            "--pack",
            env!("CARGO_BIN_EXE_kubectl-infermesh"),
            dir.path().to_str().unwrap(),
            "--version",
            "v9.9.9",
        ],
    ] {
        let output = Command::new("bash")
            .arg(root().join("scripts/release.sh"))
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            stderr,
            format!(
                "error: VERSION 9.9.9 is not Cargo.toml's {}: bump Cargo.toml first\n",
                env!("CARGO_PKG_VERSION")
            )
        );
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
