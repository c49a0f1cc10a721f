//! The import rule of `src/lib.rs` and `docs/architecture.md`: every path a module names
//! (`use` lines and paths in code, `crate::…` and `super::…` alike) stays in its own stage or goes
//! down to one below it. Test code (`#[cfg(test)]` items, and files declared by a `#[cfg(test)]
//! mod`) may set up from any stage and is not judged.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Each stage and the stages it may import, its own included.
const RULE: &[(&str, &[&str])] = &[
    ("units", &["units"]),
    ("evidence", &["evidence", "units"]),
    ("sources", &["sources", "evidence", "units"]),
    ("checks", &["checks", "evidence", "units"]),
    ("verdict", &["verdict", "checks", "evidence", "units"]),
    (
        "report",
        &["report", "verdict", "checks", "evidence", "units"],
    ),
    ("lab", &["lab", "sources", "evidence", "units"]),
    (
        "cli",
        &[
            "cli", "report", "verdict", "checks", "sources", "evidence", "units",
        ],
    ),
    (
        "app",
        &[
            "app", "cli", "report", "verdict", "checks", "sources", "evidence", "units", "lab",
        ],
    ),
];

/// The evidence vocabulary (everything in `evidence/` but `resolve/`) never reaches into the
/// resolution that fills it.
const VOCABULARY_MUST_NOT_NAME: &str = "evidence::resolve";

#[derive(Debug, PartialEq, Eq)]
struct Violation {
    file: String,
    line: usize,
    names: String,
    why: String,
}

#[test]
fn every_import_goes_down_the_pipeline() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = rust_files(&src);
    let test_only = test_only_files(&src, &files);
    let mut violations = Vec::new();
    let mut judged_files = 0;
    let mut judged_paths = 0;
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap().to_path_buf();
        if test_only.iter().any(|exempt| file.starts_with(exempt)) {
            continue;
        }
        let Some(module) = module_path(&relative) else {
            continue;
        };
        let text = fs::read_to_string(file).unwrap();
        let code = product_code(&text);
        let paths = named_paths(&code, &module);
        judged_files += 1;
        judged_paths += paths.len();
        violations.extend(judge(&relative.display().to_string(), &module, &paths));
    }
    assert!(
        judged_files > 100 && judged_paths > 500,
        "the rule read only {judged_files} files and {judged_paths} paths: is src/ where it was?"
    );
    let report: Vec<String> = violations
        .iter()
        .map(|v| format!("src/{}:{}: names {} ({})", v.file, v.line, v.names, v.why))
        .collect();
    assert!(
        report.is_empty(),
        "imports that break the layer rule (src/lib.rs, docs/architecture.md):\n{}",
        report.join("\n")
    );
}

#[test]
fn every_top_level_module_has_a_stage() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let stages: BTreeSet<&str> = RULE.iter().map(|(stage, _)| *stage).collect();
    let mut unplaced = Vec::new();
    for entry in fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        if name == "lib" || name == "main" {
            continue;
        }
        if !stages.contains(name.as_str()) {
            unplaced.push(name);
        }
    }
    assert!(
        unplaced.is_empty(),
        "src/ holds modules with no stage in the layer rule: {unplaced:?}; move them into a stage \
         or give them one in tests/layers.rs, src/lib.rs and docs/architecture.md"
    );
}

