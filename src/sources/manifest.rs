//! Manifest files (-f) to an Inventory: files, folders (recursive, sorted), `-` for stdin; YAML
//! streams and JSON; `kind: List` and `*List`. Kinds the checks never read are skipped.

use crate::evidence::inventory::Inventory;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;
use serde::de::{
    DeserializeOwned, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::Read;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

/// Lists nest (`List` of `List`s) only a few levels deep in practice; deeper is refused as junk.
const MAX_LIST_DEPTH: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{path}: no such file or directory; check the -f path")]
    NotFound { path: PathBuf },
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{file}: malformed {format}: {message}; fix it or leave the file out of -f")]
    Syntax {
        file: String,
        format: &'static str,
        /// 1-based line in the file (not in the document), when the parser gave one.
        line: Option<usize>,
        message: String,
    },
    #[error("{file}: {kind}/{name} is not valid: {problem}; fix the field or leave the object out")]
    Invalid {
        file: String,
        kind: String,
        name: String,
        problem: String,
    },
}

/// Reads every manifest under `paths` into one Inventory. Objects without a namespace get
/// `default_namespace` (namespaced kinds only).
pub fn load(paths: &[PathBuf], default_namespace: &str) -> Result<Inventory, ManifestError> {
    load_with_stdin(paths, default_namespace, &mut std::io::stdin().lock())
}

/// [`load`], reading `-` from `stdin` (once, however often `-` is given).
pub fn load_with_stdin(
    paths: &[PathBuf],
    default_namespace: &str,
    stdin: &mut dyn Read,
) -> Result<Inventory, ManifestError> {
    let mut inventory = Inventory::default();
    for source in sources(paths)? {
        match source {
            Source::Stdin => {
                let mut text = String::new();
                stdin
                    .read_to_string(&mut text)
                    .map_err(|error| ManifestError::Read {
                        path: STDIN_NAME.to_string(),
                        reason: error.to_string(),
                    })?;
                let format = if looks_like_json(&text) {
                    Format::Json
                } else {
                    Format::Yaml
                };
                parse_into(&mut inventory, STDIN_NAME, &text, format, default_namespace)?;
            }
            Source::File(path) => {
                let text = read_text(&path)?;
                let format = if has_extension(&path, &["json"]) {
                    Format::Json
                } else {
                    Format::Yaml
                };
                let name = path.display().to_string();
                parse_into(&mut inventory, &name, &text, format, default_namespace)?;
            }
        }
    }
    Ok(inventory)
}

const STDIN_NAME: &str = "<stdin>";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    Stdin,
    File(PathBuf),
}

/// The files to read, in order: each argument as given, folders expanded recursively in sorted
/// order to `.yaml/.yml/.json` files; stdin at most once.
fn sources(paths: &[PathBuf]) -> Result<Vec<Source>, ManifestError> {
    let mut out = Vec::new();
    let mut stdin_taken = false;
    let mut visited_dirs = BTreeSet::new();
    for path in paths {
        if path.as_os_str() == "-" {
            if !stdin_taken {
                stdin_taken = true;
                out.push(Source::Stdin);
            }
            continue;
        }
        let metadata = std::fs::metadata(path).map_err(|error| {
            if error.kind() == std::io::ErrorKind::NotFound {
                ManifestError::NotFound { path: path.clone() }
            } else {
                read_error(path, &error)
            }
        })?;
        if metadata.is_dir() {
            walk_dir(path, &mut out, &mut visited_dirs)?;
        } else {
            out.push(Source::File(path.clone()));
        }
    }
    Ok(out)
}

fn walk_dir(
    dir: &Path,
    out: &mut Vec<Source>,
    visited: &mut BTreeSet<PathBuf>,
) -> Result<(), ManifestError> {
    // A symlink back up the tree would loop forever; each real folder is read once.
    let real = std::fs::canonicalize(dir).map_err(|error| read_error(dir, &error))?;
    if !visited.insert(real) {
        return Ok(());
    }
    let mut entries = std::fs::read_dir(dir)
        .map_err(|error| read_error(dir, &error))?
        .map(|entry| entry.map(|entry| entry.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| read_error(dir, &error))?;
    entries.sort();
    for entry in entries {
        let metadata = std::fs::metadata(&entry).map_err(|error| read_error(&entry, &error))?;
        if metadata.is_dir() {
            walk_dir(&entry, out, visited)?;
        } else if has_extension(&entry, &["yaml", "yml", "json"]) {
            out.push(Source::File(entry));
        }
    }
    Ok(())
}

fn has_extension(path: &Path, extensions: &[&str]) -> bool {
    path.extension()
        .and_then(|extension| extension.to_str())
        .is_some_and(|extension| {
            extensions
                .iter()
                .any(|wanted| extension.eq_ignore_ascii_case(wanted))
        })
}

fn read_error(path: &Path, error: &std::io::Error) -> ManifestError {
    ManifestError::Read {
        path: path.display().to_string(),
        reason: error.to_string(),
    }
}

fn read_text(path: &Path) -> Result<String, ManifestError> {
    let bytes = std::fs::read(path).map_err(|error| read_error(path, &error))?;
    String::from_utf8(bytes).map_err(|_| ManifestError::Read {
        path: path.display().to_string(),
        reason: "not UTF-8 text".to_string(),
    })
}

fn looks_like_json(text: &str) -> bool {
    let text = text.trim_start_matches('\u{feff}').trim_start();
    text.starts_with('{') || text.starts_with('[')
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Yaml,
    Json,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Yaml => "YAML",
            Format::Json => "JSON",
        }
    }
}

