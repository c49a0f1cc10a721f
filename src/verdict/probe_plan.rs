//! Which probe runs `diagnose --probe` makes for a target, read from its evidence, and which of
//! them fit the time budget: a cold first request (first, before any other run warms the pod), a
//! stream just longer than the shortest whole-stream deadline under the expected generation (or a
//! short one that compares the paths), a burst just above the smallest pool limit, and a large
//! body sized over the buffer limit where something buffers. The rest are listed as not run, with
//! the budget that would run them. Pure: evidence and pace in, plan out.

use crate::checks::limits;
use crate::evidence::TargetEvidence;
use crate::evidence::limits::{Limit, LimitKind, Limits};
use crate::evidence::probe::{BURST_TOKENS, COLD_TOKENS, PlannedRun, ProbeMode, ProbeRun};
use crate::units::duration::{display, human};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::time::Duration;

/// The stream that compares the paths when no whole-stream deadline needs proving.
pub const MIN_STREAM: Duration = Duration::from_secs(5);
/// The most streams one burst opens per path.
pub const MAX_BURST: u32 = 64;
/// Bounds of the large body's size in tokens.
pub const LARGE_MIN_TOKENS: u32 = 256;
pub const LARGE_MAX_TOKENS: u32 = 8192;
/// Fewest bytes a token adds to a non-streaming body (English text averages about 4), so a body
/// sized with it goes over the limit for real.
const BODY_BYTES_PER_TOKEN: u64 = 3;
/// The largest prompt a probe sends.
pub const MAX_PROMPT_BYTES: u64 = 8 * 1024 * 1024;
/// Upload rate assumed for a large prompt (bytes per second), a slow link's.
const UPLOAD_BYTES_PER_SECOND: f64 = 10.0 * 1024.0 * 1024.0;
/// Tokens the warm-up before a stream reads for (its window is 1.5 s after the first token).
const WARMUP_WINDOW_S: f64 = 1.5;
/// Bytes one streamed token adds to an SSE body (`data: {"id":…,"choices":[{"text":…}]}`, as
/// vLLM and the lab write it: about 200).
const SSE_BYTES_PER_TOKEN: f64 = 200.0;
/// Least time the direct stream runs on past the mesh stream's failure (the probe's margin).
const ANSWER_MARGIN_S: f64 = 1.0;
/// The default budget of `--probe-budget`.
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(120);

/// A limit found in the evidence, and where.
#[derive(Debug, Clone, PartialEq)]
pub struct Found<T> {
    pub value: T,
    pub what: String,
}

/// Where a body is held in memory on the path, and the limit the held body must stay under.
#[derive(Debug, Clone, PartialEq)]
pub struct BufferPoint {
    pub what: String,
    pub limit_bytes: u64,
}

/// How fast the service answers, for the cost of each run: assumed before anything is measured,
/// then read off the first run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pace {
    /// Decode rate of one sequence.
    pub tokens_per_second: f64,
    /// Time to the first token of a warm request.
    pub first_token_s: f64,
    /// What each run costs besides its timed requests: model discovery, counters and vLLM
    /// metrics read around each path.
    pub run_overhead_s: f64,
}

impl Pace {
    /// A vLLM sequence of a mid-size model on one GPU, before anything was measured.
    pub const ASSUMED: Pace = Pace {
        tokens_per_second: 50.0,
        first_token_s: 0.3,
        run_overhead_s: 1.0,
    };

    /// The pace the cold pair measured: its warm requests' decode rate and first token, and its
    /// wall time beyond them as the overhead of a run. `None` when it measured too little.
    pub fn measured(run: &ProbeRun, wall_s: f64) -> Option<Pace> {
        let cold = run.report.as_ref()?.cold.as_slice();
        let warm: Vec<_> = cold.iter().map(|pair| &pair.warm).collect();
        let tpot_ms = warm
            .iter()
            .filter_map(|warm| warm.tpot_ms)
            .fold(0.0, f64::max);
        let first_token_ms = warm
            .iter()
            .filter_map(|warm| warm.ttft_ms)
            .fold(0.0, f64::max);
        if tpot_ms <= 0.0 {
            return None;
        }
        let requests_s: f64 = cold
            .iter()
            .flat_map(|pair| [&pair.cold, &pair.warm])
            .map(|result| result.total_ms / 1000.0)
            .sum();
        Some(Pace {
            tokens_per_second: 1000.0 / tpot_ms,
            first_token_s: first_token_ms / 1000.0,
            run_overhead_s: (wall_s - requests_s).max(0.0),
        })
    }

    fn tokens_s(&self, tokens: u32) -> f64 {
        self.first_token_s + f64::from(tokens) / self.tokens_per_second.max(0.1)
    }
}

