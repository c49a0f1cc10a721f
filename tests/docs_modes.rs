#![allow(clippy::unwrap_used)]
//! docs/modes/ has one page per failure mode, each with the four parts (what users see, how the
//! tool proves it, the fix, the facts with their sources), YAML that parses, every source a link
//! or a named file, and the commands it gives are ones the binary has.

use kubectl_infermesh::evidence::CheckId;
use std::path::PathBuf;

fn page(id: CheckId) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("docs/modes")
        .join(format!("{}.md", id.as_str()));
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

#[test]
fn every_failure_mode_has_its_page_with_the_four_parts() {
    for id in CheckId::ALL {
        let text = page(id);
        assert!(
            text.starts_with(&format!(
                "# Failure mode {}: `{}`",
                id.number(),
                id.as_str()
            )),
            "{id}"
        );
        for heading in [
            "## What users see",
            "## How the tool proves it",
            "## The fix",
            "## The facts it rests on",
        ] {
            assert!(text.contains(heading), "{id}: no {heading}");
        }
        // The page names an offline example (`examples/<mode>/`, or `examples/inference-pool/`
        // for the endpoint picker) and every example it names exists.
        let examples: Vec<&str> = text
            .match_indices("examples/")
            .filter_map(|(at, _)| {
                let rest = &text[at..];
                let end = rest.find('/').map(|slash| slash + 1)?;
                let name_end = rest[end..].find('/')? + end + 1;
                Some(&rest[..name_end])
            })
            .filter(|path| !path.contains(char::is_whitespace) && !path.contains('`'))
            .collect();
        assert!(!examples.is_empty(), "{id}: names no examples/ folder");
        for example in examples {
            assert!(
                PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                    .join(example)
                    .is_dir(),
                "{id}: {example} does not exist"
            );
        }
    }
}

#[test]
fn the_fix_yaml_parses_and_every_fact_has_a_source() {
    for id in CheckId::ALL {
        let text = page(id);
        let mut blocks = 0;
        for block in text.split("```yaml\n").skip(1) {
            let yaml = &block[..block.find("```").unwrap()];
            let _: serde_yaml::Value =
                serde_yaml::from_str(yaml).unwrap_or_else(|error| panic!("{id}: {error}\n{yaml}"));
            blocks += 1;
        }
        assert!(blocks >= 1, "{id}: no fix YAML");
        let facts = &text[text.find("## The facts it rests on").unwrap()..];
        let rows: Vec<&str> = facts
            .lines()
            .filter(|line| line.starts_with("| ") && !line.starts_with("| fact"))
            .collect();
        assert!(rows.len() >= 4, "{id}: {} facts", rows.len());
        for row in rows {
            let source = row.rsplit(" | ").next().unwrap();
            assert!(
                source.contains("https://") || source.contains('`'),
                "{id}: a fact without a source: {row}"
            );
        }
    }
}

#[test]
fn the_lab_modes_the_pages_name_are_the_labs() {
    let names: Vec<String> = kubectl_infermesh::lab::Scenario::ALL
        .iter()
        .map(|scenario| scenario.name().to_string())
        .collect();
    for id in CheckId::ALL {
        let text = page(id);
        for (at, _) in text.match_indices("infermesh lab ") {
            let mode = text[at + "infermesh lab ".len()..]
                .split(|c: char| !(c.is_ascii_lowercase() || c == '-'))
                .next()
                .unwrap();
            assert!(names.iter().any(|name| name == mode), "{id}: lab {mode}");
        }
    }
}
