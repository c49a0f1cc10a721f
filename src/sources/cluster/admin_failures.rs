//! The same admin-read failure on many pods said once: pods whose Envoy could not be read for
//! one cause become one run gap with a count and an example (`port-forward to port 15000 failed
//! in the pod: … on 500 of 500 sidecars (e.g. team-000/llm-00-0): counters and effective config
//! not read`), and one warning line; so does one pod's failure that every target would repeat
//! (a shared gateway's). A cause met once stays with its target.

use super::paths::EnvoySide;
use crate::evidence::{Gap, ObjectRef, TargetEvidence};
use std::collections::BTreeMap;

/// The `what` of a gap about one pod's Envoy admin.
const PER_POD: &str = "Envoy admin of pod ";

/// Moves the admin gaps that share a cause across `targets` into one run gap each, counted
/// against the `read` pods of each side; returns the causes said more than once.
pub fn aggregate(
    targets: &mut [TargetEvidence],
    read: &[(ObjectRef, EnvoySide)],
    run_gaps: &mut Vec<Gap>,
) -> Vec<String> {
    // `namespace/name` of each pod read, once: the targets' gaps name pods so.
    let sides: std::collections::HashMap<String, EnvoySide> = read
        .iter()
        .rev()
        .map(|(pod, side)| {
            (
                format!(
                    "{}/{}",
                    pod.namespace.as_deref().unwrap_or_default(),
                    pod.name
                ),
                *side,
            )
        })
        .collect();
    let side_of = |pod: &str| sides.get(pod).copied();
    let mut causes: BTreeMap<(String, Option<EnvoySide>), Cause> = BTreeMap::new();
    for target in targets.iter() {
        for gap in &target.gaps {
            let Some(pod) = gap.what.strip_prefix(PER_POD) else {
                continue;
            };
            let key = (cause_key(&gap.reason, pod), side_of(pod));
            let entry = causes.entry(key).or_insert_with(|| Cause {
                pods: Vec::new(),
                example: gap.reason.clone(),
                said: 0,
            });
            entry.said += 1;
            if !entry.pods.iter().any(|have| have == pod) {
                entry.pods.push(pod.to_string());
            }
        }
    }
    let mut lines = Vec::new();
    for (
        (key, side),
        Cause {
            pods,
            example,
            said,
        },
    ) in causes
    {
        // Met once (one pod, one target) it stays where it is.
        if said < 2 {
            continue;
        }
        for target in targets.iter_mut() {
            target.gaps.retain(|gap| {
                !gap.what
                    .strip_prefix(PER_POD)
                    .is_some_and(|pod| cause_key(&gap.reason, pod) == key && side_of(pod) == side)
            });
        }
        let (noun, of) = match side {
            Some(EnvoySide::Server) => ("sidecars", count(read, EnvoySide::Server)),
            Some(EnvoySide::Client) => ("gateway and client pods", count(read, EnvoySide::Client)),
            None => ("pods", read.len()),
        };
        let line = format!(
            "{example} on {} of {of} {noun} (e.g. {}): counters and effective config not read",
            pods.len(),
            pods[0]
        );
        lines.push(line.clone());
        run_gaps.push(Gap::new("Envoy admin", line));
    }
    lines
}

/// One cause: the pods it was met on, the first reason given, and how often targets said it.
struct Cause {
    pods: Vec<String>,
    example: String,
    said: usize,
}

fn count(read: &[(ObjectRef, EnvoySide)], side: EnvoySide) -> usize {
    read.iter().filter(|(_, have)| *have == side).count()
}

/// The cause without what names the pod: its name, its namespace/name, and ids (a pod UID, a
/// container id) the kubelet puts in its messages.
fn cause_key(reason: &str, pod: &str) -> String {
    let name = pod.rsplit('/').next().unwrap_or(pod);
    reason
        .replace(pod, "{pod}")
        .replace(name, "{pod}")
        .split(' ')
        .map(|word| if looks_like_an_id(word) { "{id}" } else { word })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A UUID or a long hexadecimal id, with any punctuation around it.
fn looks_like_an_id(word: &str) -> bool {
    let word = word.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    let hex = word.chars().filter(char::is_ascii_hexdigit).count();
    word.len() >= 12
        && word.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
        && hex >= word.len() * 3 / 4
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::test_support::{endpoint_target, scenario_pair};

    fn pod(namespace: &str, name: &str) -> ObjectRef {
        ObjectRef::new("Pod", Some(namespace), name)
    }

    fn refused(namespace: &str, name: &str, uid: &str) -> Gap {
        Gap::new(
            format!("{PER_POD}{namespace}/{name}"),
            format!(
                "port-forward to port 15000 failed in the pod: error forwarding port 15000 to pod {name}, uid {uid}: connection refused"
            ),
        )
    }

    #[test]
    fn the_same_cause_on_many_pods_is_one_line_with_a_count_and_an_example() {
        let mut targets: Vec<TargetEvidence> = (0..3)
            .map(|_| endpoint_target(scenario_pair("healthy")))
            .collect();
        let mut read = Vec::new();
        for (index, target) in targets.iter_mut().enumerate() {
            let name = format!("llm-{index}-abc");
            target.gaps.push(refused(
                "team-000",
                &name,
                &format!("5f0c1e2a-{index}b3c-4d5e-8f90-a1b2c3d4e5f{index}"),
            ));
            read.push((pod("team-000", &name), EnvoySide::Server));
        }
        targets[2]
            .gaps
            .push(Gap::new("EnvoyFilter list", "403 Forbidden"));
        read.push((pod("istio-system", "gw-0"), EnvoySide::Client));
        let mut run_gaps = Vec::new();
        let said = aggregate(&mut targets, &read, &mut run_gaps);
        assert_eq!(said.len(), 1, "{said:#?}");
        assert_eq!(run_gaps.len(), 1);
        let line = &run_gaps[0].reason;
        assert!(
            line.ends_with(
                "connection refused on 3 of 3 sidecars (e.g. team-000/llm-0-abc): counters and effective config not read"
            ),
            "{line}"
        );
        assert!(targets[..2].iter().all(|target| target.gaps.is_empty()));
        assert_eq!(targets[2].gaps.len(), 1, "other gaps stay");
    }

    #[test]
    fn a_cause_met_once_stays_with_its_target() {
        let mut targets = vec![endpoint_target(scenario_pair("healthy"))];
        targets[0].gaps.push(refused("ns", "vllm-0", "1"));
        let mut run_gaps = Vec::new();
        let read = [(pod("ns", "vllm-0"), EnvoySide::Server)];
        assert!(aggregate(&mut targets, &read, &mut run_gaps).is_empty());
        assert!(run_gaps.is_empty());
        assert_eq!(targets[0].gaps.len(), 1);
    }
}
