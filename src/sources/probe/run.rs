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
use crate::evidence::probe::modes::ConcurrencyResult;
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

async fn probe(
    args: &ProbeArgs,
    progress: Progress,
    stop: &Stop,
    counters: &EnvoyCounters,
) -> Result<ProbeReport, ProbeError> {
    let paths = paths(args)?;
    let limits = limits(args);
    let mut gaps = Vec::new();
    let (lanes, tls_paths) = lanes(args, paths, stop, &mut gaps).await?;
    let api_key = ApiKey::from_env(&args.api_key_env);
    let api = if args.chat {
        Api::Chat
    } else {
        Api::Completions
    };

    let model = model(args, &lanes, api_key.as_ref(), &mut gaps).await?;
    let direct = lanes.iter().find(|lane| lane.path.kind == PathKind::Direct);
    if direct.is_none() {
        gaps.push(
            "vLLM /metrics not read: it is read on the direct path; give --direct-url".to_string(),
        );
    }
    if counters.is_empty() {
        gaps.push(
            "Envoy counters not read: no Envoy admin API was given (--admin-url, or TARGET on a cluster)"
                .to_string(),
        );
    }
    let target = |path: &Path| Target::new(path.base(), api, path.host.clone(), api_key.clone());
    let token_cap = model
        .max_model_len
        .map(|len| len.saturating_sub(prompt_allowance(&args.prompt)))
        .unwrap_or(FALLBACK_TOKEN_CAP);

    let mut ordered_ttfts: Vec<(String, f64)> = Vec::new();
    let mut warmup = None;
    let mut warmup_rate = None;
    let stream_tokens = match args.duration {
        Some(duration) => {
            let lane = &lanes[0];
            let first = &lane.path;
            let tokens = warmup::MAX_TOKENS.min(token_cap).max(1);
            let spec = spec(args, api, &model.id, tokens, true, true);
            let bar = progress.tokens(&format!("{} warm-up", first.kind.as_str()));
            let measured = warmup::measure(
                &lane.timed,
                &target(first),
                &spec.body(),
                limits,
                stop,
                &|n| bar.set_position(n),
            )
            .await;
            bar.finish_and_clear();
            let result =
                PathResult::from_record(first.kind, target(first).url.as_str(), &measured.record);
            if let Some(ttft) = result.ttft_ms {
                ordered_ttfts.push((format!("{} warm-up", first.kind.as_str()), ttft));
            }
            let rate = measured.rate.ok_or_else(|| ProbeError::Warmup {
                url: target(first).url.to_string(),
                outcome: result.outcome(),
            })?;
            warmup = Some(result);
            warmup_rate = Some(rate);
            request::tokens_for_duration(rate, duration, token_cap)
        }
        None => args.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
    };
    let exact_length = args.duration.is_some();
    let stream_spec = spec(args, api, &model.id, stream_tokens, exact_length, true);

    let default_mode =
        !(args.large || args.cold || args.concurrency.is_some() || args.large_prompt.is_some());
    let mut report = ProbeReport {
        schema_version: PROBE_SCHEMA_VERSION,
        request: RequestSummary {
            api,
            model: model.id.clone(),
            max_tokens: stream_tokens,
            exact_length,
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
        first_tokens: Vec::new(),
        comparison: Comparison::default(),
        gaps,
        interrupted: false,
    };
    let side = SideMetrics {
        client: direct.map(|lane| &lane.side),
        base: direct.map(|lane| lane.path.base()),
    };

    let side_by_side = args.side_by_side && lanes.len() == 2;
    for run in 1..=args.repeat {
        if side_by_side && (default_mode || args.large) && !stop.is_stopped() {
            let counters_before = counters.snapshot(&mut report.gaps).await;
            if default_mode {
                let bar = progress.tokens("direct and mesh streams");
                let records = streams_side_by_side(
                    &lanes,
                    &|path| target(path),
                    &stream_spec.body(),
                    limits,
                    stop,
                    &|n| bar.set_position(n),
                )
                .await;
                bar.finish_and_clear();
                for (lane, record) in lanes.iter().zip(records) {
                    let url = target(&lane.path).url.to_string();
                    let result = PathResult::from_record(lane.path.kind, &url, &record);
                    if let Some(ttft) = result.ttft_ms {
                        ordered_ttfts.push((lane.path.kind.as_str().to_string(), ttft));
                    }
                    // vLLM's counters move for both streams at once: not split by path.
                    keep_path(
                        &mut report,
                        PathReport {
                            result,
                            server_side: None,
                            run,
                        },
                        args.repeat,
                    );
                }
            }
            if args.large {
                let tokens = large_tokens(args, token_cap);
                let spec = spec(args, api, &model.id, tokens, true, false);
                let body = spec.body();
                let bar = progress.tokens("direct and mesh large bodies");
                let bodies = lanes.iter().map(|lane| {
                    let target = target(&lane.path);
                    let body = &body;
                    async move {
                        modes::large(
                            &lane.timed,
                            lane.path.kind,
                            &target,
                            body,
                            tokens,
                            limits,
                            stop,
                        )
                        .await
                    }
                });
                let results = futures_util::future::join_all(bodies).await;
                bar.finish_and_clear();
                report.large.extend(results);
            }
            if !counters.is_empty() {
                tokio::time::sleep(COUNTER_SETTLE).await;
                let counters_after = counters.snapshot(&mut report.gaps).await;
                // Only the mesh path runs through the Envoys whose counters are read.
                report.counter_deltas.extend(counters.deltas(
                    PathKind::Mesh,
                    &counters_before,
                    &counters_after,
                ));
            }
        }
        for lane in &lanes {
            let path = &lane.path;
            let client = &lane.timed;
            if stop.is_stopped() {
                break;
            }
            let target = target(path);
            let per_path_mode = !side_by_side
                || args.concurrency.is_some()
                || args.large_prompt.is_some()
                || args.cold;
            if !per_path_mode {
                continue;
            }
            let counters_before = counters.snapshot(&mut report.gaps).await;
            if default_mode && !side_by_side {
                let before = side.scrape(&mut report.gaps).await;
                let bar = progress.tokens(&format!("{} stream", path.kind.as_str()));
                let record =
                    sse::stream(client, &target, &stream_spec.body(), limits, stop, &|n| {
                        bar.set_position(n)
                    })
                    .await;
                bar.finish_and_clear();
                let after = side.scrape(&mut report.gaps).await;
                let result = PathResult::from_record(path.kind, target.url.as_str(), &record);
                if let Some(ttft) = result.ttft_ms {
                    ordered_ttfts.push((path.kind.as_str().to_string(), ttft));
                }
                keep_path(
                    &mut report,
                    PathReport {
                        result,
                        server_side: before.zip(after).map(|(b, a)| ServerSide::between(&b, &a)),
                        run,
                    },
                    args.repeat,
                );
            }
            if let Some(streams) = args.concurrency {
                let bar = progress.tokens(&format!("{} x{streams}", path.kind.as_str()));
                let result = concurrency(
                    client,
                    &side,
                    path.kind,
                    &target,
                    &stream_spec,
                    streams,
                    limits,
                    stop,
                    &|_| bar.inc(1),
                )
                .await;
                bar.finish_and_clear();
                report.concurrency.push(result);
            }
            if args.large && !side_by_side {
                let tokens = large_tokens(args, token_cap);
                let spec = spec(args, api, &model.id, tokens, true, false);
                let bar = progress.tokens(&format!("{} large body", path.kind.as_str()));
                let result = modes::large(
                    client,
                    path.kind,
                    &target,
                    &spec.body(),
                    tokens,
                    limits,
                    stop,
                )
                .await;
                bar.finish_and_clear();
                report.large.push(result);
            }
            if let Some(bytes) = args.large_prompt {
                let mut spec = spec(args, api, &model.id, LARGE_PROMPT_TOKENS, false, false);
                spec.prompt = request::padded_prompt(&args.prompt, bytes);
                let bar = progress.tokens(&format!("{} large prompt", path.kind.as_str()));
                let result = modes::large(
                    client,
                    path.kind,
                    &target,
                    &spec.body(),
                    LARGE_PROMPT_TOKENS,
                    limits,
                    stop,
                )
                .await;
                bar.finish_and_clear();
                report.large_prompt.push(result);
            }
            if args.cold {
                let bar = progress.tokens(&format!("{} cold/warm", path.kind.as_str()));
                let result = modes::cold(
                    lane.options.clone(),
                    path.kind,
                    &target,
                    &stream_spec.body(),
                    limits,
                    stop,
                    &|n| bar.set_position(n),
                )
                .await?;
                bar.finish_and_clear();
                if let Some(ttft) = result.cold.ttft_ms {
                    ordered_ttfts.push((format!("{} cold", path.kind.as_str()), ttft));
                }
                report.cold.push(result);
            }
            if !counters.is_empty() {
                tokio::time::sleep(COUNTER_SETTLE).await;
                let counters_after = counters.snapshot(&mut report.gaps).await;
                report.counter_deltas.extend(counters.deltas(
                    path.kind,
                    &counters_before,
                    &counters_after,
                ));
            }
        }
    }
    report.interrupted = stop.is_stopped();
    report.first_tokens = ordered_ttfts
        .into_iter()
        .map(|(label, ttft_ms)| FirstToken { label, ttft_ms })
        .collect();
    dedup(&mut report.gaps);
    Ok(report)
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

fn dedup(lines: &mut Vec<String>) {
    let mut seen = std::collections::BTreeSet::new();
    lines.retain(|line| seen.insert(line.clone()));
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
    gaps: &mut Vec<String>,
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
                gaps.push(format!(
                    "{} {}: the server's TLS certificate was not verified (--mesh-insecure-skip-tls-verify): the gateway's identity is unproven",
                    path.kind.as_str(),
                    path.given
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
    gaps: &mut Vec<String>,
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
                gaps.push(format!("model length unknown: {error}"));
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
    async fn scrape(&self, gaps: &mut Vec<String>) -> Option<MetricsSnapshot> {
        let (client, base) = self.client.zip(self.base)?;
        match vllm_metrics::scrape(client, base, None, SIDE_REQUEST_TIMEOUT).await {
            Ok(snapshot) => Some(snapshot),
            Err(error) => {
                gaps.push(format!("vLLM /metrics not read: {error}"));
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
