//! `--envoy-dump PATH`: Envoy admin output a user saved (a `config_dump`, the lists `istioctl
//! proxy-config cluster|listener|route … -o json` prints, `/stats` text or JSON), as readings.
//!
//! Files are grouped into Envoys by name: `gw.json`, `gw.stats.txt`, `gw-clusters.json` and
//! `gw_config_dump.json` in one folder are one Envoy `gw`; `config_dump.json` and `stats.txt`
//! are the Envoy of their folder. What a file holds is told from its content, not its name.

use super::config_dump;
use super::reading::EnvoyReading;
use super::stats::Stats;
use crate::evidence::Gap;
use crate::evidence::envoy::config::EffectiveConfig;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Extensions read from a folder (a file named on the command line is always read).
const FOLDER_EXTENSIONS: [&str; 6] = ["json", "txt", "stats", "out", "yaml", "yml"];
/// Name endings that say what a file holds, stripped to find the Envoy's name.
const CONTENT_MARKERS: [&str; 9] = [
    "config_dump",
    "config-dump",
    "configdump",
    "stats",
    "clusters",
    "listeners",
    "routes",
    "all",
    "dump",
];
/// A bound on folder depth, so a symlink loop cannot recurse forever.
const MAX_DEPTH: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    #[error("--envoy-dump {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("--envoy-dump {path}: no .json, .yaml or .txt files in the folder")]
    Empty { path: String },
    #[error("--envoy-dump {path} is empty: save Envoy's /config_dump or /stats output into it")]
    EmptyFile { path: String },
    #[error("--envoy-dump {path}: {source}")]
    ConfigDump {
        path: String,
        #[source]
        source: config_dump::ConfigDumpError,
    },
    #[error("--envoy-dump {path}: {source}")]
    Stats {
        path: String,
        #[source]
        source: super::stats::StatsError,
    },
    #[error(
        "--envoy-dump {first} and {second}: two /stats captures of one Envoy; name them after their Envoys (gw.stats.txt, vllm.stats.txt)"
    )]
    TwoStats { first: String, second: String },
}

/// Reads every `--envoy-dump` path (files and folders) into one reading per Envoy.
pub fn read_dumps(paths: &[PathBuf]) -> Result<Vec<EnvoyReading>, DumpError> {
    let mut files = Vec::new();
    for path in paths {
        let metadata = std::fs::metadata(path).map_err(|error| DumpError::Read {
            path: path.display().to_string(),
            reason: error.to_string(),
        })?;
        if metadata.is_dir() {
            let before = files.len();
            collect_folder(path, 0, &mut files)?;
            if files.len() == before {
                return Err(DumpError::Empty {
                    path: path.display().to_string(),
                });
            }
        } else {
            files.push(path.clone());
        }
    }
    let mut groups: BTreeMap<(PathBuf, String), Vec<PathBuf>> = BTreeMap::new();
    for file in files {
        let folder = file.parent().map(Path::to_path_buf).unwrap_or_default();
        let name = file
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let group = groups.entry((folder, envoy_name(&name))).or_default();
        if !group.contains(&file) {
            group.push(file);
        }
    }
    let several = groups.len() > 1;
    let mut readings = Vec::new();
    for files in groups.into_values() {
        match read_group(&files, several) {
            Ok(mut read) => readings.append(&mut read),
            // One input alone that cannot be read is the error; among several it is a gap.
            Err(error) if several => readings.push(EnvoyReading::failed(
                &format!("saved {}", names(&files)),
                None,
                Gap::new(
                    format!("Envoy capture {}", names(&files)),
                    error.to_string(),
                ),
            )),
            Err(error) => return Err(error),
        }
    }
    Ok(readings)
}

fn names(files: &[PathBuf]) -> String {
    files
        .iter()
        .map(|file| file.display().to_string())
        .collect::<Vec<_>>()
        .join(" + ")
}

