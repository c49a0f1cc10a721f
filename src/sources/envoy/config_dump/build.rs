//! Raw config_dump sections -> `EffectiveConfig`, filling Envoy's defaults for absent fields.

use super::ConfigDumpError;
use super::raw;
use crate::evidence::envoy::config::*;
use crate::evidence::envoy::defaults;
use std::collections::HashMap;
use std::time::Duration;

const HCM_FILTER: &str = "envoy.filters.network.http_connection_manager";
const TCP_PROXY_FILTER: &str = "envoy.filters.network.tcp_proxy";
const UPSTREAM_HTTP_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
const ISTIO_TLS_MATCH: &str = "tlsMode-istio";
/// The transport socket match Istio adds when the mesh sends HBONE (cluster_tls.go).
const HBONE_MATCH: &str = "hbone";

#[derive(Default)]
pub(super) struct Builder {
    config: EffectiveConfig,
    endpoints: HashMap<String, Vec<String>>,
}

impl Builder {
    pub(super) fn add_section(&mut self, section: raw::Section) -> Result<(), ConfigDumpError> {
        let kind = section
            .type_url
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string();
        if let Some(bootstrap) = section.bootstrap {
            self.add_bootstrap(bootstrap);
        }
        let cluster_groups = [
            (section.static_clusters, ResourceState::Static),
            (section.dynamic_active_clusters, ResourceState::Active),
            (section.dynamic_warming_clusters, ResourceState::Warming),
        ];
        for (entries, state) in cluster_groups {
            for entry in entries {
                let active = entry.cluster.is_some();
                if let Some(error) = entry.error_state {
                    self.add_rejected(RejectedKind::Cluster, None, error, active);
                }
                if let Some(cluster) = entry.cluster {
                    self.add_cluster(cluster, state)?;
                }
            }
        }
        for listener in section
            .static_listeners
            .into_iter()
            .filter_map(|entry| entry.listener)
        {
            self.add_listener(listener, ResourceState::Static)?;
        }
        for mut entry in section.dynamic_listeners {
            if let Some(error) = entry.error_state.take() {
                let active = entry.active_state.is_some() || entry.warming_state.is_some();
                self.add_rejected(RejectedKind::Listener, entry.name.clone(), error, active);
            }
            self.add_dynamic_listener(
                entry.active_state,
                entry.warming_state,
                entry.draining_state,
            )?;
        }
        let route_config_groups = [
            (section.static_route_configs, ResourceState::Static),
            (section.dynamic_route_configs, ResourceState::Active),
        ];
        for (entries, state) in route_config_groups {
            for entry in entries {
                let active = entry.route_config.is_some();
                if let Some(error) = entry.error_state {
                    self.add_rejected(RejectedKind::RouteConfig, None, error, active);
                }
                if let Some(route_config) = entry.route_config {
                    self.add_route_config(route_config, state)?;
                }
            }
        }
        for assignment in section
            .static_endpoint_configs
            .into_iter()
            .chain(section.dynamic_endpoint_configs)
            .filter_map(|entry| entry.endpoint_config)
        {
            self.add_endpoints(assignment);
        }
        // Single resources, as `?resource=` returns them.
        let is_static = kind.contains(".Static");
        let single_state = if is_static {
            ResourceState::Static
        } else {
            ResourceState::Active
        };
        if let Some(cluster) = section.cluster {
            let state = if kind.ends_with("WarmingCluster") {
                ResourceState::Warming
            } else {
                single_state
            };
            self.add_cluster(cluster, state)?;
        }
        if let Some(listener) = section.listener {
            self.add_listener(listener, ResourceState::Static)?;
        }
        if let Some(error) = section.error_state {
            let active = section.active_state.is_some() || section.warming_state.is_some();
            self.add_rejected(RejectedKind::Listener, section.name.clone(), error, active);
        }
        self.add_dynamic_listener(
            section.active_state,
            section.warming_state,
            section.draining_state,
        )?;
        if let Some(route_config) = section.route_config {
            self.add_route_config(route_config, single_state)?;
        }
        if let Some(assignment) = section.endpoint_config {
            self.add_endpoints(assignment);
        }
        Ok(())
    }

