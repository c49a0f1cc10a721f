//! A compact structural validator for the Istio kinds that fixes emit: each field with its
//! type, unknown fields rejected, enums and durations checked.
//!
//! Transcribed by hand from istio/api `kubernetes/customresourcedefinitions.gen.yaml` (the CRDs'
//! `openAPIV3Schema`, the `v1` versions of networking.istio.io and security.istio.io, and
//! `v1alpha3` of EnvoyFilter), read for: DestinationRule `spec` (host, exportTo, subsets,
//! workloadSelector.matchLabels, trafficPolicy.{connectionPool.{tcp,http}, loadBalancer,
//! outlierDetection, portLevelSettings, proxyProtocol, retryBudget, tls, tunnel}); VirtualService
//! `spec` (hosts, gateways, exportTo, http[].{match, route, timeout, retries, fault, mirror,
//! mirrors, mirrorPercentage, rewrite, redirect, directResponse, delegate, corsPolicy, headers,
//! name}, tcp[], tls[]); EnvoyFilter `spec` (workloadSelector.labels, targetRefs, priority,
//! configPatches[].{applyTo, match.{context, proxy, listener, routeConfiguration, cluster},
//! patch.{operation, value, filterClass}}); Sidecar `spec` (workloadSelector, ingress[],
//! egress[], inboundConnectionPool, outboundTrafficPolicy); PeerAuthentication `spec` (selector,
//! mtls.mode, portLevelMtls). Durations carry the CRDs' CEL rule `duration(self) >= 1ms`.
//! Not transcribed: CEL cross-field rules (e.g. "only one of targetRefs or workloadSelector"),
//! string patterns and lengths, and `status`.

use serde_yaml::Value;

/// The shape a value must have.
#[derive(Debug, Clone)]
pub enum Schema {
    Str,
    Bool,
    /// `type: number` (doubles; integers are numbers too).
    Num,
    /// `format: int32`.
    Int32,
    /// `minimum: 0, maximum: 4294967295`.
    UInt32,
    /// A Go duration string (`300s`, `1h30m`, `100ms`) of at least 1ms.
    Duration,
    Enum(&'static [&'static str]),
    Array(Box<Schema>),
    /// An object with arbitrary keys (`additionalProperties`).
    Map(Box<Schema>),
    /// An object with these fields only; `required` must be present.
    Object {
        fields: Vec<(&'static str, Schema)>,
        required: Vec<&'static str>,
    },
    /// `x-kubernetes-preserve-unknown-fields`: any object.
    AnyObject,
}

