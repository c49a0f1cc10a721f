//! Parse times of the Envoy sources on generated, Istio-shaped inputs: a 50,000-line `/stats`
//! (targets < 20 ms) and a ~10 MB `/config_dump` (target < 100 ms). See docs/benchmarks.md.

use criterion::{Criterion, criterion_group, criterion_main};
use kubectl_infermesh::evidence::envoy::counters::Targets;
use kubectl_infermesh::sources::envoy::config_dump;
use kubectl_infermesh::sources::envoy::stats::Stats;
use serde_json::{Value, json};
use std::hint::black_box;

const STATS_LINES: usize = 50_000;
const DUMP_BYTES: usize = 10 * 1024 * 1024;

const CLUSTER_LEAVES: [&str; 40] = [
    "assignment_stale",
    "bind_errors",
    "circuit_breakers.default.cx_open",
    "circuit_breakers.default.cx_pool_open",
    "circuit_breakers.default.rq_open",
    "circuit_breakers.default.rq_pending_open",
    "circuit_breakers.default.rq_retry_open",
    "circuit_breakers.high.cx_open",
    "lb_healthy_panic",
    "membership_change",
    "membership_healthy",
    "membership_total",
    "retry_or_shadow_abandoned",
    "ssl.connection_error",
    "ssl.fail_verify_san",
    "ssl.handshake",
    "ssl.session_reused",
    "upstream_cx_active",
    "upstream_cx_close_notify",
    "upstream_cx_connect_fail",
    "upstream_cx_connect_timeout",
    "upstream_cx_destroy",
    "upstream_cx_http1_total",
    "upstream_cx_idle_timeout",
    "upstream_cx_overflow",
    "upstream_cx_rx_bytes_total",
    "upstream_cx_total",
    "upstream_cx_tx_bytes_total",
    "upstream_rq_200",
    "upstream_rq_2xx",
    "upstream_rq_503",
    "upstream_rq_5xx",
    "upstream_rq_active",
    "upstream_rq_max_duration_reached",
    "upstream_rq_pending_overflow",
    "upstream_rq_per_try_timeout",
    "upstream_rq_retry_overflow",
    "upstream_rq_rx_reset",
    "upstream_rq_timeout",
    "upstream_rq_total",
];

/// A `/stats` of an Istio >= 1.23 gateway with stats kept for many services: `;`-delimited
/// cluster and HCM stats, histograms, and `istio_requests_total` lines.
fn generated_stats() -> String {
    let mut text = String::with_capacity(STATS_LINES * 90);
    let mut lines = 0;
    let mut service = 0;
    while lines < STATS_LINES {
        let cluster = format!(
            "outbound|8000||svc-{service}.ns-{}.svc.cluster.local",
            service % 40
        );
        for (index, leaf) in CLUSTER_LEAVES.iter().enumerate() {
            text.push_str(&format!(
                "cluster.{cluster};.{leaf}: {}\n",
                service * 7 + index
            ));
        }
        text.push_str(&format!(
            "cluster.{cluster};.upstream_cx_connect_ms: P0(nan,1) P25(nan,1.025) P50(nan,1.05) P75(nan,2.05) P90(nan,3.1) P95(nan,4.05) P99(nan,9.8) P99.5(nan,9.9) P99.9(nan,9.99) P100(nan,10)\n"
        ));
        text.push_str(&format!(
            "cluster.{cluster};.upstream_rq_time: No recorded values\n"
        ));
        for (code, flags) in [("200", "-"), ("504", "UT"), ("503", "UO")] {
            text.push_str(&format!(
                "reporter=.=source;.;source_workload=.=istio-ingressgateway;.;destination_service=.={cluster};.;response_code=.={code};.;response_flags=.={flags};.;istio_requests_total: {service}\n"
            ));
        }
        for leaf in [
            "downstream_rq_total",
            "downstream_rq_idle_timeout",
            "downstream_rq_timeout",
            "rs_too_large",
            "downstream_rq_too_large",
        ] {
            text.push_str(&format!(
                "http.outbound_0.0.0.0_{};.{leaf}: 0\n",
                8000 + service
            ));
        }
        lines += CLUSTER_LEAVES.len() + 2 + 3 + 5;
        service += 1;
    }
    text
}