    pub(super) fn finish(mut self) -> EffectiveConfig {
        // Envoy lists the inline route configs of listeners again under `static_route_configs`;
        // keep the inline copy, which says which listener and HCM own it.
        let inline: Vec<(String, Vec<VirtualHostConfig>)> = self
            .config
            .route_configs
            .iter()
            .filter(|route_config| matches!(route_config.source, RouteSource::Inline { .. }))
            .map(|route_config| {
                (
                    route_config.name.clone(),
                    route_config.virtual_hosts.clone(),
                )
            })
            .collect();
        self.config.route_configs.retain(|route_config| {
            !(route_config.source
                == RouteSource::Rds {
                    state: ResourceState::Static,
                }
                && inline.iter().any(|(name, virtual_hosts)| {
                    *name == route_config.name && *virtual_hosts == route_config.virtual_hosts
                }))
        });
        for cluster in &mut self.config.clusters {
            if let Some(addresses) = self.endpoints.remove(&cluster.name) {
                for address in addresses {
                    if !cluster.endpoints.contains(&address) {
                        cluster.endpoints.push(address);
                    }
                }
            }
        }
        self.config
    }

    fn add_bootstrap(&mut self, bootstrap: raw::Bootstrap) {
        if let Some(node) = bootstrap.node {
            let envoy_version = node
                .user_agent_build_version
                .and_then(|build| build.version)
                .and_then(|version| {
                    Some(format!(
                        "{}.{}.{}",
                        version.major_number?,
                        version.minor_number.unwrap_or(0),
                        version.patch.unwrap_or(0)
                    ))
                });
            self.config.node = Some(NodeInfo {
                id: node.id,
                cluster: node.cluster,
                istio_version: node.metadata.and_then(|metadata| metadata.istio_version),
                envoy_version,
            });
        }
        let matcher = bootstrap
            .stats_config
            .and_then(|stats_config| stats_config.stats_matcher);
        if let Some(matcher) = matcher {
            let patterns = if matcher.reject_all == Some(true) {
                Some(Vec::new())
            } else {
                matcher.inclusion_list.map(|list| {
                    list.patterns
                        .iter()
                        .filter_map(describe_string_matcher)
                        .collect()
                })
            };
            self.config.stats_inclusion = patterns;
        }
    }

    /// An `error_state`: the refused resource, named from the entry or its failed config.
    /// Envoy also lists the failure of a whole update without a name; that is the same refusal
    /// as a named one with the same text, and is kept only when no named one has it.
    fn add_rejected(
        &mut self,
        kind: RejectedKind,
        name: Option<String>,
        error: raw::ErrorState,
        previous_active: bool,
    ) {
        let failed = error.failed_configuration.as_ref();
        let failed_name = failed
            .and_then(|config| config.get("name"))
            .and_then(|name| name.as_str())
            .map(str::to_string);
        let mut rejected = RejectedResource {
            kind,
            name: name.or(failed_name).unwrap_or_default(),
            details: error.details.unwrap_or_default(),
            last_update_attempt: error.last_update_attempt,
            previous_active,
            ..RejectedResource::default()
        };
        if kind == RejectedKind::Listener
            && let Some(listener) = failed
                .and_then(|config| serde_json::from_value::<raw::Listener>(config.clone()).ok())
        {
            rejected.address = listener.address.as_ref().and_then(describe_address);
            for chain in listener
                .filter_chains
                .iter()
                .chain(listener.default_filter_chain.iter())
            {
                for filter in &chain.filters {
                    let Some(typed) = &filter.typed_config else {
                        continue;
                    };
                    if let Some(prefix) = &typed.stat_prefix
                        && !rejected.stat_prefixes.contains(prefix)
                    {
                        rejected.stat_prefixes.push(prefix.clone());
                    }
                    for http in &typed.http_filters {
                        let kind = http
                            .typed_config
                            .as_ref()
                            .and_then(|config| {
                                config.typed_struct_type.clone().or(config.type_url.clone())
                            })
                            .unwrap_or_default();
                        let script = kind.ends_with("lua.v3.Lua")
                            || kind.ends_with("wasm.v3.Wasm")
                            || http.name == "envoy.filters.http.lua"
                            || http.name == "envoy.filters.http.wasm";
                        if script && !rejected.script_filters.contains(&http.name) {
                            rejected.script_filters.push(http.name.clone());
                        }
                    }
                }
            }
        }
        let known = &mut self.config.rejected;
        let same = |other: &RejectedResource| {
            other.kind == kind
                && other.details == rejected.details
                && (other.name == rejected.name
                    || other.name.is_empty()
                    || rejected.name.is_empty())
        };
        match known.iter_mut().find(|other| same(other)) {
            Some(other) => {
                if other.name.is_empty() {
                    other.name = rejected.name;
                }
                if other.last_update_attempt.is_none() {
                    other.last_update_attempt = rejected.last_update_attempt;
                }
                if other.address.is_none() {
                    other.address = rejected.address;
                }
                other.previous_active |= rejected.previous_active;
            }
            None => known.push(rejected),
        }
    }

