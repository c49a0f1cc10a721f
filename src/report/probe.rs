//! The probe's output: a side-by-side table (metric | direct | mesh | verdict), or JSON.

use super::RenderError;
use crate::evidence::probe::path::{PathKind, PathResult, TokenSource};
use crate::evidence::probe::report::{ClusterPaths, Forward, PathReport, ProbeReport};
use crate::evidence::probe::server_side::HistogramDelta;
use comfy_table::{ContentArrangement, Table, presets};
use std::fmt::Write as _;

/// The report as `-o json` prints it, ending with a newline.
pub fn json(report: &ProbeReport) -> Result<String, RenderError> {
    let mut text = serde_json::to_string_pretty(report)?;
    text.push('\n');
    Ok(text)
}

fn new_table(header: Vec<String>) -> Table {
    let mut table = Table::new();
    table
        .load_style(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header);
    table
}

fn ms(value: Option<f64>) -> String {
    value.map_or_else(|| "—".to_string(), |v| format!("{v:.1} ms"))
}

fn secs(value: Option<f64>) -> String {
    value.map_or_else(|| "—".to_string(), |v| format!("{:.2} s", v / 1000.0))
}

fn delta(mesh: Option<f64>, direct: Option<f64>, unit: &str) -> String {
    match (mesh, direct) {
        (Some(m), Some(d)) => format!("mesh {:+.1} {unit}", m - d),
        _ => String::new(),
    }
}

fn server_mean(delta: &Option<HistogramDelta>) -> Option<f64> {
    delta.as_ref().and_then(|d| d.mean_ms)
}

