//! Build script: the git commit `--version` prints. `INFERMESH_GIT_COMMIT` wins (release builds
//! from a source archive); without it, `git rev-parse --short HEAD`; without git or a `.git`,
//! `unknown`.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=INFERMESH_GIT_COMMIT");
    let commit = std::env::var("INFERMESH_GIT_COMMIT")
        .ok()
        .filter(|value| !value.trim().is_empty())
        .or_else(|| git(&["rev-parse", "--short", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_string());
    // Rebuild when the checked-out commit moves: HEAD, the branch it points at, packed refs.
    // (A listed file that does not exist would rerun this script on every build: list only those
    // that do.)
    let branch = git(&["symbolic-ref", "-q", "HEAD"]);
    let refs = ["HEAD", "packed-refs"].into_iter().chain(branch.as_deref());
    for name in refs {
        if let Some(file) = git(&["rev-parse", "--git-path", name])
            && std::path::Path::new(&file).exists()
        {
            println!("cargo:rerun-if-changed={file}");
        }
    }
    println!("cargo:rustc-env=INFERMESH_GIT_COMMIT={}", commit.trim());
}

/// One line of `git ARGS` output, or None when git is missing or fails (no repository).
fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}
