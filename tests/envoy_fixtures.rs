#![allow(clippy::unwrap_used)]
//! The Envoy parsers against real outputs from public repositories (tests/fixtures/envoy).

use kubectl_infermesh::evidence::envoy::config::{
    Buffering, EffectiveConfig, HcmRoutes, Origin, ResourceState, RouteSource, RouteTarget,
    UpstreamTls,
};
use kubectl_infermesh::evidence::envoy::counters::{ScopeKind, Targets};
use kubectl_infermesh::evidence::envoy::defaults;
use kubectl_infermesh::evidence::envoy::role::{EnvoyRole, role_for};
use kubectl_infermesh::sources::envoy::config_dump;
use kubectl_infermesh::sources::envoy::stats::Stats;
use std::time::Duration;

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/envoy/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
}

const PRODUCTPAGE: &str = "productpage.default.svc.cluster.local";

#[test]
fn istio_describe_dump_gives_routes_and_the_outbound_cluster() {
    let config = config_dump::parse(&fixture("istio-1.13-describe-http-config.json")).unwrap();
    assert!(config.listeners.is_empty());

    let routes: Vec<_> = config.routes().collect();
    assert_eq!(routes.len(), 5);
    for view in &routes {
        assert_eq!(view.route_config.name, "http.8080");
        assert_eq!(
            view.route_config.source,
            RouteSource::Rds {
                state: ResourceState::Active
            }
        );
        assert_eq!(view.virtual_host.name, "*:80");
        let route = view.route;
        assert_eq!(
            route.target,
            RouteTarget::Cluster {
                name: format!("outbound|9080||{PRODUCTPAGE}")
            }
        );
        // Istio writes 0s: the route timeout is disabled, not Envoy's 15s default.
        assert_eq!(route.timeout.origin, Origin::Configured);
        assert!(route.timeout.value.is_disabled());
        assert_eq!(route.timeout.value.text, "0s");
        let retry = route.retry.as_ref().unwrap();
        assert_eq!(retry.num_retries.value, 2);
        assert_eq!(retry.num_retries.origin, Origin::Configured);
        assert!(retry.retry_on.contains("retriable-status-codes"));
        assert_eq!(retry.per_try_timeout, None);
        assert!(!retry.from_virtual_host);
        assert_eq!(
            route.istio_config.as_deref(),
            Some("/apis/networking.istio.io/v1alpha3/namespaces/default/virtual-service/bookinfo")
        );
    }
    assert_eq!(routes[0].route.matcher, "path /productpage");
    assert_eq!(routes[1].route.matcher, "prefix /static");

    let cluster = config
        .cluster(&format!("outbound|9080|v1|{PRODUCTPAGE}"))
        .unwrap();
    assert_eq!(cluster.discovery.as_deref(), Some("EDS"));
    assert_eq!(cluster.connect_timeout.value.value, Duration::from_secs(10));
    assert_eq!(cluster.connect_timeout.origin, Origin::Configured);
    let breakers = &cluster.circuit_breakers;
    for threshold in [
        &breakers.max_connections,
        &breakers.max_pending_requests,
        &breakers.max_requests,
        &breakers.max_retries,
    ] {
        assert_eq!(threshold.value, defaults::ISTIO_UNLIMITED);
        assert_eq!(threshold.origin, Origin::Configured);
    }
    // Absent fields take Envoy's defaults, marked as such.
    assert_eq!(cluster.per_connection_buffer_limit_bytes.value, 1024 * 1024);
    assert!(cluster.per_connection_buffer_limit_bytes.is_default());
    assert_eq!(cluster.http.idle_timeout.value.text, "3600s");
    assert!(cluster.http.idle_timeout.is_default());
    assert_eq!(cluster.http.max_requests_per_connection, None);
    assert_eq!(
        cluster.tls,
        UpstreamTls::IstioMutual {
            sni: Some(format!("outbound_.9080_.v1_.{PRODUCTPAGE}"))
        }
    );
    assert_eq!(
        cluster.istio_config.as_deref(),
        Some("/apis/networking.istio.io/v1alpha3/namespaces/default/destination-rule/productpage")
    );

    let role = role_for(&config, PRODUCTPAGE, 9080);
    assert_eq!(role.role, EnvoyRole::Client);
    assert_eq!(
        role.clusters,
        vec![format!("outbound|9080|v1|{PRODUCTPAGE}")]
    );
    assert!(role.reason.contains("outbound cluster"), "{}", role.reason);
    assert_eq!(
        role_for(&config, PRODUCTPAGE, 8000).role,
        EnvoyRole::Unrelated
    );
}