    fn add_endpoints(&mut self, assignment: raw::ClusterLoadAssignment) {
        let addresses = endpoint_addresses(&assignment);
        self.endpoints
            .entry(assignment.cluster_name)
            .or_default()
            .extend(addresses);
    }

    fn add_dynamic_listener(
        &mut self,
        active: Option<raw::ListenerEntry>,
        warming: Option<raw::ListenerEntry>,
        draining: Option<raw::ListenerEntry>,
    ) -> Result<(), ConfigDumpError> {
        let states = [
            (active, ResourceState::Active),
            (warming, ResourceState::Warming),
            (draining, ResourceState::Draining),
        ];
        for (state, kind) in states {
            if let Some(listener) = state.and_then(|state| state.listener) {
                self.add_listener(listener, kind)?;
            }
        }
        Ok(())
    }

    fn add_cluster(
        &mut self,
        cluster: raw::Cluster,
        state: ResourceState,
    ) -> Result<(), ConfigDumpError> {
        let context = format!("cluster {:?}", cluster.name);
        let connect_timeout = duration_or(
            cluster.connect_timeout.as_deref(),
            defaults::CLUSTER_CONNECT_TIMEOUT,
            &context,
            "connect_timeout",
        )?;
        let thresholds = cluster.circuit_breakers.as_ref().and_then(|breakers| {
            breakers
                .thresholds
                .iter()
                .find(|threshold| matches!(threshold.priority.as_deref(), None | Some("DEFAULT")))
        });
        let threshold = |pick: fn(&raw::Thresholds) -> Option<u64>, default: u64| match thresholds
            .and_then(pick)
        {
            Some(value) => Setting::configured(value),
            None => Setting::envoy_default(default),
        };
        let circuit_breakers = CircuitBreakerSettings {
            max_connections: threshold(
                |t| t.max_connections,
                defaults::CIRCUIT_BREAKER_MAX_CONNECTIONS,
            ),
            max_pending_requests: threshold(
                |t| t.max_pending_requests,
                defaults::CIRCUIT_BREAKER_MAX_PENDING_REQUESTS,
            ),
            max_requests: threshold(|t| t.max_requests, defaults::CIRCUIT_BREAKER_MAX_REQUESTS),
            max_retries: threshold(|t| t.max_retries, defaults::CIRCUIT_BREAKER_MAX_RETRIES),
        };
        let options = cluster
            .typed_extension_protocol_options
            .get(UPSTREAM_HTTP_OPTIONS);
        let common = options
            .and_then(|options| options.common_http_protocol_options.as_ref())
            .or(cluster.common_http_protocol_options.as_ref());
        let durations = common_http_durations(common, &context)?;
        let http = UpstreamHttpSettings {
            idle_timeout: durations.idle_timeout,
            max_requests_per_connection: common
                .and_then(|common| common.max_requests_per_connection)
                .or(cluster.max_requests_per_connection),
            max_connection_duration: durations.max_connection_duration,
            max_stream_duration: durations.max_stream_duration,
            protocol: options.and_then(upstream_protocol),
        };
        let endpoints = cluster
            .load_assignment
            .as_ref()
            .map(endpoint_addresses)
            .unwrap_or_default();
        self.config.clusters.push(ClusterConfig {
            alt_stat_name: cluster.alt_stat_name.filter(|name| !name.is_empty()),
            discovery: cluster
                .discovery_type
                .or(cluster.cluster_type.map(|custom| custom.name)),
            state,
            connect_timeout,
            per_connection_buffer_limit_bytes: count_or(
                cluster.per_connection_buffer_limit_bytes,
                defaults::CLUSTER_PER_CONNECTION_BUFFER_LIMIT_BYTES,
            ),
            circuit_breakers,
            http,
            tls: upstream_tls(
                cluster.transport_socket.as_ref(),
                &cluster.transport_socket_matches,
            ),
            hbone: sends_hbone(
                cluster.transport_socket.as_ref(),
                &cluster.transport_socket_matches,
            ),
            istio_config: istio_config(cluster.metadata.as_ref()),
            endpoints,
            name: cluster.name,
        });
        Ok(())
    }