#[test]
fn the_rule_catches_what_it_should() {
    let module = |path: &str| module_path(Path::new(path)).unwrap();
    let source = "use crate::checks::CheckId;\nuse super::summary::PathKind;\nfn f() { crate::units::duration::parse(\"crate::report\"); }\n// crate::verdict in a comment\n#[cfg(test)]\nmod tests {\n    use crate::verdict::diagnose;\n}\n";
    let probe = module("sources/probe/run.rs");
    let paths = named_paths(&product_code(source), &probe);
    let violations = judge("sources/probe/run.rs", &probe, &paths);
    assert_eq!(
        violations,
        vec![Violation {
            file: "sources/probe/run.rs".to_string(),
            line: 1,
            names: "crate::checks::CheckId".to_string(),
            why: "sources may import only sources, evidence, units".to_string(),
        }]
    );
    // `super` climbs out of a stage: from verdict/mod.rs, `super::report` is the report stage.
    let verdict = module("verdict/mod.rs");
    let paths = named_paths(&product_code("use super::report::render;\n"), &verdict);
    assert_eq!(judge("verdict/mod.rs", &verdict, &paths).len(), 1);
    // Grouped imports are read name by name.
    let checks = module("checks/mod.rs");
    let paths = named_paths(
        &product_code("use crate::{evidence::Gap, sources::envoy::stats::Stats};\n"),
        &checks,
    );
    let names: Vec<String> = judge("checks/mod.rs", &checks, &paths)
        .into_iter()
        .map(|v| v.names)
        .collect();
    assert_eq!(names, vec!["crate::sources::envoy::stats::Stats"]);
    // The vocabulary never names its resolution.
    let vocabulary = module("evidence/probe/mod.rs");
    let paths = named_paths(
        &product_code("use crate::evidence::resolve::Scope;\n"),
        &vocabulary,
    );
    assert_eq!(judge("evidence/probe/mod.rs", &vocabulary, &paths).len(), 1);
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).expect("src/ is readable") {
            let path = entry.expect("src/ is readable").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// `evidence/probe/mod.rs` -> `["evidence", "probe"]`; `None` for the crate roots.
fn module_path(relative: &Path) -> Option<Vec<String>> {
    let mut segments: Vec<String> = relative
        .iter()
        .map(|part| part.to_string_lossy().to_string())
        .collect();
    let last = segments.pop()?;
    let stem = last.strip_suffix(".rs")?;
    if segments.is_empty() && (stem == "lib" || stem == "main") {
        return None;
    }
    if stem != "mod" {
        segments.push(stem.to_string());
    }
    Some(segments)
}

/// Files (and folders) that only a `#[cfg(test)] mod NAME;` declares.
fn test_only_files(src: &Path, files: &[PathBuf]) -> Vec<PathBuf> {
    let mut exempt = Vec::new();
    for file in files {
        let text = fs::read_to_string(file).expect("source files are readable");
        let code = strip_comments_and_strings(&text);
        let dir = if file
            .file_name()
            .is_some_and(|name| name == "mod.rs" || name == "lib.rs")
        {
            file.parent().expect("a file has a folder").to_path_buf()
        } else {
            file.with_extension("")
        };
        let mut rest = code.as_str();
        while let Some(at) = rest.find("#[cfg(test)]") {
            rest = &rest[at + "#[cfg(test)]".len()..];
            let item = rest.trim_start();
            let item = item.strip_prefix("pub(crate) ").unwrap_or(item);
            if let Some(declared) = item.strip_prefix("mod ") {
                let name: String = declared
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if declared[name.len()..].trim_start().starts_with(';') {
                    exempt.push(dir.join(format!("{name}.rs")));
                    exempt.push(dir.join(&name));
                }
            }
        }
    }
    exempt.retain(|path| path.starts_with(src));
    exempt
}

/// The code with comments, string and char literals blanked (line breaks kept) and every
/// `#[cfg(test)]` item removed.
fn product_code(text: &str) -> String {
    let code = strip_comments_and_strings(text);
    let mut out = String::with_capacity(code.len());
    let mut rest = code.as_str();
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let item = &rest[at..];
        let end = item_end(item);
        out.extend(item[..end].chars().filter(|c| *c == '\n'));
        rest = &item[end..];
    }
    out.push_str(rest);
    out
}

/// Where the item starting at `item` ends: its first `;` or the `}` that closes its first `{`.
fn item_end(item: &str) -> usize {
    let after_attribute = item.find(']').map_or(0, |at| at + 1);
    let mut depth = 0usize;
    for (offset, c) in item[after_attribute..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return after_attribute + offset + 1;
                }
            }
            ';' if depth == 0 => return after_attribute + offset + 1,
            _ => {}
        }
    }
    item.len()
}