/// Where an object came from, for error messages and for re-reading a document that failed.
struct Origin<'a> {
    file: &'a str,
    text: &'a str,
    format: Format,
    /// Index of the document in the stream (empty YAML documents count).
    document: usize,
    /// Where the object sits in the document: indexes into nested Lists' `items` (empty for
    /// the document itself).
    items: Vec<usize>,
    /// The document is a bare JSON array, not a List.
    bare_array: bool,
}

impl Origin<'_> {
    fn item(&self, index: usize) -> Self {
        let mut items = self.items.clone();
        items.push(index);
        Origin { items, ..*self }
    }
}

/// Parses one file's text (a YAML stream or JSON values) and adds what it holds to `inventory`.
fn parse_into(
    inventory: &mut Inventory,
    file: &str,
    text: &str,
    format: Format,
    default_namespace: &str,
) -> Result<(), ManifestError> {
    let documents = match format {
        Format::Yaml => yaml_documents(file, text)?,
        Format::Json => json_documents(file, text)?,
    };
    for (document, value) in documents {
        // A JSON file holding a bare array is read as a list of objects.
        let origin = Origin {
            file,
            text,
            format,
            document,
            items: Vec::new(),
            bare_array: value.is_array(),
        };
        if let Value::Array(items) = value {
            for item in items {
                add_value(inventory, item, &origin, default_namespace, 1)?;
            }
        } else {
            add_value(inventory, value, &origin, default_namespace, 0)?;
        }
    }
    Ok(())
}

/// The non-empty documents of a YAML stream, with their index in the stream.
fn yaml_documents(file: &str, text: &str) -> Result<Vec<(usize, Value)>, ManifestError> {
    let mut out = Vec::new();
    for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        match Option::<Value>::deserialize(document) {
            Ok(Some(value)) => out.push((index, value)),
            Ok(None) => {}
            // serde_yaml repeats a syntax error for every later document: stop at the first.
            Err(error) => {
                return Err(ManifestError::Syntax {
                    file: file.to_string(),
                    format: Format::Yaml.name(),
                    line: error.location().map(|location| location.line()),
                    message: error.to_string(),
                });
            }
        }
    }
    Ok(out)
}

fn json_documents(file: &str, text: &str) -> Result<Vec<(usize, Value)>, ManifestError> {
    let text = text.trim_start_matches('\u{feff}');
    let mut out = Vec::new();
    for (index, value) in serde_json::Deserializer::from_str(text)
        .into_iter::<Value>()
        .enumerate()
    {
        match value {
            Ok(value) => out.push((index, value)),
            Err(error) => {
                return Err(ManifestError::Syntax {
                    file: file.to_string(),
                    format: Format::Json.name(),
                    line: Some(error.line()),
                    message: error.to_string(),
                });
            }
        }
    }
    Ok(out)
}

/// The kinds the checks read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Pod,
    Service,
    Namespace,
    Node,
    Deployment,
    StatefulSet,
    ReplicaSet,
    DaemonSet,
    VirtualService,
    DestinationRule,
    EnvoyFilter,
    Sidecar,
    Gateway,
    PeerAuthentication,
    AuthorizationPolicy,
    RequestAuthentication,
    /// HorizontalPodAutoscaler or KEDA ScaledObject.
    Autoscaler,
    KubeGateway,
    HttpRoute,
    GrpcRoute,
    GatewayClass,
    InferencePool,
    InferenceObjective,
}

