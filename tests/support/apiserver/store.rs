//! The objects the server holds, and list/get over them as the API server answers: items in key
//! order, `limit` with opaque `continue` tokens, equality-based label selectors.

use super::resources::ResourceType;
use super::status;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

/// The resourceVersion every list reports (the store does not change while serving).
const STORE_RESOURCE_VERSION: u64 = 48213;

pub struct Store {
    /// `(key, object)` sorted by key `namespace/name` (cluster-scoped: `name`), as etcd orders.
    objects: Vec<(String, Value)>,
}

/// The group of an `apiVersion`: `v1` → ``, `apps/v1` → `apps`.
pub fn group_of(api_version: &str) -> &str {
    api_version
        .rsplit_once('/')
        .map(|(group, _)| group)
        .unwrap_or("")
}

fn key_of(object: &Value) -> String {
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    match object["metadata"]["namespace"].as_str() {
        Some(namespace) => format!("{namespace}/{name}"),
        None => name.to_string(),
    }
}

#[derive(Debug, Default)]
pub struct ListQuery {
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
    pub label_selector: Option<String>,
}

impl ListQuery {
    pub fn from_query(query: &[(String, String)]) -> Result<Self, Value> {
        let mut parsed = ListQuery::default();
        for (key, value) in query {
            match key.as_str() {
                "limit" => {
                    let limit: usize = value
                        .parse()
                        .map_err(|_| status::bad_request(&format!("invalid limit {value:?}")))?;
                    parsed.limit = (limit > 0).then_some(limit);
                }
                "continue" if !value.is_empty() => parsed.continue_token = Some(value.clone()),
                "labelSelector" if !value.is_empty() => parsed.label_selector = Some(value.clone()),
                // fieldSelector, resourceVersion, timeoutSeconds, watch=false: accepted, ignored.
                _ => {}
            }
        }
        Ok(parsed)
    }
}

/// One requirement of an equality-based selector.
#[derive(Debug, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    NotExists(String),
}

fn parse_selector(selector: &str) -> Result<Vec<Requirement>, Value> {
    let invalid = |part: &str| {
        status::bad_request(&format!(
            "unable to parse requirement {part:?}: the test API server takes equality-based selectors (a=b, a!=b, a, !a)"
        ))
    };
    let mut requirements = Vec::new();
    for part in selector
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
    {
        let requirement = if let Some((key, value)) = part.split_once("!=") {
            Requirement::NotEquals(key.trim().to_string(), value.trim().to_string())
        } else if let Some((key, value)) = part.split_once("==") {
            Requirement::Equals(key.trim().to_string(), value.trim().to_string())
        } else if let Some((key, value)) = part.split_once('=') {
            Requirement::Equals(key.trim().to_string(), value.trim().to_string())
        } else if let Some(key) = part.strip_prefix('!') {
            Requirement::NotExists(key.trim().to_string())
        } else {
            Requirement::Exists(part.to_string())
        };
        let key = match &requirement {
            Requirement::Equals(key, _)
            | Requirement::NotEquals(key, _)
            | Requirement::Exists(key)
            | Requirement::NotExists(key) => key,
        };
        if key.is_empty() || key.contains(' ') || key.contains('(') {
            return Err(invalid(part));
        }
        requirements.push(requirement);
    }
    Ok(requirements)
}

fn matches(requirements: &[Requirement], object: &Value) -> bool {
    let labels = &object["metadata"]["labels"];
    requirements.iter().all(|requirement| match requirement {
        Requirement::Equals(key, value) => labels[key].as_str() == Some(value),
        Requirement::NotEquals(key, value) => labels[key].as_str() != Some(value),
        Requirement::Exists(key) => labels.get(key).is_some(),
        Requirement::NotExists(key) => labels.get(key).is_none(),
    })
}

fn encode_continue(start_after: &str) -> String {
    let token = json!({"v": "meta.k8s.io/v1", "rv": STORE_RESOURCE_VERSION, "start": format!("{start_after}\u{0}")});
    URL_SAFE_NO_PAD.encode(token.to_string())
}

