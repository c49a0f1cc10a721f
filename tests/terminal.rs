#![allow(clippy::unwrap_used)]
//! The table view on a real terminal: tmux (Debian `tmux`) runs `diagnose` in a pane of 100
//! columns, and the capture shows the prose wrapped at words, nothing wrapped by the terminal,
//! the summary one line per workload. Needs tmux: the test fails saying so when it is missing
//! (`.ci/run` installs it).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const BINARY: &str = env!("CARGO_BIN_EXE_kubectl-infermesh");
const COLUMNS: usize = 100;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A tmux server of our own (its own socket), killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(command: &str) -> Tmux {
        let found = Command::new("tmux").arg("-V").output();
        assert!(
            found.as_ref().is_ok_and(|output| output.status.success()),
            "this test needs tmux on PATH: apt-get install tmux (.ci/run installs it); {found:?}"
        );
        let tmux = Tmux {
            socket: format!("infermesh-test-{}", std::process::id()),
        };
        let started = tmux
            .command()
            .args(["-f", "/dev/null", "new-session", "-d", "-x"])
            .arg(COLUMNS.to_string())
            .args(["-y", "50", command])
            .status()
            .unwrap();
        assert!(started.success(), "tmux new-session failed");
        // Room for the whole report in the pane's history.
        let _ = tmux
            .command()
            .args(["set-option", "-g", "history-limit", "5000"])
            .status();
        tmux
    }

    fn command(&self) -> Command {
        let mut command = Command::new("tmux");
        command.args(["-L", &self.socket]);
        command
    }

    /// The pane's rows from the start of its history; `joined` joins the rows the terminal
    /// wrapped (`capture-pane -J`).
    fn capture(&self, joined: bool) -> String {
        let mut command = self.command();
        command.args(["capture-pane", "-p", "-S", "-", "-E", "-"]);
        if joined {
            command.arg("-J");
        }
        let output = command.output().unwrap();
        assert!(output.status.success(), "tmux capture-pane failed");
        String::from_utf8(output.stdout).unwrap()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.command().arg("kill-server").status();
    }
}

fn wait_for(path: &Path) {
    let started = Instant::now();
    while !path.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "diagnose did not finish in the tmux pane within 60s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_terminal_of_100_columns_shows_prose_wrapped_at_words() {
    let dir = tempfile::tempdir().unwrap();
    let done = dir.path().join("done");
    let examples = root().join("examples");
    // COLUMNS unset: the width is the terminal's own. The pane stays open after the run so it
    // can be captured.
    let command = format!(
        "env -u COLUMNS -u NO_COLOR '{BINARY}' diagnose -f '{}' --color never; echo $? > '{}'; sleep 120",
        examples.display(),
        done.display()
    );
    let tmux = Tmux::start(&command);
    wait_for(&done);
    let exit = std::fs::read_to_string(&done).unwrap();
    assert_eq!(exit.trim(), "3", "diagnose's exit status in the pane");
    let rows = tmux.capture(false);
    let joined = tmux.capture(true);
    let rows: Vec<&str> = rows.lines().map(str::trim_end).collect();
    let start = rows
        .iter()
        .position(|row| row.starts_with("Expected generation"))
        .unwrap_or_else(|| panic!("no report in the pane:\n{}", rows.join("\n")));
    let rows = &rows[start..];
    let shown = rows.join("\n");

    // Nothing reached the edge and went on: the rows the terminal shows are the lines we wrote.
    assert_eq!(
        joined
            .lines()
            .map(str::trim_end)
            .skip_while(|row| !row.starts_with("Expected generation"))
            .collect::<Vec<_>>(),
        rows,
        "the terminal wrapped a line:\n{shown}"
    );
    for row in rows {
        assert!(row.chars().count() <= COLUMNS, "{row:?}");
    }

    // The prose is the same words as in a pipe, wrapped at words: each root cause's explanation
    // is longer than the terminal, so it takes several rows, and a row ends at a word's end.
    let piped = Command::new(BINARY)
        .args(["diagnose", "-f"])
        .arg(&examples)
        .env_remove("COLUMNS")
        .output()
        .unwrap();
    let piped = String::from_utf8(piped.stdout).unwrap();
    let explanation = rows
        .iter()
        .position(|row| row.starts_with("Root cause:"))
        .unwrap();
    let paragraph: Vec<&str> = rows[explanation + 1..]
        .iter()
        .take_while(|row| row.starts_with("  ") && !row.starts_with("  Fix:"))
        .copied()
        .collect();
    assert!(
        paragraph.len() >= 2,
        "the explanation is longer than 100 columns and wraps:\n{shown}"
    );
    let piped_paragraph = piped
        .lines()
        .skip_while(|line| !line.starts_with("Root cause:"))
        .nth(1)
        .unwrap();
    assert!(
        piped_paragraph.chars().count() > COLUMNS,
        "{piped_paragraph}"
    );
    assert_eq!(
        paragraph.join(" ").split_whitespace().collect::<Vec<_>>(),
        piped_paragraph.split_whitespace().collect::<Vec<_>>(),
        "wrapped at words, none cut:\n{shown}"
    );
    for row in &paragraph[1..] {
        assert!(
            row.starts_with("  ") && !row.starts_with("   "),
            "hangs by two: {row:?}"
        );
    }

    // The summary: one row per workload, cut with … at the edge rather than wrapped.
    let header = rows
        .iter()
        .position(|row| row.starts_with("NAMESPACE"))
        .unwrap();
    let workloads: Vec<&&str> = rows[header + 1..]
        .iter()
        .take_while(|row| !row.is_empty())
        .collect();
    let examples = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples"))
        .unwrap()
        .filter(|entry| entry.as_ref().unwrap().path().is_dir())
        .count();
    assert_eq!(workloads.len(), examples, "one row per example: {shown}");
    assert!(workloads.iter().any(|row| row.ends_with('…')), "{shown}");
}