fn obj(fields: Vec<(&'static str, Schema)>) -> Schema {
    Schema::Object {
        fields,
        required: Vec::new(),
    }
}

fn obj_req(fields: Vec<(&'static str, Schema)>, required: Vec<&'static str>) -> Schema {
    Schema::Object { fields, required }
}

fn array(item: Schema) -> Schema {
    Schema::Array(Box::new(item))
}

fn map(value: Schema) -> Schema {
    Schema::Map(Box::new(value))
}

fn strings() -> Schema {
    array(Schema::Str)
}

/// Validates `value` against `schema`; every error names its path.
pub fn validate(value: &Value, schema: &Schema, path: &str, errors: &mut Vec<String>) {
    match schema {
        Schema::Str => {
            if !value.is_string() {
                errors.push(format!("{path}: expected a string, got {}", kind(value)));
            }
        }
        Schema::Bool => {
            if !value.is_bool() {
                errors.push(format!("{path}: expected a boolean, got {}", kind(value)));
            }
        }
        Schema::Num => {
            if !value.is_number() {
                errors.push(format!("{path}: expected a number, got {}", kind(value)));
            }
        }
        Schema::Int32 => match value.as_i64() {
            Some(number) if i32::try_from(number).is_ok() => {}
            _ => errors.push(format!("{path}: expected an int32, got {}", show(value))),
        },
        Schema::UInt32 => match value.as_u64() {
            Some(number) if u32::try_from(number).is_ok() => {}
            _ => errors.push(format!("{path}: expected a uint32, got {}", show(value))),
        },
        Schema::Duration => match value.as_str() {
            Some(text) => match duration_nanos(text) {
                Some(nanos) if nanos >= 1_000_000 => {}
                Some(_) => errors.push(format!("{path}: duration {text} is below 1ms")),
                None => errors.push(format!("{path}: {text:?} is not a duration")),
            },
            None => errors.push(format!(
                "{path}: expected a duration string, got {}",
                kind(value)
            )),
        },
        Schema::Enum(allowed) => match value.as_str() {
            Some(text) if allowed.contains(&text) => {}
            _ => errors.push(format!("{path}: {} is not one of {allowed:?}", show(value))),
        },
        Schema::Array(item) => match value.as_sequence() {
            Some(items) => {
                for (index, element) in items.iter().enumerate() {
                    validate(element, item, &format!("{path}[{index}]"), errors);
                }
            }
            None => errors.push(format!("{path}: expected a list, got {}", kind(value))),
        },
        Schema::Map(entry) => match value.as_mapping() {
            Some(mapping) => {
                for (key, element) in mapping {
                    let Some(key) = key.as_str() else {
                        errors.push(format!("{path}: key {} is not a string", show(key)));
                        continue;
                    };
                    validate(element, entry, &format!("{path}/{key}"), errors);
                }
            }
            None => errors.push(format!("{path}: expected an object, got {}", kind(value))),
        },
        Schema::AnyObject => {
            if !value.is_mapping() {
                errors.push(format!("{path}: expected an object, got {}", kind(value)));
            }
        }
        Schema::Object { fields, required } => {
            let Some(mapping) = value.as_mapping() else {
                errors.push(format!("{path}: expected an object, got {}", kind(value)));
                return;
            };
            for (key, element) in mapping {
                let Some(key) = key.as_str() else {
                    errors.push(format!("{path}: key {} is not a string", show(key)));
                    continue;
                };
                match fields.iter().find(|(name, _)| *name == key) {
                    Some((_, schema)) => {
                        validate(element, schema, &format!("{path}/{key}"), errors)
                    }
                    None => errors.push(format!("{path}: unknown field {key:?}")),
                }
            }
            for name in required {
                if !mapping.contains_key(*name) {
                    errors.push(format!("{path}: required field {name:?} is missing"));
                }
            }
        }
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "an object",
        Value::Tagged(_) => "a tagged value",
    }
}

fn show(value: &Value) -> String {
    serde_yaml::to_string(value)
        .map(|text| text.trim().to_string())
        .unwrap_or_else(|_| kind(value).to_string())
}

/// Nanoseconds of a Go duration (`1h2m3.5s`, `300ms`, `0`), or `None` when malformed.
pub fn duration_nanos(text: &str) -> Option<u128> {
    if text == "0" {
        return Some(0);
    }
    let mut rest = text;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * nanos_per;
    }
    Some(total as u128)
}

// ---- shared pieces -------------------------------------------------------------------------

fn port_selector() -> Schema {
    obj(vec![("number", Schema::UInt32)])
}

fn destination() -> Schema {
    obj_req(
        vec![
            ("host", Schema::Str),
            ("port", port_selector()),
            ("subset", Schema::Str),
        ],
        vec!["host"],
    )
}

fn string_match() -> Schema {
    obj(vec![
        ("exact", Schema::Str),
        ("prefix", Schema::Str),
        ("regex", Schema::Str),
    ])
}

fn percent() -> Schema {
    obj(vec![("value", Schema::Num)])
}

fn header_operations() -> Schema {
    obj(vec![
        ("add", map(Schema::Str)),
        ("remove", strings()),
        ("set", map(Schema::Str)),
    ])
}

fn headers() -> Schema {
    obj(vec![
        ("request", header_operations()),
        ("response", header_operations()),
    ])
}

fn match_labels() -> Schema {
    obj(vec![("matchLabels", map(Schema::Str))])
}

fn labels_selector() -> Schema {
    obj(vec![("labels", map(Schema::Str))])
}

fn target_refs() -> Schema {
    array(obj_req(
        vec![
            ("group", Schema::Str),
            ("kind", Schema::Str),
            ("name", Schema::Str),
            ("namespace", Schema::Str),
        ],
        vec!["kind", "name"],
    ))
}

// ---- DestinationRule -----------------------------------------------------------------------

/// `ConnectionPoolSettings` (DestinationRule, and the Sidecar's inbound pools).
pub fn connection_pool() -> Schema {
    obj(vec![
        (
            "http",
            obj(vec![
                (
                    "h2UpgradePolicy",
                    Schema::Enum(&["DEFAULT", "DO_NOT_UPGRADE", "UPGRADE"]),
                ),
                ("http1MaxPendingRequests", Schema::Int32),
                ("http2MaxRequests", Schema::Int32),
                ("idleTimeout", Schema::Duration),
                ("maxConcurrentStreams", Schema::Int32),
                ("maxRequestsPerConnection", Schema::Int32),
                ("maxRetries", Schema::Int32),
                ("useClientProtocol", Schema::Bool),
            ]),
        ),
        (
            "tcp",
            obj(vec![
                ("connectTimeout", Schema::Duration),
                ("idleTimeout", Schema::Duration),
                ("maxConnectionDuration", Schema::Duration),
                ("maxConnections", Schema::Int32),
                (
                    "tcpKeepalive",
                    obj(vec![
                        ("interval", Schema::Duration),
                        ("probes", Schema::UInt32),
                        ("time", Schema::Duration),
                    ]),
                ),
            ]),
        ),
    ])
}

fn outlier_detection() -> Schema {
    obj(vec![
        ("baseEjectionTime", Schema::Duration),
        ("consecutive5xxErrors", Schema::UInt32),
        ("consecutiveErrors", Schema::Int32),
        ("consecutiveGatewayErrors", Schema::UInt32),
        ("consecutiveLocalOriginFailures", Schema::UInt32),
        ("interval", Schema::Duration),
        ("maxEjectionPercent", Schema::Int32),
        ("minHealthPercent", Schema::Int32),
        ("splitExternalLocalOriginErrors", Schema::Bool),
    ])
}

fn load_balancer() -> Schema {
    obj(vec![
        (
            "consistentHash",
            obj(vec![
                (
                    "httpCookie",
                    obj_req(
                        vec![
                            (
                                "attributes",
                                array(obj_req(
                                    vec![("name", Schema::Str), ("value", Schema::Str)],
                                    vec!["name"],
                                )),
                            ),
                            ("name", Schema::Str),
                            ("path", Schema::Str),
                            ("ttl", Schema::Str),
                        ],
                        vec!["name"],
                    ),
                ),
                ("httpHeaderName", Schema::Str),
                ("httpQueryParameterName", Schema::Str),
                ("maglev", obj(vec![("tableSize", Schema::UInt32)])),
                ("minimumRingSize", Schema::UInt32),
                ("ringHash", obj(vec![("minimumRingSize", Schema::UInt32)])),
                ("useSourceIp", Schema::Bool),
            ]),
        ),
        (
            "localityLbSetting",
            obj(vec![
                (
                    "distribute",
                    array(obj(vec![
                        ("from", Schema::Str),
                        ("to", map(Schema::UInt32)),
                    ])),
                ),
                ("enabled", Schema::Bool),
                (
                    "failover",
                    array(obj(vec![("from", Schema::Str), ("to", Schema::Str)])),
                ),
                ("failoverPriority", strings()),
            ]),
        ),
        (
            "simple",
            Schema::Enum(&[
                "UNSPECIFIED",
                "LEAST_CONN",
                "RANDOM",
                "PASSTHROUGH",
                "ROUND_ROBIN",
                "LEAST_REQUEST",
            ]),
        ),
        (
            "warmup",
            obj_req(
                vec![
                    ("aggression", Schema::Num),
                    ("duration", Schema::Duration),
                    ("minimumPercent", Schema::Num),
                ],
                vec!["duration"],
            ),
        ),
        ("warmupDurationSecs", Schema::Duration),
    ])
}

fn client_tls() -> Schema {
    obj(vec![
        ("caCertificates", Schema::Str),
        ("caCrl", Schema::Str),
        ("clientCertificate", Schema::Str),
        ("credentialName", Schema::Str),
        ("insecureSkipVerify", Schema::Bool),
        (
            "mode",
            Schema::Enum(&["DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL"]),
        ),
        ("privateKey", Schema::Str),
        ("sni", Schema::Str),
        ("subjectAltNames", strings()),
    ])
}

fn traffic_policy() -> Schema {
    obj(vec![
        ("connectionPool", connection_pool()),
        ("loadBalancer", load_balancer()),
        ("outlierDetection", outlier_detection()),
        (
            "portLevelSettings",
            array(obj(vec![
                ("connectionPool", connection_pool()),
                ("loadBalancer", load_balancer()),
                ("outlierDetection", outlier_detection()),
                ("port", port_selector()),
                ("tls", client_tls()),
            ])),
        ),
        (
            "proxyProtocol",
            obj(vec![("version", Schema::Enum(&["V1", "V2"]))]),
        ),
        (
            "retryBudget",
            obj(vec![
                ("minRetryConcurrency", Schema::UInt32),
                ("percent", Schema::Num),
            ]),
        ),
        ("tls", client_tls()),
        (
            "tunnel",
            obj_req(
                vec![
                    ("protocol", Schema::Str),
                    ("targetHost", Schema::Str),
                    ("targetPort", Schema::UInt32),
                ],
                vec!["targetHost", "targetPort"],
            ),
        ),
    ])
}

pub fn destination_rule_spec() -> Schema {
    obj_req(
        vec![
            ("exportTo", strings()),
            ("host", Schema::Str),
            (
                "subsets",
                array(obj_req(
                    vec![
                        ("labels", map(Schema::Str)),
                        ("name", Schema::Str),
                        ("trafficPolicy", traffic_policy()),
                    ],
                    vec!["name"],
                )),
            ),
            ("trafficPolicy", traffic_policy()),
            ("workloadSelector", match_labels()),
        ],
        vec!["host"],
    )
}

// ---- VirtualService ------------------------------------------------------------------------

fn http_match() -> Schema {
    obj(vec![
        ("authority", string_match()),
        ("gateways", strings()),
        ("headers", map(string_match())),
        ("ignoreUriCase", Schema::Bool),
        ("method", string_match()),
        ("name", Schema::Str),
        ("port", Schema::UInt32),
        ("queryParams", map(string_match())),
        ("scheme", string_match()),
        ("sourceLabels", map(Schema::Str)),
        ("sourceNamespace", Schema::Str),
        ("statPrefix", Schema::Str),
        ("uri", string_match()),
        ("withoutHeaders", map(string_match())),
    ])
}

fn http_route() -> Schema {
    obj(vec![
        (
            "corsPolicy",
            obj(vec![
                ("allowCredentials", Schema::Bool),
                ("allowHeaders", strings()),
                ("allowMethods", strings()),
                ("allowOrigin", strings()),
                ("allowOrigins", array(string_match())),
                ("exposeHeaders", strings()),
                ("maxAge", Schema::Duration),
                (
                    "unmatchedPreflights",
                    Schema::Enum(&["UNSPECIFIED", "FORWARD", "IGNORE"]),
                ),
            ]),
        ),
        (
            "delegate",
            obj(vec![("name", Schema::Str), ("namespace", Schema::Str)]),
        ),
        (
            "directResponse",
            obj_req(
                vec![
                    (
                        "body",
                        obj(vec![("bytes", Schema::Str), ("string", Schema::Str)]),
                    ),
                    ("status", Schema::UInt32),
                ],
                vec!["status"],
            ),
        ),
        (
            "fault",
            obj(vec![
                (
                    "abort",
                    obj(vec![
                        ("grpcStatus", Schema::Str),
                        ("http2Error", Schema::Str),
                        ("httpStatus", Schema::Int32),
                        ("percentage", percent()),
                    ]),
                ),
                (
                    "delay",
                    obj(vec![
                        ("exponentialDelay", Schema::Duration),
                        ("fixedDelay", Schema::Duration),
                        ("percent", Schema::Int32),
                        ("percentage", percent()),
                    ]),
                ),
            ]),
        ),
        ("headers", headers()),
        ("match", array(http_match())),
        ("mirror", destination()),
        ("mirror_percent", Schema::UInt32),
        ("mirrorPercent", Schema::UInt32),
        ("mirrorPercentage", percent()),
        (
            "mirrors",
            array(obj_req(
                vec![("destination", destination()), ("percentage", percent())],
                vec!["destination"],
            )),
        ),
        ("name", Schema::Str),
        (
            "redirect",
            obj(vec![
                ("authority", Schema::Str),
                (
                    "derivePort",
                    Schema::Enum(&["FROM_PROTOCOL_DEFAULT", "FROM_REQUEST_PORT"]),
                ),
                ("port", Schema::UInt32),
                ("redirectCode", Schema::UInt32),
                ("scheme", Schema::Str),
                ("uri", Schema::Str),
            ]),
        ),
        (
            "retries",
            obj(vec![
                ("attempts", Schema::Int32),
                ("backoff", Schema::Duration),
                ("perTryTimeout", Schema::Duration),
                ("retryIgnorePreviousHosts", Schema::Bool),
                ("retryOn", Schema::Str),
                ("retryRemoteLocalities", Schema::Bool),
            ]),
        ),
        (
            "rewrite",
            obj(vec![
                ("authority", Schema::Str),
                ("uri", Schema::Str),
                (
                    "uriRegexRewrite",
                    obj(vec![("match", Schema::Str), ("rewrite", Schema::Str)]),
                ),
            ]),
        ),
        (
            "route",
            array(obj_req(
                vec![
                    ("destination", destination()),
                    ("headers", headers()),
                    ("weight", Schema::Int32),
                ],
                vec!["destination"],
            )),
        ),
        ("timeout", Schema::Duration),
    ])
}

fn l4_route() -> Schema {
    array(obj_req(
        vec![("destination", destination()), ("weight", Schema::Int32)],
        vec!["destination"],
    ))
}

pub fn virtual_service_spec() -> Schema {
    obj(vec![
        ("exportTo", strings()),
        ("gateways", strings()),
        ("hosts", strings()),
        ("http", array(http_route())),
        (
            "tcp",
            array(obj(vec![
                (
                    "match",
                    array(obj(vec![
                        ("destinationSubnets", strings()),
                        ("gateways", strings()),
                        ("port", Schema::UInt32),
                        ("sourceLabels", map(Schema::Str)),
                        ("sourceNamespace", Schema::Str),
                        ("sourceSubnet", Schema::Str),
                    ])),
                ),
                ("route", l4_route()),
            ])),
        ),
        (
            "tls",
            array(obj_req(
                vec![
                    (
                        "match",
                        array(obj_req(
                            vec![
                                ("destinationSubnets", strings()),
                                ("gateways", strings()),
                                ("port", Schema::UInt32),
                                ("sniHosts", strings()),
                                ("sourceLabels", map(Schema::Str)),
                                ("sourceNamespace", Schema::Str),
                            ],
                            vec!["sniHosts"],
                        )),
                    ),
                    ("route", l4_route()),
                ],
                vec!["match"],
            )),
        ),
    ])
}

// ---- EnvoyFilter ---------------------------------------------------------------------------

fn filter_match() -> Schema {
    obj(vec![
        ("name", Schema::Str),
        ("subFilter", obj(vec![("name", Schema::Str)])),
    ])
}

pub fn envoy_filter_spec() -> Schema {
    let listener = obj(vec![
        (
            "filterChain",
            obj(vec![
                ("applicationProtocols", Schema::Str),
                ("destinationPort", Schema::UInt32),
                ("filter", filter_match()),
                ("name", Schema::Str),
                ("sni", Schema::Str),
                ("transportProtocol", Schema::Str),
            ]),
        ),
        ("listenerFilter", Schema::Str),
        ("name", Schema::Str),
        ("portName", Schema::Str),
        ("portNumber", Schema::UInt32),
    ]);
    let route_configuration = obj(vec![
        ("gateway", Schema::Str),
        ("name", Schema::Str),
        ("portName", Schema::Str),
        ("portNumber", Schema::UInt32),
        (
            "vhost",
            obj(vec![
                ("domainName", Schema::Str),
                ("name", Schema::Str),
                (
                    "route",
                    obj(vec![
                        (
                            "action",
                            Schema::Enum(&["ANY", "ROUTE", "REDIRECT", "DIRECT_RESPONSE"]),
                        ),
                        ("name", Schema::Str),
                    ]),
                ),
            ]),
        ),
    ]);
    let cluster = obj(vec![
        ("name", Schema::Str),
        ("portNumber", Schema::UInt32),
        ("service", Schema::Str),
        ("subset", Schema::Str),
    ]);
    let waypoint = obj(vec![
        ("filter", filter_match()),
        ("portNumber", Schema::UInt32),
        ("route", obj(vec![("name", Schema::Str)])),
    ]);
    let config_patch = obj(vec![
        (
            "applyTo",
            Schema::Enum(&[
                "INVALID",
                "LISTENER",
                "FILTER_CHAIN",
                "NETWORK_FILTER",
                "HTTP_FILTER",
                "ROUTE_CONFIGURATION",
                "VIRTUAL_HOST",
                "HTTP_ROUTE",
                "CLUSTER",
                "EXTENSION_CONFIG",
                "BOOTSTRAP",
                "LISTENER_FILTER",
            ]),
        ),
        (
            "match",
            obj(vec![
                ("cluster", cluster),
                (
                    "context",
                    Schema::Enum(&[
                        "ANY",
                        "SIDECAR_INBOUND",
                        "SIDECAR_OUTBOUND",
                        "GATEWAY",
                        "WAYPOINT",
                    ]),
                ),
                ("listener", listener),
                (
                    "proxy",
                    obj(vec![
                        ("metadata", map(Schema::Str)),
                        ("proxyVersion", Schema::Str),
                    ]),
                ),
                ("routeConfiguration", route_configuration),
                ("waypoint", waypoint),
            ]),
        ),
        (
            "patch",
            obj(vec![
                (
                    "filterClass",
                    Schema::Enum(&["UNSPECIFIED", "AUTHN", "AUTHZ", "STATS"]),
                ),
                (
                    "operation",
                    Schema::Enum(&[
                        "INVALID",
                        "MERGE",
                        "ADD",
                        "REMOVE",
                        "INSERT_BEFORE",
                        "INSERT_AFTER",
                        "INSERT_FIRST",
                        "REPLACE",
                    ]),
                ),
                ("value", Schema::AnyObject),
            ]),
        ),
    ]);
    obj(vec![
        ("configPatches", array(config_patch)),
        ("priority", Schema::Int32),
        ("targetRefs", target_refs()),
        ("workloadSelector", labels_selector()),
    ])
}

// ---- Sidecar, Gateway ----------------------------------------------------------------------

fn server_tls() -> Schema {
    let protocol = Schema::Enum(&["TLS_AUTO", "TLSV1_0", "TLSV1_1", "TLSV1_2", "TLSV1_3"]);
    obj(vec![
        ("caCertCredentialName", Schema::Str),
        ("caCertificates", Schema::Str),
        ("caCrl", Schema::Str),
        ("cipherSuites", strings()),
        ("credentialName", Schema::Str),
        ("credentialNames", strings()),
        ("httpsRedirect", Schema::Bool),
        ("maxProtocolVersion", protocol.clone()),
        ("minProtocolVersion", protocol),
        (
            "mode",
            Schema::Enum(&[
                "PASSTHROUGH",
                "SIMPLE",
                "MUTUAL",
                "AUTO_PASSTHROUGH",
                "ISTIO_MUTUAL",
                "OPTIONAL_MUTUAL",
            ]),
        ),
        ("privateKey", Schema::Str),
        ("serverCertificate", Schema::Str),
        ("subjectAltNames", strings()),
        (
            "tlsCertificates",
            array(obj(vec![
                ("caCertificates", Schema::Str),
                ("privateKey", Schema::Str),
                ("serverCertificate", Schema::Str),
            ])),
        ),
        ("verifyCertificateHash", strings()),
        ("verifyCertificateSpki", strings()),
    ])
}

fn server_port() -> Schema {
    obj(vec![
        ("name", Schema::Str),
        ("number", Schema::UInt32),
        ("protocol", Schema::Str),
        ("targetPort", Schema::UInt32),
    ])
}

pub fn sidecar_spec() -> Schema {
    let capture = Schema::Enum(&["DEFAULT", "IPTABLES", "NONE"]);
    obj(vec![
        (
            "egress",
            array(obj_req(
                vec![
                    ("bind", Schema::Str),
                    ("captureMode", capture.clone()),
                    ("hosts", strings()),
                    ("port", server_port()),
                ],
                vec!["hosts"],
            )),
        ),
        ("inboundConnectionPool", connection_pool()),
        (
            "ingress",
            array(obj_req(
                vec![
                    ("bind", Schema::Str),
                    ("captureMode", capture),
                    ("connectionPool", connection_pool()),
                    ("defaultEndpoint", Schema::Str),
                    ("port", server_port()),
                    ("tls", server_tls()),
                ],
                vec!["port"],
            )),
        ),
        (
            "outboundTrafficPolicy",
            obj(vec![
                ("egressProxy", destination()),
                ("mode", Schema::Enum(&["REGISTRY_ONLY", "ALLOW_ANY"])),
            ]),
        ),
        ("workloadSelector", labels_selector()),
    ])
}

pub fn gateway_spec() -> Schema {
    obj(vec![
        ("selector", map(Schema::Str)),
        (
            "servers",
            array(obj_req(
                vec![
                    ("bind", Schema::Str),
                    ("defaultEndpoint", Schema::Str),
                    ("hosts", strings()),
                    ("name", Schema::Str),
                    ("port", server_port()),
                    ("tls", server_tls()),
                ],
                vec!["port", "hosts"],
            )),
        ),
    ])
}

// ---- PeerAuthentication --------------------------------------------------------------------

pub fn peer_authentication_spec() -> Schema {
    let mode = || {
        obj(vec![(
            "mode",
            Schema::Enum(&["UNSET", "DISABLE", "PERMISSIVE", "STRICT"]),
        )])
    };
    obj(vec![
        ("mtls", mode()),
        ("portLevelMtls", map(mode())),
        ("selector", match_labels()),
    ])
}

// ---- Gateway API and Inference Extension kinds a fix may emit ------------------------------
//
// Transcribed from kubernetes-sigs/gateway-api `config/crd/standard/gateway.networking.k8s.io_httproutes.yaml`
// (v1: parentRefs, hostnames, rules[].{name, matches, filters, backendRefs, timeouts, retry,
// sessionPersistence}) and kubernetes-sigs/gateway-api-inference-extension `api/v1/inferencepool_types.go`
// (selector.matchLabels, targetPorts[].number, appProtocol, endpointPickerRef.{group, kind, name,
// port.number, failureMode}); the v1alpha2 pool's `targetPortNumber` and `extensionRef` are
// accepted beside them. Gateway API durations may be `0s` (GEP-2257), so they are strings here.

fn parent_ref() -> Schema {
    obj_req(
        vec![
            ("group", Schema::Str),
            ("kind", Schema::Str),
            ("namespace", Schema::Str),
            ("name", Schema::Str),
            ("sectionName", Schema::Str),
            ("port", Schema::Int32),
        ],
        vec!["name"],
    )
}

fn backend_ref() -> Schema {
    obj_req(
        vec![
            ("group", Schema::Str),
            ("kind", Schema::Str),
            ("namespace", Schema::Str),
            ("name", Schema::Str),
            ("port", Schema::Int32),
            ("weight", Schema::Int32),
            ("filters", array(Schema::AnyObject)),
        ],
        vec!["name"],
    )
}

pub fn http_route_spec() -> Schema {
    obj(vec![
        ("parentRefs", array(parent_ref())),
        ("hostnames", strings()),
        (
            "rules",
            array(obj(vec![
                ("name", Schema::Str),
                ("matches", array(Schema::AnyObject)),
                ("filters", array(Schema::AnyObject)),
                ("backendRefs", array(backend_ref())),
                (
                    "timeouts",
                    obj(vec![
                        ("request", Schema::Str),
                        ("backendRequest", Schema::Str),
                    ]),
                ),
                (
                    "retry",
                    obj(vec![
                        ("attempts", Schema::Int32),
                        ("backoff", Schema::Str),
                        ("codes", array(Schema::Int32)),
                    ]),
                ),
                ("sessionPersistence", Schema::AnyObject),
            ])),
        ),
    ])
}

fn endpoint_picker_ref() -> Schema {
    obj_req(
        vec![
            ("group", Schema::Str),
            ("kind", Schema::Str),
            ("name", Schema::Str),
            (
                "port",
                obj_req(vec![("number", Schema::Int32)], vec!["number"]),
            ),
            ("portNumber", Schema::Int32),
            ("failureMode", Schema::Enum(&["FailOpen", "FailClose"])),
        ],
        vec!["name"],
    )
}

pub fn inference_pool_spec() -> Schema {
    obj(vec![
        ("selector", Schema::AnyObject),
        (
            "targetPorts",
            array(obj_req(vec![("number", Schema::Int32)], vec!["number"])),
        ),
        ("targetPortNumber", Schema::Int32),
        ("appProtocol", Schema::Str),
        ("endpointPickerRef", endpoint_picker_ref()),
        ("extensionRef", endpoint_picker_ref()),
    ])
}

// ---- whole documents -----------------------------------------------------------------------

/// The API versions each kind is served under, and its spec schema.
pub fn kind_schema(kind: &str) -> Option<(&'static [&'static str], Schema)> {
    const NETWORKING: &[&str] = &[
        "networking.istio.io/v1",
        "networking.istio.io/v1beta1",
        "networking.istio.io/v1alpha3",
    ];
    Some(match kind {
        "VirtualService" => (NETWORKING, virtual_service_spec()),
        "DestinationRule" => (NETWORKING, destination_rule_spec()),
        "Sidecar" => (NETWORKING, sidecar_spec()),
        "Gateway" => (NETWORKING, gateway_spec()),
        "EnvoyFilter" => (&["networking.istio.io/v1alpha3"], envoy_filter_spec()),
        "PeerAuthentication" => (
            &["security.istio.io/v1", "security.istio.io/v1beta1"],
            peer_authentication_spec(),
        ),
        "HTTPRoute" => (
            &[
                "gateway.networking.k8s.io/v1",
                "gateway.networking.k8s.io/v1beta1",
            ],
            http_route_spec(),
        ),
        "InferencePool" => (
            &[
                "inference.networking.k8s.io/v1",
                "inference.networking.x-k8s.io/v1alpha2",
            ],
            inference_pool_spec(),
        ),
        _ => return None,
    })
}