fn decode_continue(token: &str) -> Result<String, Value> {
    let invalid = || status::bad_request(&format!("continue key is not valid: {token:?}"));
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    value["start"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(invalid)
}

impl Store {
    pub fn new(objects: Vec<Value>) -> Self {
        let mut objects: Vec<(String, Value)> = objects
            .into_iter()
            .map(|object| (key_of(&object), object))
            .collect();
        objects.sort_by(|a, b| a.0.cmp(&b.0));
        Self { objects }
    }

    fn of_resource<'a>(
        &'a self,
        resource: &'a ResourceType,
    ) -> impl Iterator<Item = &'a (String, Value)> + 'a {
        self.objects.iter().filter(move |(_, object)| {
            object["kind"].as_str() == Some(resource.kind)
                && group_of(object["apiVersion"].as_str().unwrap_or_default()) == resource.group
        })
    }

    /// The object as served at `resource`'s version; list items of built-in kinds carry no
    /// `apiVersion`/`kind`.
    fn present(resource: &ResourceType, object: &Value, in_list: bool) -> Value {
        let mut object = object.clone();
        if let Some(map) = object.as_object_mut() {
            if in_list && !resource.is_custom() {
                map.remove("apiVersion");
                map.remove("kind");
            } else {
                map.insert("apiVersion".into(), json!(resource.group_version()));
                map.insert("kind".into(), json!(resource.kind));
            }
        }
        object
    }

    pub fn get(
        &self,
        resource: &ResourceType,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let key = match namespace {
            Some(namespace) => format!("{namespace}/{name}"),
            None => name.to_string(),
        };
        // Objects are sorted by key: the ones with this key, of any kind, are one run of them.
        let start = self
            .objects
            .partition_point(|(object_key, _)| *object_key < key);
        self.objects[start..]
            .iter()
            .take_while(|(object_key, _)| *object_key == key)
            .find(|(_, object)| {
                object["kind"].as_str() == Some(resource.kind)
                    && group_of(object["apiVersion"].as_str().unwrap_or_default()) == resource.group
            })
            .map(|(_, object)| Self::present(resource, object, false))
    }

    pub fn list(
        &self,
        resource: &ResourceType,
        namespace: Option<&str>,
        query: &ListQuery,
    ) -> Result<Value, Value> {
        let requirements = match &query.label_selector {
            Some(selector) => parse_selector(selector)?,
            None => Vec::new(),
        };
        let start = match &query.continue_token {
            Some(token) => Some(decode_continue(token)?),
            None => None,
        };
        let selected: Vec<&(String, Value)> = self
            .of_resource(resource)
            .filter(|(_, object)| match namespace {
                Some(namespace) => object["metadata"]["namespace"].as_str() == Some(namespace),
                None => true,
            })
            .filter(|(key, _)| {
                start
                    .as_ref()
                    .is_none_or(|start| key.as_str() >= start.as_str())
            })
            .filter(|(_, object)| matches(&requirements, object))
            .collect();
        let page_len = query.limit.unwrap_or(usize::MAX).min(selected.len());
        let (page, rest) = selected.split_at(page_len);
        let mut metadata = json!({"resourceVersion": STORE_RESOURCE_VERSION.to_string()});
        if let (false, Some((last_key, _))) = (rest.is_empty(), page.last()) {
            metadata["continue"] = json!(encode_continue(last_key));
            metadata["remainingItemCount"] = json!(rest.len());
        }
        Ok(json!({
            "kind": format!("{}List", resource.kind),
            "apiVersion": resource.group_version(),
            "metadata": metadata,
            "items": page.iter().map(|(_, object)| Self::present(resource, object, true)).collect::<Vec<_>>(),
        }))
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_parse_equality_and_existence() {
        assert_eq!(
            parse_selector("app=vllm,tier!=web,gpu,!legacy").unwrap(),
            vec![
                Requirement::Equals("app".into(), "vllm".into()),
                Requirement::NotEquals("tier".into(), "web".into()),
                Requirement::Exists("gpu".into()),
                Requirement::NotExists("legacy".into()),
            ]
        );
        assert!(parse_selector("env in (a,b)").is_err());
    }

    #[test]
    fn continue_tokens_round_trip() {
        let token = encode_continue("inference/vllm-0");
        assert_eq!(decode_continue(&token).unwrap(), "inference/vllm-0\u{0}");
        assert!(decode_continue("garbage!").is_err());
    }
}
