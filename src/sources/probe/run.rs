//! `probe` with URLs: the same generation straight to vLLM and through the mesh, timed token by
//! token, plus the modes, vLLM's own metrics around each path, and the verdicts.

use super::ProbeError;
use super::args::ProbeArgs;
use super::client::{ClientOptions, HttpClient, parse_base_url};
use super::envoy_counters::EnvoyCounters;
use super::modes;
use super::request::{self, ApiKey, GenerationSpec, ModelInfo, Target};
use super::sse::{self, Limits};
use super::tls::{self, PathAddress, TlsTrust};
use super::vllm_metrics::{self, MetricsSnapshot};
use super::warmup;
use crate::evidence::Gap;
use crate::evidence::probe::modes::{ConcurrencyResult, LargeResult};
use crate::evidence::probe::path::{EndReason, PathKind, PathResult};
use crate::evidence::probe::report::{
    Api, Comparison, FirstToken, PROBE_SCHEMA_VERSION, PathReport, ProbeReport, RequestSummary,
    TlsPath,
};
use crate::evidence::probe::server_side::ServerSide;
use crate::sources::progress::Progress;
use crate::sources::stop::{Stop, ctrl_c_stop};
use reqwest::Url;
use std::time::Duration;
use tokio::sync::oneshot;

/// Default streamed tokens without --duration or --max-tokens.
const DEFAULT_MAX_TOKENS: u32 = 256;
/// Output tokens of --large-prompt: only the request body's size matters.
const LARGE_PROMPT_TOKENS: u32 = 16;
/// Default output of --large, capped by the model's context length.
const DEFAULT_LARGE_TOKENS: u32 = 100_000;
/// Without a known context length, --duration asks for at most this many tokens.
const FALLBACK_TOKEN_CAP: u32 = 100_000;
/// Timeout of the small requests around a run (/v1/models, /metrics).
const SIDE_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How often /metrics is sampled while a concurrency batch runs.
const METRICS_SAMPLE_INTERVAL: Duration = Duration::from_millis(250);
/// Least time the direct stream runs on past the mesh stream's failure.
const ANSWER_MARGIN: Duration = Duration::from_secs(1);
/// Wait after a path before reading Envoy's counters again, so a counter bumped as the
/// connection closes is in the "after" snapshot.
const COUNTER_SETTLE: Duration = Duration::from_millis(200);

#[derive(Debug, Clone)]
struct Path {
    kind: PathKind,
    /// The URL as given.
    given: String,
    /// Where requests go; `address.base` is the base URL requested.
    address: PathAddress,
    /// The Host header.
    host: Option<String>,
}

impl Path {
    fn base(&self) -> &Url {
        &self.address.base
    }
}

/// A path with its clients: one for the timed requests, one for the small requests beside them
/// (/v1/models, /metrics), and the options a fresh client (--cold) is built with.
struct Lane {
    path: Path,
    options: ClientOptions,
    timed: HttpClient,
    side: HttpClient,
}

/// Runs the probe on the URLs in `args`; Ctrl-C stops it and returns what was measured.
pub async fn run(args: &ProbeArgs) -> Result<ProbeReport, ProbeError> {
    run_with(args, Progress::detect()).await
}

/// `run` with the progress display chosen by the caller.
pub async fn run_with(args: &ProbeArgs, progress: Progress) -> Result<ProbeReport, ProbeError> {
    let (stop, ctrl_c) = ctrl_c_stop();
    let report = probe(args, progress, &stop, &EnvoyCounters::none()).await;
    ctrl_c.abort();
    report
}

/// The probe with the caller's stop signal, reading `counters` before and after each path.
pub async fn run_in(
    args: &ProbeArgs,
    progress: Progress,
    stop: &Stop,
    counters: &EnvoyCounters,
) -> Result<ProbeReport, ProbeError> {
    probe(args, progress, stop, counters).await
}

