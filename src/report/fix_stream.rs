//! `diagnose --fix`: the fixes of the findings as one YAML stream for `kubectl apply -f -`.
//! Nothing here applies anything.
//!
//! - **Which findings**: every finding at `warning` or above, and with `--fail-on info` the info
//!   findings too (the threshold is the lower of `--fail-on` and `warning`). The `mesh-need`
//!   advice is not a fix and is never included.
//! - **Objects** (VirtualService, DestinationRule, EnvoyFilter, Sidecar, …) are documents of the
//!   stream, each once. Two fixes that change the same object differently are merged against the
//!   object as gathered (a three-way merge), so applying the stream keeps both changes; when they
//!   change the same field two ways, the higher-ranked fix is the document and the other is shown
//!   commented out at the end.
//! - **Workload patches** are strategic-merge patches for `kubectl patch`, which `kubectl apply`
//!   cannot take. They come last, as YAML comments: each a `kubectl patch … --patch-file
//!   /dev/stdin` command with the patch as a heredoc, every line prefixed `#> ` so that
//!   `sed -n 's/^#> //p'` turns them into a shell script to review and run.
//!
//! - **Fixes in words** (a remedy whose objects were not read, so no YAML can be written) are
//!   listed as comments after the header.
//!
//! Comments sit inside documents (never a comment-only document), so `kubectl apply -f -` reads
//! the stream as exactly the objects it holds. With no object at all the stream holds only
//! comments, and `kubectl apply` says there is nothing to apply.

use super::fixes::split_documents;
use super::merge::merge3;
use crate::checks::fixes::{IstioKind, istio_manifest};
use crate::checks::{Finding, Severity};
use crate::evidence::Evidence;
use crate::evidence::objects::IstioObject;
use crate::verdict::{Diagnosis, TargetDiagnosis, TargetSummary};
use serde::Serialize;
use serde_yaml::Value;
use std::collections::BTreeMap;
use std::fmt::Write;

/// The prefix of the lines that make up the workload-patch commands.
pub const COMMAND_PREFIX: &str = "#> ";
/// The heredoc delimiter around each patch.
const HEREDOC: &str = "INFERMESH_PATCH";

/// The lowest severity whose fixes `--fix` prints, given `--fail-on`.
pub fn threshold(fail_on: Severity) -> Severity {
    fail_on.min(Severity::Warning)
}

/// An object's identity across fixes: kind, namespace and name (not the API version: the same
/// object is served under several).
type Identity = (String, String, String);

/// One object of the stream and the fixes behind it.
struct ObjectEntry {
    identity: Identity,
    /// The fix's document as written, while only one version of the object was seen.
    text: String,
    value: Value,
    sources: Vec<String>,
    /// How many differing versions were merged into `value` (1: none merged).
    versions: usize,
}

struct PatchEntry {
    target: TargetSummary,
    yaml: String,
    sources: Vec<String>,
}

/// What could not go into the stream as a document, shown commented out with why.
struct Aside {
    why: String,
    text: String,
}

#[derive(Default)]
struct Stream {
    objects: Vec<ObjectEntry>,
    patches: Vec<PatchEntry>,
    asides: Vec<Aside>,
    /// Fixes without YAML: `#5 cold-start (critical) on endpoint/vllm: warm the model …`.
    in_words: Vec<String>,
}

/// The `--fix` output for `diagnosis`; `evidence` holds the objects as gathered, against which
/// two fixes of one object are merged.
pub fn render(diagnosis: &Diagnosis, evidence: &Evidence) -> String {
    let originals = originals(evidence);
    let threshold = threshold(diagnosis.fail_on);
    let mut stream = Stream::default();
    for target in &diagnosis.targets {
        for finding in target
            .findings
            .iter()
            .filter(|finding| finding.severity >= threshold)
        {
            stream.add_fix(target, finding, &originals);
        }
    }
    stream.render(threshold, diagnosis.fail_on)
}

impl Stream {
    fn add_fix(
        &mut self,
        target: &TargetDiagnosis,
        finding: &Finding,
        originals: &BTreeMap<Identity, Value>,
    ) {
        let Some(fix) = finding.fix.as_ref() else {
            return;
        };
        let source = one_line(&format!(
            "#{} {} ({}) on {}: {}",
            finding.number, finding.id, finding.severity, target.target.reference, fix.summary
        ));
        if fix.yaml.trim().is_empty() {
            self.in_words.push(source);
            return;
        }
        for document in split_documents(&fix.yaml) {
            match serde_yaml::from_str::<Value>(&document) {
                Ok(value) => match identity(&value) {
                    Some(identity) => {
                        self.add_object(identity, document, value, source.clone(), originals)
                    }
                    None if value.is_mapping() => self.add_patch(target, document, source.clone()),
                    None => self.asides.push(Aside {
                        why: format!("the fix of {source} is not an object or a patch"),
                        text: document,
                    }),
                },
                Err(error) => self.asides.push(Aside {
                    why: one_line(&format!("the fix of {source} is not valid YAML ({error})")),
                    text: document,
                }),
            }
        }
    }