impl Kind {
    fn classify(api_version: &str, kind: &str) -> Option<Kind> {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        match (group, version, kind) {
            ("", "v1", "Pod") => Some(Kind::Pod),
            ("", "v1", "Service") => Some(Kind::Service),
            ("", "v1", "Namespace") => Some(Kind::Namespace),
            ("", "v1", "Node") => Some(Kind::Node),
            ("apps", "v1", "Deployment") => Some(Kind::Deployment),
            ("apps", "v1", "StatefulSet") => Some(Kind::StatefulSet),
            ("apps", "v1", "ReplicaSet") => Some(Kind::ReplicaSet),
            ("apps", "v1", "DaemonSet") => Some(Kind::DaemonSet),
            ("networking.istio.io", "v1" | "v1beta1" | "v1alpha3", kind) => match kind {
                "VirtualService" => Some(Kind::VirtualService),
                "DestinationRule" => Some(Kind::DestinationRule),
                "EnvoyFilter" => Some(Kind::EnvoyFilter),
                "Sidecar" => Some(Kind::Sidecar),
                "Gateway" => Some(Kind::Gateway),
                _ => None,
            },
            ("security.istio.io", "v1" | "v1beta1", kind) => match kind {
                "PeerAuthentication" => Some(Kind::PeerAuthentication),
                "AuthorizationPolicy" => Some(Kind::AuthorizationPolicy),
                "RequestAuthentication" => Some(Kind::RequestAuthentication),
                _ => None,
            },
            ("autoscaling", "v2" | "v1", "HorizontalPodAutoscaler")
            | ("keda.sh", "v1alpha1", "ScaledObject") => Some(Kind::Autoscaler),
            ("gateway.networking.k8s.io", "v1" | "v1beta1", kind) => match kind {
                "Gateway" => Some(Kind::KubeGateway),
                "HTTPRoute" => Some(Kind::HttpRoute),
                "GRPCRoute" => Some(Kind::GrpcRoute),
                "GatewayClass" => Some(Kind::GatewayClass),
                _ => None,
            },
            ("inference.networking.k8s.io", "v1", "InferencePool")
            | ("inference.networking.x-k8s.io", "v1alpha2", "InferencePool") => {
                Some(Kind::InferencePool)
            }
            ("inference.networking.x-k8s.io", "v1alpha2", "InferenceObjective") => {
                Some(Kind::InferenceObjective)
            }
            _ => None,
        }
    }

    fn is_namespaced(self) -> bool {
        !matches!(self, Kind::Namespace | Kind::Node | Kind::GatewayClass)
    }

    /// k8s-openapi types insist on their exact `apiVersion`/`kind`; Istio types ignore `kind`.
    fn is_kubernetes(self) -> bool {
        matches!(
            self,
            Kind::Pod
                | Kind::Service
                | Kind::Namespace
                | Kind::Node
                | Kind::Deployment
                | Kind::StatefulSet
                | Kind::ReplicaSet
                | Kind::DaemonSet
        )
    }
}

