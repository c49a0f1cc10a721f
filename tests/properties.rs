#![allow(clippy::unwrap_used)]
//! Properties of the parsers that read what peers and users hand over, on stable with bounded
//! case counts (the same inputs as the cargo-fuzz targets in fuzz/, which run longer): none
//! panics on any input, and what is well formed reads back as written.

use kubectl_infermesh::sources::cluster::args::ClusterArgs;
use kubectl_infermesh::sources::cluster::kubeconfig::read_kubeconfig_with;
use kubectl_infermesh::sources::cluster::proxy;
use kubectl_infermesh::sources::envoy::config_dump;
use kubectl_infermesh::sources::envoy::stats::Stats;
use kubectl_infermesh::sources::manifest;
use kubectl_infermesh::sources::probe::sse;
use kubectl_infermesh::units::{duration, quantity};
use proptest::prelude::*;
use std::time::Duration;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        "[a-z_@.]{0,12}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("configs".to_string()),
                    Just("@type".to_string()),
                    Just("dynamic_active_clusters".to_string()),
                    Just("cluster".to_string()),
                    Just("name".to_string()),
                    "[a-z_]{1,10}"
                ],
                inner,
                0..6
            )
            .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn durations_never_panic(text in "\\PC{0,24}") {
        let _ = duration::parse(&text);
    }

    #[test]
    fn durations_read_back_as_displayed(millis in 0u64..10_000_000_000) {
        let value = Duration::from_millis(millis);
        prop_assert_eq!(duration::parse(&duration::display(value)).unwrap(), value);
    }

    #[test]
    fn quantities_never_panic(text in "\\PC{0,24}") {
        let _ = quantity::parse(&text);
        let _ = quantity::cpu_millis(&text);
        let _ = quantity::memory_bytes(&text);
    }

    #[test]
    fn quantities_read_as_kubernetes_writes_them(n in 0u64..1_000_000) {
        prop_assert_eq!(quantity::cpu_millis(&format!("{n}m")).unwrap(), n);
        prop_assert_eq!(quantity::memory_bytes(&format!("{n}Mi")).unwrap(), n * 1024 * 1024);
        prop_assert_eq!(quantity::memory_bytes(&format!("{n}k")).unwrap(), n * 1000);
    }

    #[test]
    fn stats_text_never_panics(text in "\\PC{0,400}") {
        let _ = Stats::parse_text(&text);
        let _ = Stats::parse_json(&text);
    }

    #[test]
    fn well_formed_stats_lines_read_back(
        lines in prop::collection::btree_map("[a-z][a-z0-9_.]{0,30}[a-z0-9]", any::<u32>(), 1..20)
    ) {
        let text: String = lines.iter().map(|(name, value)| format!("{name}: {value}\n")).collect();
        let stats = Stats::parse_text(&text).unwrap();
        for (name, value) in &lines {
            prop_assert_eq!(stats.get(name), Some(u64::from(*value)), "{}", name);
        }
    }

    #[test]
    fn sse_bodies_never_panic(body in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = sse::read_body(&body);
    }

    #[test]
    fn well_formed_sse_events_read_back(texts in prop::collection::vec("[a-z ]{0,20}", 0..20)) {
        let mut body = String::new();
        for text in &texts {
            body.push_str(&format!("data: {}\n\n", serde_json::json!({"choices": [{"text": text}]})));
        }
        body.push_str("data: [DONE]\n\n");
        let read = sse::read_body(body.as_bytes());
        prop_assert_eq!(read.len(), texts.len() + 1);
        prop_assert!(read.iter().all(Result::is_ok), "{:?}", read);
    }

    #[test]
    fn config_dumps_never_panic(text in "\\PC{0,400}") {
        let _ = config_dump::parse(&text);
    }

    #[test]
    fn config_dump_shaped_json_never_panics(value in json_value()) {
        let _ = config_dump::parse(&value.to_string());
        let wrapped = serde_json::json!({"configs": [value]});
        let _ = config_dump::parse(&wrapped.to_string());
    }

    #[test]
    fn manifests_never_panic(text in "\\PC{0,400}", json in json_value()) {
        let dir = tempfile::tempdir().unwrap();
        let yaml = dir.path().join("any.yaml");
        std::fs::write(&yaml, &text).unwrap();
        let _ = manifest::load(&[yaml], "default");
        let objects = dir.path().join("any.json");
        std::fs::write(&objects, json.to_string()).unwrap();
        let _ = manifest::load(&[objects], "default");
    }

    #[test]
    fn kubeconfigs_never_panic(text in "\\PC{0,300}") {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        std::fs::write(&path, &text).unwrap();
        let _ = read_kubeconfig_with(&ClusterArgs::default(), Some(path.as_os_str()));
    }

    #[test]
    fn proxy_settings_never_panic(
        proxy_url in "\\PC{0,60}",
        https_proxy in "\\PC{0,60}",
        no_proxy in "\\PC{0,60}",
    ) {
        let server: http::Uri = "https://10.0.0.1:6443".parse().unwrap();
        let _ = proxy::route(Some(&proxy_url), &server, &|_| None);
        let env = |name: &str| match name {
            "HTTPS_PROXY" => Some(https_proxy.clone()),
            "NO_PROXY" => Some(no_proxy.clone()),
            _ => None,
        };
        let _ = proxy::route(None, &server, &env);
    }
}
