//! Envoy's `/config_dump` -> `EffectiveConfig` (`evidence::envoy::config`): routes, listeners with
//! their HCMs, clusters, with Envoy's defaults for absent fields (`evidence::envoy::defaults`).
//!
//! Sections are picked by `configs[].@type`, static and dynamic alike. Also accepted: the
//! single-resource entries of `?resource=`, and the JSON lists `istioctl proxy-config cluster|
//! listener|route … -o json` prints.

mod build;
mod raw;

use crate::evidence::envoy::config::EffectiveConfig;
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigDumpError {
    #[error(
        "config_dump is not JSON from Envoy's admin API ({reason}); capture it with `curl localhost:15000/config_dump` or `istioctl proxy-config all POD -o json`"
    )]
    Json { reason: String },
    #[error(
        "config_dump has neither `configs` nor a list of clusters, listeners or route configurations; pass Envoy's /config_dump output unchanged"
    )]
    Shape,
    #[error("config_dump: {location} is {value:?}, not a duration like 15s or 0.500s")]
    Field { location: String, value: String },
}

#[derive(Deserialize)]
struct Document {
    configs: Option<Vec<raw::Section>>,
}

/// Parses a config_dump (or an `istioctl proxy-config … -o json` list, or `egctl config
/// envoy-proxy … -o json|yaml` output) into `EffectiveConfig`. Several proxies in one egctl
/// output are merged; `parse_proxies` keeps them apart.
pub fn parse(text: &str) -> Result<EffectiveConfig, ConfigDumpError> {
    let mut proxies = parse_proxies(text)?.into_iter();
    let Some((_, mut first)) = proxies.next() else {
        return Err(ConfigDumpError::Shape);
    };
    for (_, other) in proxies {
        first.listeners.extend(other.listeners);
        first.route_configs.extend(other.route_configs);
        first.clusters.extend(other.clusters);
        first.rejected.extend(other.rejected);
    }
    Ok(first)
}

/// Parses a capture into one config per proxy: `egctl config envoy-proxy` prints
/// `{NAMESPACE: {POD: <config_dump or one section>}}`, labelled `NAMESPACE/POD`; anything else is
/// one proxy with no label. JSON in protobuf's camelCase (`dynamicActiveClusters`), as egctl
/// writes it, and YAML are read like Envoy's own snake_case JSON.
pub fn parse_proxies(
    text: &str,
) -> Result<Vec<(Option<String>, EffectiveConfig)>, ConfigDumpError> {
    let mut value = read_value(text)?;
    snake_case_keys(&mut value);
    let mut proxies = Vec::new();
    match egctl_proxies(&mut value) {
        Some(found) => {
            for (label, capture) in found {
                proxies.push((Some(label), parse_value(capture)?));
            }
        }
        None => proxies.push((None, parse_value(value)?)),
    }
    Ok(proxies)
}

/// JSON, else YAML (a YAML file is read as the JSON it stands for).
fn read_value(text: &str) -> Result<serde_json::Value, ConfigDumpError> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        return serde_json::from_str(text).map_err(|error| ConfigDumpError::Json {
            reason: error.to_string(),
        });
    }
    let value: serde_json::Value =
        serde_yaml::from_str(text).map_err(|error| ConfigDumpError::Json {
            reason: format!("neither JSON nor YAML: {error}"),
        })?;
    if value.is_object() || value.is_array() {
        Ok(value)
    } else {
        Err(ConfigDumpError::Json {
            reason: "neither a JSON nor a YAML object".to_string(),
        })
    }
}