type Row = (&'static str, fn(&PathReport) -> String);

fn rows() -> Vec<Row> {
    vec![
        ("status", |p| {
            p.result
                .status
                .map_or_else(|| "—".to_string(), |s| s.to_string())
        }),
        ("end", |p| p.result.end.as_str().to_string()),
        ("connect", |p| connect_cell(&p.result, "new")),
        ("response headers", |p| ms(p.result.headers_ms)),
        ("first chunk", |p| ms(p.result.first_chunk_ms)),
        ("TTFT (first content)", |p| ms(p.result.ttft_ms)),
        ("ITL p50", |p| ms(p.result.itl_ms.map(|i| i.p50))),
        ("ITL p90", |p| ms(p.result.itl_ms.map(|i| i.p90))),
        ("ITL p99", |p| ms(p.result.itl_ms.map(|i| i.p99))),
        ("ITL max", |p| ms(p.result.itl_ms.map(|i| i.max))),
        ("gaps > 1 s", |p| p.result.gaps_over_1s.to_string()),
        ("TPOT", |p| ms(p.result.tpot_ms)),
        ("tokens", |p| {
            let source = match p.result.tokens_source {
                TokenSource::Usage => "usage",
                TokenSource::Chunks => "chunks",
            };
            format!("{} ({source})", p.result.tokens)
        }),
        ("last token", |p| secs(p.result.last_content_ms)),
        ("[DONE]", |p| secs(p.result.done_ms)),
        ("body end", |p| secs(Some(p.result.total_ms))),
        ("bytes", |p| p.result.bytes.to_string()),
        ("keep-alive comments", |p| p.result.keepalives.to_string()),
        ("server", |p| {
            p.result
                .headers
                .server
                .clone()
                .unwrap_or_else(|| "—".to_string())
        }),
        ("x-envoy-upstream-service-time", |p| {
            p.result
                .headers
                .envoy_upstream_service_time
                .clone()
                .unwrap_or_else(|| "—".to_string())
        }),
        ("x-envoy-overloaded", |p| {
            p.result
                .headers
                .envoy_overloaded
                .clone()
                .unwrap_or_else(|| "—".to_string())
        }),
        ("vLLM TTFT (server side)", |p| {
            ms(p.server_side.as_ref().and_then(|s| server_mean(&s.ttft)))
        }),
        ("vLLM queue time", |p| {
            ms(p.server_side
                .as_ref()
                .and_then(|s| server_mean(&s.queue_time)))
        }),
    ]
}

fn row_verdict(
    metric: &str,
    direct: Option<&PathResult>,
    mesh: Option<&PathResult>,
    report: &ProbeReport,
) -> String {
    let (Some(d), Some(m)) = (direct, mesh) else {
        return if metric == "end" {
            report.comparison.verdict.clone()
        } else {
            String::new()
        };
    };
    match metric {
        "end" => report.comparison.verdict.clone(),
        "TTFT (first content)" => delta(m.ttft_ms, d.ttft_ms, "ms"),
        "ITL p50" => delta(m.itl_ms.map(|i| i.p50), d.itl_ms.map(|i| i.p50), "ms"),
        "ITL p99" => delta(m.itl_ms.map(|i| i.p99), d.itl_ms.map(|i| i.p99), "ms"),
        "TPOT" => delta(m.tpot_ms, d.tpot_ms, "ms"),
        "response headers" => delta(m.headers_ms, d.headers_ms, "ms"),
        _ => String::new(),
    }
}

/// A new connection's time (with the TLS handshake's share for https), or `reused`.
fn connect_cell(result: &PathResult, label: &str) -> String {
    let Some(total) = result.connect_ms else {
        return "reused".to_string();
    };
    let notes: Vec<String> = [
        (!label.is_empty()).then(|| label.to_string()),
        result.tls_ms.map(|tls| format!("TLS {tls:.1} ms")),
    ]
    .into_iter()
    .flatten()
    .collect();
    if notes.is_empty() {
        format!("{total:.1} ms")
    } else {
        format!("{total:.1} ms ({})", notes.join("; "))
    }
}

/// Client TTFT minus vLLM's own TTFT for the same run: time spent in front of vLLM.
fn in_front_of_vllm(path: &PathReport) -> Option<f64> {
    let server = path
        .server_side
        .as_ref()
        .and_then(|s| server_mean(&s.ttft))?;
    Some(path.result.ttft_ms? - server)
}

/// The table, then the timeline of each run drawn `width` columns wide.
pub fn table(report: &ProbeReport, width: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "model {} via /{} · {} tokens{}",
        report.request.model,
        report.request.api_path(),
        report.request.max_tokens,
        report
            .request
            .duration_s
            .map(|d| format!(" (sized for ~{d:.0} s)"))
            .unwrap_or_default()
    );
    if let Some(cluster) = &report.cluster {
        cluster_lines(&mut out, cluster);
    }
    for tls in &report.tls {
        let _ = writeln!(
            out,
            "{} TLS: {} as {}, certificate {}",
            tls.path.as_str(),
            tls.url,
            tls.server_name,
            tls.trust
        );
    }
    if !report.paths.is_empty() {
        let direct = report
            .paths
            .iter()
            .find(|p| p.result.path == PathKind::Direct);
        let mesh = report
            .paths
            .iter()
            .find(|p| p.result.path == PathKind::Mesh);
        let columns: Vec<&PathReport> = [direct, mesh].into_iter().flatten().collect();
        let mut header = vec!["metric".to_string()];
        header.extend(columns.iter().map(|p| p.result.path.as_str().to_string()));
        header.push("verdict".to_string());
        let mut table = new_table(header);
        for (name, cell) in rows() {
            let mut row = vec![name.to_string()];
            row.extend(columns.iter().map(|p| cell(p)));
            row.push(row_verdict(
                name,
                direct.map(|p| &p.result),
                mesh.map(|p| &p.result),
                report,
            ));
            table.add_row(row);
        }
        let mut front = vec!["TTFT in front of vLLM".to_string()];
        front.extend(columns.iter().map(|p| ms(in_front_of_vllm(p))));
        front.push("client TTFT − vLLM's own TTFT".to_string());
        table.add_row(front);
        let _ = writeln!(out, "{table}");
    }
    if !report.concurrency.is_empty() {
        let mut table = new_table(
            [
                "path",
                "streams",
                "done",
                "by status",
                "503 share",
                "overloaded",
                "connections",
                "TTFT p50",
                "vLLM peak running/waiting",
            ]
            .map(String::from)
            .to_vec(),
        );
        for c in &report.concurrency {
            let statuses: Vec<String> = c
                .by_status
                .iter()
                .map(|(s, n)| format!("{s}: {n}"))
                .collect();
            let peaks = c
                .server_side
                .as_ref()
                .map(|s| {
                    let show =
                        |v: Option<f64>| v.map_or_else(|| "?".to_string(), |v| format!("{v:.0}"));
                    format!("{} / {}", show(s.peak_running), show(s.peak_waiting))
                })
                .unwrap_or_else(|| "—".to_string());
            table.add_row(vec![
                c.path.as_str().to_string(),
                c.streams.to_string(),
                c.by_end.get("done").copied().unwrap_or(0).to_string(),
                statuses.join(", "),
                format!("{:.0}%", c.share_503 * 100.0),
                c.overloaded.to_string(),
                c.connections_opened.to_string(),
                ms(c.ttft_ms.map(|t| t.p50)),
                peaks,
            ]);
        }
        let _ = writeln!(out, "{table}");
        for c in &report.concurrency {
            for failure in &c.failures {
                let _ = writeln!(
                    out,
                    "  {} failures: {} × {}",
                    c.path.as_str(),
                    failure.count,
                    failure.cause
                );
            }
        }
    }
    if !report.large.is_empty() {
        let mut table = new_table(
            [
                "path",
                "status",
                "complete",
                "end",
                "bytes",
                "content-length",
                "tokens",
                "time",
            ]
            .map(String::from)
            .to_vec(),
        );
        for l in &report.large {
            table.add_row(vec![
                l.path.as_str().to_string(),
                l.status.map_or_else(|| "—".to_string(), |s| s.to_string()),
                if l.complete { "yes" } else { "NO" }.to_string(),
                l.end.as_str().to_string(),
                l.bytes.to_string(),
                l.content_length
                    .map_or_else(|| "—".to_string(), |c| c.to_string()),
                l.tokens.map_or_else(|| "—".to_string(), |t| t.to_string()),
                secs(Some(l.total_ms)),
            ]);
        }
        let _ = writeln!(out, "{table}");
    }
    if !report.cold.is_empty() {
        let mut table = new_table(
            [
                "path",
                "cold connect",
                "cold TTFT",
                "warm connect",
                "warm TTFT",
                "penalty",
            ]
            .map(String::from)
            .to_vec(),
        );
        for c in &report.cold {
            table.add_row(vec![
                c.path.as_str().to_string(),
                connect_cell(&c.cold, ""),
                ms(c.cold.ttft_ms),
                connect_cell(&c.warm, ""),
                ms(c.warm.ttft_ms),
                ms(c.ttft_penalty_ms),
            ]);
        }
        let _ = writeln!(out, "{table}");
    }
    if !report.counter_deltas.is_empty() {
        let mut table = new_table(
            [
                "path", "Envoy", "counter", "mode", "before", "after", "delta",
            ]
            .map(String::from)
            .to_vec(),
        );
        for moved in &report.counter_deltas {
            table.add_row(vec![
                moved.path.as_str().to_string(),
                moved.source.clone(),
                moved.name.clone(),
                moved.mode.map_or("—", |mode| mode.as_str()).to_string(),
                format!("{}", moved.before),
                format!("{}", moved.after),
                format!("{:+}", moved.delta),
            ]);
        }
        let _ = writeln!(out, "Envoy counters that moved:\n{table}");
    } else if !report.counter_sources.is_empty() {
        let _ = writeln!(
            out,
            "Envoy counters: nothing moved on {}",
            report.counter_sources.join(", ")
        );
    }
    out.push_str(&super::timeline::text(
        &crate::verdict::timeline::of_report(report),
        width,
    ));
    let _ = writeln!(out, "verdict: {}", report.comparison.verdict);
    if let Some(cold) = &report.comparison.cold_start {
        let _ = writeln!(out, "cold start: {cold}");
    }
    for note in &report.comparison.notes {
        let _ = writeln!(out, "  - {note}");
    }
    for gap in &report.gaps {
        let _ = writeln!(out, "  not measured: {}: {}", gap.what, gap.reason);
    }
    if report.interrupted {
        let _ = writeln!(out, "interrupted: results above are partial");
    }
    out
}

fn cluster_lines(out: &mut String, cluster: &ClusterPaths) {
    let _ = writeln!(
        out,
        "{} in namespace {} (context {})",
        cluster.workload, cluster.namespace, cluster.context
    );
    let forward = |f: &Forward| {
        let age = f
            .pod_age_s
            .map(|age| format!(", running for {}", crate::units::duration::age_text(age)))
            .unwrap_or_default();
        format!(
            "port-forward {} → {} port {}{age}",
            f.local_url, f.pod, f.port
        )
    };
    if let Some(direct) = &cluster.direct {
        let _ = writeln!(out, "  direct: {} (bypasses the sidecar)", forward(direct));
    }
    if let Some(mesh) = &cluster.mesh {
        let host = cluster
            .mesh_host
            .as_deref()
            .map(|host| format!(", Host {host}"))
            .unwrap_or_default();
        let gateway = cluster
            .gateway
            .as_deref()
            .map(|gateway| format!(" via {gateway}"))
            .unwrap_or_default();
        let _ = writeln!(out, "  mesh: {}{host}{gateway}", forward(mesh));
    }
    for admin in &cluster.admin {
        let _ = writeln!(out, "  Envoy admin: {}", forward(admin));
    }
}