    fn add_object(
        &mut self,
        identity: Identity,
        text: String,
        value: Value,
        source: String,
        originals: &BTreeMap<Identity, Value>,
    ) {
        let Some(entry) = self
            .objects
            .iter_mut()
            .find(|entry| entry.identity == identity)
        else {
            self.objects.push(ObjectEntry {
                identity,
                text,
                value,
                sources: vec![source],
                versions: 1,
            });
            return;
        };
        if entry.value == value {
            push_once(&mut entry.sources, source);
            return;
        }
        let merged = originals
            .get(&identity)
            .and_then(|base| merge3(base, &entry.value, &value));
        match merged {
            Some(merged) => {
                entry.value = merged;
                entry.versions += 1;
                push_once(&mut entry.sources, source);
            }
            None => {
                let (kind, namespace, name) = &entry.identity;
                self.asides.push(Aside {
                    why: format!(
                        "not merged: {source} changes {kind} {namespace}/{name} in a way that conflicts with the document above; apply it instead of that one, not after it"
                    ),
                    text,
                });
            }
        }
    }

    fn add_patch(&mut self, target: &TargetDiagnosis, yaml: String, source: String) {
        if let Some(entry) = self
            .patches
            .iter_mut()
            .find(|entry| entry.target == target.target && entry.yaml == yaml)
        {
            push_once(&mut entry.sources, source);
            return;
        }
        self.patches.push(PatchEntry {
            target: target.target.clone(),
            yaml,
            sources: vec![source],
        });
    }

    fn render(&self, threshold: Severity, fail_on: Severity) -> String {
        let mut out = String::new();
        let objects = self.objects.len();
        let patches = self.patches.len();
        let _ = writeln!(
            out,
            "# kubectl infermesh diagnose --fix: {objects} object{} for `kubectl apply -f -`{}.",
            plural(objects),
            if patches > 0 {
                format!(
                    ", and {patches} workload patch{} for `kubectl patch` at the end (commented)",
                    if patches == 1 { "" } else { "es" }
                )
            } else {
                String::new()
            }
        );
        let _ = writeln!(
            out,
            "# Fixes of the findings at {threshold} or above (--fail-on {fail_on}). Review before applying: nothing has been applied."
        );
        if objects == 0 && patches == 0 && self.asides.is_empty() && self.in_words.is_empty() {
            let _ = writeln!(out, "# No finding at {threshold} or above carries a fix.");
        }
        if !self.in_words.is_empty() {
            let _ = writeln!(
                out,
                "# Fixes in words (the objects to change were not read, so no YAML is written):"
            );
            for source in &self.in_words {
                let _ = writeln!(out, "#   {source}");
            }
        }
        for (index, entry) in self.objects.iter().enumerate() {
            if index > 0 {
                out.push_str("---\n");
            }
            for source in &entry.sources {
                let _ = writeln!(out, "# Fixes {source}");
            }
            if entry.versions > 1 {
                let _ = writeln!(
                    out,
                    "# {} fixes are merged into this one {}: applying it applies them all.",
                    entry.versions, entry.identity.0
                );
                match serde_yaml::to_string(&entry.value) {
                    Ok(text) => out.push_str(&text),
                    Err(_) => out.push_str(&entry.text),
                }
            } else {
                out.push_str(&entry.text);
            }
            if !out.ends_with('\n') {
                out.push('\n');
            }
        }
        for aside in &self.asides {
            let _ = writeln!(out, "#\n# {}:", one_line(&aside.why));
            commented(&mut out, "#   ", &aside.text);
        }
        if patches > 0 {
            self.render_patches(&mut out);
        }
        out
    }