fn add_value(
    inventory: &mut Inventory,
    mut value: Value,
    origin: &Origin<'_>,
    default_namespace: &str,
    depth: usize,
) -> Result<(), ManifestError> {
    let Some(object) = value.as_object_mut() else {
        tracing::debug!(
            file = origin.file,
            "skipping a document that is not an object"
        );
        return Ok(());
    };
    let api_version = text_field(object, "apiVersion");
    let kind = text_field(object, "kind");
    let (Some(api_version), Some(kind)) = (api_version, kind) else {
        tracing::debug!(
            file = origin.file,
            "skipping an object without apiVersion and kind"
        );
        return Ok(());
    };
    if let Some(Value::Array(items)) = object.get_mut("items")
        && (kind == "List" || kind.ends_with("List"))
    {
        if depth >= MAX_LIST_DEPTH {
            return Err(ManifestError::Invalid {
                file: origin.file.to_string(),
                kind,
                name: "(no name)".to_string(),
                problem: format!("Lists nested more than {MAX_LIST_DEPTH} deep"),
            });
        }
        // `PodList` items from the API carry no apiVersion/kind: they are the list's.
        let item_kind = kind.strip_suffix("List").filter(|name| !name.is_empty());
        for (index, mut item) in std::mem::take(items).into_iter().enumerate() {
            if let (Some(item_kind), Some(fields)) = (item_kind, item.as_object_mut()) {
                fields
                    .entry("kind")
                    .or_insert_with(|| Value::String(item_kind.to_string()));
                fields
                    .entry("apiVersion")
                    .or_insert_with(|| Value::String(api_version.clone()));
            }
            add_value(
                inventory,
                item,
                &origin.item(index),
                default_namespace,
                depth + 1,
            )?;
        }
        return Ok(());
    }
    let Some(routed) = Kind::classify(&api_version, &kind) else {
        tracing::debug!(
            file = origin.file,
            api_version = api_version.as_str(),
            kind = kind.as_str(),
            "skipping a kind the checks do not read"
        );
        return Ok(());
    };
    let name = object
        .get("metadata")
        .and_then(|metadata| metadata.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("(no name)")
        .to_string();
    if routed.is_kubernetes() {
        object.remove("apiVersion");
        object.remove("kind");
    }
    let namespace = routed.is_namespaced().then_some(default_namespace);
    let typed = Typed {
        origin,
        kind: &kind,
        name: &name,
        namespace,
    };
    match routed {
        Kind::Pod => upsert(&mut inventory.pods, typed.read(value)?, |o| &o.metadata),
        Kind::Service => upsert(&mut inventory.services, typed.read(value)?, |o| &o.metadata),
        Kind::Namespace => upsert(&mut inventory.namespaces, typed.read(value)?, |o| {
            &o.metadata
        }),
        Kind::Node => upsert(&mut inventory.nodes, typed.read(value)?, |o| &o.metadata),
        Kind::Deployment => upsert(&mut inventory.deployments, typed.read(value)?, |o| {
            &o.metadata
        }),
        Kind::StatefulSet => upsert(&mut inventory.stateful_sets, typed.read(value)?, |o| {
            &o.metadata
        }),
        Kind::ReplicaSet => upsert(&mut inventory.replica_sets, typed.read(value)?, |o| {
            &o.metadata
        }),
        Kind::DaemonSet => upsert(&mut inventory.daemon_sets, typed.read(value)?, |o| {
            &o.metadata
        }),
        Kind::VirtualService => upsert(&mut inventory.virtual_services, typed.read(value)?, |o| {
            &o.metadata
        }),
        Kind::DestinationRule => {
            upsert(&mut inventory.destination_rules, typed.read(value)?, |o| {
                &o.metadata
            })
        }
        Kind::EnvoyFilter => upsert(&mut inventory.envoy_filters, typed.read(value)?, |o| {
            &o.metadata
        }),
        Kind::Sidecar => upsert(&mut inventory.sidecars, typed.read(value)?, |o| &o.metadata),
        Kind::Gateway => upsert(&mut inventory.gateways, typed.read(value)?, |o| &o.metadata),
        Kind::PeerAuthentication => upsert(
            &mut inventory.peer_authentications,
            typed.read(value)?,
            |o| &o.metadata,
        ),
        Kind::AuthorizationPolicy => upsert(
            &mut inventory.authorization_policies,
            typed.read(value)?,
            |o| &o.metadata,
        ),
        Kind::RequestAuthentication => upsert(
            &mut inventory.request_authentications,
            typed.read(value)?,
            |o| &o.metadata,
        ),
        Kind::Autoscaler => {
            if let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut) {
                metadata
                    .entry("namespace")
                    .or_insert_with(|| Value::String(default_namespace.to_string()));
            }
            match crate::evidence::objects::Autoscaler::from_object(&kind, &value) {
                Some(scaler) => inventory.autoscalers.push(scaler),
                None => tracing::debug!(
                    file = origin.file,
                    kind = kind.as_str(),
                    "skipping an autoscaler without scaleTargetRef or maxReplicas"
                ),
            }
        }
        Kind::KubeGateway => upsert(&mut inventory.kube_gateways, typed.read(value)?, |o| {
            &o.metadata
        }),
        Kind::HttpRoute => upsert(&mut inventory.http_routes, typed.read(value)?, |o| {
            &o.metadata
        }),
        Kind::GrpcRoute => upsert(&mut inventory.grpc_routes, typed.read(value)?, |o| {
            &o.metadata
        }),
        Kind::GatewayClass => upsert(&mut inventory.gateway_classes, typed.read(value)?, |o| {
            &o.metadata
        }),
        // Both versions read into one type; the same name in both groups is the same pool
        // written twice only if the apiVersion matches too.
        Kind::InferencePool => upsert_versioned(&mut inventory.inference_pools, typed.read(value)?),
        Kind::InferenceObjective => upsert(
            &mut inventory.inference_objectives,
            typed.read(value)?,
            |o| &o.metadata,
        ),
    }
    Ok(())
}

fn text_field(object: &serde_json::Map<String, Value>, key: &str) -> Option<String> {
    object
        .get(key)
        .and_then(Value::as_str)
        .filter(|text| !text.is_empty())
        .map(str::to_string)
}

/// One object on its way from JSON to its typed form.
struct Typed<'a> {
    origin: &'a Origin<'a>,
    kind: &'a str,
    name: &'a str,
    /// The namespace to give a namespaced object that has none.
    namespace: Option<&'a str>,
}

impl Typed<'_> {
    fn read<T: DeserializeOwned + HasMetadata>(&self, value: Value) -> Result<T, ManifestError> {
        let mut object: T = serde_json::from_value(value).map_err(|error| {
            // serde_json's message has no field path; re-reading the object from the text gives
            // one (serde_yaml) and the line in the file.
            let problem = explain::<T>(self.origin);
            ManifestError::Invalid {
                file: self.origin.file.to_string(),
                kind: self.kind.to_string(),
                name: self.name.to_string(),
                problem: problem.unwrap_or_else(|| error.to_string()),
            }
        })?;
        if let Some(namespace) = self.namespace {
            let metadata = object.metadata_mut();
            if metadata.namespace.as_deref().unwrap_or_default().is_empty() {
                metadata.namespace = Some(namespace.to_string());
            }
        }
        Ok(object)
    }
}

/// Deserializes the failing object again, straight from the text, for an error that names the
/// field (YAML) and the line in the file.
fn explain<T: DeserializeOwned>(origin: &Origin<'_>) -> Option<String> {
    if origin.bare_array {
        return None;
    }
    let seed = Nested::<T> {
        items: &origin.items,
        marker: PhantomData,
    };
    match origin.format {
        Format::Yaml => {
            let document = serde_yaml::Deserializer::from_str(origin.text).nth(origin.document)?;
            seed.deserialize(document)
                .err()
                .map(|error| error.to_string())
        }
        Format::Json => {
            let text = origin.text.trim_start_matches('\u{feff}');
            let mut deserializer = serde_json::Deserializer::from_str(text);
            for _ in 0..origin.document {
                IgnoredAny::deserialize(&mut deserializer).ok()?;
            }
            seed.deserialize(&mut deserializer)
                .err()
                .map(|error| error.to_string())
        }
    }
}