/// What the plan is made from.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    pub target: &'a TargetEvidence,
    /// Pod ages are measured against this (the cold pair names the youngest pod).
    pub gathered_at: Option<&'a Time>,
    /// The longest generation the service must allow: deadlines at or over it need no proof.
    pub expected_generation: Duration,
    /// Seconds the runs may take; `None` for no limit.
    pub budget: Option<Duration>,
    pub pace: Pace,
    /// The cold pair already ran (a plan for what is left after it).
    pub cold_done: bool,
}

/// The runs that fit the budget, in the order they run, and those that do not.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub runs: Vec<PlannedRun>,
    /// `a stream of 5m30s would prove the 300s route timeout (raise --probe-budget to 6m)`
    pub not_run: Vec<NotRun>,
    /// Deadlines no run can prove, and what would: `stream_idle_timeout 300s on … counts
    /// silence: …`.
    pub unprovable: Vec<String>,
}

/// A run the evidence calls for that the budget left out.
#[derive(Debug, Clone, PartialEq)]
pub struct NotRun {
    pub run: PlannedRun,
    /// `a stream of 5m30s would prove the 300s route timeout (raise --probe-budget to 6m)`
    pub line: String,
}

impl Plan {
    /// Estimated seconds of the runs that fit.
    pub fn cost_s(&self) -> f64 {
        self.runs.iter().map(|run| run.cost_s).sum()
    }
}

/// A run the evidence calls for, what it would prove and how much that is worth.
struct Candidate {
    run: PlannedRun,
    /// `the 300s route timeout`
    proves: String,
    /// Worth of the proof: a run against a finding counts more than a comparison.
    worth: f64,
}

/// Worth of a run that can prove a configured limit bites, and of one that only compares.
const PROOF: f64 = 3.0;
const COMPARISON: f64 = 1.0;

/// The runs `input`'s evidence calls for that fit its budget: the cold pair first (any other run
/// would warm the pod), then by worth per second of cost; the rest as not run.
pub fn plan(input: &PlanInput<'_>) -> Plan {
    let (mut candidates, short, unprovable) = candidates(input);
    let cold = if input.cold_done {
        None
    } else {
        Some(cold_candidate(input))
    };
    candidates.sort_by(|a, b| {
        let rate = |c: &Candidate| c.worth / c.run.cost_s.max(0.1);
        rate(b).total_cmp(&rate(a))
    });
    let budget = input.budget.map(|budget| budget.as_secs_f64());
    let mut plan = Plan {
        runs: Vec::new(),
        not_run: Vec::new(),
        unprovable,
    };
    let mut spent = 0.0;
    let mut stream_planned = false;
    for candidate in cold.into_iter().chain(candidates) {
        let fits = budget.is_none_or(|budget| spent + candidate.run.cost_s <= budget);
        let is_stream = matches!(candidate.run.mode, ProbeMode::Stream { .. });
        if fits {
            spent += candidate.run.cost_s;
            stream_planned |= is_stream;
            plan.runs.push(candidate.run);
            continue;
        }
        let needed = budget_text(spent + candidate.run.cost_s);
        plan.not_run.push(NotRun {
            line: format!(
                "{} would prove {} (raise --probe-budget to {needed})",
                what_it_is(&candidate.run.mode),
                candidate.proves
            ),
            run: candidate.run,
        });
    }
    // Without its long stream a plan still compares the paths with a short one.
    if !stream_planned && budget.is_none_or(|budget| spent + short.cost_s <= budget) {
        let at = plan
            .runs
            .iter()
            .position(|run| !matches!(run.mode, ProbeMode::Cold))
            .unwrap_or(plan.runs.len());
        plan.runs.insert(at, short);
    }
    plan
}

/// `a stream of 5m30s`, `a burst of 12 streams`, `a large body of 8192 tokens`.
fn what_it_is(mode: &ProbeMode) -> String {
    match mode {
        ProbeMode::Stream { duration, .. } => format!("a stream of {}", human(*duration)),
        ProbeMode::Burst { streams } => format!("a burst of {streams} streams"),
        ProbeMode::Large {
            tokens: Some(tokens),
        } => format!("a large body of {tokens} tokens"),
        ProbeMode::Large { tokens: None } => "a large body".to_string(),
        ProbeMode::LargePrompt { bytes } => format!("a prompt of {bytes} bytes"),
        ProbeMode::Cold => "the cold pair".to_string(),
    }
}

/// A budget that holds `seconds`: whole minutes from a minute up, else tens of seconds.
fn budget_text(seconds: f64) -> String {
    let seconds = seconds.ceil().max(1.0) as u64;
    if seconds > 60 {
        human(Duration::from_secs(seconds.div_ceil(60) * 60))
    } else {
        human(Duration::from_secs(seconds.div_ceil(10) * 10))
    }
}