    fn render_patches(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "#\n# Workload patches: strategic-merge patches, which `kubectl apply` cannot take. To run them,\n# save this output as fix.yaml, then `sed -n 's/^{} //p' fix.yaml > patches.sh`, review it and `sh patches.sh`\n# (or copy each command without its leading `{}`).",
            COMMAND_PREFIX.trim_end(),
            COMMAND_PREFIX.trim_end()
        );
        for entry in &self.patches {
            out.push_str("#\n");
            for source in &entry.sources {
                let _ = writeln!(out, "# Fixes {source}");
            }
            let target = &entry.target;
            match kubectl_resource(&target.kind) {
                Some(resource) => {
                    let _ = writeln!(
                        out,
                        "{COMMAND_PREFIX}kubectl patch {resource}/{} -n {} --type strategic --patch-file /dev/stdin <<'{HEREDOC}'",
                        target.name, target.namespace
                    );
                    commented(out, COMMAND_PREFIX, &entry.yaml);
                    let _ = writeln!(out, "{COMMAND_PREFIX}{HEREDOC}");
                }
                None => {
                    let _ = writeln!(
                        out,
                        "# {} {}/{} cannot take a patch while it runs: add this to its manifest and recreate it:",
                        target.kind, target.namespace, target.name
                    );
                    commented(out, "#   ", &entry.yaml);
                }
            }
        }
    }
}

/// `deployment`, `statefulset`: what `kubectl patch` names; `None` for kinds that cannot be
/// patched in place (a bare Pod's template is its spec, mostly immutable).
fn kubectl_resource(kind: &str) -> Option<&'static str> {
    match kind {
        "Deployment" => Some("deployment"),
        "StatefulSet" => Some("statefulset"),
        _ => None,
    }
}

