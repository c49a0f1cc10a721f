//! Progress on stderr, only when stderr is a terminal, for any long phase (listing, Envoy reads,
//! probe runs): data goes to stdout untouched.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;

/// Where progress is drawn: nowhere, or stderr, where a whole plan's line and the running
/// request's spinner share the screen.
#[derive(Debug, Clone)]
pub struct Progress {
    screen: Option<MultiProgress>,
}

impl Progress {
    /// Enabled when stderr is a terminal.
    pub fn detect() -> Self {
        if std::io::stderr().is_terminal() {
            Self {
                screen: Some(MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
            }
        } else {
            Self::disabled()
        }
    }

    pub fn disabled() -> Self {
        Self { screen: None }
    }

    /// A spinner counting tokens for one request or batch; hidden when disabled.
    pub fn tokens(&self, label: &str) -> ProgressBar {
        self.spinner("{spinner} {prefix}: {pos} tokens, {elapsed_precise}", label)
    }

    /// The line of a whole plan (`{prefix}` the run, `{msg}` what it proves and the time
    /// left); hidden when disabled.
    pub fn plan(&self, label: &str) -> ProgressBar {
        self.spinner("{spinner} {prefix} {msg} [{elapsed}]", label)
    }

    /// A line printed above the bars (or to stderr when disabled it is not printed at all: the
    /// same words go to the log).
    pub fn say(&self, line: &str) {
        if let Some(screen) = &self.screen {
            let _ = screen.println(line);
        }
    }

    /// A bar counting `total` items of one phase (`reading 500 Envoy admin APIs 120/500`);
    /// hidden when disabled.
    pub fn counter(&self, label: &str, total: u64) -> ProgressBar {
        let Some(screen) = &self.screen else {
            return ProgressBar::hidden();
        };
        let bar = screen.add(ProgressBar::new(total));
        if let Ok(style) = ProgressStyle::with_template("{prefix} {pos}/{len} [{elapsed}]") {
            bar.set_style(style);
        }
        bar.set_prefix(label.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }

    fn spinner(&self, template: &str, label: &str) -> ProgressBar {
        let Some(screen) = &self.screen else {
            return ProgressBar::hidden();
        };
        let bar = screen.add(ProgressBar::new_spinner());
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        bar.set_prefix(label.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }
}