fn cold_candidate(input: &PlanInput<'_>) -> Candidate {
    let mut reason =
        "a first request on a fresh connection pays the handshakes and warm-up".to_string();
    if let Some(youngest) = youngest_pod(input.target, input.gathered_at) {
        reason.push_str(&format!("; the youngest ready pod is {youngest}"));
    }
    let pace = input.pace;
    Candidate {
        run: PlannedRun {
            mode: ProbeMode::Cold,
            reason,
            // A cold and a warm request on each path, one after the other.
            cost_s: 4.0 * pace.tokens_s(COLD_TOKENS) + pace.run_overhead_s,
            requests: 4,
        },
        proves: "a cold start".to_string(),
        worth: PROOF,
    }
}

/// The runs besides the cold pair, the short stream to run when the planned stream does not fit,
/// and the deadlines no run can prove.
fn candidates(input: &PlanInput<'_>) -> (Vec<Candidate>, PlannedRun, Vec<String>) {
    let target = input.target;
    let pace = input.pace;
    let mut candidates = Vec::new();
    let mut unprovable = Vec::new();
    let limits = limits::read(target);
    let idle = shortest_idle_timeout(&limits);
    if let Some(idle) = &idle {
        unprovable.push(format!(
            "{} counts silence: a stream that never pauses cannot trip it, so no stream is run against it; \
             a pause longer than that on the mesh path proves it (Envoy counts the cut in downstream_rq_idle_timeout or upstream_rq_timeout)",
            idle.what
        ));
    }
    let holding = holding_responses(&limits);
    let short = short_stream(
        idle.as_ref(),
        input.expected_generation,
        pace,
        holding.as_ref(),
    );
    let deadline =
        shortest_deadline(&limits).filter(|found| found.value < input.expected_generation);
    match deadline {
        Some(deadline) => {
            let duration = stream_duration(Some(deadline.value));
            candidates.push(Candidate {
                run: PlannedRun {
                    mode: ProbeMode::Stream {
                        duration,
                        timeout_s: Some(deadline.value.as_secs_f64()),
                        idle: false,
                    },
                    reason: format!(
                        "the shortest whole-stream deadline under the {} expected generation is {}",
                        display(input.expected_generation),
                        deadline.what
                    ),
                    cost_s: stream_cost(duration, pace, holding.as_ref()),
                    requests: 3,
                },
                proves: format!("the {} {}", display(deadline.value), deadline.kind),
                worth: PROOF,
            });
        }
        None => candidates.push(Candidate {
            run: short.clone(),
            proves: "that the paths stream alike".to_string(),
            worth: COMPARISON,
        }),
    }
    if let Some(limit) = smallest_pool_limit(&limits)
        && limit.value < u64::from(MAX_BURST)
    {
        let streams = burst_size(limit.value);
        candidates.push(Candidate {
            run: PlannedRun {
                mode: ProbeMode::Burst { streams },
                reason: format!("the smallest pool limit found is {}", limit.what),
                cost_s: 2.0 * pace.tokens_s(BURST_TOKENS) + pace.run_overhead_s,
                requests: streams * 2,
            },
            proves: format!("the pool limit of {} concurrent requests", limit.value),
            worth: PROOF,
        });
    }
    if let Some(point) = buffering(&limits) {
        let tokens = large_tokens(point.limit_bytes);
        let reach = if u64::from(tokens) * BODY_BYTES_PER_TOKEN > point.limit_bytes {
            format!(
                "{tokens} tokens make a body over its {} byte limit",
                point.limit_bytes
            )
        } else {
            format!(
                "{tokens} tokens (the most a probe asks) may stay under its {} byte limit: a whole body there proves nothing",
                point.limit_bytes
            )
        };
        candidates.push(Candidate {
            run: PlannedRun {
                mode: ProbeMode::Large {
                    tokens: Some(tokens),
                },
                reason: format!("{}; {reach}", point.what),
                // Both paths side by side.
                cost_s: pace.tokens_s(tokens) + pace.run_overhead_s,
                requests: 2,
            },
            proves: format!("the {} byte buffer limit", point.limit_bytes),
            worth: PROOF,
        });
    }
    if let Some(point) = request_buffering(&limits) {
        let bytes = point
            .limit_bytes
            .saturating_add((point.limit_bytes / 4).max(1024))
            .min(MAX_PROMPT_BYTES);
        let upload_s = bytes as f64 / UPLOAD_BYTES_PER_SECOND;
        candidates.push(Candidate {
            run: PlannedRun {
                mode: ProbeMode::LargePrompt { bytes },
                reason: format!("{}; a {bytes} byte prompt goes over it", point.what),
                cost_s: 2.0 * (pace.tokens_s(COLD_TOKENS) + upload_s) + pace.run_overhead_s,
                requests: 2,
            },
            proves: format!("the {} byte request limit", point.limit_bytes),
            worth: PROOF,
        });
    }
    (candidates, short, unprovable)
}

