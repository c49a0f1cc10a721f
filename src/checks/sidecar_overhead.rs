use super::{Finding, Settings};
use crate::evidence::TargetEvidence;

pub fn check(_target: &TargetEvidence, _settings: &Settings) -> Vec<Finding> {
    Vec::new()
}