fn paths(args: &ProbeArgs) -> Result<Vec<Path>, ProbeError> {
    let mut paths = Vec::new();
    if let Some(url) = &args.direct_url {
        paths.push(Path {
            kind: PathKind::Direct,
            given: url.clone(),
            address: tls::path_address(&parse_base_url(url)?, None)?,
            host: None,
        });
    }
    if let Some(url) = &args.mesh_url {
        paths.push(Path {
            kind: PathKind::Mesh,
            given: url.clone(),
            address: tls::path_address(&parse_base_url(url)?, args.mesh_host.as_deref())?,
            host: args.mesh_host.clone(),
        });
    }
    if paths.is_empty() {
        return Err(ProbeError::NoPath);
    }
    if args.mesh_first {
        paths.reverse();
    }
    Ok(paths)
}

fn limits(args: &ProbeArgs) -> Limits {
    let overall = args.timeout.unwrap_or_else(|| match args.duration {
        Some(duration) => duration * 2 + Duration::from_secs(60),
        None => Duration::from_secs(600),
    });
    Limits {
        overall,
        idle: args.idle_timeout,
    }
}

/// What every step of one probe shares: the paths opened, the model, and how requests are shaped.
struct Session<'a> {
    args: &'a ProbeArgs,
    lanes: Vec<Lane>,
    limits: Limits,
    stop: &'a Stop,
    counters: &'a EnvoyCounters,
    progress: Progress,
    api: Api,
    api_key: Option<ApiKey>,
    model: ModelInfo,
    /// The most output tokens the model's context leaves after the prompt.
    token_cap: u32,
}

impl Session<'_> {
    fn target(&self, path: &Path) -> Target {
        Target::new(
            path.base(),
            self.api,
            path.host.clone(),
            self.api_key.clone(),
        )
    }

    fn spec(&self, tokens: u32, exact: bool, stream: bool) -> GenerationSpec {
        spec(self.args, self.api, &self.model.id, tokens, exact, stream)
    }

    fn direct(&self) -> Option<&Lane> {
        self.lanes
            .iter()
            .find(|lane| lane.path.kind == PathKind::Direct)
    }

    fn side(&self) -> SideMetrics<'_> {
        let direct = self.direct();
        SideMetrics {
            client: direct.map(|lane| &lane.side),
            base: direct.map(|lane| lane.path.base()),
        }
    }

    /// Whether the default timed stream runs (no mode flag asks for something else).
    fn default_mode(&self) -> bool {
        let args = self.args;
        !(args.large || args.cold || args.concurrency.is_some() || args.large_prompt.is_some())
    }

    fn side_by_side(&self) -> bool {
        self.args.side_by_side && self.lanes.len() == 2
    }
}

/// Records a request's time to first token in the order the requests were sent.
fn first_token(report: &mut ProbeReport, label: String, ttft_ms: Option<f64>) {
    if let Some(ttft_ms) = ttft_ms {
        report.first_tokens.push(FirstToken { label, ttft_ms });
    }
}

async fn probe(
    args: &ProbeArgs,
    progress: Progress,
    stop: &Stop,
    counters: &EnvoyCounters,
) -> Result<ProbeReport, ProbeError> {
    let (session, mut gaps, tls_paths) = open(args, progress, stop, counters).await?;
    let mut first_tokens = Vec::new();
    let (stream_tokens, warmup, warmup_rate) = warm_up(&session, &mut first_tokens).await?;
    gaps.extend(session.counters_gap());
    let mut report = ProbeReport {
        schema_version: PROBE_SCHEMA_VERSION,
        request: RequestSummary {
            api: session.api,
            model: session.model.id.clone(),
            max_tokens: stream_tokens,
            exact_length: args.duration.is_some(),
            duration_s: args.duration.map(|d| d.as_secs_f64()),
            warmup_tokens_per_second: warmup_rate,
            http2: args.http2,
        },
        paths: Vec::new(),
        runs: Vec::new(),
        warmup,
        concurrency: Vec::new(),
        large: Vec::new(),
        large_prompt: Vec::new(),
        cold: Vec::new(),
        counter_deltas: Vec::new(),
        counter_sources: counters.names(),
        tls: tls_paths,
        cluster: None,
        first_tokens,
        comparison: Comparison::default(),
        gaps,
        interrupted: false,
    };
    let stream_spec = session.spec(stream_tokens, args.duration.is_some(), true);
    for run in 1..=args.repeat {
        if session.side_by_side() && !stop.is_stopped() {
            both_paths(&session, &stream_spec, run, &mut report).await;
        }
        for lane in &session.lanes {
            if stop.is_stopped() {
                break;
            }
            one_path(&session, lane, &stream_spec, run, &mut report).await?;
        }
    }
    report.interrupted = stop.is_stopped();
    dedup(&mut report.gaps);
    Ok(report)
}