/// The short stream that compares the paths; it names the idle timeout its silences are judged
/// against, if any.
fn short_stream(
    idle: Option<&Found<Duration>>,
    expected: Duration,
    pace: Pace,
    holding: Option<&BufferPoint>,
) -> PlannedRun {
    let mut reason = format!(
        "no whole-stream deadline under the {} expected generation: a {} stream compares the paths",
        display(expected),
        display(MIN_STREAM)
    );
    if let Some(idle) = idle {
        reason.push_str(&format!("; a pause in it is judged against {}", idle.what));
    }
    PlannedRun {
        mode: ProbeMode::Stream {
            duration: MIN_STREAM,
            timeout_s: idle.map(|idle| idle.value.as_secs_f64()),
            idle: idle.is_some(),
        },
        reason,
        cost_s: stream_cost(MIN_STREAM, pace, holding),
        requests: 3,
    }
}

/// A warm-up that measures the decode rate, then both paths side by side for `duration`; where a
/// filter holds whole responses, the mesh stream is expected to fail once its limit is reached
/// and the direct one to stop a margin later.
fn stream_cost(duration: Duration, pace: Pace, holding: Option<&BufferPoint>) -> f64 {
    let mut streaming = duration.as_secs_f64();
    if let Some(point) = holding {
        let tokens_to_limit = point.limit_bytes as f64 / SSE_BYTES_PER_TOKEN;
        let failed_at = pace.first_token_s + tokens_to_limit / pace.tokens_per_second.max(0.1);
        let stopped_at = failed_at + (failed_at / 10.0).max(ANSWER_MARGIN_S);
        streaming = streaming.min(stopped_at);
    }
    pace.first_token_s * 2.0 + WARMUP_WINDOW_S + streaming + pace.run_overhead_s
}

/// A filter on the path that holds whole responses, streams included (Lua `body()`, Wasm,
/// ext_proc with a BUFFERED response mode), and the limit the held response must stay under.
pub fn holding_responses(limits: &Limits) -> Option<BufferPoint> {
    limits
        .first(LimitKind::HoldsResponses)
        .map(|limit| buffer_point(limit, limit.describe()))
}

fn buffer_point(limit: &Limit, what: String) -> BufferPoint {
    BufferPoint {
        what,
        limit_bytes: limit.value.bytes().unwrap_or_default(),
    }
}

/// `vllm-7c9d-x2x7k, 4m10s old (1 restart)`: the ready pod that started last.
fn youngest_pod(target: &TargetEvidence, gathered_at: Option<&Time>) -> Option<String> {
    let (pod, age) = target
        .live_pods
        .iter()
        .filter(|pod| pod.ready)
        .filter_map(|pod| pod.age(gathered_at).map(|age| (pod, age)))
        .min_by_key(|(_, age)| *age)?;
    let restarts = match pod.restarts {
        0 => String::new(),
        1 => " (1 restart)".to_string(),
        n => format!(" ({n} restarts)"),
    };
    Some(format!(
        "{}, {} old{restarts}",
        pod.name,
        crate::units::duration::age_text(age.as_secs())
    ))
}

/// Tokens for a body a quarter over `limit_bytes`, within the probe's bounds.
pub fn large_tokens(limit_bytes: u64) -> u32 {
    let over = limit_bytes.saturating_add(limit_bytes / 4);
    let tokens = over.div_ceil(BODY_BYTES_PER_TOKEN);
    u32::try_from(tokens)
        .unwrap_or(LARGE_MAX_TOKENS)
        .clamp(LARGE_MIN_TOKENS, LARGE_MAX_TOKENS)
}

/// `2 probe runs (cold, stream 5s), about 14 s and 7 requests`
pub fn describe_cost(runs: &[PlannedRun]) -> String {
    let seconds: f64 = runs.iter().map(|run| run.cost_s).sum();
    let requests: u32 = runs.iter().map(|run| run.requests).sum();
    let names: Vec<String> = runs.iter().map(|run| short_name(&run.mode)).collect();
    format!(
        "{} probe runs ({}), about {:.0} s and {} requests",
        runs.len(),
        names.join(", "),
        seconds.ceil(),
        requests
    )
}

/// `stream 5s`, `burst x4`, `large 8192 tokens`, `cold`.
pub fn short_name(mode: &ProbeMode) -> String {
    match mode {
        ProbeMode::Stream { duration, .. } => format!("stream {}", display(*duration)),
        ProbeMode::Burst { streams } => format!("burst x{streams}"),
        ProbeMode::Large {
            tokens: Some(tokens),
        } => format!("large {tokens} tokens"),
        ProbeMode::LargePrompt { bytes } => format!("large prompt {bytes} bytes"),
        other => other.name().to_string(),
    }
}

/// Just longer than `timeout` (10% and at least 1 s more), and no shorter than the short stream.
pub fn stream_duration(timeout: Option<Duration>) -> Duration {
    let Some(timeout) = timeout else {
        return MIN_STREAM;
    };
    let margin = (timeout / 10).max(Duration::from_secs(1));
    (timeout + margin).max(MIN_STREAM)
}