fn collect_folder(folder: &Path, depth: usize, files: &mut Vec<PathBuf>) -> Result<(), DumpError> {
    let read_error = |error: std::io::Error| DumpError::Read {
        path: folder.display().to_string(),
        reason: error.to_string(),
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(folder)
        .map_err(read_error)?
        .map(|entry| entry.map(|entry| entry.path()))
        .collect::<Result<_, _>>()
        .map_err(read_error)?;
    entries.sort();
    for path in entries {
        let hidden = path
            .file_name()
            .is_some_and(|name| name.to_string_lossy().starts_with('.'));
        if hidden {
            continue;
        }
        if path.is_dir() {
            if depth < MAX_DEPTH {
                collect_folder(&path, depth + 1, files)?;
            }
            continue;
        }
        let extension = path
            .extension()
            .map(|extension| extension.to_string_lossy().to_ascii_lowercase());
        if extension.is_some_and(|extension| FOLDER_EXTENSIONS.contains(&extension.as_str())) {
            files.push(path);
        }
    }
    Ok(())
}

/// `gw.stats.txt` -> `gw`; `gw-config_dump.json` -> `gw`; `config_dump.json` -> `` (the folder's).
pub fn envoy_name(file_name: &str) -> String {
    let mut name = file_name.to_ascii_lowercase();
    loop {
        let before = name.clone();
        if let Some((stem, extension)) = name.rsplit_once('.')
            && (FOLDER_EXTENSIONS.contains(&extension) || extension == "yaml")
        {
            name = stem.to_string();
        }
        for marker in CONTENT_MARKERS {
            if name == marker {
                name.clear();
            } else if let Some(stem) = name.strip_suffix(marker)
                && stem.ends_with(['-', '_', '.'])
            {
                name = stem.trim_end_matches(['-', '_', '.']).to_string();
            }
        }
        if name == before {
            return name;
        }
    }
}

enum Content {
    /// One proxy's config, or several (egctl prints every proxy it reached, by namespace/pod).
    Configs(Vec<(Option<String>, EffectiveConfig)>),
    Stats(Stats),
}

/// The files of one Envoy, as readings: one, or one per proxy of an egctl capture. A file that
/// cannot be read is an error when it is the only one (`lenient` false) or the group's only
/// file; beside others it becomes a gap of the reading.
fn read_group(files: &[PathBuf], lenient: bool) -> Result<Vec<EnvoyReading>, DumpError> {
    let mut config: Option<EffectiveConfig> = None;
    let mut proxies: Vec<(String, EffectiveConfig)> = Vec::new();
    let mut stats: Option<(Stats, &PathBuf)> = None;
    let mut gaps = Vec::new();
    let mut read: Vec<&PathBuf> = Vec::new();
    for file in files {
        let content = match read_file(file) {
            Ok(content) => content,
            Err(error) if lenient || files.len() > 1 => {
                gaps.push(Gap::new(
                    format!("Envoy capture {}", file.display()),
                    error.to_string(),
                ));
                continue;
            }
            Err(error) => return Err(error),
        };
        read.push(file);
        match content {
            Content::Configs(mut parsed) if parsed.len() == 1 => {
                let (_, parsed) = parsed.remove(0);
                match &mut config {
                    Some(merged) => merge(merged, parsed),
                    None => config = Some(parsed),
                }
            }
            Content::Configs(parsed) => {
                for (label, parsed) in parsed {
                    let label = label.unwrap_or_else(|| format!("#{}", proxies.len() + 1));
                    proxies.push((format!("{} ({label})", file.display()), parsed));
                }
            }
            Content::Stats(parsed) => {
                if let Some((_, first)) = &stats {
                    let error = DumpError::TwoStats {
                        first: first.display().to_string(),
                        second: file.display().to_string(),
                    };
                    if !lenient {
                        return Err(error);
                    }
                    gaps.push(Gap::new(
                        format!("Envoy capture {}", file.display()),
                        error.to_string(),
                    ));
                    continue;
                }
                stats = Some((parsed, file));
            }
        }
    }
    if read.is_empty() {
        let reasons: Vec<String> = gaps.iter().map(|gap| gap.reason.clone()).collect();
        return Err(DumpError::Read {
            path: names(files),
            reason: reasons.join("; "),
        });
    }
    let read_names = read
        .iter()
        .map(|file| file.display().to_string())
        .collect::<Vec<_>>()
        .join(" + ");
    let mut readings: Vec<EnvoyReading> = proxies
        .into_iter()
        .map(|(source, config)| EnvoyReading {
            source: format!("saved {source}"),
            config: Some(config),
            ..EnvoyReading::default()
        })
        .collect();
    if config.is_some() || stats.is_some() || readings.is_empty() {
        readings.insert(
            0,
            EnvoyReading {
                source: format!("saved {read_names}"),
                config,
                stats: stats.map(|(stats, _)| stats),
                gaps,
                ..EnvoyReading::default()
            },
        );
    } else if let Some(first) = readings.first_mut() {
        first.gaps = gaps;
    }
    Ok(readings)
}

fn read_file(file: &Path) -> Result<Content, DumpError> {
    let path = file.display().to_string();
    let text = std::fs::read_to_string(file).map_err(|error| DumpError::Read {
        path: path.clone(),
        reason: error.to_string(),
    })?;
    if text.trim().is_empty() {
        return Err(DumpError::EmptyFile { path });
    }
    let trimmed = text.trim_start();
    let stats_json = trimmed
        .strip_prefix('{')
        .is_some_and(|rest| rest.trim_start().starts_with("\"stats\""));
    if stats_json {
        return Stats::parse_json(&text)
            .map(Content::Stats)
            .map_err(|source| DumpError::Stats { path, source });
    }
    let yaml = file
        .extension()
        .is_some_and(|extension| extension == "yaml" || extension == "yml");
    if trimmed.starts_with('{') || trimmed.starts_with('[') || yaml {
        return config_dump::parse_proxies(&text)
            .map(Content::Configs)
            .map_err(|source| DumpError::ConfigDump { path, source });
    }
    match Stats::parse_text(&text) {
        Ok(stats) => Ok(Content::Stats(stats)),
        // Not /stats text: a config_dump saved as YAML under another name, or neither.
        Err(stats_error) => config_dump::parse_proxies(&text)
            .map(Content::Configs)
            .map_err(|_| DumpError::Stats {
                path,
                source: stats_error,
            }),
    }
}

/// Adds the resources of `other` (another capture of the same Envoy, e.g. istioctl's separate
/// cluster, listener and route lists) to `into`.
fn merge(into: &mut EffectiveConfig, other: EffectiveConfig) {
    if into.node.is_none() {
        into.node = other.node;
    }
    if into.stats_inclusion.is_none() {
        into.stats_inclusion = other.stats_inclusion;
    }
    into.listeners.extend(other.listeners);
    into.route_configs.extend(other.route_configs);
    into.clusters.extend(other.clusters);
    into.rejected.extend(other.rejected);
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLUSTERS: &str = r#"[{"name":"outbound|8000||vllm.inference.svc.cluster.local","type":"EDS","connect_timeout":"10s"}]"#;
    const ROUTES: &str = r#"[{"name":"8000","virtual_hosts":[{"name":"vllm:8000","domains":["*"],
        "routes":[{"match":{"prefix":"/"},"route":{"cluster":"outbound|8000||vllm.inference.svc.cluster.local","timeout":"15s"}}]}]}]"#;
    const DUMP: &str = r#"{"configs":[{"@type":"type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
        "static_clusters":[{"cluster":{"name":"inbound|8000||","connect_timeout":"10s"}}]}]}"#;

    #[test]
    fn names_drop_what_the_file_holds() {
        assert_eq!(envoy_name("gw.json"), "gw");
        assert_eq!(envoy_name("gw.stats.txt"), "gw");
        assert_eq!(envoy_name("GW-Stats.txt"), "gw");
        assert_eq!(envoy_name("gw_config_dump.json"), "gw");
        assert_eq!(envoy_name("gw-clusters.json"), "gw");
        assert_eq!(envoy_name("config_dump.json"), "");
        assert_eq!(envoy_name("stats.txt"), "");
        assert_eq!(envoy_name("vllm-0.json"), "vllm-0");
        assert_eq!(envoy_name("mystats.txt"), "mystats");
    }

    #[test]
    fn a_folder_gives_one_reading_per_envoy_with_lists_merged() {
        let dir = tempfile::TempDir::new().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write("gw-clusters.json", CLUSTERS);
        write("gw-routes.json", ROUTES);
        write(
            "gw.stats.txt",
            "cluster.outbound|8000||vllm.inference.svc.cluster.local.upstream_rq_timeout: 4\n",
        );
        write("vllm.json", DUMP);
        write("notes.md", "not read");
        let readings = read_dumps(&[dir.path().to_path_buf()]).unwrap();
        assert_eq!(readings.len(), 2);
        let gw = &readings[0];
        assert!(gw.source.contains("gw-clusters.json"), "{}", gw.source);
        assert!(gw.source.contains("gw.stats.txt"), "{}", gw.source);
        let config = gw.config.as_ref().unwrap();
        assert_eq!(config.clusters.len(), 1);
        assert_eq!(config.route_configs.len(), 1);
        let evidence = gw.evidence("vllm.inference.svc.cluster.local", 8000);
        assert_eq!(
            evidence
                .config
                .routes()
                .next()
                .unwrap()
                .route
                .timeout
                .value
                .text,
            "15s"
        );
        assert_eq!(
            evidence.counters.unwrap().value(
                "cluster.outbound|8000||vllm.inference.svc.cluster.local.upstream_rq_timeout"
            ),
            Some(4)
        );
        assert!(readings[1].stats.is_none());
        assert_eq!(
            readings[1].role("vllm.inference.svc.cluster.local", 8000),
            crate::evidence::envoy::role::EnvoyRole::Server
        );
    }

    #[test]
    fn bad_captures_are_one_line_errors_naming_the_file() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("gw.json");
        std::fs::write(&path, "<html>").unwrap();
        let error = read_dumps(std::slice::from_ref(&path)).unwrap_err();
        assert!(error.to_string().contains("gw.json"), "{error}");

        std::fs::write(&path, "{\"configs\": []}").unwrap();
        let stats = dir.path().join("gw.stats.txt");
        std::fs::write(&stats, "server.live: 1\n").unwrap();
        let other = dir.path().join("gw-stats.txt");
        std::fs::write(&other, "server.live: 1\n").unwrap();
        let error = read_dumps(&[path.clone(), stats.clone(), other]).unwrap_err();
        assert!(matches!(error, DumpError::TwoStats { .. }), "{error}");

        // /stats alone is read: its counters are judged, its configuration marked not read.
        let readings = read_dumps(std::slice::from_ref(&stats)).unwrap();
        assert_eq!(readings.len(), 1);
        assert!(readings[0].config.is_none() && readings[0].stats.is_some());
        assert!(readings[0].is_judgeable() && !readings[0].is_readable());

        let empty = tempfile::TempDir::new().unwrap();
        let error = read_dumps(&[empty.path().to_path_buf()]).unwrap_err();
        assert!(matches!(error, DumpError::Empty { .. }), "{error}");
        let error = read_dumps(&[dir.path().join("missing.json")]).unwrap_err();
        assert!(error.to_string().contains("missing.json"), "{error}");
    }

    #[test]
    fn an_empty_file_says_so_in_one_line() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("gw.json");
        std::fs::write(&path, "").unwrap();
        let error = read_dumps(std::slice::from_ref(&path)).unwrap_err();
        let text = error.to_string();
        assert!(matches!(error, DumpError::EmptyFile { .. }), "{text}");
        assert!(text.contains("gw.json is empty"), "{text}");
        assert!(!text.contains('\n'), "{text}");
        std::fs::write(&path, "  \n\n").unwrap();
        assert!(matches!(
            read_dumps(std::slice::from_ref(&path)).unwrap_err(),
            DumpError::EmptyFile { .. }
        ));
    }

    #[test]
    fn among_several_inputs_a_bad_one_is_a_gap_and_the_rest_is_read() {
        let dir = tempfile::TempDir::new().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write("gw.json", CLUSTERS);
        write("vllm.json", "");
        write("other.json", "<html>");
        let readings = read_dumps(&[dir.path().to_path_buf()]).unwrap();
        assert_eq!(readings.len(), 3, "{readings:?}");
        let readable: Vec<_> = readings.iter().filter(|r| r.is_readable()).collect();
        assert_eq!(readable.len(), 1);
        assert!(readable[0].source.contains("gw.json"));
        let gaps: Vec<String> = readings
            .iter()
            .flat_map(|reading| reading.gaps.iter())
            .map(|gap| format!("{}: {}", gap.what, gap.reason))
            .collect();
        assert!(
            gaps.iter().any(|gap| gap.contains("vllm.json is empty")),
            "{gaps:?}"
        );
        assert!(
            gaps.iter().any(|gap| gap.contains("other.json")),
            "{gaps:?}"
        );
        // Within one Envoy's files too: the config is read, the bad stats file is a gap.
        write("gw.stats.txt", "not stats at all");
        let readings =
            read_dumps(&[dir.path().join("gw.json"), dir.path().join("gw.stats.txt")]).unwrap();
        assert_eq!(readings.len(), 1);
        assert!(readings[0].is_readable());
        assert_eq!(readings[0].gaps.len(), 1, "{:?}", readings[0].gaps);
    }

    #[test]
    fn yaml_and_egctl_captures_are_read_like_json() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("gw.yaml");
        std::fs::write(
            &path,
            "default:\n  eg-1:\n    '@type': type.googleapis.com/envoy.admin.v3.ClustersConfigDump\n    dynamicActiveClusters:\n    - cluster:\n        name: httproute/default/vllm/rule/0\n        connectTimeout: 10s\n  eg-2:\n    '@type': type.googleapis.com/envoy.admin.v3.ClustersConfigDump\n    staticClusters:\n    - cluster: {name: x}\n",
        )
        .unwrap();
        let readings = read_dumps(std::slice::from_ref(&path)).unwrap();
        assert_eq!(readings.len(), 2, "{readings:?}");
        assert!(
            readings[0].source.contains("default/eg-1"),
            "{}",
            readings[0].source
        );
        let cluster = &readings[0].config.as_ref().unwrap().clusters[0];
        assert_eq!(cluster.name, "httproute/default/vllm/rule/0");
        assert_eq!(cluster.connect_timeout.value.text, "10s");
        assert!(!cluster.connect_timeout.is_default());
    }
}
