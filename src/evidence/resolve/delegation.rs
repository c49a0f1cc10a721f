//! VirtualService delegation (Istio 1.8+, behind `PILOT_ENABLE_VIRTUAL_SERVICE_DELEGATE`, on by
//! default). A root VirtualService (one with `hosts`) hands an HTTP route to a delegate
//! VirtualService (one without `hosts`) with `http[].delegate: {name, namespace}`; the namespace
//! defaults to the root's. Istio runs the delegate's routes in the root route's place: each
//! delegate route's matches are narrowed by the root route's (a delegate route that no root match
//! can hold is dropped), and each per-route field (`timeout`, `retries` as a whole, …) is the
//! delegate route's when it sets it, else the root route's. Only one level is supported, and the
//! delegate must be exported to the root's namespace. Mirrors pilot's
//! `mergeVirtualServicesIfNeeded` and `mergeHTTPRoute` (`pilot/pkg/model/virtualservice.go`).

use crate::evidence::objects::{HttpRetry, HttpRoute, VirtualService};
use crate::evidence::resolve::hosts::exported_to;
use crate::evidence::resolve::route_match;

/// A VirtualService without `hosts`: Istio uses it only as a delegate, never on its own.
pub fn is_delegate(virtual_service: &VirtualService) -> bool {
    virtual_service.spec.hosts.is_empty()
}

/// The namespace of a VirtualService (`default` when the object does not say).
pub fn namespace_of(virtual_service: &VirtualService) -> &str {
    virtual_service
        .metadata
        .namespace
        .as_deref()
        .unwrap_or("default")
}

fn name_of(virtual_service: &VirtualService) -> &str {
    virtual_service.metadata.name.as_deref().unwrap_or_default()
}

/// One HTTP route of one VirtualService, with where it sits (`spec/http[index]`).
#[derive(Debug, Clone, Copy)]
pub struct RouteAt<'a> {
    pub virtual_service: &'a VirtualService,
    pub index: usize,
    pub route: &'a HttpRoute,
}

/// A route as Istio runs it: a root route, or one delegate route merged into the root route
/// that delegates to it.
#[derive(Debug, Clone, Copy)]
pub struct RunRoute<'a> {
    pub root: RouteAt<'a>,
    pub delegated: Option<RouteAt<'a>>,
}

impl<'a> RunRoute<'a> {
    /// The route whose destinations run (their short hosts resolve in its object's namespace).
    pub fn written(&self) -> RouteAt<'a> {
        self.delegated.unwrap_or(self.root)
    }

    /// The route whose `timeout` Istio applies, and its value: the delegate's when set.
    pub fn timeout(&self) -> Option<(RouteAt<'a>, &'a str)> {
        self.inherited(|route| route.timeout.as_deref())
    }

    /// The route whose `retries` Istio applies (the whole block), and its value.
    pub fn retries(&self) -> Option<(RouteAt<'a>, &'a HttpRetry)> {
        self.inherited(|route| route.retries.as_ref())
    }

    fn inherited<T>(&self, field: impl Fn(&'a HttpRoute) -> Option<T>) -> Option<(RouteAt<'a>, T)> {
        let own = self.delegated.and_then(|at| Some((at, field(at.route)?)));
        own.or_else(|| Some((self.root, field(self.root.route)?)))
    }
}

/// Why a root route's delegate does not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unresolved {
    /// No VirtualService of that namespace and name is known.
    Missing,
    /// The named VirtualService has `hosts`, so Istio does not take it as a delegate.
    HasHosts,
    /// The delegate's `exportTo` does not reach the root's namespace.
    NotExported,
}

/// A root route whose delegate does not run, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unrun {
    pub index: usize,
    pub namespace: String,
    pub name: String,
    pub why: Unresolved,
}

/// The routes of one root VirtualService as Istio runs them, and its delegations that do not run.
#[derive(Debug, Clone, Default)]
pub struct Expansion<'a> {
    pub routes: Vec<RunRoute<'a>>,
    pub unrun: Vec<Unrun>,
}

/// Expands `root`'s routes, looking its delegates up among `candidates`.
pub fn expand<'a>(root: &'a VirtualService, candidates: &'a [VirtualService]) -> Expansion<'a> {
    let mut out = Expansion::default();
    let root_namespace = namespace_of(root);
    for (index, route) in root.spec.http.iter().enumerate() {
        let at = RouteAt {
            virtual_service: root,
            index,
            route,
        };
        let Some(reference) = &route.delegate else {
            out.routes.push(RunRoute {
                root: at,
                delegated: None,
            });
            continue;
        };
        let namespace = reference
            .namespace
            .as_deref()
            .filter(|namespace| !namespace.is_empty())
            .unwrap_or(root_namespace);
        let found = candidates
            .iter()
            .find(|vs| namespace_of(vs) == namespace && name_of(vs) == reference.name);
        let why = match found {
            None => Some(Unresolved::Missing),
            Some(vs) if !is_delegate(vs) => Some(Unresolved::HasHosts),
            Some(vs) if !exported_to(&vs.spec.export_to, namespace, root_namespace) => {
                Some(Unresolved::NotExported)
            }
            Some(_) => None,
        };
        match (found, why) {
            (Some(delegate), None) => {
                out.routes
                    .extend(delegate.spec.http.iter().enumerate().filter_map(
                        |(inner, delegate_route)| {
                            // One level only; and a match the root's cannot hold is dropped.
                            let runs = delegate_route.delegate.is_none()
                                && !route_match::conflicts(&route.matches, &delegate_route.matches);
                            runs.then_some(RunRoute {
                                root: at,
                                delegated: Some(RouteAt {
                                    virtual_service: delegate,
                                    index: inner,
                                    route: delegate_route,
                                }),
                            })
                        },
                    ));
            }
            (_, why) => out.unrun.push(Unrun {
                index,
                namespace: namespace.to_string(),
                name: reference.name.clone(),
                why: why.unwrap_or(Unresolved::Missing),
            }),
        }
    }
    out
}

