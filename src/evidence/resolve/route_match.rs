//! Whether a delegate VirtualService's route matches fit inside the matches of the root route
//! that delegates to it. Istio merges the two (a conjunction: the delegate's conditions, with
//! the root's filling what the delegate leaves unset); a delegate match that no root match can
//! hold is a conflict, and Istio drops that delegate route. Mirrors pilot's
//! `mergeHTTPMatchRequests` / `hasConflict` (`pilot/pkg/model/virtualservice.go`).

use serde_json::{Map, Value};

/// Whether the delegate route with `delegate` matches is dropped under a root route with `root`
/// matches: some delegate match conflicts with every root match. No matches on either side
/// never conflict.
pub fn conflicts(root: &[Value], delegate: &[Value]) -> bool {
    if root.is_empty() || delegate.is_empty() {
        return false;
    }
    delegate
        .iter()
        .any(|leaf| root.iter().all(|outer| match_conflict(outer, leaf)))
}

/// The entries of a map field (`headers`, `queryParams`, `sourceLabels`); none when absent.
fn entries(value: Option<&Value>) -> impl Iterator<Item = (&String, &Value)> {
    value.and_then(Value::as_object).into_iter().flatten()
}

fn entry<'a>(value: Option<&'a Value>, key: &str) -> Option<&'a Value> {
    value
        .and_then(Value::as_object)
        .and_then(|map: &Map<String, Value>| map.get(key))
}

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn match_conflict(root: &Value, leaf: &Value) -> bool {
    let strings = ["uri", "scheme", "method", "authority"]
        .iter()
        .any(|key| string_conflict(root.get(key), leaf.get(key)));
    let maps = ["headers", "withoutHeaders", "queryParams"]
        .iter()
        .any(|key| {
            entries(leaf.get(key))
                .any(|(name, value)| string_conflict(entry(root.get(key), name), Some(value)))
        });
    let flag = |value: &Value| value.get("ignoreUriCase").and_then(Value::as_bool) == Some(true);
    let port = |value: &Value| value.get("port").and_then(Value::as_u64).unwrap_or(0);
    let ports = port(root) > 0 && port(leaf) > 0 && port(root) != port(leaf);
    let source_namespace = !text(root, "sourceNamespace").is_empty()
        && text(leaf, "sourceNamespace") != text(root, "sourceNamespace");
    let labels = entries(leaf.get("sourceLabels")).any(|(key, value)| {
        entry(root.get("sourceLabels"), key).is_some_and(|outer| outer != value)
    });
    strings
        || maps
        || flag(root) != flag(leaf)
        || ports
        || source_namespace
        || labels
        || gateways_conflict(root, leaf)
}

/// The root's `gateways` must hold every gateway the delegate names.
fn gateways_conflict(root: &Value, leaf: &Value) -> bool {
    let list = |value: &Value| -> Vec<String> {
        value
            .get("gateways")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect()
    };
    let (outer, inner) = (list(root), list(leaf));
    !outer.is_empty() && !inner.is_empty() && inner.iter().any(|gateway| !outer.contains(gateway))
}

/// A `StringMatch` of the delegate that the root's does not contain.
fn string_conflict(root: Option<&Value>, leaf: Option<&Value>) -> bool {
    let (Some(root), Some(leaf)) = (root, leaf) else {
        return false;
    };
    if root.is_null() || leaf.is_null() {
        return false;
    }
    let (root_exact, root_prefix, root_regex) = (
        text(root, "exact"),
        text(root, "prefix"),
        text(root, "regex"),
    );
    let (leaf_exact, leaf_prefix, leaf_regex) = (
        text(leaf, "exact"),
        text(leaf, "prefix"),
        text(leaf, "regex"),
    );
    let any = |exact: &str, prefix: &str, regex: &str| {
        !exact.is_empty() || !prefix.is_empty() || !regex.is_empty()
    };
    if !root_regex.is_empty() && any(leaf_exact, leaf_prefix, leaf_regex) {
        return true;
    }
    if !leaf_regex.is_empty() && any(root_exact, root_prefix, root_regex) {
        return true;
    }
    if !root_exact.is_empty() {
        return !leaf_prefix.is_empty() || leaf_exact != root_exact;
    }
    if !root_prefix.is_empty() {
        if !leaf_prefix.is_empty() {
            return !leaf_prefix.starts_with(root_prefix);
        }
        if !leaf_exact.is_empty() {
            return !leaf_exact.starts_with(root_prefix);
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn matches(value: Value) -> Vec<Value> {
        value.as_array().unwrap().clone()
    }

    #[test]
    fn no_matches_on_either_side_never_conflict() {
        let some = matches(json!([{"uri": {"prefix": "/v1"}}]));
        assert!(!conflicts(&[], &some));
        assert!(!conflicts(&some, &[]));
    }

    #[test]
    fn a_delegate_prefix_must_narrow_the_roots() {
        let root = matches(json!([{"uri": {"prefix": "/v1"}}]));
        assert!(!conflicts(
            &root,
            &matches(json!([{"uri": {"prefix": "/v1/completions"}}]))
        ));
        assert!(!conflicts(
            &root,
            &matches(json!([{"uri": {"exact": "/v1/chat/completions"}}]))
        ));
        assert!(conflicts(
            &root,
            &matches(json!([{"uri": {"prefix": "/v2"}}]))
        ));
        assert!(conflicts(
            &root,
            &matches(json!([{"uri": {"regex": "/v1/.*"}}]))
        ));
    }

    #[test]
    fn exact_roots_take_only_the_same_exact() {
        let root = matches(json!([{"uri": {"exact": "/v1/completions"}}]));
        assert!(!conflicts(
            &root,
            &matches(json!([{"uri": {"exact": "/v1/completions"}}]))
        ));
        assert!(conflicts(
            &root,
            &matches(json!([{"uri": {"prefix": "/v1/completions"}}]))
        ));
    }

    #[test]
    fn unset_fields_inherit_and_headers_are_compared_by_name() {
        let root =
            matches(json!([{"uri": {"prefix": "/v1"}, "headers": {"x-model": {"exact": "a"}}}]));
        // Only a header, or only the uri: the root fills the rest.
        assert!(!conflicts(
            &root,
            &matches(json!([{"headers": {"x-tenant": {"exact": "t"}}}]))
        ));
        assert!(conflicts(
            &root,
            &matches(json!([{"headers": {"x-model": {"exact": "b"}}}]))
        ));
        assert!(!conflicts(&root, &matches(json!([{"port": 8000}]))));
        let with_port = matches(json!([{"port": 80}]));
        assert!(conflicts(&with_port, &matches(json!([{"port": 8000}]))));
    }

    #[test]
    fn each_delegate_match_needs_one_root_match() {
        let root = matches(json!([{"uri": {"prefix": "/v1"}}, {"uri": {"prefix": "/v2"}}]));
        assert!(!conflicts(
            &root,
            &matches(json!([{"uri": {"prefix": "/v2/x"}}, {"uri": {"prefix": "/v1/y"}}]))
        ));
        assert!(conflicts(
            &root,
            &matches(json!([{"uri": {"prefix": "/v1/y"}}, {"uri": {"prefix": "/v3"}}]))
        ));
    }

    #[test]
    fn gateways_of_the_delegate_must_be_the_roots() {
        let root = matches(json!([{"gateways": ["istio-system/public"]}]));
        assert!(!conflicts(
            &root,
            &matches(json!([{"gateways": ["istio-system/public"]}]))
        ));
        assert!(conflicts(&root, &matches(json!([{"gateways": ["mesh"]}]))));
    }
}
