//! Joining the fixes of several findings into one YAML stream that `kubectl apply -f -` accepts.

use crate::checks::{Finding, Fix};
use crate::evidence::CheckId;

/// The fixes of one failure mode's findings, in rank order, each once.
pub fn for_mode(findings: &[Finding], id: CheckId) -> Vec<&Fix> {
    let mut fixes: Vec<&Fix> = Vec::new();
    for fix in findings
        .iter()
        .filter(|finding| finding.id == id)
        .filter_map(|finding| finding.fix.as_ref())
    {
        if !fixes.contains(&fix) {
            fixes.push(fix);
        }
    }
    fixes
}

/// Joins the YAML of several fixes into one multi-document stream: documents separated by `---`,
/// each document once, ending in a newline. Empty when no fix carries YAML.
pub fn join_yaml<'a>(fixes: impl IntoIterator<Item = &'a Fix>) -> String {
    let mut documents: Vec<String> = Vec::new();
    for fix in fixes {
        for document in split_documents(&fix.yaml) {
            if !documents.contains(&document) {
                documents.push(document);
            }
        }
    }
    let mut out = documents.join("---\n");
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// An object (`Kind namespace/name`) that two of `fixes` write differently: applying both keeps
/// only the last, so renderers say so and point to `--fix`, which merges them.
pub fn same_object_twice<'a>(fixes: impl IntoIterator<Item = &'a Fix>) -> Option<String> {
    let mut seen: Vec<(String, serde_yaml::Value)> = Vec::new();
    for fix in fixes {
        for document in split_documents(&fix.yaml) {
            let Ok(value) = serde_yaml::from_str::<serde_yaml::Value>(&document) else {
                continue;
            };
            let Some(label) = object_label(&value) else {
                continue;
            };
            match seen.iter().find(|(seen_label, _)| *seen_label == label) {
                Some((_, earlier)) if *earlier != value => return Some(label),
                Some(_) => {}
                None => seen.push((label, value)),
            }
        }
    }
    None
}

/// `EnvoyFilter llm/audit` for an object document; `None` for a patch.
fn object_label(value: &serde_yaml::Value) -> Option<String> {
    let kind = value.get("kind")?.as_str()?;
    let metadata = value.get("metadata")?;
    let name = metadata.get("name")?.as_str()?;
    let namespace = metadata
        .get("namespace")
        .and_then(serde_yaml::Value::as_str)
        .unwrap_or_default();
    Some(format!("{kind} {namespace}/{name}"))
}

/// Splits a YAML stream at `---` lines; drops empty documents; every document ends in `\n`.
pub(crate) fn split_documents(yaml: &str) -> Vec<String> {
    let mut documents = Vec::new();
    let mut current = String::new();
    for line in yaml.lines() {
        if line.trim_end() == "---" {
            push_document(&mut documents, &mut current);
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    push_document(&mut documents, &mut current);
    documents
}

fn push_document(documents: &mut Vec<String>, current: &mut String) {
    let has_content = current
        .lines()
        .any(|line| !line.trim().is_empty() && !line.trim_start().starts_with('#'));
    if has_content {
        documents.push(std::mem::take(current));
    } else {
        current.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::{Basis, Severity};
    use serde::Deserialize;

    fn fix(yaml: &str) -> Fix {
        Fix {
            summary: "s".into(),
            yaml: yaml.into(),
        }
    }

    #[test]
    fn joins_documents_once_with_separators() {
        let a = fix("kind: A\nmetadata:\n  name: a");
        let b = fix("---\nkind: B\n---\nkind: A\nmetadata:\n  name: a\n");
        let joined = join_yaml([&a, &b]);
        assert_eq!(joined, "kind: A\nmetadata:\n  name: a\n---\nkind: B\n");
        let parsed: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&joined)
            .map(|document| serde_yaml::Value::deserialize(document).unwrap())
            .collect();
        assert_eq!(parsed.len(), 2);
    }

    #[test]
    fn an_object_written_two_ways_is_named() {
        let a =
            fix("kind: EnvoyFilter\nmetadata: {name: f, namespace: llm}\nspec: {priority: 1}\n");
        let b =
            fix("kind: EnvoyFilter\nmetadata: {name: f, namespace: llm}\nspec: {priority: 2}\n");
        let patch = fix("spec:\n  template: {}\n");
        assert_eq!(
            same_object_twice([&a, &patch, &b]).as_deref(),
            Some("EnvoyFilter llm/f")
        );
        assert_eq!(same_object_twice([&a, &a.clone(), &patch]), None);
    }

    #[test]
    fn no_yaml_gives_empty_text() {
        assert_eq!(join_yaml([&fix(""), &fix("---\n# only a comment\n")]), "");
    }

    #[test]
    fn fixes_of_one_mode_in_rank_order_without_repeats() {
        let same = || {
            Finding::new(
                CheckId::ConnectionPool,
                Severity::Warning,
                Basis::Static,
                "t",
            )
            .fix("raise", "kind: DestinationRule\n")
        };
        let other = Finding::new(
            CheckId::StreamTimeout,
            Severity::Critical,
            Basis::Static,
            "t",
        )
        .fix("timeout", "kind: VirtualService\n");
        let findings = vec![other, same(), same()];
        let fixes = for_mode(&findings, CheckId::ConnectionPool);
        assert_eq!(fixes.len(), 1);
        assert_eq!(fixes[0].summary, "raise");
    }
}