fn cluster(index: usize) -> Value {
    let host = format!("svc-{index}.ns-{}.svc.cluster.local", index % 40);
    let name = format!("outbound|8000||{host}");
    json!({"cluster": {
        "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
        "name": name,
        "type": "EDS",
        "eds_cluster_config": {"eds_config": {"ads": {}, "initial_fetch_timeout": "0s", "resource_api_version": "V3"}, "service_name": name},
        "connect_timeout": "10s",
        "lb_policy": "LEAST_REQUEST",
        "circuit_breakers": {"thresholds": [{"max_connections": 4294967295u64, "max_pending_requests": 4294967295u64, "max_requests": 4294967295u64, "max_retries": 4294967295u64, "track_remaining": true}]},
        "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "common_http_protocol_options": {"idle_timeout": "3600s"},
            "use_downstream_protocol_config": {"http_protocol_options": {}, "http2_protocol_options": {}}}},
        "metadata": {"filter_metadata": {"istio": {"services": [{"host": host, "name": format!("svc-{index}"), "namespace": format!("ns-{}", index % 40)}],
            "config": format!("/apis/networking.istio.io/v1/namespaces/ns-{}/destination-rule/svc-{index}", index % 40)}}},
        "filters": [{"name": "istio.metadata_exchange", "typed_config": {"@type": "type.googleapis.com/envoy.tcp.metadataexchange.config.MetadataExchange", "protocol": "istio-peer-exchange"}}],
        "transport_socket_matches": [
            {"name": "tlsMode-istio", "match": {"tlsMode": "istio"}, "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                "common_tls_context": {
                    "tls_params": {"tls_minimum_protocol_version": "TLSv1_2", "tls_maximum_protocol_version": "TLSv1_3"},
                    "alpn_protocols": ["istio-peer-exchange", "istio"],
                    "tls_certificate_sds_secret_configs": [{"name": "default", "sds_config": {"api_config_source": {"api_type": "GRPC", "grpc_services": [{"envoy_grpc": {"cluster_name": "sds-grpc"}}], "set_node_on_first_message_only": true, "transport_api_version": "V3"}, "initial_fetch_timeout": "0s", "resource_api_version": "V3"}}],
                    "combined_validation_context": {"default_validation_context": {"match_subject_alt_names": [{"exact": format!("spiffe://cluster.local/ns/ns-{}/sa/svc-{index}", index % 40)}]},
                        "validation_context_sds_secret_config": {"name": "ROOTCA", "sds_config": {"api_config_source": {"api_type": "GRPC", "grpc_services": [{"envoy_grpc": {"cluster_name": "sds-grpc"}}], "set_node_on_first_message_only": true, "transport_api_version": "V3"}, "initial_fetch_timeout": "0s", "resource_api_version": "V3"}}}},
                "sni": format!("outbound_.8000_._.{host}")}}},
            {"name": "tlsMode-disabled", "match": {}, "transport_socket": {"name": "envoy.transport_sockets.raw_buffer", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer"}}}
        ]
    }, "last_updated": "2026-11-25T12:00:00.000Z"})
}

fn virtual_host(index: usize) -> Value {
    let host = format!("svc-{index}.ns-{}.svc.cluster.local", index % 40);
    json!({
        "name": format!("{host}:8000"),
        "domains": [format!("{host}:8000"), format!("svc-{index}.ns-{}", index % 40), format!("svc-{index}")],
        "routes": [{
            "match": {"prefix": "/"},
            "route": {"cluster": format!("outbound|8000||{host}"), "timeout": "0s",
                "retry_policy": {"retry_on": "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes", "num_retries": 2,
                    "retry_host_predicate": [{"name": "envoy.retry_host_predicates.previous_hosts"}], "host_selection_retry_max_attempts": "5", "retriable_status_codes": [503]},
                "max_grpc_timeout": "0s"},
            "metadata": {"filter_metadata": {"istio": {"config": format!("/apis/networking.istio.io/v1/namespaces/ns-{}/virtual-service/svc-{index}", index % 40)}}},
            "decorator": {"operation": format!("{host}:8000/*")},
            "name": "default"
        }],
        "include_request_attempt_count": true
    })
}

fn listener(index: usize) -> Value {
    json!({"name": format!("0.0.0.0_{}", 8000 + index), "active_state": {"listener": {
        "@type": "type.googleapis.com/envoy.config.listener.v3.Listener",
        "name": format!("0.0.0.0_{}", 8000 + index),
        "address": {"socket_address": {"address": "0.0.0.0", "port_value": 8000 + index}},
        "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": format!("outbound_0.0.0.0_{};", 8000 + index),
            "rds": {"config_source": {"ads": {}, "initial_fetch_timeout": "0s", "resource_api_version": "V3"}, "route_config_name": format!("{}", 8000 + index)},
            "http_filters": [
                {"name": "istio.metadata_exchange", "typed_config": {"@type": "type.googleapis.com/udpa.type.v1.TypedStruct", "type_url": "type.googleapis.com/io.istio.http.peer_metadata.Config", "value": {"upstream_discovery": [{"istio_headers": {}}, {"workload_discovery": {}}]}}},
                {"name": "envoy.filters.http.grpc_stats", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.grpc_stats.v3.FilterConfig", "emit_filter_state": true, "stats_for_all_methods": false}},
                {"name": "envoy.filters.http.fault", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"}},
                {"name": "envoy.filters.http.cors", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors"}},
                {"name": "istio.stats", "typed_config": {"@type": "type.googleapis.com/stats.PluginConfig"}},
                {"name": "envoy.filters.http.router", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}
            ],
            "tracing": {"client_sampling": {"value": 100}, "random_sampling": {"value": 1}, "overall_sampling": {"value": 100}},
            "use_remote_address": false,
            "upgrade_configs": [{"upgrade_type": "websocket"}],
            "stream_idle_timeout": "0s",
            "normalize_path": true,
            "request_id_extension": {"typed_config": {"@type": "type.googleapis.com/envoy.extensions.request_id.uuid.v3.UuidRequestIdConfig", "use_request_id_for_trace_sampling": true}},
            "path_with_escaped_slashes_action": "KEEP_UNCHANGED"
        }}]}],
        "traffic_direction": "OUTBOUND"
    }}, "last_updated": "2026-11-25T12:00:00.000Z"})
}

