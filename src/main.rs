use clap::{CommandFactory, FromArgMatches};
use kubectl_infermesh::app;
use kubectl_infermesh::cli::{self, Cli};
use kubectl_infermesh::report::Style;
use std::io::IsTerminal;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let mut argv = std::env::args_os();
    let argv0 = argv.next();
    if argv
        .next()
        .is_some_and(|first| first == app::completion::COMPLETE_REQUEST)
    {
        // kubectl_complete-infermesh: the words typed after `kubectl infermesh`, answered in
        // cobra's format; no runtime, no logging.
        let words: Vec<String> = argv
            .map(|word| word.to_string_lossy().into_owned())
            .collect();
        let text = app::completion::complete(&words).render();
        let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes());
        return ExitCode::SUCCESS;
    }
    let command = Cli::command().bin_name(cli::display_name(argv0.as_deref()));
    let cli = match command
        .try_get_matches()
        .and_then(|matches| Cli::from_arg_matches(&matches))
    {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(if error.use_stderr() {
                app::EXIT_USAGE
            } else {
                0
            });
        }
    };
    init_logging(cli.verbose, cli.color);

    let stdout = std::io::stdout();
    let terminal = stdout.is_terminal();
    let columns = std::env::var("COLUMNS").ok();
    let terminal_width = comfy_table::Table::new().width().filter(|_| terminal);
    let style = Style {
        colour: cli
            .color
            .colour(terminal, std::env::var_os("NO_COLOR").as_deref()),
        terminal,
        // Prose wraps at words on a terminal: to COLUMNS, else the terminal's width.
        wrap: terminal
            .then(|| {
                columns
                    .as_deref()
                    .and_then(|text| text.trim().parse::<usize>().ok())
                    .filter(|width| *width >= 20)
                    .or(terminal_width.map(usize::from))
            })
            .flatten(),
        width: kubectl_infermesh::report::timeline::width(
            // comfy-table's reading of the terminal, as the tables wrap to it.
            comfy_table::Table::new().width().filter(|_| terminal),
            std::env::var("COLUMNS").ok().as_deref(),
        ),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(app::EXIT_ERROR);
        }
    };
    let outcome = runtime.block_on(async {
        let mut out = stdout.lock();
        if cli.command.handles_interrupt() {
            // The command stops itself on the first Ctrl-C and prints what it measured; a
            // second one exits at once.
            tokio::spawn(async {
                if tokio::signal::ctrl_c().await.is_ok() && tokio::signal::ctrl_c().await.is_ok() {
                    eprintln!("interrupted twice: exiting without the report");
                    std::process::exit(i32::from(app::EXIT_INTERRUPTED));
                }
            });
            return Some(app::run(&cli, &mut out, style).await);
        }
        tokio::select! {
            outcome = app::run(&cli, &mut out, style) => Some(outcome),
            _ = tokio::signal::ctrl_c() => None,
        }
    });
    // Port-forwards and admin connections close as the runtime drops their tasks; a command
    // that was interrupted has closed its own already, so exit right away.
    let interrupted = match &outcome {
        Some(Ok(code)) => *code == app::EXIT_INTERRUPTED,
        Some(Err(error)) => error.exit_code() == app::EXIT_INTERRUPTED,
        None => false,
    };
    let grace = if interrupted {
        std::time::Duration::ZERO
    } else {
        std::time::Duration::from_secs(2)
    };
    runtime.shutdown_timeout(grace);
    match outcome {
        None => {
            eprintln!("interrupted");
            ExitCode::from(app::EXIT_INTERRUPTED)
        }
        Some(Ok(code)) => ExitCode::from(code),
        Some(Err(error)) => {
            let code = error.exit_code();
            eprintln!("error: {}", one_line(&anyhow::Error::new(error)));
            ExitCode::from(code)
        }
    }
}

/// Crates whose traces would print credentials, at the most they may log.
const WIRE_CAPS: &str = "tungstenite=debug,tokio_tungstenite=debug,h2::hpack=debug,h2::codec=debug";

/// Tracing to stderr: warn by default, -v info, -vv debug, -vvv trace. `RUST_LOG` directives
/// (e.g. `kubectl_infermesh::evidence::resolve=trace`) are added on top; without -v, `RUST_LOG` alone decides.
fn init_logging(verbose: u8, color: cli::ColorChoice) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    // kube's request trace logs every failed request at ERROR; our one-line error already says
    // it, so it is shown only from -vv on.
    let level = if verbose < 2 {
        format!("{level},kube_client::client::builder=off")
    } else {
        level.to_string()
    };
    let from_env = std::env::var("RUST_LOG").unwrap_or_default();
    let directives = if verbose == 0 && !from_env.trim().is_empty() {
        from_env
    } else if from_env.trim().is_empty() {
        level
    } else {
        format!("{level},{from_env}")
    };
    // Wire-level traces carry the bytes sent: tungstenite's the port-forwarded HTTP requests
    // with their Authorization headers, h2's HPACK the header values. Capped whatever was
    // asked (a crate's own directive wins over a general one in any order).
    // Only where trace was asked for: a cap at debug would raise them above a warn default.
    let directives = if directives.contains("trace") {
        format!("{directives},{WIRE_CAPS}")
    } else {
        directives
    };
    let stderr = std::io::stderr();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(directives))
        .with_writer(std::io::stderr)
        .with_ansi(color.colour(
            stderr.is_terminal(),
            std::env::var_os("NO_COLOR").as_deref(),
        ))
        .with_target(verbose >= 2)
        .init();
}

/// The error and its causes on one line, joined with `: `; a cause already spelled out by the
/// message before it is not repeated.
fn one_line(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let cause = cause.to_string();
        let cause = cause.split_whitespace().collect::<Vec<_>>().join(" ");
        if cause.is_empty() || text.contains(&cause) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause);
    }
    text
}