#[test]
fn istio_waypoint_dump_gives_listeners_hcms_and_the_waypoint_role() {
    let config = config_dump::parse(&fixture("istio-1.21-waypoint-config-dump.json")).unwrap();
    let node = config.node.as_ref().unwrap();
    assert_eq!(node.istio_version.as_deref(), Some("1.21.0-1226"));
    assert!(node.id.as_deref().unwrap().starts_with("waypoint~"));
    assert_eq!(config.stats_inclusion, None);

    let agent = config.cluster("agent").unwrap();
    assert_eq!(agent.state, ResourceState::Static);
    assert_eq!(agent.connect_timeout.value.text, "0.250s");
    assert_eq!(
        agent.connect_timeout.value.value,
        Duration::from_millis(250)
    );
    assert_eq!(agent.endpoints, vec!["127.0.0.1:15020".to_string()]);
    // No circuit_breakers in the dump: raw Envoy's 1024/1024/1024/3.
    assert_eq!(agent.circuit_breakers.max_connections.value, 1024);
    assert_eq!(agent.circuit_breakers.max_retries.value, 3);
    assert!(agent.circuit_breakers.max_requests.is_default());

    let vip = "inbound-vip|8000|http|httpbin.default.svc.cluster.local";
    let waypoint_cluster = config.cluster(vip).unwrap();
    assert_eq!(waypoint_cluster.state, ResourceState::Active);
    assert!(waypoint_cluster.connect_timeout.is_default());
    assert_eq!(waypoint_cluster.connect_timeout.value.text, "5s");
    assert_eq!(waypoint_cluster.tls, UpstreamTls::None);

    let readiness = config
        .listeners
        .iter()
        .find(|listener| listener.state == ResourceState::Static)
        .unwrap();
    assert_eq!(readiness.address.as_deref(), Some("0.0.0.0:15021"));
    assert_eq!(readiness.stat_name, "0.0.0.0_15021");
    let main = config.listener("main_internal").unwrap();
    assert_eq!(main.state, ResourceState::Active);
    assert!(main.per_connection_buffer_limit_bytes.is_default());
    assert_eq!(main.per_connection_buffer_limit_bytes.value, 1024 * 1024);

    let (_, chain, hcm) = config
        .hcms()
        .find(|(_, _, hcm)| hcm.stat_prefix == "inbound_0.0.0.0_8000")
        .unwrap();
    assert_eq!(
        chain.name.as_deref(),
        Some("inbound-vip|8000||httpbin.default.svc.cluster.local-http")
    );
    assert_eq!(hcm.routes, HcmRoutes::Inline(vip.to_string()));
    assert_eq!(hcm.stream_idle_timeout.value.text, "0s");
    assert_eq!(hcm.stream_idle_timeout.origin, Origin::Configured);
    assert!(hcm.request_timeout.is_default());
    assert!(hcm.request_timeout.value.is_disabled());
    assert_eq!(hcm.delayed_close_timeout.value.text, "1s");
    assert!(hcm.delayed_close_timeout.is_default());
    assert_eq!(hcm.idle_timeout.value.value, Duration::from_secs(3600));
    let filter_names: Vec<&str> = hcm.http_filters.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(filter_names.first(), Some(&"envoy.filters.http.grpc_stats"));
    assert_eq!(filter_names.last(), Some(&"envoy.filters.http.router"));
    assert_eq!(hcm.buffering_filters().count(), 0);
    let stats_filter = hcm
        .http_filters
        .iter()
        .find(|f| f.name == "istio.stats")
        .unwrap();
    assert_eq!(
        stats_filter.type_url.as_deref(),
        Some("type.googleapis.com/stats.PluginConfig")
    );

    // The inline route of that HCM, and the tcp_proxy chain.
    let inline = config
        .route_configs
        .iter()
        .find(|route_config| {
            route_config.name == vip && matches!(route_config.source, RouteSource::Inline { .. })
        })
        .unwrap();
    let route = &inline.virtual_hosts[0].routes[0];
    assert_eq!(route.name.as_deref(), Some("default"));
    assert_eq!(route.max_stream_duration.as_ref().unwrap().text, "0s");
    assert!(
        main.filter_chains
            .iter()
            .any(|chain| chain.tcp_proxy_cluster.as_deref() == Some("encap"))
    );

    let role = role_for(&config, "httpbin.default.svc.cluster.local", 8000);
    assert_eq!(role.role, EnvoyRole::Waypoint);

    let path = config.path_to("httpbin", 8000);
    assert_eq!(path.clusters.len(), 1);
    assert_eq!(path.clusters[0].name, vip);
    // Its one transport socket is an internal upstream: the waypoint reaches the pods over HBONE
    // (this trimmed dump has no connect_originate cluster to bring along).
    assert!(path.clusters[0].hbone);
    assert_eq!(path.listeners.len(), 1);
    assert_eq!(path.listeners[0].filter_chains.len(), 1);
    assert_eq!(
        path.listeners[0].filter_chains[0]
            .hcm
            .as_ref()
            .unwrap()
            .stat_prefix,
        "inbound_0.0.0.0_8000"
    );
    assert!(path.route_configs.iter().all(|rc| rc.name == vip));
    // The path value round-trips through evidence JSON unchanged.
    let json = serde_json::to_string(&path).unwrap();
    let back: EffectiveConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(back, path);
}

