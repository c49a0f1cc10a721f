//! One reader per API turns what bounds the target's inference path into `Limit` facts
//! (`evidence::limits`): Istio's objects as written (`istio`) and each Envoy's effective config
//! (`envoy`). A reader decides nothing about severity; the judges of each mode and the probe
//! planner (`verdict::probe_plan`) read the same facts. A new gateway controller or API is one
//! more file here and its line in [`read`].

pub mod envoy;
pub mod istio;

use crate::evidence::TargetEvidence;
use crate::evidence::limits::Limits;

/// Every limit fact of `target`: what the proxies run first, then what the objects say.
pub fn read(target: &TargetEvidence) -> Limits {
    let mut facts = envoy::read(target);
    facts.extend(istio::read(target));
    Limits { facts }
}