/// Just above `limit` concurrent streams (a quarter and at least 2 more), capped.
pub fn burst_size(limit: u64) -> u32 {
    let above = limit.saturating_add((limit / 4).max(2));
    u32::try_from(above.min(u64::from(MAX_BURST))).unwrap_or(MAX_BURST)
}

/// A deadline on the whole stream, where it is set and what it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Deadline {
    pub value: Duration,
    /// `route timeout 30s on Envoy serving/gateway-…`
    pub what: String,
    /// `route timeout`, `max_stream_duration`, `per-try timeout`
    pub kind: &'static str,
}

/// The shortest enabled deadline on a whole stream, which a long enough stream proves (the
/// limit facts of `checks::limits`: routes and HCMs of the Envoys on the path, VirtualService
/// routes).
pub fn shortest_deadline(limits: &Limits) -> Option<Deadline> {
    limits.shortest_deadline().map(|limit| Deadline {
        value: limit.value.time().unwrap_or_default(),
        what: limit.describe(),
        kind: limit.kind.label(),
    })
}

/// The shortest enabled timeout that counts silence (HCM `stream_idle_timeout`, route
/// `idle_timeout`, retry `per_try_idle_timeout`): only a pause trips it.
pub fn shortest_idle_timeout(limits: &Limits) -> Option<Found<Duration>> {
    limits.shortest_idle_timeout().map(|limit| Found {
        value: limit.value.time().unwrap_or_default(),
        what: limit.describe(),
    })
}

/// The fewest concurrent requests a pool on the path admits: per Envoy cluster and per
/// DestinationRule cluster (port-level settings and subsets resolved as istiod does).
pub fn smallest_pool_limit(limits: &Limits) -> Option<Found<u64>> {
    limits.smallest_pool().map(|limit| Found {
        value: limit.value.count().unwrap_or_default(),
        what: limit.describe(),
    })
}

/// Where a response body is held in memory on the path: an enabled filter that holds responses
/// (held against its listener's buffer limit), or a listener or cluster buffer limit below
/// Envoy's 1 MiB default.
pub fn buffering(limits: &Limits) -> Option<BufferPoint> {
    limits
        .facts
        .iter()
        .find(|limit| {
            matches!(
                limit.kind,
                LimitKind::HoldsResponses | LimitKind::BufferLimit
            )
        })
        .map(|limit| buffer_point(limit, limit.describe()))
}