/// Path setup: the paths' clients (and their TLS), the model, and what will not be read.
async fn open<'a>(
    args: &'a ProbeArgs,
    progress: Progress,
    stop: &'a Stop,
    counters: &'a EnvoyCounters,
) -> Result<(Session<'a>, Vec<Gap>, Vec<TlsPath>), ProbeError> {
    let paths = paths(args)?;
    let mut gaps = Vec::new();
    let (lanes, tls_paths) = lanes(args, paths, stop, &mut gaps).await?;
    let api_key = ApiKey::from_env(&args.api_key_env);
    let api = if args.chat {
        Api::Chat
    } else {
        Api::Completions
    };
    let model = model(args, &lanes, api_key.as_ref(), &mut gaps).await?;
    let token_cap = model
        .max_model_len
        .map(|len| len.saturating_sub(prompt_allowance(&args.prompt)))
        .unwrap_or(FALLBACK_TOKEN_CAP);
    let session = Session {
        args,
        lanes,
        limits: limits(args),
        stop,
        counters,
        progress,
        api,
        api_key,
        model,
        token_cap,
    };
    if session.direct().is_none() {
        gaps.push(Gap::new(
            "vLLM /metrics",
            "not read: it is read on the direct path; give --direct-url",
        ));
    }
    Ok((session, gaps, tls_paths))
}

impl Session<'_> {
    fn counters_gap(&self) -> Option<Gap> {
        self.counters.is_empty().then(|| {
            Gap::new(
                "Envoy counters",
                "not read: no Envoy admin API was given (--admin-url, or TARGET on a cluster)",
            )
        })
    }
}

/// Warm-up: with `--duration`, a short stream on the first path measures the decode rate, which
/// sizes the timed stream; otherwise the stream asks for `--max-tokens`.
async fn warm_up(
    session: &Session<'_>,
    first_tokens: &mut Vec<FirstToken>,
) -> Result<(u32, Option<PathResult>, Option<f64>), ProbeError> {
    let args = session.args;
    let Some(duration) = args.duration else {
        return Ok((args.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS), None, None));
    };
    let lane = &session.lanes[0];
    let first = &lane.path;
    let target = session.target(first);
    let tokens = warmup::MAX_TOKENS.min(session.token_cap).max(1);
    let spec = session.spec(tokens, true, true);
    let label = format!("{} warm-up", first.kind.as_str());
    let bar = session.progress.tokens(&label);
    let measured = warmup::measure(
        &lane.timed,
        &target,
        &spec.body(),
        session.limits,
        session.stop,
        &|n| bar.set_position(n),
    )
    .await;
    bar.finish_and_clear();
    let result = PathResult::from_record(first.kind, target.url.as_str(), &measured.record);
    if let Some(ttft_ms) = result.ttft_ms {
        first_tokens.push(FirstToken { label, ttft_ms });
    }
    let rate = measured.rate.ok_or_else(|| ProbeError::Warmup {
        url: target.url.to_string(),
        outcome: result.outcome(),
    })?;
    let stream_tokens = request::tokens_for_duration(rate, duration, session.token_cap);
    Ok((stream_tokens, Some(result), Some(rate)))
}

