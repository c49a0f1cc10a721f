//! Hosts as Istio objects write them, resolved against the object's namespace, and `exportTo`.

/// Istio's root configuration namespace (mesh-wide objects live here).
pub const ROOT_NAMESPACE: &str = "istio-system";

const CLUSTER_SUFFIX: &str = "svc.cluster.local";

/// A host from a VirtualService, DestinationRule or route destination, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// `*`
    Any,
    /// `*.inference.svc.cluster.local`, kept as the suffix `.inference.svc.cluster.local`.
    Suffix(String),
    /// A fully qualified host: `vllm.inference.svc.cluster.local`, `llm.example.com`.
    Exact(String),
}

impl HostPattern {
    /// Resolves `host` as written in an object of `namespace`: a short name (`vllm`) is a Service
    /// of that namespace; `vllm.ns` and `vllm.ns.svc` are completed to the cluster FQDN.
    pub fn resolve(host: &str, namespace: &str) -> HostPattern {
        let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
        if host == "*" {
            return HostPattern::Any;
        }
        if let Some(suffix) = host.strip_prefix('*') {
            return HostPattern::Suffix(suffix.to_string());
        }
        let dots = host.matches('.').count();
        let fqdn = match dots {
            0 => format!("{host}.{namespace}.{CLUSTER_SUFFIX}"),
            1 => format!("{host}.{CLUSTER_SUFFIX}"),
            2 if host.ends_with(".svc") => format!("{host}.cluster.local"),
            _ => host,
        };
        HostPattern::Exact(fqdn)
    }

    /// Whether this pattern covers the fully qualified `host`.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Any => true,
            HostPattern::Suffix(suffix) => host.len() > suffix.len() && host.ends_with(suffix),
            HostPattern::Exact(exact) => exact == host,
        }
    }

    pub fn is_wildcard(&self) -> bool {
        !matches!(self, HostPattern::Exact(_))
    }

    /// Longer is more specific; Istio prefers the most specific wildcard.
    pub fn specificity(&self) -> usize {
        match self {
            HostPattern::Any => 0,
            HostPattern::Suffix(suffix) => suffix.len(),
            HostPattern::Exact(exact) => exact.len(),
        }
    }
}

/// Whether an object in `object_namespace` with `exportTo: export_to` is visible from `namespace`:
/// absent or `*` is everywhere, `.` its own namespace, `~` nowhere, else the namespaces named.
pub fn exported_to(export_to: &[String], object_namespace: &str, namespace: &str) -> bool {
    export_to.is_empty()
        || export_to.iter().any(|entry| match entry.as_str() {
            "*" => true,
            "." => object_namespace == namespace,
            other => other == namespace,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FQDN: &str = "vllm.inference.svc.cluster.local";

    #[test]
    fn short_names_resolve_in_the_objects_namespace() {
        assert!(HostPattern::resolve("vllm", "inference").matches(FQDN));
        assert!(!HostPattern::resolve("vllm", "other").matches(FQDN));
    }

    #[test]
    fn partial_and_full_names() {
        for host in [
            "vllm.inference",
            "vllm.inference.svc",
            "vllm.inference.svc.cluster.local",
            "VLLM.inference.svc.cluster.local.",
        ] {
            assert!(
                HostPattern::resolve(host, "elsewhere").matches(FQDN),
                "{host}"
            );
        }
        assert!(!HostPattern::resolve("vllm.other.svc", "inference").matches(FQDN));
        assert!(!HostPattern::resolve("llm.example.com", "inference").matches(FQDN));
    }

    #[test]
    fn wildcards() {
        assert!(HostPattern::resolve("*", "x").matches(FQDN));
        assert!(HostPattern::resolve("*.inference.svc.cluster.local", "x").matches(FQDN));
        assert!(HostPattern::resolve("*.svc.cluster.local", "x").matches(FQDN));
        assert!(HostPattern::resolve("*.local", "x").matches(FQDN));
        assert!(!HostPattern::resolve("*.other.svc.cluster.local", "x").matches(FQDN));
        let narrow = HostPattern::resolve("*.inference.svc.cluster.local", "x");
        let broad = HostPattern::resolve("*.local", "x");
        assert!(narrow.specificity() > broad.specificity());
        assert!(narrow.is_wildcard() && !HostPattern::resolve("vllm", "x").is_wildcard());
    }

    #[test]
    fn export_to_rules() {
        let to = |entries: &[&str]| entries.iter().map(|e| e.to_string()).collect::<Vec<_>>();
        assert!(exported_to(&[], "a", "b"));
        assert!(exported_to(&to(&["*"]), "a", "b"));
        assert!(exported_to(&to(&["."]), "a", "a"));
        assert!(!exported_to(&to(&["."]), "a", "b"));
        assert!(exported_to(&to(&[".", "b"]), "a", "b"));
        assert!(!exported_to(&to(&["~"]), "a", "a"));
        assert!(!exported_to(&to(&["c"]), "a", "b"));
    }
}