    fn add_listener(
        &mut self,
        listener: raw::Listener,
        state: ResourceState,
    ) -> Result<(), ConfigDumpError> {
        let address = listener.address.as_ref().and_then(describe_address);
        let stat_name = match &listener.stat_prefix {
            Some(prefix) if !prefix.is_empty() => prefix.clone(),
            _ => listener
                .address
                .as_ref()
                .and_then(|address| address.socket_address.as_ref())
                .map(|socket| {
                    format!(
                        "{}_{}",
                        socket.address.replace(':', "_"),
                        socket.port_value.unwrap_or(0)
                    )
                })
                .unwrap_or_else(|| listener.name.clone()),
        };
        let mut filter_chains = Vec::new();
        for chain in listener
            .filter_chains
            .into_iter()
            .chain(listener.default_filter_chain)
        {
            filter_chains.push(self.add_filter_chain(chain, &listener.name)?);
        }
        self.config.listeners.push(ListenerConfig {
            name: listener.name,
            address,
            stat_name,
            state,
            per_connection_buffer_limit_bytes: count_or(
                listener.per_connection_buffer_limit_bytes,
                defaults::LISTENER_PER_CONNECTION_BUFFER_LIMIT_BYTES,
            ),
            filter_chains,
        });
        Ok(())
    }

    fn add_filter_chain(
        &mut self,
        chain: raw::FilterChain,
        listener: &str,
    ) -> Result<FilterChainConfig, ConfigDumpError> {
        let tls = chain
            .transport_socket
            .as_ref()
            .filter(|socket| is_tls_socket(socket))
            .map(|socket| DownstreamTls {
                require_client_certificate: socket
                    .typed_config
                    .as_ref()
                    .and_then(|config| config.require_client_certificate)
                    .unwrap_or(false),
            });
        let mut config = FilterChainConfig {
            destination_port: chain
                .filter_chain_match
                .as_ref()
                .and_then(|chain_match| chain_match.destination_port),
            matches: chain
                .filter_chain_match
                .as_ref()
                .and_then(describe_chain_match),
            name: chain.name,
            tls,
            hcm: None,
            tcp_proxy_cluster: None,
        };
        for filter in chain.filters {
            let Some(typed) = filter.typed_config else {
                continue;
            };
            let type_url = typed.type_url.as_deref().unwrap_or_default();
            if filter.name == HCM_FILTER || type_url.ends_with(".HttpConnectionManager") {
                config.hcm = Some(self.add_hcm(typed, listener)?);
            } else if filter.name == TCP_PROXY_FILTER || type_url.ends_with(".TcpProxy") {
                config.tcp_proxy_cluster = typed.cluster;
            }
        }
        Ok(config)
    }

    fn add_hcm(
        &mut self,
        hcm: raw::NetworkFilterConfig,
        listener: &str,
    ) -> Result<HcmConfig, ConfigDumpError> {
        let stat_prefix = hcm.stat_prefix.unwrap_or_default();
        let context = format!("listener {listener:?} HCM {stat_prefix:?}");
        let routes = if let Some(route_config) = hcm.route_config {
            let name = route_config.name.clone();
            let source = RouteSource::Inline {
                listener: listener.to_string(),
                stat_prefix: stat_prefix.clone(),
            };
            let built = build_route_config(route_config, source)?;
            if !self.config.route_configs.contains(&built) {
                self.config.route_configs.push(built);
            }
            HcmRoutes::Inline(name)
        } else if let Some(name) = hcm.rds.and_then(|rds| rds.route_config_name) {
            HcmRoutes::Rds(name)
        } else if hcm.scoped_routes.is_some() {
            HcmRoutes::Scoped
        } else {
            HcmRoutes::None
        };
        let stream_idle_timeout = duration_or(
            hcm.stream_idle_timeout.as_deref(),
            defaults::HCM_STREAM_IDLE_TIMEOUT,
            &context,
            "stream_idle_timeout",
        )?;
        let request_timeout = duration_or(
            hcm.request_timeout.as_deref(),
            defaults::HCM_REQUEST_TIMEOUT,
            &context,
            "request_timeout",
        )?;
        let request_headers_timeout = duration_or(
            hcm.request_headers_timeout.as_deref(),
            defaults::HCM_REQUEST_HEADERS_TIMEOUT,
            &context,
            "request_headers_timeout",
        )?;
        let common = hcm.common_http_protocol_options.as_ref();
        let durations = common_http_durations(common, &context)?;
        Ok(HcmConfig {
            routes,
            stream_idle_timeout,
            request_timeout,
            request_headers_timeout,
            idle_timeout: durations.idle_timeout,
            max_connection_duration: durations.max_connection_duration,
            max_stream_duration: durations.max_stream_duration,
            max_requests_per_connection: common
                .and_then(|common| common.max_requests_per_connection),
            delayed_close_timeout: duration_or(
                hcm.delayed_close_timeout.as_deref(),
                defaults::HCM_DELAYED_CLOSE_TIMEOUT,
                &context,
                "delayed_close_timeout",
            )?,
            http_filters: hcm.http_filters.into_iter().map(http_filter_info).collect(),
            stat_prefix,
        })
    }

