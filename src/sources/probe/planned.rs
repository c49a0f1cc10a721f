//! Runs the probe runs a plan (`plan::plan`) calls for through one set of paths opened as
//! `probe` opens them (`live::LivePaths`: URLs, or port-forwards on the cluster), and keeps what
//! they measured for the evidence.

use super::args::ProbeArgs;
use super::live::{LivePaths, LiveRequest};
use crate::evidence::probe::{BURST_TOKENS, COLD_TOKENS, PlannedRun, ProbeMode, ProbeRun};
use crate::sources::progress::Progress;
use crate::sources::stop::Stop;
use std::time::Duration;

/// Per-request limit of a burst, a large body and a cold pair.
const MODE_TIMEOUT: Duration = Duration::from_secs(120);
/// A large body's limit allows this slow a token rate, on top of `MODE_TIMEOUT`.
const SLOWEST_LARGE_TOKENS_PER_SECOND: u64 = 20;
/// Added to twice a stream's length for its per-request limit.
const STREAM_SLACK: Duration = Duration::from_secs(30);

/// The probe's flags for one planned run, on top of the paths and request flags in `base`.
pub fn args_for(run: &PlannedRun, base: &ProbeArgs) -> ProbeArgs {
    let mut args = base.clone();
    args.concurrency = None;
    args.large = false;
    args.large_prompt = None;
    args.cold = false;
    args.duration = None;
    args.repeat = 1;
    args.mesh_first = false;
    args.side_by_side = false;
    match &run.mode {
        ProbeMode::Stream { duration, .. } => {
            args.side_by_side = true;
            args.duration = Some(*duration);
            args.timeout = Some(*duration * 2 + STREAM_SLACK);
        }
        ProbeMode::Burst { streams } => {
            args.concurrency = Some(*streams);
            args.max_tokens = Some(BURST_TOKENS);
            args.timeout = Some(MODE_TIMEOUT);
        }
        ProbeMode::Large { tokens } => {
            args.side_by_side = true;
            args.large = true;
            args.max_tokens = *tokens;
            let generation = tokens.map_or(0, |tokens| {
                u64::from(tokens).div_ceil(SLOWEST_LARGE_TOKENS_PER_SECOND)
            });
            args.timeout = Some(MODE_TIMEOUT + Duration::from_secs(generation));
        }
        ProbeMode::LargePrompt { bytes } => {
            args.large_prompt = Some(*bytes);
            args.timeout = Some(MODE_TIMEOUT);
        }
        ProbeMode::Cold => {
            args.cold = true;
            // A user's first request reaches a cold pod through the mesh: so does the probe's.
            args.mesh_first = true;
            args.max_tokens = Some(COLD_TOKENS);
            args.timeout = Some(MODE_TIMEOUT);
        }
    }
    args
}

/// The paths of one target, opened once for every planned run and closed at the end.
pub struct PlannedPaths<'a> {
    paths: LivePaths,
    base: &'a ProbeArgs,
}

impl<'a> PlannedPaths<'a> {
    /// Opens `request`'s paths; its `probe` flags are the base of every run.
    pub async fn open(request: LiveRequest<'a>, stop: &Stop) -> Result<Self, String> {
        let paths = LivePaths::open(request, stop)
            .await
            .map_err(|error| error.to_string())?;
        Ok(Self {
            paths,
            base: request.probe,
        })
    }

    /// Makes one planned run, keeping what it measured or why it could not run.
    pub async fn run(&self, planned: PlannedRun, progress: Progress, stop: &Stop) -> ProbeRun {
        if stop.is_stopped() {
            return ProbeRun::failed(planned, "interrupted before it ran".to_string());
        }
        let args = args_for(&planned, self.base);
        tracing::info!(mode = planned.mode.name(), reason = %planned.reason, "probe run");
        match self.paths.probe(&args, progress, stop).await {
            Ok(report) => ProbeRun {
                planned,
                report: Some(report),
                error: None,
                not_run: None,
            },
            Err(error) => ProbeRun::failed(planned, error.to_string()),
        }
    }

    pub async fn close(self) {
        self.paths.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planned(mode: ProbeMode) -> PlannedRun {
        PlannedRun {
            mode,
            reason: String::new(),
            cost_s: 0.0,
            requests: 0,
        }
    }

    #[test]
    fn each_mode_sets_only_its_flags() {
        let mut base = ProbeArgs::for_urls(Some("http://d".into()), Some("http://m".into()));
        base.cold = true;
        let stream = args_for(
            &planned(ProbeMode::Stream {
                duration: Duration::from_secs(5),
                timeout_s: Some(2.0),
                idle: false,
            }),
            &base,
        );
        assert_eq!(stream.duration, Some(Duration::from_secs(5)));
        assert!(!stream.cold && !stream.large && stream.concurrency.is_none());
        assert!(stream.side_by_side);
        assert_eq!(stream.timeout, Some(Duration::from_secs(40)));
        let burst = args_for(&planned(ProbeMode::Burst { streams: 4 }), &base);
        assert_eq!(burst.concurrency, Some(4));
        assert_eq!(burst.max_tokens, Some(BURST_TOKENS));
        assert!(burst.duration.is_none());
        let large = args_for(&planned(ProbeMode::Large { tokens: Some(6000) }), &base);
        assert!(large.large && !large.mesh_first && large.side_by_side);
        assert_eq!(large.max_tokens, Some(6000));
        assert_eq!(large.timeout, Some(Duration::from_secs(420)));
        let cold = args_for(&planned(ProbeMode::Cold), &base);
        assert!(cold.cold && cold.mesh_first && !cold.side_by_side);
        assert_eq!(cold.direct_url.as_deref(), Some("http://d"));
        assert_eq!(cold.mesh_url.as_deref(), Some("http://m"));
    }
}
