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

/// Parses a config_dump (or an `istioctl proxy-config … -o json` list) into `EffectiveConfig`.
pub fn parse(text: &str) -> Result<EffectiveConfig, ConfigDumpError> {
    let json_error = |error: serde_json::Error| ConfigDumpError::Json {
        reason: error.to_string(),
    };
    let mut builder = build::Builder::default();
    if text.trim_start().starts_with('[') {
        let items: Vec<serde_json::Value> = serde_json::from_str(text).map_err(json_error)?;
        for item in items {
            let section = section_for_list_item(item).map_err(json_error)?;
            builder.add_section(section)?;
        }
        return Ok(builder.finish());
    }
    let document: Document = serde_json::from_str(text).map_err(json_error)?;
    for section in document.configs.ok_or(ConfigDumpError::Shape)? {
        builder.add_section(section)?;
    }
    Ok(builder.finish())
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