/// The runs on both paths at once (the timed streams, the large bodies), with the mesh path's
/// Envoy counters read around them.
async fn both_paths(
    session: &Session<'_>,
    stream_spec: &GenerationSpec,
    run: u32,
    report: &mut ProbeReport,
) {
    let args = session.args;
    if !(session.default_mode() || args.large) {
        return;
    }
    let counters_before = session.counters.snapshot(&mut report.gaps).await;
    if session.default_mode() {
        let bar = session.progress.tokens("direct and mesh streams");
        let records = streams_side_by_side(
            &session.lanes,
            &|path| session.target(path),
            &stream_spec.body(),
            session.limits,
            session.stop,
            &|n| bar.set_position(n),
        )
        .await;
        bar.finish_and_clear();
        for (lane, record) in session.lanes.iter().zip(records) {
            let url = session.target(&lane.path).url.to_string();
            let result = PathResult::from_record(lane.path.kind, &url, &record);
            first_token(report, lane.path.kind.as_str().to_string(), result.ttft_ms);
            // vLLM's counters move for both streams at once: not split by path.
            let entry = PathReport {
                result,
                server_side: None,
                run,
            };
            keep_path(report, entry, args.repeat);
        }
    }
    if args.large {
        let tokens = large_tokens(args, session.token_cap);
        let body = session.spec(tokens, true, false).body();
        let bar = session.progress.tokens("direct and mesh large bodies");
        let bodies = session.lanes.iter().map(|lane| {
            let target = session.target(&lane.path);
            let body = &body;
            async move {
                let (kind, limits, stop) = (lane.path.kind, session.limits, session.stop);
                modes::large(&lane.timed, kind, &target, body, tokens, limits, stop).await
            }
        });
        let results = futures_util::future::join_all(bodies).await;
        bar.finish_and_clear();
        report.large.extend(results);
    }
    // Only the mesh path runs through the Envoys whose counters are read.
    collect_counters(session, PathKind::Mesh, counters_before, report).await;
}

/// The runs on one path at a time, with the Envoy counters read around them.
async fn one_path(
    session: &Session<'_>,
    lane: &Lane,
    stream_spec: &GenerationSpec,
    run: u32,
    report: &mut ProbeReport,
) -> Result<(), ProbeError> {
    let args = session.args;
    let per_path_mode = !session.side_by_side()
        || args.concurrency.is_some()
        || args.large_prompt.is_some()
        || args.cold;
    if !per_path_mode {
        return Ok(());
    }
    let counters_before = session.counters.snapshot(&mut report.gaps).await;
    if session.default_mode() && !session.side_by_side() {
        timed_stream(session, lane, stream_spec, run, report).await;
    }
    if let Some(streams) = args.concurrency {
        let result = burst(session, lane, stream_spec, streams).await;
        report.concurrency.push(result);
    }
    if args.large && !session.side_by_side() {
        let tokens = large_tokens(args, session.token_cap);
        let spec = session.spec(tokens, true, false);
        let result = large_body(session, lane, &spec, tokens, "large body").await;
        report.large.push(result);
    }
    if let Some(bytes) = args.large_prompt {
        let mut spec = session.spec(LARGE_PROMPT_TOKENS, false, false);
        spec.prompt = request::padded_prompt(&args.prompt, bytes);
        let result = large_body(session, lane, &spec, LARGE_PROMPT_TOKENS, "large prompt").await;
        report.large_prompt.push(result);
    }
    if args.cold {
        cold_pair(session, lane, stream_spec, report).await?;
    }
    collect_counters(session, lane.path.kind, counters_before, report).await;
    Ok(())
}