#[test]
fn istio_bootstrap_stats_matcher_is_read() {
    let bootstrap = fixture("istio-bootstrap-stats-inclusion.json");
    let dump = format!(
        r#"{{"configs":[{{"@type":"type.googleapis.com/envoy.admin.v3.BootstrapConfigDump","bootstrap":{bootstrap}}}]}}"#
    );
    let config = config_dump::parse(&dump).unwrap();
    let inclusion = config.stats_inclusion.unwrap();
    assert!(inclusion.contains(&"prefix:reporter=".to_string()));
    assert!(inclusion.contains(&"prefix:cluster_manager".to_string()));
    assert!(inclusion.contains(&"suffix:upstream_rq_1xx".to_string()));
    assert!(inclusion.iter().any(|p| p.starts_with("regex:vhost")));
    assert!(
        !inclusion
            .iter()
            .any(|p| p.starts_with("prefix:cluster.outbound"))
    );
}

#[test]
fn datadog_stats_text_parses_with_scopes() {
    let stats = Stats::parse_text(&fixture("datadog-stats-multiple-services.txt")).unwrap();
    assert!(stats.len() > 250);
    assert!(!stats.uses_delimited_names());
    let clusters = stats.cluster_names();
    assert_eq!(clusters.len(), 2, "{clusters:?}");
    assert!(stats.hcm_prefixes().contains(&"ingress_http".to_string()));
    assert!(stats.listener_names().contains(&"0.0.0.0_80".to_string()));
    assert_eq!(
        stats.cluster("service1").get("retry_or_shadow_abandoned"),
        Some(0)
    );
    assert_eq!(stats.cluster("service1").get("update_success"), Some(136));
    assert_eq!(
        stats.scoped(ScopeKind::Cluster, "service1", "upstream_cx_overflow"),
        Some(("cluster.service1.upstream_cx_overflow", 0))
    );

    // A raw (non-Istio) Envoy keeps every scope: nothing is trimmed. This old Envoy predates
    // some stats (circuit_breakers.*, upstream_rq_max_duration_reached): they are reported as
    // missing from a present scope, not as trimming.
    let snapshot = stats.snapshot(&Targets {
        clusters: vec!["service1".to_string()],
        hcms: vec!["ingress_http".to_string()],
        ..Targets::default()
    });
    assert!(!snapshot.has_trimmed_stats());
    assert!(snapshot.missing.iter().all(|stat| stat.scope_present));
    assert!(
        snapshot
            .missing
            .iter()
            .any(|stat| stat.leaf == "circuit_breakers.default.cx_open")
    );
    assert_eq!(
        snapshot.value("cluster.service1.upstream_rq_pending_overflow"),
        Some(0)
    );
    assert_eq!(snapshot.value("http.ingress_http.rs_too_large"), Some(0));
}

#[test]
fn server_info_fixture_is_understood() {
    let info: kubectl_infermesh::sources::envoy::admin::ServerInfo =
        serde_json::from_str(&fixture("datadog-server-info.json")).unwrap();
    assert_eq!(info.envoy_version(), Some("1.18.3"));
    assert_eq!(info.state.as_deref(), Some("LIVE"));
}

