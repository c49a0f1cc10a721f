//! Envoys known from `/stats` alone (no config_dump of the same Envoy): what their counters show,
//! per mode, with the configuration marked as not read. The other proxy judges read the
//! settings and the counters they explain; here only the counters are there to read.

use super::Proxy;
use super::observed::{self, Happened};
use crate::checks::{Basis, Finding, Severity};
use crate::evidence::envoy::counters::{StatKind, counters_for};
use crate::evidence::{CheckId, TargetEvidence};

/// The counter leaves, response flags and codes that show `mode` went wrong (not the ones that
/// only count, like TLS handshakes).
fn signals(
    mode: CheckId,
) -> (
    Vec<&'static str>,
    &'static [&'static str],
    &'static [&'static str],
) {
    let leaves = counters_for(mode)
        .filter(|spec| spec.kind != StatKind::Histogram && !spec.ext_proc_only)
        .map(|spec| spec.leaf)
        .filter(|leaf| {
            mode != CheckId::ColdStart
                || *leaf == "ssl.connection_error"
                || *leaf == "ssl.fail_verify_san"
        })
        .collect();
    let (flags, codes): (&[&str], &[&str]) = match mode {
        CheckId::StreamTimeout => (&["UT", "SI", "UMSDR"], &[]),
        CheckId::ConnectionPool => (&["UO"], &[]),
        CheckId::BufferLimit => (&[], &["413"]),
        _ => (&[], &[]),
    };
    (leaves, flags, codes)
}

/// One finding per stats-only Envoy on the path whose counters of `mode` moved.
pub fn findings(target: &TargetEvidence, mode: CheckId) -> Vec<Finding> {
    super::proxies(target)
        .iter()
        .filter(|proxy| proxy.evidence.stats_only)
        .filter_map(|proxy| finding(proxy, mode))
        .collect()
}

fn finding(proxy: &Proxy, mode: CheckId) -> Option<Finding> {
    let (leaves, flags, codes) = signals(mode);
    if leaves.is_empty() && flags.is_empty() && codes.is_empty() {
        return None;
    }
    let happened = observed::happened(proxy, &leaves, flags, codes);
    let first = happened.first()?;
    let counted: Vec<String> = happened.iter().map(Happened::short).collect();
    let mut finding = Finding::new(
        mode,
        Severity::Critical,
        Basis::Runtime,
        format!(
            "{} counted {}: {}",
            proxy.label(),
            counted.join(", "),
            first.meaning
        ),
    );
    for moved in &happened {
        finding = finding.evidence(proxy.counter_line(moved.reading, &moved.meaning));
    }
    Some(finding.assume(format!(
        "the configuration of {} was not read (only /stats): which setting did this, and its fix, need its /config_dump",
        proxy.label()
    )))
}