/// The timed stream on one path, with vLLM's /metrics read around it.
async fn timed_stream(
    session: &Session<'_>,
    lane: &Lane,
    stream_spec: &GenerationSpec,
    run: u32,
    report: &mut ProbeReport,
) {
    let path = &lane.path;
    let target = session.target(path);
    let side = session.side();
    let before = side.scrape(&mut report.gaps).await;
    let bar = session
        .progress
        .tokens(&format!("{} stream", path.kind.as_str()));
    let body = stream_spec.body();
    let (limits, stop) = (session.limits, session.stop);
    let record = sse::stream(&lane.timed, &target, &body, limits, stop, &|n| {
        bar.set_position(n)
    })
    .await;
    bar.finish_and_clear();
    let after = side.scrape(&mut report.gaps).await;
    let result = PathResult::from_record(path.kind, target.url.as_str(), &record);
    first_token(report, path.kind.as_str().to_string(), result.ttft_ms);
    let entry = PathReport {
        result,
        server_side: before.zip(after).map(|(b, a)| ServerSide::between(&b, &a)),
        run,
    };
    keep_path(report, entry, session.args.repeat);
}

async fn burst(
    session: &Session<'_>,
    lane: &Lane,
    stream_spec: &GenerationSpec,
    streams: u32,
) -> ConcurrencyResult {
    let kind = lane.path.kind;
    let bar = session
        .progress
        .tokens(&format!("{} x{streams}", kind.as_str()));
    let side = session.side();
    let target = session.target(&lane.path);
    let (limits, stop) = (session.limits, session.stop);
    let result = concurrency(
        &lane.timed,
        &side,
        kind,
        &target,
        stream_spec,
        streams,
        limits,
        stop,
        &|_| bar.inc(1),
    )
    .await;
    bar.finish_and_clear();
    result
}

async fn large_body(
    session: &Session<'_>,
    lane: &Lane,
    spec: &GenerationSpec,
    tokens: u32,
    what: &str,
) -> LargeResult {
    let kind = lane.path.kind;
    let bar = session
        .progress
        .tokens(&format!("{} {what}", kind.as_str()));
    let target = session.target(&lane.path);
    let (limits, stop) = (session.limits, session.stop);
    let result = modes::large(
        &lane.timed,
        kind,
        &target,
        &spec.body(),
        tokens,
        limits,
        stop,
    )
    .await;
    bar.finish_and_clear();
    result
}

async fn cold_pair(
    session: &Session<'_>,
    lane: &Lane,
    stream_spec: &GenerationSpec,
    report: &mut ProbeReport,
) -> Result<(), ProbeError> {
    let kind = lane.path.kind;
    let bar = session
        .progress
        .tokens(&format!("{} cold/warm", kind.as_str()));
    let target = session.target(&lane.path);
    let result = modes::cold(
        lane.options.clone(),
        kind,
        &target,
        &stream_spec.body(),
        session.limits,
        session.stop,
        &|n| bar.set_position(n),
    )
    .await?;
    bar.finish_and_clear();
    first_token(
        report,
        format!("{} cold", kind.as_str()),
        result.cold.ttft_ms,
    );
    report.cold.push(result);
    Ok(())
}

/// Collection: the Envoy counters after a run, as deltas against `before`, credited to `path`.
async fn collect_counters(
    session: &Session<'_>,
    path: PathKind,
    before: Vec<Option<crate::evidence::envoy::counters::Snapshot>>,
    report: &mut ProbeReport,
) {
    let counters = session.counters;
    if counters.is_empty() {
        return;
    }
    tokio::time::sleep(COUNTER_SETTLE).await;
    let after = counters.snapshot(&mut report.gaps).await;
    report
        .counter_deltas
        .extend(counters.deltas(path, &before, &after));
}