/// Every route that the VirtualServices of `virtual_services` run: those of each root, with its
/// delegates (looked up in the same list) in place. Delegates never run on their own.
pub fn run_routes(virtual_services: &[VirtualService]) -> Vec<RunRoute<'_>> {
    virtual_services
        .iter()
        .filter(|vs| !is_delegate(vs))
        .flat_map(|root| expand(root, virtual_services).routes)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn services(yaml: &str) -> Vec<VirtualService> {
        yaml.split("\n---\n")
            .map(|doc| serde_yaml::from_str(doc).unwrap())
            .collect()
    }

    const ROOT_AND_DELEGATE: &str = r#"
metadata: {name: root, namespace: inference}
spec:
  hosts: [vllm]
  http:
  - match: [{uri: {prefix: /v1}}]
    timeout: 10s
    retries: {attempts: 2, perTryTimeout: 5s}
    delegate: {name: routes}
  - route: [{destination: {host: vllm}}]
---
metadata: {name: routes, namespace: inference}
spec:
  http:
  - match: [{uri: {prefix: /v1/completions}}]
    timeout: 30s
    route: [{destination: {host: vllm}}]
  - match: [{uri: {prefix: /v1/chat}}]
    retries: {attempts: 1}
    route: [{destination: {host: vllm}}]
  - match: [{uri: {prefix: /v2}}]
    route: [{destination: {host: vllm}}]
  - delegate: {name: nested}
"#;

    fn place(at: RouteAt) -> String {
        format!("{}[{}]", name_of(at.virtual_service), at.index)
    }

    #[test]
    fn delegate_routes_take_the_root_routes_place() {
        let all = services(ROOT_AND_DELEGATE);
        let routes = run_routes(&all);
        let places: Vec<String> = routes.iter().map(|run| place(run.written())).collect();
        // /v2 conflicts with the root's /v1 and is dropped; nested delegation does nothing.
        assert_eq!(places, ["routes[0]", "routes[1]", "root[1]"]);
    }

    #[test]
    fn the_delegates_fields_win_and_the_roots_fill_what_it_leaves_unset() {
        let all = services(ROOT_AND_DELEGATE);
        let routes = run_routes(&all);
        let (at, timeout) = routes[0].timeout().unwrap();
        assert_eq!((place(at), timeout), ("routes[0]".to_string(), "30s"));
        // No timeout in the delegate's second route: the root's 10s runs.
        let (at, timeout) = routes[1].timeout().unwrap();
        assert_eq!((place(at), timeout), ("root[0]".to_string(), "10s"));
        // Retries are taken whole: the delegate's block has no perTryTimeout.
        let (at, retries) = routes[1].retries().unwrap();
        assert_eq!(place(at), "routes[1]");
        assert_eq!(retries.per_try_timeout, None);
        let (at, retries) = routes[0].retries().unwrap();
        assert_eq!(place(at), "root[0]");
        assert_eq!(retries.per_try_timeout.as_deref(), Some("5s"));
        assert!(routes[2].timeout().is_none());
    }

    #[test]
    fn delegates_in_other_namespaces_missing_or_not_delegates() {
        let all = services(
            r#"
metadata: {name: root, namespace: inference}
spec:
  hosts: [vllm]
  http:
  - delegate: {name: shared, namespace: routing}
  - delegate: {name: gone}
  - delegate: {name: has-hosts}
  - delegate: {name: private, namespace: routing}
---
metadata: {name: shared, namespace: routing}
spec: {http: [{timeout: 20s, route: [{destination: {host: vllm.inference}}]}]}
---
metadata: {name: has-hosts, namespace: inference}
spec: {hosts: [other], http: [{route: [{destination: {host: vllm}}]}]}
---
metadata: {name: private, namespace: routing}
spec: {exportTo: ["."], http: [{route: [{destination: {host: vllm.inference}}]}]}
"#,
        );
        let expansion = expand(&all[0], &all);
        let places: Vec<String> = expansion
            .routes
            .iter()
            .map(|run| place(run.written()))
            .collect();
        assert_eq!(places, ["shared[0]"]);
        let unrun: Vec<(usize, String, Unresolved)> = expansion
            .unrun
            .iter()
            .map(|u| (u.index, format!("{}/{}", u.namespace, u.name), u.why))
            .collect();
        assert_eq!(
            unrun,
            [
                (1, "inference/gone".to_string(), Unresolved::Missing),
                (2, "inference/has-hosts".to_string(), Unresolved::HasHosts),
                (3, "routing/private".to_string(), Unresolved::NotExported),
            ]
        );
        // The delegate alone runs nothing.
        assert_eq!(run_routes(&all[1..2]).len(), 0);
    }
}