/// Deserializes `T` at `items` (indexes into nested Lists' `items`), skipping everything else.
struct Nested<'p, T> {
    items: &'p [usize],
    marker: PhantomData<T>,
}

impl<'de, T: DeserializeOwned> DeserializeSeed<'de> for Nested<'_, T> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        match self.items.split_first() {
            None => T::deserialize(deserializer).map(|_| ()),
            Some((&index, rest)) => deserializer.deserialize_map(ListFields::<T> {
                index,
                rest,
                marker: PhantomData,
            }),
        }
    }
}

/// A List's fields: `items` is walked, the rest skipped.
struct ListFields<'p, T> {
    index: usize,
    rest: &'p [usize],
    marker: PhantomData<T>,
}

impl<'de, T: DeserializeOwned> Visitor<'de> for ListFields<'_, T> {
    type Value = ();

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("a List")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if key == "items" {
                map.next_value_seed(ListItems::<T> {
                    index: self.index,
                    rest: self.rest,
                    marker: PhantomData,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// A List's `items`: the one at `index` is read further, the others skipped.
struct ListItems<'p, T> {
    index: usize,
    rest: &'p [usize],
    marker: PhantomData<T>,
}

impl<'de, T: DeserializeOwned> DeserializeSeed<'de> for ListItems<'_, T> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, T: DeserializeOwned> Visitor<'de> for ListItems<'_, T> {
    type Value = ();

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("a List's items")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut position = 0;
        loop {
            let more = if position == self.index {
                seq.next_element_seed(Nested::<T> {
                    items: self.rest,
                    marker: PhantomData,
                })?
                .is_some()
            } else {
                seq.next_element::<IgnoredAny>()?.is_some()
            };
            if !more {
                return Ok(());
            }
            position += 1;
        }
    }
}

/// Objects whose metadata the loader fills (namespace) and compares (identity).
trait HasMetadata {
    fn metadata_mut(&mut self) -> &mut ObjectMeta;
}

macro_rules! has_metadata {
    ($($ty:ty),* $(,)?) => {
        $(impl HasMetadata for $ty {
            fn metadata_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        })*
    };
}

has_metadata!(
    crate::evidence::listed_pod::ListedPod,
    k8s_openapi::api::apps::v1::DaemonSet,
    k8s_openapi::api::core::v1::Service,
    k8s_openapi::api::core::v1::Namespace,
    k8s_openapi::api::core::v1::Node,
    k8s_openapi::api::apps::v1::Deployment,
    k8s_openapi::api::apps::v1::StatefulSet,
    k8s_openapi::api::apps::v1::ReplicaSet,
);

