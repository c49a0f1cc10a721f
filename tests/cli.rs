#![allow(clippy::unwrap_used)]
//! End-to-end tests of the binary over the bundled `examples/`: root cause per failure mode, exit
//! codes (the same in every output format), the JSON/YAML shape, and bad input.

use assert_cmd::cargo::cargo_bin_cmd;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

const MODES: [(&str, u64); 5] = [
    ("sidecar-overhead", 1),
    ("stream-timeout", 2),
    ("connection-pool", 3),
    ("buffer-limit", 4),
    ("cold-start", 5),
];
const FORMATS: [&str; 5] = ["table", "wide", "json", "yaml", "markdown"];

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|error| panic!("stdout is not JSON ({error}):\n{}", self.stdout))
    }
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn example(name: &str) -> String {
    let path: PathBuf = root().join("examples").join(name);
    assert!(
        path.is_dir(),
        "{} is missing: the examples come with the checks",
        path.display()
    );
    format!("{}/", path.display())
}

fn run_in(dir: &Path, program: Option<&Path>, args: &[&str]) -> Run {
    let mut command = match program {
        Some(program) => assert_cmd::Command::new(program),
        None => cargo_bin_cmd!("kubectl-infermesh"),
    };
    let output = command
        .current_dir(dir)
        .args(args)
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap();
    let run = Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    };
    assert!(
        !run.stderr.contains("panicked"),
        "{args:?} panicked:\n{}",
        run.stderr
    );
    run
}

fn run(args: &[&str]) -> Run {
    run_in(root(), None, args)
}

/// An error is one line on stderr, `error: …`, and nothing on stdout.
fn assert_one_line_error(run: &Run, code: i32) {
    assert_eq!(run.code, code, "stderr: {}", run.stderr);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected:\n{}", run.stderr);
    assert!(lines[0].starts_with("error: "), "{}", run.stderr);
    assert!(run.stdout.is_empty(), "stdout: {}", run.stdout);
}

fn max_severity(report: &Value) -> Option<&str> {
    let rank = |s: &str| ["info", "warning", "critical"].iter().position(|x| *x == s);
    report["targets"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["findings"].as_array().unwrap())
        .map(|f| f["severity"].as_str().unwrap())
        .max_by_key(|s| rank(s))
}

// ---- Independent of the manifest loader and the checks ----

#[test]
fn help_names_the_kubectl_plugin() {
    let run = run(&["--help"]);
    assert_eq!(run.code, 0);
    assert!(
        run.stdout.contains("Usage: kubectl infermesh"),
        "{}",
        run.stdout
    );
    let run = self::run(&["diagnose", "--help"]);
    assert_eq!(run.code, 0);
    assert!(
        run.stdout.contains("Usage: kubectl infermesh diagnose"),
        "{}",
        run.stdout
    );
    for flag in [
        "--filename",
        "--namespace",
        "--all-namespaces",
        "--selector",
        "--output",
        "--fail-on",
        "--expected-generation",
        "--verbose",
        "Exit codes",
    ] {
        assert!(run.stdout.contains(flag), "{flag} missing:\n{}", run.stdout);
    }
}

#[test]
fn help_uses_the_plain_name_under_another_name() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("infermesh");
    std::os::unix::fs::symlink(assert_cmd::cargo::cargo_bin!("kubectl-infermesh"), &link).unwrap();
    let run = run_in(root(), Some(&link), &["--help"]);
    assert_eq!(run.code, 0);
    assert!(run.stdout.contains("Usage: infermesh"), "{}", run.stdout);
    assert!(!run.stdout.contains("kubectl infermesh"), "{}", run.stdout);
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        vec![],
        vec!["frobnicate"],
        vec!["diagnose", "--no-such-flag"],
        vec!["diagnose", "-o", "html", "-f", "examples/"],
        vec!["diagnose", "--fail-on", "fatal", "-f", "examples/"],
        vec![
            "diagnose",
            "--expected-generation",
            "soon",
            "-f",
            "examples/",
        ],
        vec!["diagnose", "-n", "a", "-A", "-f", "examples/"],
    ] {
        let run = run(&args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(
            !run.stderr.is_empty(),
            "{args:?}: usage errors explain themselves"
        );
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
    }
}