/// The identity of an object document: it names its `kind` and `metadata.name`.
fn identity(value: &Value) -> Option<Identity> {
    let kind = value.get("kind")?.as_str()?;
    let metadata = value.get("metadata");
    let name = metadata
        .and_then(|metadata| metadata.get("name"))
        .and_then(Value::as_str)?;
    let namespace = metadata
        .and_then(|metadata| metadata.get("namespace"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    Some((kind.to_string(), namespace.to_string(), name.to_string()))
}

/// The Istio objects of every target as a fix would write them whole.
fn originals(evidence: &Evidence) -> BTreeMap<Identity, Value> {
    let mut found = BTreeMap::new();
    for target in &evidence.targets {
        let mesh = &target.mesh;
        collect(
            &mut found,
            IstioKind::VirtualService,
            &mesh.virtual_services,
        );
        collect(
            &mut found,
            IstioKind::DestinationRule,
            &mesh.destination_rules,
        );
        collect(&mut found, IstioKind::EnvoyFilter, &mesh.envoy_filters);
        collect(
            &mut found,
            IstioKind::PeerAuthentication,
            &mesh.peer_authentications,
        );
        collect(&mut found, IstioKind::Sidecar, &mesh.sidecars);
    }
    found
}

fn collect<S: Serialize>(
    found: &mut BTreeMap<Identity, Value>,
    kind: IstioKind,
    objects: &[IstioObject<S>],
) {
    for object in objects {
        let value =
            istio_manifest(kind, object).and_then(|text| serde_yaml::from_str::<Value>(&text).ok());
        if let Some(value) = value
            && let Some(identity) = identity(&value)
        {
            found.entry(identity).or_insert(value);
        }
    }
}

/// Every line of `text` behind `prefix` (blank lines too, so a heredoc keeps them).
fn commented(out: &mut String, prefix: &str, text: &str) {
    for line in text.lines() {
        let _ = writeln!(out, "{prefix}{line}");
    }
}

fn push_once(sources: &mut Vec<String>, source: String) {
    if !sources.contains(&source) {
        sources.push(source);
    }
}

fn plural(count: usize) -> &'static str {
    if count == 1 { "" } else { "s" }
}

/// Text that fits on one comment line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Basis;
    use crate::evidence::{CheckId, IstioPresence, SidecarMode, TargetEvidence, WorkloadKind};
    use crate::report::sample;
    use crate::verdict;
    use serde::Deserialize;

    fn documents(stream: &str) -> Vec<Value> {
        serde_yaml::Deserializer::from_str(stream)
            .map(|document| Value::deserialize(document).unwrap())
            .filter(|value| !value.is_null())
            .collect()
    }

    fn target() -> TargetEvidence {
        verdict::tests::target(SidecarMode::Injected, IstioPresence::Installed)
    }

    fn diagnose(
        target: &TargetEvidence,
        findings: Vec<Finding>,
        fail_on: Severity,
    ) -> (Diagnosis, Evidence) {
        let evidence = verdict::tests::evidence(vec![target.clone()], Vec::new());
        let per_check = CheckId::ALL
            .iter()
            .map(|id| {
                (
                    *id,
                    findings.iter().filter(|f| f.id == *id).cloned().collect(),
                )
            })
            .collect();
        let judged = verdict::judge_target(target, per_check);
        (
            verdict::summarise(&evidence, vec![judged], fail_on),
            evidence,
        )
    }

    fn finding(id: CheckId, severity: Severity, yaml: &str) -> Finding {
        Finding::new(id, severity, Basis::Static, format!("{id} finding"))
            .fix(format!("fix {id}"), yaml)
    }

    const FILTER: &str = r#"apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: audit, namespace: inference}
spec:
  configPatches:
  - applyTo: HTTP_FILTER
    patch: {operation: INSERT_BEFORE, value: {name: envoy.filters.http.lua}}
  - applyTo: LISTENER
    patch: {operation: MERGE, value: {per_connection_buffer_limit_bytes: 32768}}
"#;

    fn with_filter() -> TargetEvidence {
        let mut target = target();
        target.mesh.envoy_filters = vec![serde_yaml::from_str(FILTER).unwrap()];
        target
    }

    #[test]
    fn threshold_is_the_lower_of_fail_on_and_warning() {
        assert_eq!(threshold(Severity::Critical), Severity::Warning);
        assert_eq!(threshold(Severity::Warning), Severity::Warning);
        assert_eq!(threshold(Severity::Info), Severity::Info);
    }

    #[test]
    fn objects_are_documents_and_patches_commented_commands() {
        let diagnosis = sample::failing();
        let evidence = verdict::tests::evidence(Vec::new(), Vec::new());
        let mut diagnosis = diagnosis;
        let patch = Finding::new(CheckId::ColdStart, Severity::Warning, Basis::Static, "cold").fix(
            "warm it",
            "spec:\n  template:\n    metadata:\n      annotations:\n        a: b\n",
        );
        diagnosis.targets[0].findings.push(patch);
        let stream = render(&diagnosis, &evidence);
        let parsed = documents(&stream);
        assert_eq!(parsed.len(), 2, "{stream}");
        assert_eq!(parsed[0]["kind"], "VirtualService");
        assert_eq!(parsed[1]["kind"], "DestinationRule");
        assert!(
            stream.starts_with("# kubectl infermesh diagnose --fix: 2 objects"),
            "{stream}"
        );
        assert!(
            stream.contains(
                "# Fixes #2 stream-timeout (critical) on deploy/vllm: Set the route timeout"
            ),
            "{stream}"
        );
        let commands: Vec<&str> = stream
            .lines()
            .filter_map(|line| line.strip_prefix(COMMAND_PREFIX))
            .collect();
        assert_eq!(
            commands[0],
            "kubectl patch deployment/vllm -n inference --type strategic --patch-file /dev/stdin <<'INFERMESH_PATCH'"
        );
        let body = commands[1..commands.len() - 1].join("\n");
        let body: Value = serde_yaml::from_str(&body).unwrap();
        assert_eq!(
            body["spec"]["template"]["metadata"]["annotations"]["a"],
            "b"
        );
        assert_eq!(commands.last(), Some(&"INFERMESH_PATCH"));
        assert!(
            !stream.contains("\n---\n#\n"),
            "no comment-only document:\n{stream}"
        );
    }

    #[test]
    fn fixes_in_words_are_comments_and_no_document() {
        let target = target();
        let words = finding(CheckId::ColdStart, Severity::Critical, "");
        let (diagnosis, evidence) = diagnose(&target, vec![words], Severity::Critical);
        let stream = render(&diagnosis, &evidence);
        assert!(documents(&stream).is_empty(), "{stream}");
        assert!(
            stream.contains("# Fixes in words (the objects to change were not read, so no YAML is written):\n#   #5 cold-start (critical) on deploy/vllm: fix cold-start"),
            "{stream}"
        );
        assert!(!stream.contains("No finding at"), "{stream}");
    }

    #[test]
    fn info_fixes_only_with_fail_on_info_and_never_the_advice() {
        let info = finding(
            CheckId::BufferLimit,
            Severity::Info,
            "apiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\nmetadata: {name: f, namespace: inference}\nspec: {}\n",
        );
        let target = target();
        let (critical, evidence) = diagnose(&target, vec![info.clone()], Severity::Critical);
        let stream = render(&critical, &evidence);
        assert!(documents(&stream).is_empty(), "{stream}");
        assert!(
            stream.contains("# No finding at warning or above carries a fix."),
            "{stream}"
        );
        let (mut gate_info, evidence) = diagnose(&target, vec![info], Severity::Info);
        gate_info.targets[0].mesh_need = crate::checks::mesh_need::assess(&target);
        assert!(
            gate_info.targets[0]
                .mesh_need
                .as_ref()
                .unwrap()
                .fix
                .is_some()
        );
        let stream = render(&gate_info, &evidence);
        assert_eq!(documents(&stream).len(), 1, "{stream}");
        assert!(!stream.contains("sidecar.istio.io/inject"), "{stream}");
    }

    #[test]
    fn two_fixes_of_one_object_merge_against_the_original() {
        let without_lua = FILTER.replace(
            "  - applyTo: HTTP_FILTER\n    patch: {operation: INSERT_BEFORE, value: {name: envoy.filters.http.lua}}\n",
            "",
        );
        let bigger_buffer = FILTER.replace("32768", "1048576");
        let target = with_filter();
        let (diagnosis, evidence) = diagnose(
            &target,
            vec![
                finding(CheckId::BufferLimit, Severity::Warning, &without_lua),
                finding(CheckId::BufferLimit, Severity::Warning, &bigger_buffer),
            ],
            Severity::Critical,
        );
        let stream = render(&diagnosis, &evidence);
        let parsed = documents(&stream);
        assert_eq!(parsed.len(), 1, "{stream}");
        let patches = parsed[0]["spec"]["configPatches"].as_sequence().unwrap();
        assert_eq!(patches.len(), 1, "{stream}");
        assert_eq!(patches[0]["applyTo"], "LISTENER");
        assert_eq!(
            patches[0]["patch"]["value"]["per_connection_buffer_limit_bytes"],
            1048576
        );
        assert!(
            stream.contains("# 2 fixes are merged into this one EnvoyFilter"),
            "{stream}"
        );
    }

    #[test]
    fn conflicting_fixes_keep_the_first_and_show_the_other_commented() {
        let smaller = FILTER.replace("32768", "65536");
        let bigger = FILTER.replace("32768", "1048576");
        let target = with_filter();
        let (diagnosis, evidence) = diagnose(
            &target,
            vec![
                finding(CheckId::BufferLimit, Severity::Critical, &bigger),
                finding(CheckId::BufferLimit, Severity::Warning, &smaller),
            ],
            Severity::Critical,
        );
        let stream = render(&diagnosis, &evidence);
        let parsed = documents(&stream);
        assert_eq!(parsed.len(), 1, "{stream}");
        assert_eq!(
            parsed[0]["spec"]["configPatches"][1]["patch"]["value"]["per_connection_buffer_limit_bytes"],
            1048576
        );
        assert!(
            stream.contains("# not merged: #4 buffer-limit (warning)"),
            "{stream}"
        );
        assert!(
            stream.contains("#   apiVersion: networking.istio.io/v1alpha3"),
            "{stream}"
        );
    }

    #[test]
    fn the_same_fix_twice_is_one_document_naming_both_findings() {
        let rule = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: vllm, namespace: inference}\nspec: {host: vllm}\n";
        let target = target();
        let (diagnosis, evidence) = diagnose(
            &target,
            vec![
                finding(CheckId::ConnectionPool, Severity::Critical, rule),
                finding(CheckId::StreamTimeout, Severity::Warning, rule),
            ],
            Severity::Critical,
        );
        let stream = render(&diagnosis, &evidence);
        assert_eq!(documents(&stream).len(), 1, "{stream}");
        assert!(
            stream.contains("# Fixes #3 connection-pool (critical)"),
            "{stream}"
        );
        assert!(
            stream.contains("# Fixes #2 stream-timeout (warning)"),
            "{stream}"
        );
    }

    #[test]
    fn a_bare_pod_gets_instructions_not_a_command() {
        let mut target = target();
        target.workload.kind = WorkloadKind::Pod;
        let (diagnosis, evidence) = diagnose(
            &target,
            vec![finding(
                CheckId::SidecarOverhead,
                Severity::Warning,
                "metadata:\n  annotations: {a: b}\n",
            )],
            Severity::Critical,
        );
        let stream = render(&diagnosis, &evidence);
        assert!(
            !stream.lines().any(|line| line.starts_with(COMMAND_PREFIX)),
            "{stream}"
        );
        assert!(
            stream.contains("# Pod inference/vllm cannot take a patch while it runs"),
            "{stream}"
        );
        assert!(documents(&stream).is_empty());
    }
}