/// A stream on each of the two lanes at once. When the mesh stream ends short of `[DONE]` while
/// the direct one streams on, the direct one runs a margin past that point (a tenth of the
/// mesh's time, at least a second) and is stopped, ending `answered`: it outlived the cut, which
/// is all the run asks. Records come back in the lanes' order.
async fn streams_side_by_side(
    lanes: &[Lane],
    target: &dyn Fn(&Path) -> Target,
    body: &serde_json::Value,
    limits: Limits,
    stop: &Stop,
    on_content: sse::OnContent<'_>,
) -> Vec<sse::StreamRecord> {
    let (answered, answered_stop) = Stop::new();
    let answered = std::sync::Arc::new(answered);
    // The user's stop reaches the direct stream through its own stop.
    let forward = {
        let answered = answered.clone();
        let mut user = stop.clone();
        tokio::spawn(async move {
            user.stopped().await;
            let _ = answered.send(true);
        })
    };
    let streams = lanes.iter().map(|lane| {
        let target = target(&lane.path);
        let answered = answered.clone();
        let lane_stop = match lane.path.kind {
            PathKind::Direct => answered_stop.clone(),
            PathKind::Mesh => stop.clone(),
        };
        async move {
            let mut record =
                sse::stream(&lane.timed, &target, body, limits, &lane_stop, on_content).await;
            match lane.path.kind {
                PathKind::Mesh if record.end != EndReason::Done => {
                    let margin = (record.ended_at / 10).max(ANSWER_MARGIN);
                    tokio::spawn(async move {
                        tokio::time::sleep(margin).await;
                        let _ = answered.send(true);
                    });
                }
                PathKind::Direct if record.end == EndReason::Interrupted && !stop.is_stopped() => {
                    record.end = EndReason::Answered;
                    record.detail = Some(
                        "stopped once the mesh stream had failed: it streamed on past that point"
                            .to_string(),
                    );
                }
                _ => {}
            }
            record
        }
    });
    let records = futures_util::future::join_all(streams).await;
    forward.abort();
    records
}

/// The stream of one path: the first run's goes in `paths`, every run's in `runs` when repeated.
fn keep_path(report: &mut ProbeReport, entry: PathReport, repeat: u32) {
    if entry.run == 1 {
        report.paths.push(entry.clone());
    }
    if repeat > 1 {
        report.runs.push(entry);
    }
}

/// Output tokens of a `--large` body: asked, else the default, within the model's length.
fn large_tokens(args: &ProbeArgs, token_cap: u32) -> u32 {
    args.max_tokens
        .unwrap_or(DEFAULT_LARGE_TOKENS)
        .min(token_cap)
        .max(1)
}

fn dedup(gaps: &mut Vec<Gap>) {
    let mut seen = std::collections::BTreeSet::new();
    gaps.retain(|gap| seen.insert((gap.what.clone(), gap.reason.clone())));
}

fn spec(
    args: &ProbeArgs,
    api: Api,
    model: &str,
    tokens: u32,
    exact: bool,
    stream: bool,
) -> GenerationSpec {
    GenerationSpec {
        api,
        model: model.to_string(),
        prompt: args.prompt.clone(),
        max_tokens: tokens,
        exact_length: exact,
        stream,
    }
}

/// Tokens the prompt may take, generously (no tokenizer here): 2 per word plus chat template.
fn prompt_allowance(prompt: &str) -> u32 {
    let words = u32::try_from(prompt.split_whitespace().count()).unwrap_or(u32::MAX);
    words.saturating_mul(2).saturating_add(64)
}