#[test]
fn without_manifests_or_kubeconfig_says_what_to_set() {
    let home = tempfile::tempdir().unwrap();
    let output = cargo_bin_cmd!("kubectl-infermesh")
        .current_dir(root())
        .args(["diagnose"])
        .env("KUBECONFIG", home.path().join("absent-kubeconfig"))
        .env("HOME", home.path())
        .env("NO_COLOR", "1")
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    let run = Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    };
    assert_one_line_error(&run, 1);
    assert!(run.stderr.contains("kubeconfig"), "{}", run.stderr);
}

// ---- Over the bundled examples: these need the manifest loader, gather and the checks ----

#[test]
fn each_failure_mode_example_names_its_mode_as_root_cause() {
    for (mode, number) in MODES {
        let dir = example(mode);
        let run = run(&["diagnose", "-f", &dir, "-o", "json"]);
        let report = run.json();
        assert_eq!(report["schemaVersion"], 1, "{mode}");
        let target = &report["targets"][0];
        let root = &target["rootCause"];
        assert_eq!(root["id"], mode, "{mode}: {}", run.stdout);
        assert_eq!(root["number"], number, "{mode}");
        assert!(
            ["high", "medium", "low"].contains(&root["confidence"].as_str().unwrap()),
            "{mode}: {root}"
        );
        assert!(!root["explanation"].as_str().unwrap().is_empty(), "{mode}");
        assert_eq!(target["findings"][0]["id"], mode, "{mode}: ranked first");
        let finding = &target["findings"][0];
        assert!(
            !finding["evidence"].as_array().unwrap().is_empty(),
            "{mode}: a root cause shows its evidence"
        );
        assert!(finding["fix"]["summary"].is_string(), "{mode}: {finding}");

        // Default --fail-on critical: exit 3 exactly when a finding is critical.
        let critical = max_severity(&report) == Some("critical");
        assert_eq!(
            run.code,
            if critical { 3 } else { 0 },
            "{mode}: {}",
            run.stderr
        );
        assert_eq!(report["exitCode"], run.code, "{mode}");
        // A root cause is above info, so a lower threshold always fails.
        for fail_on in ["warning", "info"] {
            let run = self::run(&["diagnose", "-f", &dir, "-o", "json", "--fail-on", fail_on]);
            assert_eq!(run.code, 3, "{mode} --fail-on {fail_on}: {}", run.stderr);
        }
    }
}