    fn add_route_config(
        &mut self,
        route_config: raw::RouteConfiguration,
        state: ResourceState,
    ) -> Result<(), ConfigDumpError> {
        let built = build_route_config(route_config, RouteSource::Rds { state })?;
        self.config.route_configs.push(built);
        Ok(())
    }
}

fn build_route_config(
    route_config: raw::RouteConfiguration,
    source: RouteSource,
) -> Result<RouteConfig, ConfigDumpError> {
    let mut virtual_hosts = Vec::with_capacity(route_config.virtual_hosts.len());
    for virtual_host in route_config.virtual_hosts {
        let context_prefix = format!(
            "route config {:?} virtual host {:?}",
            route_config.name, virtual_host.name
        );
        let host_overrides = filter_overrides(&virtual_host.typed_per_filter_config);
        let mut routes = Vec::with_capacity(virtual_host.routes.len());
        for (index, route) in virtual_host.routes.into_iter().enumerate() {
            let context = format!(
                "{context_prefix} route {}",
                route.name.clone().unwrap_or_else(|| format!("#{index}"))
            );
            routes.push(build_route(
                route,
                virtual_host.retry_policy.as_ref(),
                &host_overrides,
                &context,
            )?);
        }
        virtual_hosts.push(VirtualHostConfig {
            name: virtual_host.name,
            domains: virtual_host.domains,
            routes,
        });
    }
    Ok(RouteConfig {
        name: route_config.name,
        source,
        virtual_hosts,
    })
}

fn build_route(
    route: raw::Route,
    host_retry: Option<&raw::RetryPolicy>,
    host_overrides: &[FilterOverride],
    context: &str,
) -> Result<RouteEntry, ConfigDumpError> {
    let action = route.route.unwrap_or_default();
    let target = if let Some(cluster) = &action.cluster {
        RouteTarget::Cluster {
            name: cluster.clone(),
        }
    } else if let Some(weighted) = &action.weighted_clusters {
        RouteTarget::Weighted {
            clusters: weighted
                .clusters
                .iter()
                .map(|cluster| WeightedTarget {
                    name: cluster.name.clone(),
                    weight: cluster.weight,
                })
                .collect(),
        }
    } else if let Some(header) = &action.cluster_header {
        RouteTarget::ClusterHeader {
            header: header.clone(),
        }
    } else if let Some(direct) = &route.direct_response {
        RouteTarget::DirectResponse {
            status: direct.status,
        }
    } else if route.redirect.is_some() {
        RouteTarget::Redirect
    } else {
        RouteTarget::None
    };
    let retry = match (&action.retry_policy, host_retry) {
        (Some(policy), _) => Some(build_retry(policy, false, context)?),
        (None, Some(policy)) => Some(build_retry(policy, true, context)?),
        (None, None) => None,
    };
    let mut overrides = host_overrides.to_vec();
    for route_override in filter_overrides(&route.typed_per_filter_config) {
        overrides.retain(|existing| existing.filter != route_override.filter);
        overrides.push(route_override);
    }
    Ok(RouteEntry {
        matcher: describe_route_match(route.route_match.as_ref()),
        target,
        timeout: duration_or(
            action.timeout.as_deref(),
            defaults::ROUTE_TIMEOUT,
            context,
            "timeout",
        )?,
        idle_timeout: optional_duration(action.idle_timeout.as_deref(), context, "idle_timeout")?,
        max_stream_duration: optional_duration(
            action
                .max_stream_duration
                .as_ref()
                .and_then(|max| max.max_stream_duration.as_deref()),
            context,
            "max_stream_duration.max_stream_duration",
        )?,
        retry,
        istio_config: istio_config(route.metadata.as_ref()),
        filter_overrides: overrides,
        name: route.name,
    })
}

