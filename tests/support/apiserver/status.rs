//! `Status` objects as the API server writes them for failures.

use serde_json::{Value, json};

pub fn status(code: u16, reason: &str, message: &str, details: Value) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": details,
        "code": code,
    })
}

pub fn unauthorized() -> Value {
    status(401, "Unauthorized", "Unauthorized", json!({}))
}

/// What RBAC says: `pods is forbidden: User "…" cannot list resource "pods" in API group "" in
/// the namespace "inference"`.
pub fn forbidden(
    user: &str,
    verb: &str,
    group: &str,
    plural: &str,
    namespace: Option<&str>,
) -> Value {
    let (resource, subresource) = plural.split_once('/').unwrap_or((plural, ""));
    let qualified = if group.is_empty() {
        plural.to_string()
    } else {
        format!(
            "{resource}.{group}{}",
            if subresource.is_empty() {
                String::new()
            } else {
                format!("/{subresource}")
            }
        )
    };
    let scope = match namespace {
        Some(namespace) => format!("in the namespace \"{namespace}\""),
        None => "at the cluster scope".to_string(),
    };
    status(
        403,
        "Forbidden",
        &format!(
            "{qualified} is forbidden: User \"{user}\" cannot {verb} resource \"{resource}\" in API group \"{group}\" {scope}"
        ),
        json!({"group": group, "kind": resource}),
    )
}

pub fn not_found_object(group: &str, plural: &str, name: &str) -> Value {
    let qualified = if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    };
    status(
        404,
        "NotFound",
        &format!("{qualified} \"{name}\" not found"),
        json!({"name": name, "group": group, "kind": plural}),
    )
}

/// An absent group, version or resource.
pub fn not_found_resource() -> Value {
    status(
        404,
        "NotFound",
        "the server could not find the requested resource",
        json!({}),
    )
}

pub fn bad_request(message: &str) -> Value {
    status(400, "BadRequest", message, json!({}))
}

pub fn method_not_allowed(method: &str) -> Value {
    status(
        405,
        "MethodNotAllowed",
        &format!("the test API server is read-only; {method} is not served"),
        json!({}),
    )
}
