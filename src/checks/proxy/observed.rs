//! The shape every Envoy finding shares: config facts that matter (`Item`), counters that moved
//! (`Happened`), and how they become one finding per proxy and failure mode: **critical and
//! runtime** when a counter moved (with the facts that explain it), else the worst fact with the
//! proxy's effective configuration as its basis.

use super::{Proxy, tag};
use crate::checks::{Basis, EvidenceLine, Finding, Severity};
use crate::evidence::CheckId;
use crate::evidence::envoy::counters::{COUNTERS, Reading};

/// One setting of the proxy that matters for a failure mode.
#[derive(Debug, Clone)]
pub struct Item {
    pub severity: Severity,
    /// What it does, for a title: `cuts generations at 1s (route timeout)`.
    pub headline: String,
    pub line: EvidenceLine,
    /// The counter leaves, response flags or codes that show it biting.
    pub explains: &'static [&'static str],
}

/// A counter, gauge or response flag that moved.
#[derive(Debug, Clone)]
pub struct Happened<'a> {
    pub reading: &'a Reading,
    /// The leaf, flag or code it matched (`upstream_rq_timeout`, `UT`, `413`).
    pub matched: &'static str,
    pub meaning: String,
}

/// What counters of `leaves` and `istio_requests_total` lines with `flags`/`codes` moved.
pub fn happened<'a>(
    proxy: &Proxy<'a>,
    leaves: &[&'static str],
    flags: &[&'static str],
    codes: &[&'static str],
) -> Vec<Happened<'a>> {
    let mut found: Vec<Happened> = proxy
        .moved(leaves)
        .into_iter()
        .filter_map(|reading| {
            let leaf = leaves
                .iter()
                .find(|leaf| reading.stat.ends_with(&format!(".{leaf}")))?;
            let meaning = COUNTERS
                .iter()
                .find(|spec| spec.leaf == *leaf)
                .map_or(*leaf, |spec| spec.meaning);
            Some(Happened {
                reading,
                matched: leaf,
                meaning: meaning.to_string(),
            })
        })
        .collect();
    for reading in proxy.flagged(flags, codes) {
        let set = tag(&reading.stat, "response_flags").unwrap_or_default();
        let code = tag(&reading.stat, "response_code").unwrap_or_default();
        let matched = flags
            .iter()
            .find(|flag| set.split(',').any(|have| have == **flag))
            .or_else(|| codes.iter().find(|wanted| **wanted == code))
            .copied()
            .unwrap_or("response flag");
        found.push(Happened {
            reading,
            matched,
            meaning: format!("requests answered {code} with response flags {set}"),
        });
    }
    // Counters in the order the caller listed them (the usual cause first), then flags.
    let rank = |moved: &Happened| {
        leaves
            .iter()
            .chain(flags)
            .chain(codes)
            .position(|wanted| *wanted == moved.matched)
            .unwrap_or(usize::MAX)
    };
    found.sort_by_key(rank);
    found
}

impl Happened<'_> {
    /// `upstream_rq_timeout 3`
    pub fn short(&self) -> String {
        format!("{} {}", self.matched, self.reading.value)
    }
}

/// One finding for `proxy` and `mode`: runtime when something moved, else the worst item (above
/// info) as effective configuration; `None` when nothing matters. `runtime_title` words what
/// happened; `blind_spot` names counters that could not be read.
pub fn finding(
    mode: CheckId,
    proxy: &Proxy,
    items: &[Item],
    happened: &[Happened],
    runtime_title: impl FnOnce(&[Happened], Option<&Item>) -> String,
    blind_spot: Option<String>,
) -> Option<Finding> {
    if !happened.is_empty() {
        let explaining: Vec<&Item> = items
            .iter()
            .filter(|item| {
                happened
                    .iter()
                    .any(|moved| item.explains.contains(&moved.matched))
            })
            .collect();
        let mut finding = Finding::new(
            mode,
            Severity::Critical,
            Basis::Runtime,
            runtime_title(happened, explaining.first().copied()),
        );
        for moved in happened {
            finding = finding.evidence(proxy.counter_line(moved.reading, &moved.meaning));
        }
        for item in &explaining {
            finding = finding.evidence(item.line.clone());
        }
        for item in items.iter().filter(|item| {
            item.severity > Severity::Info
                && !explaining.iter().any(|known| std::ptr::eq(*known, *item))
        }) {
            finding = finding.evidence(item.line.clone());
        }
        if explaining.is_empty() {
            finding = finding.assume(
                "no setting on the path explains it now: it may have changed since the proxy started, or be set \
                 where this config_dump does not show it",
            );
        }
        return Some(finding);
    }
    let worst = items
        .iter()
        .enumerate()
        .max_by_key(|(index, item)| (item.severity, std::cmp::Reverse(*index)))
        .map(|(_, item)| item)?;
    let mut finding = Finding::new(
        mode,
        worst.severity,
        Basis::Effective,
        format!("{} {}", proxy.label(), worst.headline),
    );
    let wanted = |item: &Item| worst.severity == Severity::Info || item.severity > Severity::Info;
    finding = finding.evidence(worst.line.clone());
    for item in items
        .iter()
        .filter(|item| !std::ptr::eq(*item, worst) && wanted(item))
    {
        finding = finding.evidence(item.line.clone());
    }
    if let Some(words) = blind_spot.filter(|_| worst.severity > Severity::Info) {
        finding = finding.assume(words);
    }
    Some(finding)
}