fn build_retry(
    policy: &raw::RetryPolicy,
    from_virtual_host: bool,
    context: &str,
) -> Result<RetrySettings, ConfigDumpError> {
    Ok(RetrySettings {
        retry_on: policy.retry_on.clone().unwrap_or_default(),
        num_retries: count_or(policy.num_retries, defaults::RETRY_NUM_RETRIES),
        per_try_timeout: optional_duration(
            policy.per_try_timeout.as_deref(),
            context,
            "retry_policy.per_try_timeout",
        )?,
        per_try_idle_timeout: optional_duration(
            policy.per_try_idle_timeout.as_deref(),
            context,
            "retry_policy.per_try_idle_timeout",
        )?,
        from_virtual_host,
    })
}

fn filter_overrides(
    configs: &std::collections::BTreeMap<String, raw::PerFilterConfig>,
) -> Vec<FilterOverride> {
    configs
        .iter()
        .map(|(filter, config)| FilterOverride {
            filter: filter.clone(),
            disabled: config.disabled.unwrap_or(false),
            max_request_bytes: config
                .buffer
                .as_ref()
                .and_then(|buffer| buffer.max_request_bytes),
        })
        .collect()
}

fn http_filter_info(filter: raw::HttpFilter) -> HttpFilterInfo {
    let typed = filter.typed_config.unwrap_or_default();
    let type_url = typed
        .typed_struct_type
        .clone()
        .or_else(|| typed.type_url.clone());
    let kind = type_url.as_deref().unwrap_or_default();
    let name = filter.name.as_str();
    let is_ext_proc = kind.ends_with("ext_proc.v3.ExternalProcessor")
        || name.starts_with("envoy.filters.http.ext_proc");
    let ext_proc = is_ext_proc.then(|| ExtProcSettings {
        cluster: typed
            .grpc_service
            .as_ref()
            .and_then(|service| service.envoy_grpc.as_ref())
            .and_then(|grpc| grpc.cluster_name.clone()),
        failure_mode_allow: typed.failure_mode_allow.unwrap_or(false),
        message_timeout: typed.message_timeout.clone(),
        request_body_mode: typed
            .processing_mode
            .as_ref()
            .and_then(|mode| mode.request_body_mode.clone()),
        response_body_mode: typed
            .processing_mode
            .as_ref()
            .and_then(|mode| mode.response_body_mode.clone()),
    });
    let buffering = if kind.ends_with("filters.http.buffer.v3.Buffer")
        || name == "envoy.filters.http.buffer"
    {
        Some(Buffering::Buffer {
            max_request_bytes: typed.max_request_bytes,
        })
    } else if kind.ends_with("ext_authz.v3.ExtAuthz") || name == "envoy.filters.http.ext_authz" {
        typed
            .with_request_body
            .as_ref()
            .map(|body| Buffering::ExtAuthzWithBody {
                max_request_bytes: body.max_request_bytes,
                allow_partial_message: body.allow_partial_message.unwrap_or(false),
            })
    } else if is_ext_proc {
        typed.processing_mode.as_ref().and_then(|mode| {
            let buffered = |body_mode: &Option<String>| {
                body_mode
                    .as_deref()
                    .is_some_and(|body_mode| body_mode.starts_with("BUFFERED"))
            };
            (buffered(&mode.request_body_mode) || buffered(&mode.response_body_mode)).then(|| {
                Buffering::ExtProcBuffered {
                    request_body_mode: mode.request_body_mode.clone(),
                    response_body_mode: mode.response_body_mode.clone(),
                }
            })
        })
    } else if kind.ends_with("lua.v3.Lua") || name == "envoy.filters.http.lua" {
        (!lua_leaves_bodies_alone(&typed)).then_some(Buffering::Lua)
    } else if kind.ends_with("wasm.v3.Wasm") || name == "envoy.filters.http.wasm" {
        (!istio_null_vm_plugin(&typed)).then_some(Buffering::Wasm)
    } else {
        None
    };
    HttpFilterInfo {
        name: filter.name,
        type_url,
        disabled: filter.disabled.unwrap_or(false),
        buffering,
        ext_proc,
    }
}

/// Istio's own plugins compiled into its proxy, run on the null VM: metadata exchange and
/// stats (istio/istio `pilot/pkg/model/wasm.go` `ConstructVMConfig`, used for
/// `envoy.wasm.metadata_exchange` until Istio 1.21). They read headers and metadata, never
/// bodies.
const ISTIO_NULL_VM_PLUGINS: [&str; 2] = ["envoy.wasm.metadata_exchange", "envoy.wasm.stats"];