/// One proxy's capture: a config_dump document, a list, or a bare section.
fn parse_value(value: serde_json::Value) -> Result<EffectiveConfig, ConfigDumpError> {
    let json_error = |error: serde_json::Error| ConfigDumpError::Json {
        reason: error.to_string(),
    };
    let mut builder = build::Builder::default();
    if let serde_json::Value::Array(items) = value {
        for item in items {
            let section = section_for_list_item(item).map_err(json_error)?;
            builder.add_section(section)?;
        }
        return Ok(builder.finish());
    }
    if value.get("@type").is_some() && value.get("configs").is_none() {
        // One section alone: egctl's per-resource output (`egctl config envoy-proxy cluster`).
        let section: raw::Section = serde_json::from_value(value).map_err(json_error)?;
        builder.add_section(section)?;
        return Ok(builder.finish());
    }
    let document: Document = serde_json::from_value(value).map_err(json_error)?;
    for section in document.configs.ok_or(ConfigDumpError::Shape)? {
        builder.add_section(section)?;
    }
    Ok(builder.finish())
}

/// `{NAMESPACE: {POD: capture}}` as egctl prints it, where a capture has `configs` or `@type`.
fn egctl_proxies(value: &mut serde_json::Value) -> Option<Vec<(String, serde_json::Value)>> {
    let is_capture =
        |value: &serde_json::Value| value.get("configs").is_some() || value.get("@type").is_some();
    let namespaces = value.as_object_mut()?;
    if namespaces.is_empty()
        || namespaces.contains_key("configs")
        || namespaces.contains_key("@type")
    {
        return None;
    }
    let nested = namespaces.values().all(|pods| {
        pods.as_object()
            .is_some_and(|pods| !pods.is_empty() && pods.values().all(is_capture))
    });
    if !nested {
        return None;
    }
    let mut found = Vec::new();
    for (namespace, pods) in std::mem::take(namespaces) {
        if let serde_json::Value::Object(pods) = pods {
            for (pod, capture) in pods {
                found.push((format!("{namespace}/{pod}"), capture));
            }
        }
    }
    Some(found)
}