/// Where a whole request body is held and refused (413) over a limit: an enabled buffer filter,
/// or ext_authz sending the body without `allow_partial_message`.
pub fn request_buffering(limits: &Limits) -> Option<BufferPoint> {
    limits
        .first(LimitKind::HoldsRequests)
        .map(|limit| buffer_point(limit, limit.describe()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::test_support::{endpoint_target, scenario_pair};

    const EXPECTED: Duration = Duration::from_secs(300);

    /// The lab at 2000 tokens/s, as the cold pair measures it.
    const FAST: Pace = Pace {
        tokens_per_second: 2000.0,
        first_token_s: 0.01,
        run_overhead_s: 0.2,
    };

    fn input(target: &TargetEvidence, budget: Option<Duration>) -> PlanInput<'_> {
        PlanInput {
            target,
            gathered_at: None,
            expected_generation: EXPECTED,
            budget,
            pace: Pace::ASSUMED,
            cold_done: false,
        }
    }

    fn scenario(name: &str) -> TargetEvidence {
        endpoint_target(scenario_pair(name))
    }

    /// The plan at the default budget.
    fn planned(target: &TargetEvidence) -> Plan {
        plan(&input(target, Some(DEFAULT_BUDGET)))
    }

    fn modes(runs: &[PlannedRun]) -> Vec<&str> {
        runs.iter().map(|run| run.mode.name()).collect()
    }

    fn assert_fits(plan: &Plan, budget: Duration) {
        assert!(
            plan.cost_s() <= budget.as_secs_f64(),
            "{} s over {budget:?}: {plan:#?}",
            plan.cost_s()
        );
    }

    #[test]
    fn a_stream_outlasts_the_shortest_deadline() {
        assert_eq!(stream_duration(None), MIN_STREAM);
        assert_eq!(stream_duration(Some(Duration::from_secs(2))), MIN_STREAM);
        assert_eq!(
            stream_duration(Some(Duration::from_secs(15))),
            Duration::from_millis(16_500)
        );
        assert_eq!(
            stream_duration(Some(Duration::from_secs(300))),
            Duration::from_secs(330)
        );
    }

    #[test]
    fn a_burst_goes_just_above_the_limit_and_stays_capped() {
        assert_eq!(burst_size(1), 3);
        assert_eq!(burst_size(2), 4);
        assert_eq!(burst_size(40), 50);
        assert_eq!(burst_size(60), MAX_BURST);
        assert_eq!(burst_size(u64::MAX), MAX_BURST);
    }

    #[test]
    fn the_route_timeout_of_the_pair_sizes_the_stream_within_the_budget() {
        let target = scenario("route-timeout");
        let deadline = shortest_deadline(&limits::read(&target)).unwrap();
        assert!(deadline.value <= Duration::from_secs(2), "{deadline:?}");
        assert_eq!(deadline.kind, "route timeout");
        let plan = planned(&target);
        assert_eq!(modes(&plan.runs), ["cold", "stream"]);
        assert!(plan.not_run.is_empty(), "{plan:#?}");
        assert_fits(&plan, DEFAULT_BUDGET);
        let ProbeMode::Stream {
            duration,
            timeout_s,
            idle,
        } = &plan.runs[1].mode
        else {
            panic!("{plan:?}")
        };
        assert!(*duration > deadline.value);
        assert_eq!(*timeout_s, Some(deadline.value.as_secs_f64()));
        assert!(!idle);
    }

    #[test]
    fn a_stream_idle_timeout_gets_no_stream_of_its_own_and_says_what_proves_it() {
        let target = scenario("stream-idle-timeout");
        assert!(shortest_deadline(&limits::read(&target)).is_none());
        let plan = planned(&target);
        assert_eq!(modes(&plan.runs), ["cold", "stream"]);
        let ProbeMode::Stream {
            duration,
            timeout_s,
            idle,
        } = &plan.runs[1].mode
        else {
            panic!("{plan:?}")
        };
        assert_eq!(*duration, MIN_STREAM, "a short comparison, not sized on it");
        assert_eq!(*timeout_s, Some(1.0));
        assert!(idle);
        assert!(
            plan.runs[1].reason.contains("stream_idle_timeout 1s"),
            "{}",
            plan.runs[1].reason
        );
        assert_eq!(plan.unprovable.len(), 1, "{plan:#?}");
        assert!(
            plan.unprovable[0].contains("downstream_rq_idle_timeout"),
            "{}",
            plan.unprovable[0]
        );
    }

    #[test]
    fn the_edge_profile_gateway_gets_no_330s_stream() {
        // Istio's EDGE profile: stream idle 300s and request timeout 300s, neither a deadline
        // on a whole stream that never pauses.
        let target = scenario("edge-gateway-profile");
        assert!(shortest_deadline(&limits::read(&target)).is_none());
        let plan = planned(&target);
        let stream = plan
            .runs
            .iter()
            .find_map(|run| match run.mode {
                ProbeMode::Stream { duration, .. } => Some(duration),
                _ => None,
            })
            .unwrap();
        assert_eq!(stream, MIN_STREAM);
        assert_fits(&plan, Duration::from_secs(30));
        assert!(
            plan.unprovable[0].contains("stream_idle_timeout 300s"),
            "{plan:#?}"
        );
    }

    #[test]
    fn a_long_route_timeout_that_does_not_fit_is_listed_with_the_budget_it_needs() {
        let mut target = scenario("route-timeout");
        for envoy in &mut target.envoy {
            for route in envoy
                .config
                .route_configs
                .iter_mut()
                .flat_map(|config| &mut config.virtual_hosts)
                .flat_map(|host| &mut host.routes)
            {
                if !route.timeout.value.value.is_zero() {
                    route.timeout.value =
                        crate::evidence::envoy::config::EnvoyDuration::parse("300s").unwrap();
                }
            }
        }
        let at_the_expected = planned(&target);
        assert!(
            at_the_expected.not_run.is_empty(),
            "a 300s deadline meets a 300s expected generation: {at_the_expected:#?}"
        );
        let longer = PlanInput {
            expected_generation: Duration::from_secs(600),
            ..input(&target, Some(DEFAULT_BUDGET))
        };
        let plan = plan(&longer);
        assert_fits(&plan, DEFAULT_BUDGET);
        assert_eq!(
            modes(&plan.runs),
            ["cold", "stream"],
            "the short stream stays"
        );
        assert!(
            matches!(plan.runs[1].mode, ProbeMode::Stream { duration, .. } if duration == MIN_STREAM)
        );
        assert_eq!(plan.not_run.len(), 1, "{plan:#?}");
        assert_eq!(
            plan.not_run[0].line,
            "a stream of 5m30s would prove the 300s route timeout (raise --probe-budget to 6m)"
        );
        let unlimited = super::plan(&PlanInput {
            budget: None,
            ..longer
        });
        assert!(unlimited.not_run.is_empty());
        assert!(matches!(
            unlimited.runs[1].mode,
            ProbeMode::Stream { duration, .. } if duration == Duration::from_secs(330)
        ));
    }

    #[test]
    fn a_circuit_breaker_adds_a_burst_above_its_limit() {
        let target = scenario("circuit-breaker");
        let limit = smallest_pool_limit(&limits::read(&target)).unwrap();
        let plan = planned(&target);
        assert_fits(&plan, DEFAULT_BUDGET);
        assert_eq!(plan.runs[0].mode, ProbeMode::Cold);
        let burst = plan
            .runs
            .iter()
            .find(|run| matches!(run.mode, ProbeMode::Burst { .. }))
            .unwrap_or_else(|| panic!("{plan:#?}"));
        let ProbeMode::Burst { streams } = burst.mode else {
            unreachable!()
        };
        assert!(u64::from(streams) > limit.value, "{streams} vs {limit:?}");
        assert_eq!(burst.requests, streams * 2);
        // Cheaper per proof than the comparison stream, so it goes first.
        assert_eq!(modes(&plan.runs), ["cold", "burst", "stream"]);
    }

    #[test]
    fn a_pool_limit_at_port_level_or_in_a_subset_is_planned_as_a_burst() {
        use crate::checks::test_support::{object, target};
        let rule = r#"
metadata: {name: vllm, namespace: llm}
spec:
  host: vllm
  trafficPolicy:
    connectionPool: {tcp: {maxConnections: 1000}}
    portLevelSettings:
    - port: {number: 8000}
      connectionPool: {tcp: {maxConnections: 2}, http: {http1MaxPendingRequests: 1}}
"#;
        let mut written = target();
        written.mesh.destination_rules.push(object(rule));
        let limit = smallest_pool_limit(&limits::read(&written)).unwrap();
        assert_eq!(limit.value, 3, "{limit:?}");
        assert!(
            limit
                .what
                .contains("spec/trafficPolicy/portLevelSettings[0]/connectionPool"),
            "{limit:?}"
        );
        let plan = planned(&written);
        assert!(modes(&plan.runs).contains(&"burst"), "{plan:#?}");

        // A subset the routes use replaces the port-level pool on its own cluster.
        let mut subset = target();
        subset.mesh.destination_rules.push(object(
            r#"
metadata: {name: vllm, namespace: llm}
spec:
  host: vllm
  subsets:
  - name: a
    labels: {app: vllm}
    trafficPolicy: {connectionPool: {http: {http2MaxRequests: 4}}}
"#,
        ));
        subset.mesh.virtual_services.push(object(
            r#"
metadata: {name: vllm, namespace: llm}
spec:
  hosts: [vllm]
  http:
  - route:
    - destination: {host: vllm, subset: a}
"#,
        ));
        let limit = smallest_pool_limit(&limits::read(&subset)).unwrap();
        assert_eq!(limit.value, 4, "{limit:?}");
        assert!(limit.what.contains("outbound|8000|a|"), "{limit:?}");
    }

    #[test]
    fn a_buffering_filter_adds_a_large_body_and_a_prompt_over_the_request_limit() {
        let target = scenario("buffer-filter");
        let plan = plan(&PlanInput {
            pace: FAST,
            ..input(&target, Some(DEFAULT_BUDGET))
        });
        assert_fits(&plan, DEFAULT_BUDGET);
        assert!(modes(&plan.runs).contains(&"large"), "{plan:#?}");
        let point = request_buffering(&limits::read(&target)).unwrap();
        let prompt = plan
            .runs
            .iter()
            .find_map(|run| match run.mode {
                ProbeMode::LargePrompt { bytes } => Some(bytes),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{plan:#?}"));
        assert!(prompt > point.limit_bytes, "{prompt} vs {point:?}");
        assert!(request_buffering(&limits::read(&scenario("healthy"))).is_none());
    }

    #[test]
    fn a_stream_through_a_filter_holding_responses_is_costed_to_its_expected_failure() {
        let target = scenario("buffer-filter");
        let point = holding_responses(&limits::read(&target)).unwrap();
        assert_eq!(point.limit_bytes, 16 * 1024);
        let stream = |target: &TargetEvidence| {
            plan(&PlanInput {
                pace: FAST,
                ..input(target, Some(DEFAULT_BUDGET))
            })
            .runs
            .into_iter()
            .find(|run| run.mode.name() == "stream")
            .unwrap()
            .cost_s
        };
        let held = stream(&target);
        let free = stream(&scenario("healthy"));
        assert!(held < free - 3.0, "{held} vs {free}");
        assert!(holding_responses(&limits::read(&scenario("healthy"))).is_none());
    }

    #[test]
    fn a_large_body_too_slow_for_the_budget_is_not_run_at_a_slow_pace() {
        let target = scenario("buffer-filter");
        let slow = PlanInput {
            pace: Pace {
                tokens_per_second: 5.0,
                ..Pace::ASSUMED
            },
            ..input(&target, Some(Duration::from_secs(60)))
        };
        let plan = plan(&slow);
        assert_fits(&plan, Duration::from_secs(60));
        let left = plan
            .not_run
            .iter()
            .find(|left| matches!(left.run.mode, ProbeMode::Large { .. }))
            .unwrap_or_else(|| panic!("{plan:#?}"));
        assert!(
            left.line.starts_with("a large body of ")
                && left
                    .line
                    .contains("would prove the 16384 byte buffer limit (raise --probe-budget to "),
            "{}",
            left.line
        );
    }

    #[test]
    fn a_large_body_goes_over_the_buffer_limit_found() {
        let tokens = large_tokens(16 * 1024);
        assert!(
            u64::from(tokens) * BODY_BYTES_PER_TOKEN > 16 * 1024,
            "{tokens}"
        );
        assert!(tokens < LARGE_MAX_TOKENS);
        assert_eq!(large_tokens(10), LARGE_MIN_TOKENS);
        assert_eq!(large_tokens(1024 * 1024), LARGE_MAX_TOKENS);
        assert_eq!(large_tokens(u64::MAX), LARGE_MAX_TOKENS);
    }

    #[test]
    fn a_healthy_pair_gets_the_cold_pair_and_a_short_stream_well_under_30s() {
        let target = scenario("healthy");
        let plan = planned(&target);
        assert_eq!(modes(&plan.runs), ["cold", "stream"]);
        assert_fits(&plan, Duration::from_secs(30));
        let cost = describe_cost(&plan.runs);
        assert!(cost.starts_with("2 probe runs (cold, stream 5s)"), "{cost}");
        assert!(cost.contains("7 requests"), "{cost}");
    }

    #[test]
    fn a_budget_too_small_for_anything_runs_nothing_and_says_so() {
        let target = scenario("route-timeout");
        let plan = plan(&input(&target, Some(Duration::from_secs(1))));
        assert!(plan.runs.is_empty(), "{plan:#?}");
        assert!(
            plan.not_run[0]
                .line
                .starts_with("the cold pair would prove a cold start")
        );
    }

    #[test]
    fn the_plan_after_the_cold_pair_uses_the_measured_pace_and_what_is_left() {
        let target = scenario("buffer-filter");
        // At the assumed 50 tokens/s the large body does not fit the default budget ...
        let assumed = planned(&target);
        let left = assumed
            .not_run
            .iter()
            .find(|left| left.run.mode.name() == "large")
            .unwrap_or_else(|| panic!("{assumed:#?}"));
        // ... at the lab's measured 2000 tokens/s it does, in what is left after the cold pair.
        let after = plan(&PlanInput {
            cold_done: true,
            pace: FAST,
            ..input(&target, Some(Duration::from_secs(100)))
        });
        assert!(!modes(&after.runs).contains(&"cold"));
        let large = after
            .runs
            .iter()
            .find(|run| run.mode.name() == "large")
            .unwrap_or_else(|| panic!("{after:#?}"));
        assert!(large.cost_s < left.run.cost_s / 10.0);
    }

    #[test]
    fn runs_saved_before_large_had_a_size_still_read() {
        let old: ProbeMode = serde_json::from_str(r#"{"kind": "large"}"#).unwrap();
        assert_eq!(old, ProbeMode::Large { tokens: None });
        let stream: ProbeMode =
            serde_json::from_str(r#"{"kind": "stream", "duration": "5s", "timeoutS": 2.0}"#)
                .unwrap();
        assert!(matches!(stream, ProbeMode::Stream { idle: false, .. }));
    }

    #[test]
    fn the_cold_pair_names_the_youngest_ready_pod() {
        let mut target = scenario("healthy");
        let pod =
            |name: &str, created: &str, ready: bool, restarts: u32| crate::evidence::LivePod {
                name: name.to_string(),
                node: None,
                phase: Some("Running".to_string()),
                ready,
                restarts,
                created: Some(Time(created.parse().unwrap())),
                proxy: None,
                sidecar_status: true,
            };
        target.live_pods = vec![
            pod("vllm-old", "2026-11-20T10:00:00Z", true, 0),
            pod("vllm-new", "2026-11-25T09:56:00Z", true, 1),
            pod("vllm-starting", "2026-11-25T09:59:00Z", false, 0),
        ];
        let now = Time("2026-11-25T10:00:10Z".parse().unwrap());
        let runs = plan(&PlanInput {
            gathered_at: Some(&now),
            ..input(&target, None)
        })
        .runs;
        assert!(
            runs[0]
                .reason
                .ends_with("; the youngest ready pod is vllm-new, 4m10s old (1 restart)"),
            "{}",
            runs[0].reason
        );
        assert!(!planned(&target).runs[0].reason.contains("youngest"));
    }

    #[test]
    fn planned_runs_round_trip_through_json() {
        let runs = planned(&scenario("circuit-breaker")).runs;
        let text = serde_json::to_string(&runs).unwrap();
        let back: Vec<PlannedRun> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, runs);
    }
}