#[test]
fn buffering_filters_are_recognised() {
    let dump = r#"{"configs":[{"@type":"type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
      "static_listeners":[{"listener":{"name":"l","address":{"socket_address":{"address":"0.0.0.0","port_value":8080}},
        "per_connection_buffer_limit_bytes":32768,
        "filter_chains":[{"filters":[{"name":"envoy.filters.network.http_connection_manager","typed_config":{
          "@type":"type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
          "stat_prefix":"outbound_0.0.0.0_8080;","rds":{"route_config_name":"http.8080"},
          "request_timeout":"300s","stream_idle_timeout":"300s",
          "common_http_protocol_options":{"idle_timeout":"60s","max_connection_duration":"600s"},
          "http_filters":[
            {"name":"envoy.filters.http.buffer","typed_config":{"@type":"type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer","max_request_bytes":1024}},
            {"name":"envoy.filters.http.ext_authz","typed_config":{"@type":"type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz","with_request_body":{"max_request_bytes":8192,"allow_partial_message":true}}},
            {"name":"authz-no-body","typed_config":{"@type":"type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz"}},
            {"name":"envoy.filters.http.lua","typed_config":{"@type":"type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua"}},
            {"name":"envoy.filters.http.router","typed_config":{"@type":"type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}
          ]}}]}]}}]}]}"#;
    let config = config_dump::parse(dump).unwrap();
    let listener = &config.listeners[0];
    assert_eq!(listener.per_connection_buffer_limit_bytes.value, 32768);
    assert_eq!(listener.stat_name, "0.0.0.0_8080");
    let (_, _, hcm) = config.hcms().next().unwrap();
    assert_eq!(hcm.stat_scope(), "outbound_0.0.0.0_8080");
    assert_eq!(hcm.routes, HcmRoutes::Rds("http.8080".to_string()));
    assert_eq!(hcm.request_timeout.value.text, "300s");
    assert_eq!(hcm.idle_timeout.value.text, "60s");
    assert_eq!(hcm.max_connection_duration.as_ref().unwrap().text, "600s");
    let buffering: Vec<&Buffering> = hcm
        .buffering_filters()
        .map(|f| f.buffering.as_ref().unwrap())
        .collect();
    assert_eq!(
        buffering,
        vec![
            &Buffering::Buffer {
                max_request_bytes: Some(1024)
            },
            &Buffering::ExtAuthzWithBody {
                max_request_bytes: Some(8192),
                allow_partial_message: true
            },
            &Buffering::Lua,
        ]
    );
}

#[test]
fn istioctl_lists_and_single_resources_parse_too() {
    let clusters = r#"[{"name":"outbound|8000||vllm.inference.svc.cluster.local","type":"EDS","connect_timeout":"10s",
        "circuit_breakers":{"thresholds":[{"max_connections":100,"max_pending_requests":"10"}]},
        "typed_extension_protocol_options":{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions":{
          "@type":"type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
          "common_http_protocol_options":{"idle_timeout":"30s","max_requests_per_connection":1},
          "use_downstream_protocol_config":{}}}}]"#;
    let config = config_dump::parse(clusters).unwrap();
    let cluster = &config.clusters[0];
    assert_eq!(cluster.circuit_breakers.max_connections.value, 100);
    assert_eq!(cluster.circuit_breakers.max_pending_requests.value, 10);
    assert!(cluster.circuit_breakers.max_requests.is_default());
    assert_eq!(cluster.http.idle_timeout.value.text, "30s");
    assert_eq!(cluster.http.max_requests_per_connection, Some(1));
    assert_eq!(cluster.http.protocol.as_deref(), Some("downstream"));

    let single = r#"{"configs":[{"@type":"type.googleapis.com/envoy.admin.v3.RoutesConfigDump.DynamicRouteConfig",
        "route_config":{"name":"8000","virtual_hosts":[{"name":"vllm.inference.svc.cluster.local:8000","domains":["*"],
          "retry_policy":{"retry_on":"5xx","num_retries":3,"per_try_timeout":"0.500s"},
          "routes":[{"match":{"prefix":"/"},"route":{"cluster":"outbound|8000||vllm.inference.svc.cluster.local",
            "idle_timeout":"20s","max_stream_duration":{"max_stream_duration":"120s"}}}]}]}}]}"#;
    let config = config_dump::parse(single).unwrap();
    let route = config.routes().next().unwrap().route;
    assert!(route.timeout.is_default());
    assert_eq!(route.timeout.value.text, "15s");
    assert_eq!(route.idle_timeout.as_ref().unwrap().text, "20s");
    assert_eq!(route.max_stream_duration.as_ref().unwrap().text, "120s");
    let retry = route.retry.as_ref().unwrap();
    assert!(retry.from_virtual_host);
    assert_eq!(
        retry.per_try_timeout.as_ref().unwrap().value,
        Duration::from_millis(500)
    );
}