/// Protobuf's JSON mapping may write field names in lowerCamelCase (`dynamicActiveClusters`,
/// `portValue`), as egctl does; Envoy's admin writes snake_case. Keys that are field names
/// (a lowercase first letter, letters and digits only) become snake_case; map keys such as
/// `envoy.extensions.upstreams.http.v3.HttpProtocolOptions` or `@type` stay as written.
fn snake_case_keys(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            let needs = map.keys().any(|key| camel_field(key));
            if needs {
                let entries = std::mem::take(map);
                for (key, mut inner) in entries {
                    snake_case_keys(&mut inner);
                    let key = if camel_field(&key) {
                        to_snake(&key)
                    } else {
                        key
                    };
                    map.insert(key, inner);
                }
            } else {
                for inner in map.values_mut() {
                    snake_case_keys(inner);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(snake_case_keys),
        _ => {}
    }
}

fn camel_field(key: &str) -> bool {
    key.starts_with(|c: char| c.is_ascii_lowercase())
        && key.chars().all(|c| c.is_ascii_alphanumeric())
        && key.chars().any(|c| c.is_ascii_uppercase())
}

fn to_snake(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// One element of an `istioctl proxy-config` list: a bare Cluster, Listener or
/// RouteConfiguration (or an admin wrapper around one), told apart by its fields.
fn section_for_list_item(item: serde_json::Value) -> Result<raw::Section, serde_json::Error> {
    let has = |key: &str| item.get(key).is_some();
    let wrapper = has("cluster")
        || has("listener")
        || has("route_config")
        || has("active_state")
        || has("warming_state");
    if wrapper {
        return serde_json::from_value(item);
    }
    let mut section = raw::Section::default();
    if has("virtual_hosts") {
        section.route_config = Some(serde_json::from_value(item)?);
    } else if has("filter_chains") || has("address") || has("default_filter_chain") {
        section.listener = Some(serde_json::from_value(item)?);
        section.type_url = "ListenersConfigDump.DynamicListener".to_string();
    } else if has("name") {
        section.cluster = Some(serde_json::from_value(item)?);
    }
    Ok(section)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::envoy::config::Buffering;

    /// The buffering of the one HTTP filter of a listener's HCM with `filter` as JSON.
    fn buffering_of(filter: &str) -> Option<Buffering> {
        let dump = format!(
            r#"{{"configs":[{{"@type":"type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
            "static_listeners":[{{"listener":{{"name":"l","filter_chains":[{{"filters":[
              {{"name":"envoy.filters.network.http_connection_manager","typed_config":{{
                "@type":"type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix":"s","http_filters":[{filter}]}}}}]}}]}}}}]}}]}}"#
        );
        let config = parse(&dump).unwrap();
        let (_, _, hcm) = config.hcms().next().unwrap();
        hcm.http_filters[0].buffering.clone()
    }

    #[test]
    fn lua_and_wasm_buffer_only_where_their_config_may_touch_bodies() {
        let lua = |source: &str| {
            format!(
                r#"{{"name":"envoy.filters.http.lua","typed_config":{{"@type":"type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",{source}}}}}"#
            )
        };
        // A script that reads headers only holds nothing.
        assert_eq!(
            buffering_of(&lua(
                r#""default_source_code":{"inline_string":"function envoy_on_request(h) h:headers():add('x','1') end"}"#
            )),
            None
        );
        // `body()` holds the whole body; a script in a file may.
        assert_eq!(
            buffering_of(&lua(
                r#""inline_code":"function envoy_on_response(h) local b = h:body() end""#
            )),
            Some(Buffering::Lua)
        );
        assert_eq!(
            buffering_of(&lua(
                r#""default_source_code":{"filename":"/etc/lua/x.lua"}"#
            )),
            Some(Buffering::Lua)
        );
        // Istio's null-VM metadata exchange does not buffer; other Wasm may.
        let wasm = |runtime: &str, code: &str| {
            format!(
                r#"{{"name":"istio.metadata_exchange","typed_config":{{"@type":"type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                "config":{{"vm_config":{{"runtime":"{runtime}","code":{{"local":{{"inline_string":"{code}"}}}}}}}}}}}}"#
            )
        };
        assert_eq!(
            buffering_of(&wasm(
                "envoy.wasm.runtime.null",
                "envoy.wasm.metadata_exchange"
            )),
            None
        );
        assert_eq!(
            buffering_of(&wasm(
                "envoy.wasm.runtime.v8",
                "envoy.wasm.metadata_exchange"
            )),
            Some(Buffering::Wasm)
        );
        assert_eq!(
            buffering_of(&wasm("envoy.wasm.runtime.null", "my.plugin")),
            Some(Buffering::Wasm)
        );
    }

    #[test]
    fn camel_case_keys_become_snake_case_but_map_keys_stay() {
        let mut value = serde_json::json!({
            "dynamicActiveClusters": [{"cluster": {"connectTimeout": "1s",
                "typedExtensionProtocolOptions": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {"@type": "x"}}}}],
            "@type": "t"
        });
        snake_case_keys(&mut value);
        let cluster = &value["dynamic_active_clusters"][0]["cluster"];
        assert_eq!(cluster["connect_timeout"], "1s");
        assert!(
            cluster["typed_extension_protocol_options"]
                .get("envoy.extensions.upstreams.http.v3.HttpProtocolOptions")
                .is_some()
        );
        assert_eq!(value["@type"], "t");
    }

    #[test]
    fn bad_input_gives_one_line_errors() {
        let error = parse("<html>").unwrap_err();
        assert!(matches!(error, ConfigDumpError::Json { .. }));
        assert!(
            error
                .to_string()
                .contains("curl localhost:15000/config_dump")
        );
        assert_eq!(parse("{}").unwrap_err(), ConfigDumpError::Shape);
        let bad_timeout = r#"{"configs":[{"@type":"type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
            "dynamic_route_configs":[{"route_config":{"name":"8000","virtual_hosts":[{"name":"vh",
            "routes":[{"match":{"prefix":"/"},"route":{"cluster":"c","timeout":"soon"}}]}]}}]}]}"#;
        let error = parse(bad_timeout).unwrap_err();
        assert!(error.to_string().contains("\"soon\""), "{error}");
        assert!(
            error.to_string().contains("route config \"8000\""),
            "{error}"
        );
    }
}
