//! Kubernetes label selectors as `-l/--selector` takes them: `k=v`, `k==v`, `k!=v`, `k`, `!k`,
//! `k in (a,b)`, `k notin (a,b)`, joined by commas (all must hold).

use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid selector {input:?}: {problem}; expected terms like app=llm, tier!=batch, gpu, !canary, env in (prod,staging)"
)]
pub struct SelectorError {
    pub input: String,
    pub problem: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    NotExists(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

/// A parsed label selector. The empty selector matches everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelSelector {
    text: String,
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    pub fn parse(input: &str) -> Result<Self, SelectorError> {
        let error = |problem: &str| SelectorError {
            input: input.to_string(),
            problem: problem.to_string(),
        };
        let mut requirements = Vec::new();
        for term in split_terms(input).map_err(|problem| error(&problem))? {
            let term = term.trim();
            if term.is_empty() {
                if input.trim().is_empty() {
                    continue;
                }
                return Err(error("empty term"));
            }
            requirements.push(parse_term(term).map_err(|problem| error(&problem))?);
        }
        Ok(Self {
            text: input.trim().to_string(),
            requirements,
        })
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements
            .iter()
            .all(|requirement| match requirement {
                Requirement::Equals(key, value) => labels.get(key) == Some(value),
                Requirement::NotEquals(key, value) => labels.get(key) != Some(value),
                Requirement::Exists(key) => labels.contains_key(key),
                Requirement::NotExists(key) => !labels.contains_key(key),
                Requirement::In(key, values) => labels.get(key).is_some_and(|v| values.contains(v)),
                Requirement::NotIn(key, values) => {
                    !labels.get(key).is_some_and(|v| values.contains(v))
                }
            })
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Splits on commas that are not inside `( … )`.
fn split_terms(input: &str) -> Result<Vec<&str>, String> {
    let mut terms = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (index, c) in input.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.checked_sub(1).ok_or("unbalanced ')'")?,
            ',' if depth == 0 => {
                terms.push(&input[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("unbalanced '('".to_string());
    }
    terms.push(&input[start..]);
    Ok(terms)
}

fn parse_term(term: &str) -> Result<Requirement, String> {
    if let Some(open) = term.find('(') {
        let values = term[open + 1..]
            .strip_suffix(')')
            .ok_or_else(|| format!("{term:?} must end with ')'"))?;
        let values = values
            .split(',')
            .map(|value| valid_value(value.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        let mut words = term[..open].split_whitespace();
        let (Some(key), Some(operator), None) = (words.next(), words.next(), words.next()) else {
            return Err(format!(
                "{term:?} should read KEY in (A,B) or KEY notin (A,B)"
            ));
        };
        let key = valid_key(key)?;
        return match operator {
            "in" => Ok(Requirement::In(key, values)),
            "notin" => Ok(Requirement::NotIn(key, values)),
            other => Err(format!("unknown operator {other:?}")),
        };
    }
    if let Some(key) = term.strip_prefix('!') {
        return Ok(Requirement::NotExists(valid_key(key.trim())?));
    }
    if let Some((key, value)) = term.split_once("!=") {
        return Ok(Requirement::NotEquals(
            valid_key(key.trim())?,
            valid_value(value.trim())?,
        ));
    }
    if let Some((key, value)) = term.split_once("==").or_else(|| term.split_once('=')) {
        return Ok(Requirement::Equals(
            valid_key(key.trim())?,
            valid_value(value.trim())?,
        ));
    }
    Ok(Requirement::Exists(valid_key(term)?))
}

fn valid_key(key: &str) -> Result<String, String> {
    let ok = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if ok {
        Ok(key.to_string())
    } else {
        Err(format!("{key:?} is not a label key"))
    }
}

fn valid_value(value: &str) -> Result<String, String> {
    let ok = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(value.to_string())
    } else {
        Err(format!("{value:?} is not a label value"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn equality_inequality_and_existence() {
        let pod = labels(&[("app", "llm"), ("tier", "gpu")]);
        assert!(LabelSelector::parse("app=llm").unwrap().matches(&pod));
        assert!(LabelSelector::parse("app==llm,tier").unwrap().matches(&pod));
        assert!(!LabelSelector::parse("app=web").unwrap().matches(&pod));
        assert!(LabelSelector::parse("app!=web").unwrap().matches(&pod));
        assert!(!LabelSelector::parse("app!=llm").unwrap().matches(&pod));
        // `!=` also holds when the label is absent, as in Kubernetes.
        assert!(LabelSelector::parse("canary!=true").unwrap().matches(&pod));
        assert!(LabelSelector::parse("!canary").unwrap().matches(&pod));
        assert!(!LabelSelector::parse("!app").unwrap().matches(&pod));
        assert!(
            !LabelSelector::parse("app=llm,canary")
                .unwrap()
                .matches(&pod)
        );
    }

    #[test]
    fn set_based_terms() {
        let pod = labels(&[("env", "prod"), ("app", "llm")]);
        assert!(
            LabelSelector::parse("env in (prod, staging),app=llm")
                .unwrap()
                .matches(&pod)
        );
        assert!(
            !LabelSelector::parse("env notin (prod)")
                .unwrap()
                .matches(&pod)
        );
        assert!(
            LabelSelector::parse("zone notin (a,b)")
                .unwrap()
                .matches(&pod)
        );
        assert!(!LabelSelector::parse("zone in (a,b)").unwrap().matches(&pod));
    }

    #[test]
    fn empty_selector_matches_everything() {
        assert!(LabelSelector::parse("").unwrap().matches(&labels(&[])));
    }

    #[test]
    fn an_empty_value_is_legal() {
        let selector = LabelSelector::parse("app=").unwrap();
        assert!(selector.matches(&labels(&[("app", "")])));
        assert!(!selector.matches(&labels(&[("app", "llm")])));
    }

    #[test]
    fn rejects_malformed_selectors() {
        for bad in [
            "=llm",
            "env in (a",
            "a,,b",
            "env within (a)",
            "a b=c",
            "app=l m",
        ] {
            let error = LabelSelector::parse(bad).unwrap_err();
            assert!(error.to_string().contains("invalid selector"), "{error}");
        }
    }
}