/// Each path's clients; for https paths, the trust (loaded once) and a handshake check, so a
/// certificate problem stops the probe with its fix before anything is timed. Ctrl-C skips the
/// check (nothing is timed after it anyway).
async fn lanes(
    args: &ProbeArgs,
    paths: Vec<Path>,
    stop: &Stop,
    gaps: &mut Vec<Gap>,
) -> Result<(Vec<Lane>, Vec<TlsPath>), ProbeError> {
    let trust = if paths.iter().any(|path| path.address.is_https()) {
        Some(TlsTrust::load(&args.tls())?)
    } else {
        None
    };
    let mut lanes = Vec::new();
    let mut tls_paths = Vec::new();
    for path in paths {
        let options = ClientOptions {
            http2_prior_knowledge: args.http2,
            tls: trust.clone(),
            connect_to: path.address.connect_to.clone(),
            ..ClientOptions::default()
        };
        if let (Some(trust), true) = (&trust, path.address.is_https()) {
            let check = tls::check_handshake(
                &path.given,
                &path.address,
                trust,
                args.http2,
                options.connect_timeout,
            );
            let mut stopped = stop.clone();
            tokio::select! {
                checked = check => checked?,
                () = stopped.stopped() => {}
            }
            if !trust.verified() {
                gaps.push(Gap::new(
                    format!("{} {}", path.kind.as_str(), path.given),
                    "the server's TLS certificate was not verified (--mesh-insecure-skip-tls-verify): the gateway's identity is unproven",
                ));
            }
            tls_paths.push(TlsPath {
                path: path.kind,
                url: path.given.clone(),
                server_name: path.address.tls_name(),
                connect_to: path
                    .address
                    .connect_to
                    .as_ref()
                    .and_then(|_| authority(&path.given)),
                verified: trust.verified(),
                trust: trust.basis.describe(),
            });
        }
        lanes.push(Lane {
            timed: HttpClient::new(options.clone())?,
            side: HttpClient::new(options.clone())?,
            options,
            path,
        });
    }
    Ok((lanes, tls_paths))
}

/// `127.0.0.1:8443` of `https://127.0.0.1:8443/v1`.
fn authority(url: &str) -> Option<String> {
    let url = parse_base_url(url).ok()?;
    Some(format!(
        "{}:{}",
        url.host_str()?,
        url.port_or_known_default()?
    ))
}

async fn model(
    args: &ProbeArgs,
    lanes: &[Lane],
    api_key: Option<&ApiKey>,
    gaps: &mut Vec<Gap>,
) -> Result<ModelInfo, ProbeError> {
    let needs_length = args.large || args.duration.is_some();
    if let (Some(id), false) = (&args.model, needs_length) {
        return Ok(ModelInfo {
            id: id.clone(),
            max_model_len: None,
        });
    }
    let mut last_error = None;
    // The direct path first, whatever the probe's order: a discovery through the mesh would open
    // the mesh's upstream connections before a cold request could pay for them.
    let direct_first = lanes
        .iter()
        .filter(|lane| lane.path.kind == PathKind::Direct)
        .chain(
            lanes
                .iter()
                .filter(|lane| lane.path.kind != PathKind::Direct),
        );
    for lane in direct_first {
        match request::discover_model(
            &lane.side,
            lane.path.base(),
            lane.path.host.as_deref(),
            api_key,
            SIDE_REQUEST_TIMEOUT,
        )
        .await
        {
            Ok(found) => {
                return Ok(match &args.model {
                    Some(id) => ModelInfo {
                        id: id.clone(),
                        max_model_len: (id == &found.id).then_some(found.max_model_len).flatten(),
                    },
                    None => found,
                });
            }
            Err(error) => last_error = Some(error),
        }
    }
    match (&args.model, last_error) {
        (Some(id), error) => {
            if let Some(error) = error {
                gaps.push(Gap::new("model length", format!("unknown: {error}")));
            }
            Ok(ModelInfo {
                id: id.clone(),
                max_model_len: None,
            })
        }
        (None, Some(error)) => Err(error),
        (None, None) => Err(ProbeError::NoPath),
    }
}

/// vLLM's /metrics, read on the direct URL, when there is one.
struct SideMetrics<'a> {
    client: Option<&'a HttpClient>,
    base: Option<&'a Url>,
}

