//! What bounds the inference path, as facts: a deadline on the whole stream, a per-try deadline,
//! a timeout that counts silence, a cap on connections or requests, a buffer limit or a filter
//! that holds whole bodies. Each fact says its value, where it is set (object and field path, or
//! the Envoy config path), its basis (as written, as the proxy runs it, or a default and whose)
//! and what it applies to. One reader per API fills them (`checks::limits`); the judges and the
//! probe planner read the same facts, so no limit is worked out twice. A fact decides nothing:
//! whether it bites is the judges' business.

use super::ObjectRef;
use std::fmt;
use std::time::Duration;

/// The kind of bound, with what a probe needs to prove it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitKind {
    /// A deadline on the whole response: route `timeout`, VirtualService `http[].timeout`,
    /// HTTPRoute `timeouts.request`.
    RouteTimeout,
    /// A deadline on the whole stream set by `max_stream_duration` (route or HCM).
    MaxStreamDuration,
    /// A retry's per-try timeout (`per_try_timeout`, `retries.perTryTimeout`). Not a deadline on
    /// a stream: Envoy's router ignores it once the response has started (`UpstreamRequest::
    /// onPerTryTimeout`: "ignored upstream per try timeout due to already started downstream
    /// response"), so it bounds a stream only until its first bytes, and it cuts a non-streaming
    /// request, which the retry policy then sends again.
    PerTryTimeout,
    /// A timeout that only a pause trips: HCM `stream_idle_timeout`, route `idle_timeout`,
    /// retry `per_try_idle_timeout`.
    IdleTimeout,
    /// A deadline on receiving the whole request (HCM `request_timeout`).
    RequestTimeout,
    /// A connection's whole lifetime (`max_connection_duration`): drained, then closed.
    ConnectionLifetime,
    /// An idle connection's lifetime (`idle_timeout` of HTTP protocol options): it applies only
    /// while no request is active.
    ConnectionIdleTimeout,
    /// Concurrent requests a pool admits: `max_connections + max_pending_requests` capped by
    /// `max_requests` on an Envoy cluster; the same from a DestinationRule's `connectionPool`.
    ConcurrentRequests,
    /// A filter that holds whole responses, streams included (Lua `body()`, Wasm, ext_proc with
    /// a BUFFERED response mode), against its listener's buffer limit.
    HoldsResponses,
    /// A filter that holds whole request bodies and refuses (413) over its limit.
    HoldsRequests,
    /// A `per_connection_buffer_limit_bytes` on a listener or cluster.
    BufferLimit,
}

impl LimitKind {
    /// Whether the kind is a deadline on the whole stream, which a long enough stream proves.
    pub fn is_deadline(self) -> bool {
        matches!(self, LimitKind::RouteTimeout | LimitKind::MaxStreamDuration)
    }

    /// `route timeout`, `max_stream_duration`, `per-try timeout`: words for a deadline.
    pub fn label(self) -> &'static str {
        match self {
            LimitKind::RouteTimeout => "route timeout",
            LimitKind::MaxStreamDuration => "max_stream_duration",
            LimitKind::PerTryTimeout => "per-try timeout",
            LimitKind::IdleTimeout => "idle timeout",
            LimitKind::RequestTimeout => "request timeout",
            LimitKind::ConnectionLifetime => "max connection duration",
            LimitKind::ConnectionIdleTimeout => "connection idle timeout",
            LimitKind::ConcurrentRequests => "concurrent requests",
            LimitKind::HoldsResponses => "holds responses",
            LimitKind::HoldsRequests => "holds requests",
            LimitKind::BufferLimit => "buffer limit",
        }
    }
}

/// The value of a bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitValue {
    Time(Duration),
    Count(u64),
    Bytes(u64),
}

impl LimitValue {
    pub fn time(self) -> Option<Duration> {
        match self {
            LimitValue::Time(value) => Some(value),
            _ => None,
        }
    }

    pub fn count(self) -> Option<u64> {
        match self {
            LimitValue::Count(value) => Some(value),
            _ => None,
        }
    }

    pub fn bytes(self) -> Option<u64> {
        match self {
            LimitValue::Bytes(value) => Some(value),
            _ => None,
        }
    }
}

/// What a value rests on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitBasis {
    /// Configuration as written (a manifest, an API object).
    Written,
    /// What a proxy runs (its config_dump).
    Effective,
    /// Nothing set it: the default of `whose` (`Envoy`, `Istio`) applies.
    Defaulted { whose: &'static str },
}

/// What a bound applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppliesTo {
    /// A route (its name or index) of an object or an Envoy route config.
    Route(String),
    /// An Envoy cluster (`outbound|8000||vllm.ns.svc.cluster.local`).
    Cluster(String),
    /// A listener of an Envoy.
    Listener(String),
}