fn istio_null_vm_plugin(typed: &raw::HttpFilterConfig) -> bool {
    let Some(vm) = typed
        .config
        .as_ref()
        .and_then(|config| config.vm_config.as_ref())
    else {
        return false;
    };
    let code = vm
        .code
        .as_ref()
        .and_then(|code| code.local.as_ref())
        .and_then(|local| local.inline_string.as_deref())
        .unwrap_or_default();
    vm.runtime.as_deref() == Some("envoy.wasm.runtime.null")
        && ISTIO_NULL_VM_PLUGINS.contains(&code)
}

/// A Lua script written inline that never asks for a body (`body()` buffers the whole of it;
/// `bodyChunks()` streams it): it holds nothing. A script the dump does not show (a file, or
/// per-route code) may.
fn lua_leaves_bodies_alone(typed: &raw::HttpFilterConfig) -> bool {
    let code = typed.inline_code.as_deref().or_else(|| {
        typed
            .default_source_code
            .as_ref()
            .filter(|source| source.filename.is_none())
            .and_then(|source| source.inline_string.as_deref())
    });
    code.is_some_and(|code| !code.contains("body("))
}

fn upstream_tls(
    socket: Option<&raw::TransportSocket>,
    matches: &[raw::TransportSocketMatch],
) -> UpstreamTls {
    if let Some(istio) = matches.iter().find(|candidate| {
        candidate.name == ISTIO_TLS_MATCH
            && candidate
                .transport_socket
                .as_ref()
                .is_some_and(is_tls_socket)
    }) {
        return UpstreamTls::IstioMutual {
            sni: istio.transport_socket.as_ref().and_then(socket_sni),
        };
    }
    match socket {
        Some(socket) if is_tls_socket(socket) => UpstreamTls::Tls {
            sni: socket_sni(socket),
        },
        _ => UpstreamTls::None,
    }
}

/// Istio's `hbone` match, or (a waypoint's clusters) an internal upstream as the only socket.
fn sends_hbone(
    socket: Option<&raw::TransportSocket>,
    matches: &[raw::TransportSocketMatch],
) -> bool {
    matches.iter().any(|candidate| {
        candidate.name == HBONE_MATCH
            && candidate
                .transport_socket
                .as_ref()
                .is_some_and(is_internal_upstream)
    }) || socket.is_some_and(is_internal_upstream)
}

fn is_internal_upstream(socket: &raw::TransportSocket) -> bool {
    socket.name == "internal_upstream"
        || socket.name == "envoy.transport_sockets.internal_upstream"
        || socket
            .typed_config
            .as_ref()
            .and_then(|config| config.type_url.as_deref())
            .is_some_and(|url| url.ends_with("InternalUpstreamTransport"))
}

fn is_tls_socket(socket: &raw::TransportSocket) -> bool {
    let type_url = socket
        .typed_config
        .as_ref()
        .and_then(|config| config.type_url.as_deref())
        .unwrap_or_default();
    socket.name == "envoy.transport_sockets.tls"
        || socket.name == "tls"
        || type_url.ends_with("TlsContext")
}

fn socket_sni(socket: &raw::TransportSocket) -> Option<String> {
    socket
        .typed_config
        .as_ref()
        .and_then(|config| config.sni.clone())
}

fn upstream_protocol(options: &raw::UpstreamProtocolOptions) -> Option<String> {
    if let Some(explicit) = &options.explicit_http_config {
        if explicit.http2_protocol_options.is_some() {
            return Some("http2".to_string());
        }
        if explicit.http3_protocol_options.is_some() {
            return Some("http3".to_string());
        }
        if explicit.http_protocol_options.is_some() {
            return Some("http1".to_string());
        }
    }
    if options.use_downstream_protocol_config.is_some() {
        return Some("downstream".to_string());
    }
    options.auto_config.as_ref().map(|_| "auto".to_string())
}

fn istio_config(metadata: Option<&raw::Metadata>) -> Option<String> {
    metadata?
        .filter_metadata
        .as_ref()?
        .istio
        .as_ref()?
        .config
        .clone()
}

fn describe_route_match(route_match: Option<&raw::RouteMatch>) -> String {
    let Some(route_match) = route_match else {
        return String::new();
    };
    if let Some(prefix) = &route_match.prefix {
        format!("prefix {prefix}")
    } else if let Some(path) = &route_match.path {
        format!("path {path}")
    } else if let Some(regex) = &route_match.safe_regex {
        format!("regex {}", regex.regex)
    } else if let Some(prefix) = &route_match.path_separated_prefix {
        format!("path_separated_prefix {prefix}")
    } else if route_match.connect_matcher.is_some() {
        "connect".to_string()
    } else {
        String::new()
    }
}