/// The metadata a fix may carry: identity, labels and annotations (never server-set fields).
fn fix_metadata() -> Schema {
    obj_req(
        vec![
            ("name", Schema::Str),
            ("namespace", Schema::Str),
            ("labels", map(Schema::Str)),
            ("annotations", map(Schema::Str)),
        ],
        vec!["name", "namespace"],
    )
}

/// Every error of one document of a `--fix` stream: a known Istio kind under a served API
/// version, `metadata.name` and `metadata.namespace`, and a spec of the kind's schema.
pub fn validate_document(document: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    let kind = document.get("kind").and_then(Value::as_str).unwrap_or("");
    let Some((versions, spec)) = kind_schema(kind) else {
        return vec![format!("kind {kind:?} is not an Istio kind a fix may emit")];
    };
    let api_version = document
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !versions.contains(&api_version) {
        errors.push(format!(
            "{kind}: apiVersion {api_version:?} is not one of {versions:?}"
        ));
    }
    let schema = obj_req(
        vec![
            ("apiVersion", Schema::Str),
            ("kind", Schema::Str),
            ("metadata", fix_metadata()),
            ("spec", spec),
        ],
        vec!["apiVersion", "kind", "metadata", "spec"],
    );
    validate(document, &schema, kind, &mut errors);
    errors
}