/// One bound on the inference path, where it is set, on what basis, and what it applies to.
#[derive(Debug, Clone, PartialEq)]
pub struct Limit {
    pub kind: LimitKind,
    pub value: LimitValue,
    /// The object that sets it: a manifest object or `Envoy <pod or URL>`.
    pub object: ObjectRef,
    /// Field path inside the object, or the config path in an Envoy's dump.
    pub path: String,
    /// The field as its API names it: `RouteAction.timeout`,
    /// `HttpConnectionManager.stream_idle_timeout`, `VirtualService http[].timeout`.
    pub field: &'static str,
    /// The value as evidence shows it (`15s (not in the dump: Envoy's default for …)`).
    pub value_text: String,
    pub basis: LimitBasis,
    pub applies_to: AppliesTo,
    /// Whether the route it bounds admits generation requests (`evidence::generation`); a limit
    /// on a whole listener or cluster always does.
    pub generation: bool,
    /// The object that wrote the setting, when the proxy's config names one (Istio's
    /// `istio.config` route metadata): a VirtualService, an HTTPRoute.
    pub configured_by: Option<ObjectRef>,
    /// The words a reader has for the setting itself, in a plan or a gap: `route timeout 2s`,
    /// `connectionPool`, `envoy.filters.http.lua buffers bodies`.
    pub setting: String,
}

impl Limit {
    /// The fact in one phrase: `route timeout 2s on Envoy http://…`, or for an object as
    /// written `VirtualService ns/name spec/http[0]/timeout 2s`.
    pub fn describe(&self) -> String {
        match self.basis {
            LimitBasis::Written => format!("{} {} {}", self.object, self.path, self.setting),
            _ => format!("{} on {}", self.setting, self.object),
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// Every limit fact of one target, with the questions the planner and the judges ask of them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    pub facts: Vec<Limit>,
}

impl Limits {
    pub fn of_kind(&self, kind: LimitKind) -> impl Iterator<Item = &Limit> {
        self.facts.iter().filter(move |limit| limit.kind == kind)
    }

    /// The shortest enabled deadline on a whole stream (zero is "disabled" and never counts).
    pub fn shortest_deadline(&self) -> Option<&Limit> {
        self.enabled_times(|kind| kind.is_deadline())
    }

    /// The shortest enabled timeout that counts silence.
    pub fn shortest_idle_timeout(&self) -> Option<&Limit> {
        self.enabled_times(|kind| kind == LimitKind::IdleTimeout)
    }

    /// The fewest concurrent requests a pool on the path admits.
    pub fn smallest_pool(&self) -> Option<&Limit> {
        self.of_kind(LimitKind::ConcurrentRequests)
            .filter(|limit| limit.value.count().is_some())
            .min_by_key(|limit| limit.value.count())
    }

    /// The first place on the path that holds a whole body of `kind`.
    pub fn first(&self, kind: LimitKind) -> Option<&Limit> {
        self.of_kind(kind).next()
    }

    /// On the routes that carry generations.
    fn enabled_times(&self, wanted: impl Fn(LimitKind) -> bool) -> Option<&Limit> {
        self.facts
            .iter()
            .filter(|limit| wanted(limit.kind) && limit.generation)
            .filter(|limit| limit.value.time().is_some_and(|value| !value.is_zero()))
            .min_by_key(|limit| limit.value.time())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deadline(kind: LimitKind, seconds: u64, name: &str) -> Limit {
        Limit {
            kind,
            value: LimitValue::Time(Duration::from_secs(seconds)),
            object: ObjectRef::new("Envoy", None, name),
            path: "routes[0]/route/timeout".to_string(),
            field: "RouteAction.timeout",
            value_text: format!("{seconds}s"),
            basis: LimitBasis::Effective,
            applies_to: AppliesTo::Route("default".to_string()),
            generation: true,
            configured_by: None,
            setting: format!("{} {seconds}s", kind.label()),
        }
    }

    #[test]
    fn the_shortest_enabled_deadline_wins_and_zero_is_disabled() {
        let limits = Limits {
            facts: vec![
                deadline(LimitKind::RouteTimeout, 0, "a"),
                deadline(LimitKind::IdleTimeout, 1, "b"),
                deadline(LimitKind::PerTryTimeout, 30, "c"),
                deadline(LimitKind::RouteTimeout, 60, "d"),
            ],
        };
        // A per-try timeout does not bound a stream once it has started: the route timeout does.
        let shortest = limits.shortest_deadline().unwrap();
        assert_eq!(shortest.object.name, "d");
        assert_eq!(shortest.describe(), "route timeout 60s on Envoy d");
        assert_eq!(limits.shortest_idle_timeout().unwrap().object.name, "b");
        assert!(limits.smallest_pool().is_none());
    }
}