/// A config_dump of a large mesh's gateway: clusters, listeners and routes per service, sized
/// to ~10 MB as Envoy prints it (pretty JSON).
fn generated_config_dump() -> String {
    // Envoy pretty-prints config_dump: size the input as printed, from a first estimate.
    let printed = |value: &Value| serde_json::to_string_pretty(value).map_or(0, |text| text.len());
    let per_service = printed(&cluster(0)) + printed(&virtual_host(0)) + printed(&listener(0)) / 10;
    let estimate = DUMP_BYTES.div_ceil(per_service);
    let first = config_dump_of(estimate);
    config_dump_of(estimate * DUMP_BYTES / first.len().max(1))
}

fn config_dump_of(services: usize) -> String {
    let mut clusters = Vec::new();
    let mut listeners = Vec::new();
    let mut virtual_hosts = Vec::new();
    for index in 0..services {
        clusters.push(cluster(index));
        virtual_hosts.push(virtual_host(index));
        if index % 10 == 0 {
            listeners.push(listener(index / 10));
        }
    }
    let route_configs: Vec<Value> = virtual_hosts
        .chunks(10)
        .enumerate()
        .map(|(chunk, hosts)| json!({"version_info": "2026-11-25T12:00:00Z/1", "route_config": {
            "@type": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
            "name": format!("{}", 8000 + chunk), "virtual_hosts": hosts, "validate_clusters": false},
            "last_updated": "2026-11-25T12:00:00.000Z"}))
        .collect();
    serde_json::to_string_pretty(&json!({"configs": [
        {"@type": "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump", "bootstrap": {"node": {"id": "router~10.0.0.1~istio-ingressgateway-7d9f.istio-system~istio-system.svc.cluster.local", "metadata": {"ISTIO_VERSION": "1.24.0"}}}},
        {"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump", "version_info": "1", "dynamic_active_clusters": clusters},
        {"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump", "version_info": "1", "dynamic_listeners": listeners},
        {"@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump", "dynamic_route_configs": route_configs},
    ]}))
    .unwrap_or_default()
}

fn stats_benches(c: &mut Criterion) {
    let text = generated_stats();
    let lines = text.lines().count();
    let parsed = Stats::parse_text(&text).unwrap_or_default();
    assert!(
        lines >= STATS_LINES && parsed.len() >= STATS_LINES,
        "{lines} lines"
    );
    eprintln!("stats input: {lines} lines, {} bytes", text.len());
    c.bench_function("stats_text_50k_lines", |b| {
        b.iter(|| Stats::parse_text(black_box(&text)))
    });
    let targets = Targets {
        clusters: vec!["outbound|8000||svc-7.ns-7.svc.cluster.local".to_string()],
        hcms: vec!["outbound_0.0.0.0_8007".to_string()],
        ..Targets::default()
    };
    c.bench_function("snapshot_of_one_path_in_50k_stats", |b| {
        b.iter(|| black_box(&parsed).snapshot(black_box(&targets)))
    });
}

fn config_dump_benches(c: &mut Criterion) {
    let text = generated_config_dump();
    let parsed = config_dump::parse(&text).unwrap_or_default();
    assert!(text.len() >= DUMP_BYTES * 9 / 10 && !parsed.clusters.is_empty());
    eprintln!(
        "config_dump input: {} bytes, {} clusters, {} listeners, {} route configs",
        text.len(),
        parsed.clusters.len(),
        parsed.listeners.len(),
        parsed.route_configs.len()
    );
    let mut group = c.benchmark_group("config_dump");
    group.sample_size(20);
    group.bench_function("parse_10mb", |b| {
        b.iter(|| config_dump::parse(black_box(&text)))
    });
    group.bench_function("path_to_one_service", |b| {
        b.iter(|| black_box(&parsed).path_to("svc-7.ns-7.svc.cluster.local", 8000))
    });
    group.finish();
}

criterion_group!(benches, stats_benches, config_dump_benches);
criterion_main!(benches);