#[test]
fn healthy_example_exits_0_with_nothing_above_info() {
    let dir = example("healthy");
    let run = run(&["diagnose", "-f", &dir, "-o", "json"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stderr, run.stdout);
    let report = run.json();
    assert!(!report["targets"].as_array().unwrap().is_empty());
    for target in report["targets"].as_array().unwrap() {
        assert_eq!(target["rootCause"], Value::Null, "{target}");
        for finding in target["findings"].as_array().unwrap() {
            assert_eq!(finding["severity"], "info", "{finding}");
        }
    }
    let run = self::run(&["diagnose", "-f", &dir, "--fail-on", "warning"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("No failure mode found above info"),
        "{}",
        run.stdout
    );
}

/// The healthy example with its routes moved into a delegate VirtualService (Istio 1.8+) whose
/// route sets `timeout: 30s`: the root names the service, the delegate holds the cut.
const DELEGATED_TRAFFIC: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: llama-3-8b
  namespace: llm-healthy
spec:
  hosts:
  - llama-3-8b.llm-healthy.svc.cluster.local
  http:
  - name: openai
    match:
    - uri:
        prefix: /v1/
    delegate:
      name: llama-3-8b-routes
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: llama-3-8b-routes
  namespace: llm-healthy
spec:
  http:
  - name: completions
    match:
    - uri:
        prefix: /v1/completions
    route:
    - destination:
        host: llama-3-8b.llm-healthy.svc.cluster.local
        port:
          number: 8000
    timeout: 30s
"#;

#[test]
fn a_timeout_in_a_delegate_virtual_service_is_the_root_cause_with_evidence_on_the_delegate() {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(root().join("examples/healthy")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "yaml") {
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    std::fs::write(dir.path().join("25-delegated.yaml"), DELEGATED_TRAFFIC).unwrap();
    // The healthy example's own VirtualService gives way to the root above.
    let traffic = std::fs::read_to_string(dir.path().join("20-traffic.yaml")).unwrap();
    let without_vs: Vec<&str> = traffic
        .split("\n---\n")
        .filter(|document| !document.contains("kind: VirtualService"))
        .collect();
    std::fs::write(
        dir.path().join("20-traffic.yaml"),
        without_vs.join("\n---\n"),
    )
    .unwrap();

    let folder = format!("{}/", dir.path().display());
    let run = run(&["diagnose", "-f", &folder, "-o", "json"]);
    assert_eq!(run.code, 3, "{}\n{}", run.stderr, run.stdout);
    let report = run.json();
    let target = &report["targets"][0];
    assert_eq!(
        target["rootCause"]["id"], "stream-timeout",
        "{}",
        run.stdout
    );
    assert_eq!(target["rootCause"]["number"], 2);
    let finding = &target["findings"][0];
    assert_eq!(finding["id"], "stream-timeout");
    assert_eq!(finding["severity"], "critical");
    let line = &finding["evidence"][0];
    assert_eq!(line["object"]["kind"], "VirtualService");
    assert_eq!(line["object"]["namespace"], "llm-healthy");
    assert_eq!(line["object"]["name"], "llama-3-8b-routes", "{finding}");
    assert_eq!(line["path"], "spec/http[0]/timeout");
    assert_eq!(line["value"], "30s");
    // The fix patches the delegate, which holds the timeout, and keeps it a delegate.
    let fix: Value = serde_yaml::from_str(finding["fix"]["yaml"].as_str().unwrap()).unwrap();
    assert_eq!(fix["metadata"]["name"], "llama-3-8b-routes", "{fix}");
    assert_eq!(fix["spec"]["http"][0]["timeout"], "300s");
    assert!(fix["spec"].get("hosts").is_none(), "{fix}");
    assert!(
        target["gaps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|gap| !gap["what"].as_str().unwrap().starts_with("VirtualService")),
        "the delegate was found: {}",
        target["gaps"]
    );
}

#[test]
fn exit_code_is_the_same_in_every_output_format() {
    for dir in MODES.iter().map(|(mode, _)| *mode).chain(["healthy"]) {
        let dir = example(dir);
        for fail_on in ["critical", "warning"] {
            let codes: Vec<i32> = FORMATS
                .iter()
                .map(|format| {
                    let run = run(&["diagnose", "-f", &dir, "-o", format, "--fail-on", fail_on]);
                    assert!(!run.stdout.is_empty(), "{dir} -o {format}: {}", run.stderr);
                    run.code
                })
                .collect();
            assert!(
                codes
                    .iter()
                    .all(|code| *code == codes[0] && (*code == 0 || *code == 3)),
                "{dir} --fail-on {fail_on}: {FORMATS:?} -> {codes:?}"
            );
        }
    }
}

#[test]
fn yaml_and_markdown_carry_the_same_verdict_as_json() {
    for (mode, number) in MODES {
        let dir = example(mode);
        let json = run(&["diagnose", "-f", &dir, "-o", "json"]).json();
        let yaml = run(&["diagnose", "-f", &dir, "-o", "yaml"]);
        let yaml: Value = serde_yaml::from_str(&yaml.stdout).unwrap();
        assert_eq!(yaml, json, "{mode}");
        let markdown = run(&["diagnose", "-f", &dir, "-o", "markdown"]).stdout;
        assert!(
            markdown.contains(&format!("**Root cause: #{number} `{mode}`")),
            "{mode}:\n{markdown}"
        );
        if json["targets"][0]["findings"][0]["fix"]["yaml"].is_string() {
            assert!(
                markdown.contains("```yaml\n"),
                "{mode}: fix as a YAML block"
            );
        }
        let table = run(&["diagnose", "-f", &dir]).stdout;
        assert!(
            table.contains(&format!("Root cause: #{number} {mode}")),
            "{mode}:\n{table}"
        );
    }
}

#[test]
fn all_examples_at_once_give_every_mode_its_own_target() {
    let run = run(&["diagnose", "-f", "examples/", "-o", "json"]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    let report = run.json();
    let roots: Vec<Value> = report["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["rootCause"]["id"].clone())
        .collect();
    for (mode, _) in MODES {
        assert!(
            roots.contains(&Value::from(mode)),
            "{mode} missing in {roots:?}"
        );
    }
    assert!(
        roots.contains(&Value::Null),
        "the healthy service: {roots:?}"
    );
}

#[test]
fn malformed_yaml_names_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.yaml");
    std::fs::write(
        &file,
        "apiVersion: v1\nkind: Service\nmetadata: name: vllm\n",
    )
    .unwrap();
    let run = run(&["diagnose", "-f", file.to_str().unwrap()]);
    assert_one_line_error(&run, 1);
    assert!(run.stderr.contains("broken.yaml"), "{}", run.stderr);
    assert!(
        run.stderr.contains("line 3") || run.stderr.contains("broken.yaml:3"),
        "names line 3: {}",
        run.stderr
    );
}

#[test]
fn unknown_target_lists_the_workloads_found() {
    let dir = example("healthy");
    let found = run(&["diagnose", "-f", &dir, "-o", "json"]).json();
    let known = found["targets"][0]["target"]["ref"]
        .as_str()
        .unwrap()
        .to_string();
    let run = run(&["diagnose", "deploy/no-such-workload", "-f", &dir]);
    assert_one_line_error(&run, 1);
    assert!(run.stderr.contains("no-such-workload"), "{}", run.stderr);
    assert!(run.stderr.contains(&known), "lists {known}: {}", run.stderr);
}

#[test]
fn verbose_logs_go_to_stderr_and_keep_stdout_clean() {
    let dir = example("healthy");
    let run = run(&["diagnose", "-f", &dir, "-o", "json", "-vv"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.json();
    assert!(run.stderr.contains("diagnosis done"), "{}", run.stderr);
    assert!(
        run.stderr.contains("DEBUG"),
        "-vv shows debug: {}",
        run.stderr
    );
}

// ---- Packaging ----

/// krew-manifest.yaml with its placeholders filled as scripts/release.sh fills them.
fn rendered_krew_manifest() -> Value {
    let text = std::fs::read_to_string(root().join("krew-manifest.yaml")).unwrap();
    let mut text = text.replace("@VERSION@", env!("CARGO_PKG_VERSION"));
    for platform in ["LINUX_AMD64", "LINUX_ARM64", "DARWIN_AMD64", "DARWIN_ARM64"] {
        let placeholder = format!("@SHA256_{platform}@");
        assert!(text.contains(&placeholder), "{placeholder}");
        text = text.replace(&placeholder, &"ab".repeat(32));
    }
    assert!(
        !text.contains('@'),
        "a placeholder release.sh does not fill: {text}"
    );
    serde_yaml::from_str(&text).unwrap()
}

/// .krew.yaml as krew-release-bot renders it for the tag of Cargo.toml's version.
fn rendered_krew_bot_template() -> Value {
    let text = std::fs::read_to_string(root().join(".krew.yaml")).unwrap();
    let tag = format!("v{}", env!("CARGO_PKG_VERSION"));
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            let Some(start) = line.find("{{addURIAndSha \"") else {
                return line.replace("{{ .TagName }}", &tag);
            };
            let rest = &line[start + "{{addURIAndSha \"".len()..];
            let uri = &rest[..rest.find('"').unwrap()];
            let indent = &line[..start];
            format!(
                "{indent}uri: {}\n{indent}sha256: \"{}\"",
                uri.replace("{{ .TagName }}", &tag),
                "cd".repeat(32)
            )
        })
        .collect();
    let text = lines.join("\n");
    assert!(
        !text.contains("{{"),
        "a template the bot does not know: {text}"
    );
    serde_yaml::from_str(&text).unwrap()
}

#[test]
fn krew_manifest_is_a_valid_plugin_for_four_platforms() {
    let manifest = rendered_krew_manifest();
    assert_eq!(
        manifest["apiVersion"],
        "krew.googlecontainertools.github.com/v1alpha2"
    );
    assert_eq!(manifest["kind"], "Plugin");
    assert_eq!(manifest["metadata"]["name"], "infermesh");
    let spec = &manifest["spec"];
    assert_eq!(
        spec["version"],
        format!("v{}", env!("CARGO_PKG_VERSION")),
        "krew version follows Cargo.toml"
    );
    for key in ["homepage", "shortDescription", "description"] {
        assert!(spec[key].as_str().is_some_and(|s| !s.is_empty()), "{key}");
    }
    let mut platforms: Vec<(String, String)> = Vec::new();
    for platform in spec["platforms"].as_array().unwrap() {
        let labels = &platform["selector"]["matchLabels"];
        let (os, arch) = (
            labels["os"].as_str().unwrap().to_string(),
            labels["arch"].as_str().unwrap().to_string(),
        );
        assert_eq!(platform["bin"], "kubectl-infermesh");
        let uri = platform["uri"].as_str().unwrap();
        // The archive scripts/release.sh writes for this platform.
        let archive = format!(
            "/v{version}/kubectl-infermesh_v{version}_{os}_{arch}.tar.gz",
            version = env!("CARGO_PKG_VERSION")
        );
        assert!(
            uri.starts_with("https://") && uri.ends_with(&archive),
            "{uri}"
        );
        let files: Vec<&str> = platform["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|file| file["from"].as_str().unwrap())
            .collect();
        assert_eq!(
            files,
            ["kubectl-infermesh", "kubectl_complete-infermesh", "LICENSE"]
        );
        platforms.push((os, arch));
    }
    platforms.sort();
    let expected: Vec<(String, String)> = [
        ("darwin", "amd64"),
        ("darwin", "arm64"),
        ("linux", "amd64"),
        ("linux", "arm64"),
    ]
    .iter()
    .map(|(os, arch)| (os.to_string(), arch.to_string()))
    .collect();
    assert_eq!(platforms, expected);

    // The bot's template is the same manifest once rendered, but for the checksums.
    let mut bot = rendered_krew_bot_template();
    let mut local = manifest.clone();
    for manifest in [&mut bot, &mut local] {
        for platform in manifest["spec"]["platforms"].as_array_mut().unwrap() {
            platform["sha256"] = Value::Null;
        }
    }
    assert_eq!(bot, local);

    let plugin: Value =
        serde_yaml::from_str(&std::fs::read_to_string(root().join("plugin.yaml")).unwrap())
            .unwrap();
    assert_eq!(plugin["name"], "infermesh");
}

/// Policies and scale that bear on the judgement, read from manifests: an AuthorizationPolicy on
/// the pods means the sidecar is needed (only it enforces the policy), and an autoscaler's
/// maximum is the fleet a caller's pool is judged against.
#[test]
fn an_authorization_policy_keeps_the_sidecar_and_an_autoscalers_max_is_the_fleet() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("vllm.yaml"),
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: vllm, namespace: llm}
spec:
  replicas: 1
  selector: {matchLabels: {app: vllm}}
  template:
    metadata: {labels: {app: vllm, sidecar.istio.io/inject: "true"}}
    spec:
      containers:
      - name: vllm
        image: vllm/vllm-openai:v0.8.5
        args: [--model, m, --max-num-seqs, "64"]
---
apiVersion: v1
kind: Service
metadata: {name: vllm, namespace: llm}
spec: {selector: {app: vllm}, ports: [{port: 8000}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: vllm, namespace: llm}
spec:
  host: vllm
  trafficPolicy: {connectionPool: {http: {http2MaxRequests: 100}}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: only-gateway, namespace: llm}
spec:
  selector: {matchLabels: {app: vllm}}
  action: ALLOW
  rules: [{from: [{source: {principals: [cluster.local/ns/istio-system/sa/gateway]}}]}]
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: vllm, namespace: llm}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: vllm}
  minReplicas: 1
  maxReplicas: 10
"#,
    )
    .unwrap();
    let run = run(&["diagnose", "-f", dir.path().to_str().unwrap(), "-o", "json"]);
    let report = run.json();
    let target = &report["targets"][0];
    assert_eq!(target["meshNeed"], "sidecar-needed", "{target:#}");
    let findings = target["findings"].as_array().unwrap();
    let pool = findings
        .iter()
        .find(|finding| finding["id"] == "connection-pool")
        .unwrap_or_else(|| panic!("{target:#}"));
    // 100 is above one replica's 64 but under the 10 × 64 the autoscaler may run.
    assert_eq!(pool["severity"], "warning", "{pool:#}");
    assert!(
        pool["title"].as_str().unwrap().contains("10 × 64 = 640"),
        "{pool:#}"
    );
    assert!(
        pool["assumptions"].to_string().contains(
            "HorizontalPodAutoscaler llm/vllm scales deploy/vllm between 1 and 10 replicas"
        ),
        "{pool:#}"
    );
}