impl SideMetrics<'_> {
    async fn scrape(&self, gaps: &mut Vec<Gap>) -> Option<MetricsSnapshot> {
        let (client, base) = self.client.zip(self.base)?;
        match vllm_metrics::scrape(client, base, None, SIDE_REQUEST_TIMEOUT).await {
            Ok(snapshot) => Some(snapshot),
            Err(error) => {
                gaps.push(Gap::new("vLLM /metrics", format!("not read: {error}")));
                None
            }
        }
    }

    /// Highest running and waiting seen until `done` fires.
    async fn peaks(&self, mut done: oneshot::Receiver<()>) -> (Option<f64>, Option<f64>) {
        let Some((client, base)) = self.client.zip(self.base) else {
            return (None, None);
        };
        let (mut running, mut waiting): (Option<f64>, Option<f64>) = (None, None);
        loop {
            if let Ok(snapshot) =
                vllm_metrics::scrape(client, base, None, SIDE_REQUEST_TIMEOUT).await
            {
                let max = |a: Option<f64>, b: Option<f64>| match (a, b) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
                running = max(running, snapshot.running());
                waiting = max(waiting, snapshot.waiting());
            }
            tokio::select! {
                _ = &mut done => return (running, waiting),
                () = tokio::time::sleep(METRICS_SAMPLE_INTERVAL) => {}
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn concurrency(
    client: &HttpClient,
    side: &SideMetrics<'_>,
    kind: PathKind,
    target: &Target,
    spec: &GenerationSpec,
    streams: u32,
    limits: Limits,
    stop: &Stop,
    on_content: sse::OnContent<'_>,
) -> ConcurrencyResult {
    let mut scrape_gaps = Vec::new();
    let before = side.scrape(&mut scrape_gaps).await;
    let (done, finished) = oneshot::channel();
    let body = spec.body();
    let batch = async {
        let result = modes::concurrent(
            client, kind, target, &body, streams, limits, stop, on_content,
        )
        .await;
        let _ = done.send(());
        result
    };
    let (mut result, (peak_running, peak_waiting)) = tokio::join!(batch, side.peaks(finished));
    let after = side.scrape(&mut scrape_gaps).await;
    result.server_side = before.zip(after).map(|(b, a)| ServerSide {
        peak_running,
        peak_waiting,
        ..ServerSide::between(&b, &a)
    });
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_url_is_an_error() {
        let args = ProbeArgs::for_urls(None, None);
        assert!(matches!(paths(&args), Err(ProbeError::NoPath)));
        let ftp = ProbeArgs::for_urls(Some("ftp://vllm:8000".into()), None);
        assert!(matches!(paths(&ftp), Err(ProbeError::InvalidUrl { .. })));
    }

    #[test]
    fn an_https_port_forward_is_reached_by_the_mesh_host() {
        let mut args = ProbeArgs::for_urls(
            Some("http://127.0.0.1:8000".into()),
            Some("https://127.0.0.1:8443".into()),
        );
        args.mesh_host = Some("llm.example.com".into());
        let paths = paths(&args).unwrap();
        assert_eq!(paths[0].base().as_str(), "http://127.0.0.1:8000/");
        assert_eq!(paths[1].base().as_str(), "https://llm.example.com:8443/");
        assert_eq!(paths[1].given, "https://127.0.0.1:8443");
        assert_eq!(paths[1].host.as_deref(), Some("llm.example.com"));
        assert!(paths[1].address.connect_to.is_some());
    }

    #[test]
    fn mesh_first_reverses_the_order_of_the_paths() {
        let mut args = ProbeArgs::for_urls(Some("http://d".into()), Some("http://m".into()));
        let order = |args: &ProbeArgs| -> Vec<PathKind> {
            paths(args).unwrap().iter().map(|path| path.kind).collect()
        };
        assert_eq!(order(&args), [PathKind::Direct, PathKind::Mesh]);
        args.mesh_first = true;
        assert_eq!(order(&args), [PathKind::Mesh, PathKind::Direct]);
    }

    #[test]
    fn timeouts_follow_the_duration() {
        let mut args = ProbeArgs::for_urls(Some("http://h".into()), None);
        assert_eq!(limits(&args).overall, Duration::from_secs(600));
        args.duration = Some(Duration::from_secs(30));
        assert_eq!(limits(&args).overall, Duration::from_secs(120));
        args.timeout = Some(Duration::from_secs(5));
        assert_eq!(limits(&args).overall, Duration::from_secs(5));
    }
}