fn describe_chain_match(chain_match: &raw::FilterChainMatch) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(port) = chain_match.destination_port {
        parts.push(format!("destination_port {port}"));
    }
    if let Some(protocol) = &chain_match.transport_protocol {
        parts.push(format!("transport {protocol}"));
    }
    if !chain_match.application_protocols.is_empty() {
        parts.push(format!(
            "alpn {}",
            chain_match.application_protocols.join(",")
        ));
    }
    if !chain_match.server_names.is_empty() {
        parts.push(format!("sni {}", chain_match.server_names.join(",")));
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

fn describe_address(address: &raw::Address) -> Option<String> {
    if let Some(socket) = &address.socket_address {
        return Some(match socket.port_value {
            Some(port) if socket.address.contains(':') => format!("[{}]:{port}", socket.address),
            Some(port) => format!("{}:{port}", socket.address),
            None => socket.address.clone(),
        });
    }
    if let Some(internal) = &address.envoy_internal_address {
        return internal
            .server_listener_name
            .as_ref()
            .map(|name| format!("internal:{name}"));
    }
    address
        .pipe
        .as_ref()
        .map(|pipe| format!("pipe:{}", pipe.path))
}

fn describe_string_matcher(matcher: &raw::StringMatcher) -> Option<String> {
    if let Some(prefix) = &matcher.prefix {
        Some(format!("prefix:{prefix}"))
    } else if let Some(suffix) = &matcher.suffix {
        Some(format!("suffix:{suffix}"))
    } else if let Some(exact) = &matcher.exact {
        Some(format!("exact:{exact}"))
    } else if let Some(contains) = &matcher.contains {
        Some(format!("contains:{contains}"))
    } else {
        matcher
            .safe_regex
            .as_ref()
            .map(|regex| format!("regex:{}", regex.regex))
    }
}

fn endpoint_addresses(assignment: &raw::ClusterLoadAssignment) -> Vec<String> {
    assignment
        .endpoints
        .iter()
        .flat_map(|locality| &locality.lb_endpoints)
        .filter_map(|endpoint| endpoint.endpoint.as_ref()?.address.as_ref())
        .filter_map(describe_address)
        .collect()
}

/// The durations of a `config.core.v3.HttpProtocolOptions` (a cluster's or an HCM's).
struct CommonHttpDurations {
    idle_timeout: Setting<EnvoyDuration>,
    max_connection_duration: Option<EnvoyDuration>,
    max_stream_duration: Option<EnvoyDuration>,
}

fn common_http_durations(
    common: Option<&raw::HttpProtocolOptions>,
    context: &str,
) -> Result<CommonHttpDurations, ConfigDumpError> {
    Ok(CommonHttpDurations {
        idle_timeout: duration_or(
            common.and_then(|common| common.idle_timeout.as_deref()),
            defaults::HTTP_IDLE_TIMEOUT,
            context,
            "common_http_protocol_options.idle_timeout",
        )?,
        max_connection_duration: optional_duration(
            common.and_then(|common| common.max_connection_duration.as_deref()),
            context,
            "common_http_protocol_options.max_connection_duration",
        )?,
        max_stream_duration: optional_duration(
            common.and_then(|common| common.max_stream_duration.as_deref()),
            context,
            "common_http_protocol_options.max_stream_duration",
        )?,
    })
}

fn duration_or(
    text: Option<&str>,
    default: Duration,
    context: &str,
    field: &str,
) -> Result<Setting<EnvoyDuration>, ConfigDumpError> {
    match optional_duration(text, context, field)? {
        Some(duration) => Ok(Setting::configured(duration)),
        None => Ok(Setting::envoy_default(EnvoyDuration::from_duration(
            default,
        ))),
    }
}

fn optional_duration(
    text: Option<&str>,
    context: &str,
    field: &str,
) -> Result<Option<EnvoyDuration>, ConfigDumpError> {
    text.map(|text| {
        EnvoyDuration::parse(text).map_err(|_| ConfigDumpError::Field {
            location: format!("{context} {field}"),
            value: text.to_string(),
        })
    })
    .transpose()
}

fn count_or(value: Option<u64>, default: u64) -> Setting<u64> {
    match value {
        Some(value) => Setting::configured(value),
        None => Setting::envoy_default(default),
    }
}