fn strip_comments_and_strings(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let keep_lines = |slice: &[char], out: &mut String| {
        out.extend(slice.iter().filter(|c| **c == '\n'));
    };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let start = i;
            i += 2;
            while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                i += 1;
            }
            i = (i + 2).min(chars.len());
            keep_lines(&chars[start..i], &mut out);
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && !chars[..i]
                .last()
                .is_some_and(|p| p.is_alphanumeric() || *p == '_')
        {
            let mut hashes = 0;
            let mut j = i + 1;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            let start = i;
            j += 1;
            loop {
                if j >= chars.len() {
                    break;
                }
                if chars[j] == '"' && (0..hashes).all(|k| chars.get(j + 1 + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            keep_lines(&chars[start..j.min(chars.len())], &mut out);
            out.push_str("\"\"");
            i = j;
        } else if c == '"' {
            let start = i;
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i = (i + 1).min(chars.len());
            keep_lines(&chars[start..i], &mut out);
            out.push_str("\"\"");
        } else if c == '\'' {
            // A char literal ('x', '\n', '\''), else a lifetime.
            if next == Some('\\') {
                let mut j = i + 2;
                while j < chars.len() && chars[j] != '\'' {
                    j += 1;
                }
                i = j + 1;
                out.push_str("' '");
            } else if chars.get(i + 2) == Some(&'\'') {
                i += 3;
                out.push_str("' '");
            } else {
                out.push(c);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Every `crate::…` and `super::…` path in `code`, made absolute, with its line.
fn named_paths(code: &str, module: &[String]) -> Vec<(usize, Vec<String>)> {
    let mut paths = Vec::new();
    let mut at = 0;
    while let Some((found, word)) = next_root(&code[at..]) {
        let start = at + found;
        let preceded_by_path = code[..start].ends_with("::")
            || code[..start]
                .chars()
                .last()
                .is_some_and(|c| c.is_alphanumeric() || c == '_');
        if preceded_by_path {
            at = start + word.len();
            continue;
        }
        let (segments, used) = read_path(&code[start..]);
        at = start + used.max(word.len());
        let line = code[..start].matches('\n').count() + 1;
        for segments in expand_groups(&segments) {
            if let Some(absolute) = absolute(&segments, module) {
                paths.push((line, absolute));
            }
        }
    }
    paths
}

fn next_root(text: &str) -> Option<(usize, &'static str)> {
    let crate_at = text.find("crate::").map(|at| (at, "crate"));
    let super_at = text.find("super::").map(|at| (at, "super"));
    match (crate_at, super_at) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// Reads `crate::a::b::{c, d::e}` from the start of `text`: the segments (a group stays one
/// segment `{…}`) and the bytes read.
fn read_path(text: &str) -> (Vec<String>, usize) {
    let mut segments = Vec::new();
    let mut at = 0;
    loop {
        let rest = &text[at..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut end = group.len();
            for (offset, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = offset;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            segments.push(format!("{{{}}}", &group[..end]));
            at += 1 + (end + 1).min(group.len());
            break;
        }
        let word: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if word.is_empty() {
            break;
        }
        at += word.len();
        segments.push(word);
        if text[at..].starts_with("::") {
            at += 2;
        } else {
            break;
        }
    }
    (segments, at)
}

/// `crate::{a::X, b}` -> `crate::a::X`, `crate::b`.
fn expand_groups(segments: &[String]) -> Vec<Vec<String>> {
    let Some(last) = segments.last() else {
        return Vec::new();
    };
    let Some(inner) = last.strip_prefix('{').and_then(|s| s.strip_suffix('}')) else {
        return vec![segments.to_vec()];
    };
    let head = &segments[..segments.len() - 1];
    let mut out = Vec::new();
    let mut depth = 0;
    let mut current = String::new();
    for c in inner.chars().chain(std::iter::once(',')) {
        match c {
            '{' => {
                depth += 1;
                current.push(c);
            }
            '}' => {
                depth -= 1;
                current.push(c);
            }
            ',' if depth == 0 => {
                let item = current.trim();
                if !item.is_empty() && item != "self" {
                    let (tail, _) = read_path(item);
                    let mut full = head.to_vec();
                    full.extend(tail);
                    out.extend(expand_groups(&full));
                }
                current.clear();
            }
            _ => current.push(c),
        }
    }
    out
}

/// The path from the crate root, or `None` when it does not leave the file's own module.
fn absolute(segments: &[String], module: &[String]) -> Option<Vec<String>> {
    let mut base: Vec<String> = Vec::new();
    let mut rest = segments;
    match segments.first().map(String::as_str) {
        Some("crate") => rest = &segments[1..],
        Some("super") => {
            base = module.to_vec();
            while rest.first().is_some_and(|s| s == "super") {
                base.pop()?;
                rest = &rest[1..];
            }
        }
        _ => return None,
    }
    base.extend(rest.iter().cloned());
    (!base.is_empty()).then_some(base)
}

fn judge(file: &str, module: &[String], paths: &[(usize, Vec<String>)]) -> Vec<Violation> {
    let rule: BTreeMap<&str, &[&str]> = RULE.iter().copied().collect();
    let stage = module[0].as_str();
    let Some(allowed) = rule.get(stage) else {
        return vec![Violation {
            file: file.to_string(),
            line: 0,
            names: stage.to_string(),
            why: "this stage is not in the layer rule".to_string(),
        }];
    };
    let in_vocabulary = stage == "evidence" && module.get(1).is_none_or(|s| s != "resolve");
    let mut violations = Vec::new();
    for (line, path) in paths {
        let target = path[0].as_str();
        let names = format!("crate::{}", path.join("::"));
        if !allowed.contains(&target) {
            violations.push(Violation {
                file: file.to_string(),
                line: *line,
                names,
                why: format!("{stage} may import only {}", allowed.join(", ")),
            });
        } else if in_vocabulary && path.join("::").starts_with(VOCABULARY_MUST_NOT_NAME) {
            violations.push(Violation {
                file: file.to_string(),
                line: *line,
                names,
                why: "the evidence vocabulary never imports the resolution that fills it"
                    .to_string(),
            });
        }
    }
    violations
}
