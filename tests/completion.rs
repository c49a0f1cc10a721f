#![allow(clippy::unwrap_used)]
//! Shell completion, end to end: `__complete` in cobra's format as kubectl reads it, the bash
//! script clap_complete writes driven the way bash drives it, and real kubectl (1.26+)
//! completing `kubectl infermesh …` through `kubectl_complete-infermesh` on PATH.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_kubectl-infermesh")
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `kubectl-infermesh __complete WORDS…`: the candidates and the directive line.
fn complete(words: &[&str]) -> (Vec<String>, String) {
    let output = Command::new(binary())
        .arg("__complete")
        .args(words)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(output.stderr.is_empty(), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let directive = lines.pop().unwrap();
    let values = lines
        .iter()
        .map(|line| line.split('\t').next().unwrap().to_string())
        .collect();
    (values, directive)
}

#[test]
fn the_binary_answers_in_cobras_format() {
    let (subcommands, directive) = complete(&[""]);
    for name in ["diagnose", "probe", "lab", "completion"] {
        assert!(subcommands.contains(&name.to_string()), "{subcommands:?}");
    }
    assert_eq!(directive, ":4");
    assert_eq!(
        complete(&["diagnose", "-o", ""]).0,
        ["table", "wide", "json", "yaml", "markdown"]
    );
    assert_eq!(complete(&["lab", "c"]).0, ["connection-pool", "cold-start"]);
    let (flags, _) = complete(&["probe", "--mesh-"]);
    assert!(flags.contains(&"--mesh-url".to_string()), "{flags:?}");
    // A file argument leaves completion to the shell (directive 0).
    assert_eq!(
        complete(&["diagnose", "-f", ""]),
        (vec![], ":0".to_string())
    );
    // Descriptions follow a tab.
    let output = Command::new(binary())
        .args(["__complete", "lab", "stream-t"])
        .output()
        .unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.starts_with("stream-timeout\tA 2s route timeout"),
        "{text}"
    );
}

#[test]
fn the_bash_script_completes_subcommands_flags_and_values() {
    let script = Command::new(binary())
        .args(["completion", "bash"])
        .output()
        .unwrap();
    assert!(script.status.success());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("infermesh.bash");
    std::fs::write(&path, &script.stdout).unwrap();
    // What bash does on <TAB>: COMP_WORDS/COMP_CWORD set, the registered function called.
    let complete_line = |words: &[&str]| -> Vec<String> {
        let words_list = words
            .iter()
            .map(|word| format!("'{word}'"))
            .collect::<Vec<_>>()
            .join(" ");
        let program = format!(
            "source '{}'\nCOMP_WORDS=(kubectl-infermesh {words_list})\nCOMP_CWORD={}\nCOMP_LINE=\"${{COMP_WORDS[*]}}\"\nCOMP_POINT=${{#COMP_LINE}}\n_kubectl__infermesh kubectl-infermesh '{}' '{}'\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
            path.display(),
            words.len(),
            words.last().unwrap(),
            if words.len() > 1 {
                words[words.len() - 2]
            } else {
                "kubectl-infermesh"
            }
        );
        let output = Command::new("bash")
            .arg("-c")
            .arg(&program)
            .output()
            .expect("bash runs the completion script (apt-get install bash)");
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout)
            .unwrap()
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    let top = complete_line(&[""]);
    for name in ["diagnose", "probe", "lab", "completion"] {
        assert!(top.contains(&name.to_string()), "{top:?}");
    }
    let modes = complete_line(&["lab", ""]);
    assert!(
        modes.contains(&"stream-idle".to_string()) && modes.contains(&"buffer-limit".to_string()),
        "{modes:?}"
    );
    let outputs = complete_line(&["diagnose", "-o", ""]);
    assert!(outputs.contains(&"markdown".to_string()), "{outputs:?}");
    let flags = complete_line(&["diagnose", "--probe-b"]);
    assert_eq!(flags, ["--probe-budget"]);
}

#[test]
fn zsh_and_fish_scripts_name_the_commands_and_the_modes() {
    for shell in ["zsh", "fish"] {
        let output = Command::new(binary())
            .args(["completion", shell])
            .output()
            .unwrap();
        assert!(output.status.success());
        let script = String::from_utf8(output.stdout).unwrap();
        for word in [
            "diagnose",
            "probe",
            "lab",
            "stream-timeout",
            "cold-start",
            "markdown",
        ] {
            assert!(script.contains(word), "{shell} script lacks {word}");
        }
    }
    let wrong = Command::new(binary())
        .args(["completion", "powershell"])
        .output()
        .unwrap();
    assert_eq!(wrong.status.code(), Some(2));
}

/// A folder holding what the archive holds for completion: the binary and the completion
/// executable, as `kubectl_complete-infermesh` finds the binary beside it.
fn plugin_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(binary(), dir.path().join("kubectl-infermesh")).unwrap();
    let completer = dir.path().join("kubectl_complete-infermesh");
    std::fs::copy(
        root().join("scripts/kubectl_complete-infermesh"),
        &completer,
    )
    .unwrap();
    dir
}

fn kubectl_complete(dir: &Path, words: &[&str]) -> (Vec<String>, String) {
    let output = Command::new(support::kubectl_bin::kubectl())
        .arg("__complete")
        .args(words)
        // kubectl looks plugins and their completion executables up on PATH; /bin for sh.
        .env("PATH", format!("{}:/usr/bin:/bin", dir.display()))
        .env("KUBECONFIG", dir.join("no-kubeconfig"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let directive = lines.pop().unwrap_or_default();
    let values = lines
        .iter()
        .map(|line| line.split('\t').next().unwrap().to_string())
        .collect();
    (values, directive)
}

#[test]
fn real_kubectl_completes_the_plugin_through_kubectl_complete_infermesh() {
    let dir = plugin_dir();
    let (plugins, _) = kubectl_complete(dir.path(), &["infer"]);
    assert!(plugins.contains(&"infermesh".to_string()), "{plugins:?}");
    let (modes, directive) = kubectl_complete(dir.path(), &["infermesh", "lab", ""]);
    assert_eq!(
        modes,
        [
            "healthy",
            "stream-timeout",
            "stream-idle",
            "connection-pool",
            "buffer-limit",
            "cold-start"
        ]
    );
    assert_eq!(directive, ":4");
    let (outputs, _) = kubectl_complete(dir.path(), &["infermesh", "diagnose", "-o", "y"]);
    assert_eq!(outputs, ["yaml"]);
    let (subcommands, _) = kubectl_complete(dir.path(), &["infermesh", "pr"]);
    assert_eq!(subcommands, ["probe"]);
    // Without the completion executable, kubectl has nothing to offer past the plugin's name.
    std::fs::remove_file(dir.path().join("kubectl_complete-infermesh")).unwrap();
    let (none, _) = kubectl_complete(dir.path(), &["infermesh", "lab", ""]);
    assert!(none.is_empty(), "{none:?}");
}