impl<Spec> HasMetadata for crate::evidence::objects::IstioObject<Spec> {
    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// Adds `object`, replacing an earlier one with the same namespace and name (as a later
/// `kubectl apply` of the same object would).
fn upsert<T>(list: &mut Vec<T>, object: T, metadata: fn(&T) -> &ObjectMeta) {
    let key = |meta: &ObjectMeta| (meta.namespace.clone(), meta.name.clone());
    let wanted = key(metadata(&object));
    if let Some(existing) = list.iter_mut().find(|o| key(metadata(o)) == wanted) {
        tracing::debug!(
            namespace = wanted.0.as_deref().unwrap_or_default(),
            name = wanted.1.as_deref().unwrap_or_default(),
            "a later manifest replaces an earlier object of the same kind and name"
        );
        *existing = object;
    } else {
        list.push(object);
    }
}

/// [`upsert`] for a kind served in two API groups: objects of different groups are different.
fn upsert_versioned<S>(
    list: &mut Vec<crate::evidence::objects::IstioObject<S>>,
    object: crate::evidence::objects::IstioObject<S>,
) {
    let group = |version: &Option<String>| {
        version
            .as_deref()
            .and_then(|text| text.split_once('/'))
            .map(|(group, _)| group.to_string())
    };
    let wanted = (
        object.metadata.namespace.clone(),
        object.metadata.name.clone(),
        group(&object.api_version),
    );
    match list.iter_mut().find(|known| {
        (
            known.metadata.namespace.clone(),
            known.metadata.name.clone(),
            group(&known.api_version),
        ) == wanted
    }) {
        Some(existing) => *existing = object,
        None => list.push(object),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_yaml(text: &str) -> Result<Inventory, ManifestError> {
        let mut inventory = Inventory::default();
        parse_into(&mut inventory, "test.yaml", text, Format::Yaml, "default")?;
        Ok(inventory)
    }

    const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: vllm
  namespace: inference
spec:
  replicas: 2
  selector: {matchLabels: {app: vllm}}
  template:
    metadata: {labels: {app: vllm}}
    spec:
      containers:
        - name: vllm
          image: vllm/vllm-openai:v0.8.5
          resources:
            limits: {nvidia.com/gpu: 1, cpu: 4}
"#;

    #[test]
    fn multi_document_yaml_with_empty_documents_and_every_istio_version() {
        let text = format!(
            "# leading comment\n---\n{DEPLOYMENT}---\n---\n# only a comment\n---\n{}",
            r#"apiVersion: v1
kind: Service
metadata: {name: vllm}
spec: {selector: {app: vllm}, ports: [{port: 8000}]}
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: vllm, namespace: inference}
spec: {hosts: [vllm], http: [{route: [{destination: {host: vllm}}]}]}
---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: buffer, namespace: istio-system}
spec: {configPatches: [{applyTo: HTTP_FILTER}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: vllm}
spec: {host: vllm}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default}
spec: {}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: public}
spec: {selector: {istio: ingressgateway}}
---
apiVersion: v1
kind: Namespace
metadata: {name: inference, labels: {istio-injection: enabled}}
"#
        );
        let inventory = parse_yaml(&text).unwrap();
        assert_eq!(inventory.deployments.len(), 1);
        let deployment = &inventory.deployments[0];
        assert_eq!(deployment.spec.replicas, Some(2));
        // An unquoted number is a valid quantity, as kubectl accepts it.
        let limits = deployment.spec.template.spec.as_ref().unwrap().containers[0]
            .resources
            .as_ref()
            .unwrap()
            .limits
            .as_ref()
            .unwrap();
        assert_eq!(limits["nvidia.com/gpu"].0, "1");
        assert_eq!(inventory.services.len(), 1);
        assert_eq!(inventory.virtual_services.len(), 1);
        assert_eq!(inventory.envoy_filters.len(), 1);
        assert_eq!(inventory.destination_rules.len(), 1);
        assert_eq!(inventory.peer_authentications.len(), 1);
        assert_eq!(inventory.sidecars.len(), 1);
        assert_eq!(inventory.gateways.len(), 1);
        assert_eq!(inventory.namespaces.len(), 1);
    }

    #[test]
    fn objects_without_namespace_get_the_default_but_cluster_scoped_kinds_do_not() {
        let inventory = parse_yaml(
            r#"
apiVersion: v1
kind: Service
metadata: {name: a}
---
apiVersion: v1
kind: Service
metadata: {name: b, namespace: given}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: c}
spec: {host: a}
---
apiVersion: v1
kind: Namespace
metadata: {name: inference}
---
apiVersion: v1
kind: Node
metadata: {name: gpu-node-1}
"#,
        )
        .unwrap();
        let namespaces: Vec<_> = inventory
            .services
            .iter()
            .map(|s| s.metadata.namespace.as_deref().unwrap())
            .collect();
        assert_eq!(namespaces, ["default", "given"]);
        assert_eq!(
            inventory.destination_rules[0].metadata.namespace.as_deref(),
            Some("default")
        );
        assert_eq!(inventory.namespaces[0].metadata.namespace, None);
        assert_eq!(inventory.nodes[0].metadata.namespace, None);
    }

    #[test]
    fn lists_and_typed_lists_whose_items_have_no_kind() {
        let inventory = parse_yaml(
            r#"
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: Pod
    metadata: {name: p1, namespace: ns}
    spec: {containers: [{name: c}]}
  - apiVersion: v1
    kind: List
    items:
      - {apiVersion: v1, kind: Service, metadata: {name: s1}}
---
apiVersion: v1
kind: PodList
metadata: {resourceVersion: "1"}
items:
  - metadata: {name: p2, namespace: ns}
    spec: {containers: [{name: c}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualServiceList
items:
  - metadata: {name: vs1, namespace: ns}
    spec: {hosts: [a]}
"#,
        )
        .unwrap();
        let pods: Vec<_> = inventory
            .pods
            .iter()
            .map(|p| p.metadata.name.as_deref().unwrap())
            .collect();
        assert_eq!(pods, ["p1", "p2"]);
        assert_eq!(inventory.services.len(), 1);
        assert_eq!(inventory.virtual_services.len(), 1);
        assert_eq!(
            inventory.virtual_services[0].api_version.as_deref(),
            Some("networking.istio.io/v1")
        );
    }

    #[test]
    fn kubectl_get_output_with_status_and_managed_fields() {
        let inventory = parse_yaml(
            r#"
apiVersion: v1
items:
- apiVersion: apps/v1
  kind: Deployment
  metadata:
    annotations: {deployment.kubernetes.io/revision: "3"}
    creationTimestamp: "2025-01-07T10:00:00Z"
    generation: 3
    managedFields:
    - apiVersion: apps/v1
      fieldsType: FieldsV1
      fieldsV1: {f:spec: {f:replicas: {}}}
      manager: kubectl
      operation: Update
      time: "2025-01-07T10:00:00Z"
    name: vllm
    namespace: inference
    resourceVersion: "123"
    uid: 0b6c1f1e-0000-0000-0000-000000000000
  spec:
    progressDeadlineSeconds: 600
    replicas: 2
    selector: {matchLabels: {app: vllm}}
    strategy: {rollingUpdate: {maxSurge: 25%, maxUnavailable: 25%}, type: RollingUpdate}
    template:
      metadata:
        creationTimestamp: null
        labels: {app: vllm}
      spec:
        containers:
        - image: vllm/vllm-openai:v0.8.5
          name: vllm
          ports: [{containerPort: 8000, protocol: TCP}]
          resources: {limits: {nvidia.com/gpu: "1"}}
          readinessProbe: {httpGet: {path: /health, port: 8000}, periodSeconds: 5}
        restartPolicy: Always
  status:
    availableReplicas: 2
    conditions:
    - {lastTransitionTime: "2025-01-07T10:00:00Z", status: "True", type: Available}
kind: List
metadata: {resourceVersion: ""}
"#,
        )
        .unwrap();
        assert_eq!(inventory.deployments.len(), 1);
        assert_eq!(inventory.deployments[0].spec.replicas, Some(2));
    }

    #[test]
    fn gateway_api_and_inference_kinds_are_read_in_every_served_version() {
        let inventory = parse_yaml(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: istio}
spec: {controllerName: istio.io/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: inference-gateway}
spec: {gatewayClassName: istio, listeners: [{name: http, port: 80, protocol: HTTP}]}
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: HTTPRoute
metadata: {name: llama-8b, namespace: serving}
spec:
  parentRefs: [{name: inference-gateway}]
  rules: [{timeouts: {request: 60s}, backendRefs: [{name: llama-8b, port: 8000}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: grpc}
spec: {rules: [{backendRefs: [{name: llama-8b, port: 8001}]}]}
---
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {name: pool}
spec: {selector: {matchLabels: {app: llama-8b}}, targetPorts: [{number: 8000}], endpointPickerRef: {name: epp}}
---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferencePool
metadata: {name: pool}
spec: {selector: {app: llama-8b}, targetPortNumber: 8000, extensionRef: {name: epp}}
---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceObjective
metadata: {name: chat}
spec: {poolRef: {name: pool}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata: {name: skipped}
"#,
        )
        .unwrap();
        assert_eq!(inventory.gateway_classes.len(), 1);
        assert_eq!(inventory.gateway_classes[0].metadata.namespace, None);
        assert_eq!(inventory.kube_gateways.len(), 1);
        assert!(inventory.gateways.is_empty(), "not Istio's Gateway");
        assert_eq!(
            inventory.kube_gateways[0].metadata.namespace.as_deref(),
            Some("default")
        );
        let route = &inventory.http_routes[0];
        assert_eq!(
            route.api_version.as_deref(),
            Some("gateway.networking.k8s.io/v1beta1")
        );
        assert_eq!(
            route.spec.rules[0]
                .timeouts
                .as_ref()
                .unwrap()
                .request
                .as_deref(),
            Some("60s")
        );
        assert_eq!(inventory.grpc_routes.len(), 1);
        // One pool per group: the same name in v1 and v1alpha2 is two objects.
        assert_eq!(inventory.inference_pools.len(), 2);
        assert_eq!(inventory.inference_objectives.len(), 1);
    }

    #[test]
    fn unknown_kinds_and_non_objects_are_skipped() {
        let inventory = parse_yaml(
            r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {a: b}
---
apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: tls}
---
apiVersion: extensions/v1beta1
kind: Deployment
metadata: {name: ancient}
---
replicaCount: 3
---
just a string
---
apiVersion: v1
kind: Service
metadata: {name: kept}
"#,
        )
        .unwrap();
        assert!(inventory.deployments.is_empty());
        assert_eq!(inventory.services.len(), 1);
    }

    #[test]
    fn malformed_yaml_names_the_file_and_the_line_in_the_file() {
        let text = "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: [b}\n";
        let error = parse_yaml(text).unwrap_err();
        let ManifestError::Syntax { line, .. } = &error else {
            panic!("expected a syntax error, got {error}");
        };
        assert_eq!(*line, Some(7));
        let message = error.to_string();
        assert!(
            message.starts_with("test.yaml: malformed YAML"),
            "{message}"
        );
        assert!(message.contains("line 7"), "{message}");
    }

    #[test]
    fn a_known_kind_with_a_bad_field_names_file_object_and_field() {
        let text = "apiVersion: v1\nkind: Service\nmetadata: {name: ok}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: vllm\nspec:\n  replicas: two\n";
        let message = parse_yaml(text).unwrap_err().to_string();
        assert!(
            message.starts_with("test.yaml: Deployment/vllm is not valid"),
            "{message}"
        );
        assert!(message.contains("spec.replicas"), "{message}");
        assert!(message.contains("line 10"), "{message}");
    }

    #[test]
    fn a_bad_field_in_a_list_item_names_the_item_field_and_line() {
        let text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Service\n  metadata: {name: fine}\n- apiVersion: v1\n  kind: List\n  items:\n  - apiVersion: apps/v1\n    kind: Deployment\n    metadata: {name: nested}\n    spec: {replicas: many}\n";
        let message = parse_yaml(text).unwrap_err().to_string();
        assert!(message.contains("Deployment/nested"), "{message}");
        assert!(message.contains("replicas"), "{message}");
        assert!(message.contains("line 13"), "{message}");
    }

    #[test]
    fn a_bad_field_in_an_istio_object_names_the_field() {
        let text = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: vs}\nspec:\n  hosts: vllm\n";
        let message = parse_yaml(text).unwrap_err().to_string();
        assert!(message.contains("VirtualService/vs"), "{message}");
        assert!(message.contains("spec.hosts"), "{message}");
    }

    #[test]
    fn a_later_object_replaces_an_earlier_one_with_the_same_name() {
        let inventory = parse_yaml(
            "apiVersion: v1\nkind: Service\nmetadata: {name: a, labels: {v: '1'}}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: a, labels: {v: '2'}}\n",
        )
        .unwrap();
        assert_eq!(inventory.services.len(), 1);
        assert_eq!(
            inventory.services[0].metadata.labels.as_ref().unwrap()["v"],
            "2"
        );
    }

    #[test]
    fn json_streams_and_json_errors_with_lines() {
        let mut inventory = Inventory::default();
        let text = r#"{"apiVersion": "v1", "kind": "List", "items": [
  {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a", "namespace": "x"}}
]}
{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}"#;
        parse_into(&mut inventory, "all.json", text, Format::Json, "default").unwrap();
        assert_eq!(inventory.services.len(), 1);
        assert_eq!(inventory.namespaces.len(), 1);

        let broken = "{\"apiVersion\": \"v1\",\n \"kind\": \"Service\",,\n}";
        let error =
            parse_into(&mut inventory, "bad.json", broken, Format::Json, "default").unwrap_err();
        assert!(
            matches!(error, ManifestError::Syntax { line: Some(2), .. }),
            "{error}"
        );

        let invalid = "{\"apiVersion\": \"apps/v1\", \"kind\": \"Deployment\",\n \"metadata\": {\"name\": \"d\"},\n \"spec\": {\"replicas\": \"x\"}}";
        let message = parse_into(&mut inventory, "d.json", invalid, Format::Json, "default")
            .unwrap_err()
            .to_string();
        assert!(message.starts_with("d.json: Deployment/d"), "{message}");
        assert!(message.contains("line 3"), "{message}");
    }

    #[test]
    fn folders_are_read_recursively_in_sorted_order_and_stdin_once() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("b/nested")).unwrap();
        let service = |name: &str| {
            format!("apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: ns}}\n")
        };
        std::fs::write(root.join("z.yaml"), service("z")).unwrap();
        std::fs::write(root.join("a.yml"), service("a")).unwrap();
        std::fs::write(root.join("b/nested/m.YAML"), service("m")).unwrap();
        std::fs::write(
            root.join("b/c.json"),
            r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"c","namespace":"ns"}}"#,
        )
        .unwrap();
        std::fs::write(root.join("README.md"), "kind: Service\n").unwrap();
        // An explicitly named file is read whatever its extension, as kubectl does.
        let explicit = root.join("extra.txt");
        std::fs::write(&explicit, service("explicit")).unwrap();

        let paths = [
            root.to_path_buf(),
            PathBuf::from("-"),
            explicit.clone(),
            PathBuf::from("-"),
        ];
        assert_eq!(
            sources(&paths)
                .unwrap()
                .iter()
                .filter(|s| **s == Source::Stdin)
                .count(),
            1
        );
        let mut stdin = std::io::Cursor::new(service("piped"));
        let inventory = load_with_stdin(&paths, "default", &mut stdin).unwrap();
        let names: Vec<_> = inventory
            .services
            .iter()
            .map(|s| s.metadata.name.as_deref().unwrap())
            .collect();
        assert_eq!(names, ["a", "c", "m", "z", "piped", "explicit"]);
    }

    #[test]
    fn a_missing_path_is_named() {
        let missing = PathBuf::from("/nonexistent/manifests.yaml");
        let error = load_with_stdin(
            std::slice::from_ref(&missing),
            "default",
            &mut std::io::empty(),
        )
        .unwrap_err();
        assert!(matches!(error, ManifestError::NotFound { .. }));
        assert!(
            error.to_string().contains("/nonexistent/manifests.yaml"),
            "{error}"
        );
    }

    #[test]
    fn stdin_json_is_sniffed() {
        let mut stdin = std::io::Cursor::new(
            r#"  {"apiVersion":"v1","kind":"Namespace","metadata":{"name":"x"}}"#,
        );
        let inventory = load_with_stdin(&[PathBuf::from("-")], "default", &mut stdin).unwrap();
        assert_eq!(inventory.namespaces.len(), 1);
    }
}
