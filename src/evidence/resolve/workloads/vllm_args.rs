//! A container's command line as vLLM sees it: Kubernetes `$(VAR)` expansion, shell scripts
//! (`sh -c "…"`) split into words, the vLLM invocation found, and the flags the checks read.

use k8s_openapi::api::core::v1::Container;
use std::collections::BTreeMap;

/// vLLM's port when `--port` is not given.
pub const VLLM_DEFAULT_PORT: u16 = 8000;

/// How the container starts vLLM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invocation {
    /// `vllm serve [MODEL] …`
    Serve,
    /// `python -m vllm.entrypoints.openai.api_server …`
    ApiServer,
}

impl Invocation {
    pub fn describe(self) -> &'static str {
        match self {
            Invocation::Serve => "command vllm serve",
            Invocation::ApiServer => "command python -m vllm.entrypoints.openai.api_server",
        }
    }
}

/// The vLLM flags the checks need, as written (absent stays absent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VllmArgs {
    pub invocation: Option<Invocation>,
    pub port: Option<u16>,
    pub max_num_seqs: Option<u32>,
    pub max_model_len: Option<u64>,
    pub served_model_name: Option<String>,
    pub model: Option<String>,
}

/// The words a container runs: `command` then `args`, `$(VAR)` expanded from literal env values,
/// shell scripts split into words (shell operators kept as their own words).
pub fn container_words(container: &Container) -> Vec<String> {
    let env: BTreeMap<&str, &str> = container
        .env
        .iter()
        .flatten()
        .filter_map(|var| Some((var.name.as_str(), var.value.as_deref()?)))
        .collect();
    let lookup = |name: &str| env.get(name).map(|value| value.to_string());
    let raw: Vec<String> = container
        .command
        .iter()
        .flatten()
        .chain(container.args.iter().flatten())
        .map(|word| expand_kubernetes_vars(word, &lookup))
        .collect();
    let runs_shell = raw.first().is_some_and(|first| is_shell(first));
    let mut words = Vec::new();
    for (index, word) in raw.into_iter().enumerate() {
        let script = (runs_shell && index > 0 && !word.starts_with('-'))
            || (word.contains(char::is_whitespace) && word.contains("vllm"));
        if script {
            words.extend(shell_words(&word, &lookup));
        } else {
            words.push(word);
        }
    }
    words
}

fn is_shell(word: &str) -> bool {
    let name = word.rsplit('/').next().unwrap_or(word);
    matches!(name, "sh" | "bash" | "ash" | "dash" | "zsh")
}

/// Kubernetes' `$(VAR)` in command/args (`$$(VAR)` is a literal `$(VAR)`); unknown names stay.
fn expand_kubernetes_vars(word: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::new();
    let mut rest = word;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(escaped) = tail.strip_prefix("$$(") {
            out.push_str("$(");
            rest = escaped;
        } else if let Some((name, after)) = tail
            .strip_prefix("$(")
            .and_then(|inner| inner.split_once(')'))
        {
            match lookup(name) {
                Some(value) => out.push_str(&value),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = after;
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

/// Shell operators that end one command: parsing a vLLM command line stops there.
const SEPARATORS: [&str; 5] = [";", "&&", "||", "|", "&"];

/// Splits a shell script into words the way `sh` would for simple commands: quotes, backslash
/// escapes and line continuations, `$VAR`/`${VAR}` from the container's env, comments; `;`, `&&`,
/// `||`, `|`, `&` and newlines become separator words.
pub fn shell_words(script: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    let chars: Vec<char> = script.chars().collect();
    let mut words = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut i = 0;
    let flush = |words: &mut Vec<String>, current: &mut String, in_word: &mut bool| {
        if *in_word {
            words.push(std::mem::take(current));
            *in_word = false;
        }
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' => {
                match chars.get(i + 1) {
                    Some('\n') => {}
                    Some(&next) => {
                        current.push(next);
                        in_word = true;
                    }
                    None => {}
                }
                i += 2;
            }
            '\'' => {
                in_word = true;
                i += 1;
                while i < chars.len() && chars[i] != '\'' {
                    current.push(chars[i]);
                    i += 1;
                }
                i += 1;
            }
            '"' => {
                in_word = true;
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\' && matches!(chars.get(i + 1), Some('"' | '\\' | '$')) {
                        current.push(chars[i + 1]);
                        i += 2;
                    } else if chars[i] == '$' {
                        i = expand_shell_var(&chars, i, &mut current, lookup);
                    } else {
                        current.push(chars[i]);
                        i += 1;
                    }
                }
                i += 1;
            }
            '$' => {
                in_word = true;
                i = expand_shell_var(&chars, i, &mut current, lookup);
            }
            '#' if !in_word => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '\n' => {
                flush(&mut words, &mut current, &mut in_word);
                words.push(";".to_string());
                i += 1;
            }
            ';' | '&' | '|' => {
                flush(&mut words, &mut current, &mut in_word);
                let doubled = chars.get(i + 1) == Some(&c) && c != ';';
                let operator: String = if doubled {
                    [c, c].iter().collect()
                } else {
                    c.to_string()
                };
                words.push(operator);
                i += if doubled { 2 } else { 1 };
            }
            c if c.is_whitespace() => {
                flush(&mut words, &mut current, &mut in_word);
                i += 1;
            }
            c => {
                current.push(c);
                in_word = true;
                i += 1;
            }
        }
    }
    flush(&mut words, &mut current, &mut in_word);
    words
}

/// Expands `$NAME` or `${NAME}` at `chars[start]`; unknown names are kept as written. Returns the
/// index after the reference.
fn expand_shell_var(
    chars: &[char],
    start: usize,
    out: &mut String,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> usize {
    let is_name = |c: &char| c.is_ascii_alphanumeric() || *c == '_';
    let (name, end) = if chars.get(start + 1) == Some(&'{') {
        match chars[start + 2..].iter().position(|c| *c == '}') {
            Some(length) => (
                chars[start + 2..start + 2 + length]
                    .iter()
                    .collect::<String>(),
                start + 3 + length,
            ),
            None => (String::new(), start + 1),
        }
    } else {
        let length = chars[start + 1..].iter().take_while(|c| is_name(c)).count();
        (
            chars[start + 1..start + 1 + length]
                .iter()
                .collect::<String>(),
            start + 1 + length,
        )
    };
    match (!name.is_empty()).then(|| lookup(&name)).flatten() {
        Some(value) => out.push_str(&value),
        None => out.extend(&chars[start..end]),
    }
    end
}

/// Finds the vLLM invocation in `words` and reads its flags. When no invocation is found but the
/// image runs vLLM as its entrypoint (`image_runs_vllm`), all words are read as vLLM's arguments.
pub fn parse(words: &[String], image_runs_vllm: bool) -> VllmArgs {
    let mut start = 0;
    while start < words.len() {
        let end = words[start..]
            .iter()
            .position(|word| SEPARATORS.contains(&word.as_str()))
            .map_or(words.len(), |offset| start + offset);
        if let Some((invocation, flags_from)) = find_invocation(&words[start..end]) {
            let mut args = read_flags(&words[start + flags_from..end], invocation);
            args.invocation = Some(invocation);
            return args;
        }
        start = end + 1;
    }
    if image_runs_vllm {
        // The image's entrypoint is `vllm serve` (newer) or the api_server module (older): a
        // leading positional word is the model.
        return read_flags(words, Invocation::Serve);
    }
    VllmArgs::default()
}

/// The invocation in one simple command, and where its arguments start.
fn find_invocation(words: &[String]) -> Option<(Invocation, usize)> {
    words.windows(2).enumerate().find_map(|(index, pair)| {
        let program = pair[0].rsplit('/').next().unwrap_or(&pair[0]);
        if program == "vllm" && pair[1] == "serve" {
            Some((Invocation::Serve, index + 2))
        } else if pair[0] == "-m" && pair[1] == "vllm.entrypoints.openai.api_server" {
            Some((Invocation::ApiServer, index + 2))
        } else {
            None
        }
    })
}

fn read_flags(words: &[String], invocation: Invocation) -> VllmArgs {
    let mut args = VllmArgs::default();
    let mut i = 0;
    while i < words.len() {
        let word = &words[i];
        i += 1;
        let Some(flag) = word.strip_prefix("--") else {
            if i == 1 && invocation == Invocation::Serve && !word.starts_with('-') {
                args.model = Some(word.clone());
            }
            continue;
        };
        let (name, inline) = match flag.split_once('=') {
            Some((name, value)) => (name, Some(value.to_string())),
            None => (flag, None),
        };
        // vLLM's parser accepts `--max_num_seqs` for `--max-num-seqs`.
        let name = name.replace('_', "-");
        if !matches!(
            name.as_str(),
            "port" | "max-num-seqs" | "max-model-len" | "served-model-name" | "model"
        ) {
            continue;
        }
        let value = match inline {
            Some(value) => value,
            None => match words.get(i) {
                Some(next) if !next.starts_with("--") => {
                    i += 1;
                    next.clone()
                }
                _ => continue,
            },
        };
        match name.as_str() {
            "port" => args.port = parsed(&name, &value, value.parse().ok()),
            "max-num-seqs" => args.max_num_seqs = parsed(&name, &value, value.parse().ok()),
            "max-model-len" => {
                args.max_model_len = parsed(&name, &value, human_readable_int(&value))
            }
            "served-model-name" => args.served_model_name = Some(value),
            _ => args.model = Some(value),
        }
    }
    args
}

fn parsed<T>(name: &str, value: &str, result: Option<T>) -> Option<T> {
    if result.is_none() {
        tracing::debug!(
            flag = name,
            value,
            "vLLM flag value not understood; ignored"
        );
    }
    result
}

/// vLLM's `human_readable_int`: `4096`, `32k` (×1000, decimals allowed: `25.6k`), `32K` (×1024,
/// integers only), likewise m/M, g/G, t/T. `auto` and `-1` (fit to memory) give None.
pub fn human_readable_int(text: &str) -> Option<u64> {
    let text = text.trim();
    if let Ok(value) = text.parse::<u64>() {
        return Some(value);
    }
    let suffix = text.chars().last()?;
    let number = &text[..text.len() - suffix.len_utf8()];
    let decimal = match suffix {
        'k' => Some(1e3),
        'm' => Some(1e6),
        'g' => Some(1e9),
        't' => Some(1e12),
        _ => None,
    };
    if let Some(multiplier) = decimal {
        if !number.chars().all(|c| c.is_ascii_digit() || c == '.') {
            return None;
        }
        let value: f64 = number.parse().ok()?;
        let product = value * multiplier;
        return (product.is_finite() && product < u64::MAX as f64).then_some(product as u64);
    }
    let shift = match suffix {
        'K' => 10,
        'M' => 20,
        'G' => 30,
        'T' => 40,
        _ => return None,
    };
    number.parse::<u64>().ok()?.checked_mul(1u64 << shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(items: &[&str]) -> Vec<String> {
        items.iter().map(|word| word.to_string()).collect()
    }

    fn container(yaml: &str) -> Container {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn vllm_serve_with_positional_model_and_both_flag_forms() {
        let args = parse(
            &words(&[
                "vllm",
                "serve",
                "meta-llama/Llama-3.1-8B-Instruct",
                "--port",
                "8080",
                "--max-num-seqs=64",
                "--max-model-len",
                "32k",
                "--served-model-name",
                "llama",
                "--enable-prefix-caching",
            ]),
            false,
        );
        assert_eq!(args.invocation, Some(Invocation::Serve));
        assert_eq!(
            args.model.as_deref(),
            Some("meta-llama/Llama-3.1-8B-Instruct")
        );
        assert_eq!(args.port, Some(8080));
        assert_eq!(args.max_num_seqs, Some(64));
        assert_eq!(args.max_model_len, Some(32_000));
        assert_eq!(args.served_model_name.as_deref(), Some("llama"));
    }

    #[test]
    fn python_module_form_with_model_flag_and_underscores() {
        let args = parse(
            &words(&[
                "python3",
                "-m",
                "vllm.entrypoints.openai.api_server",
                "--model=Qwen/Qwen2.5-7B",
                "--max_num_seqs",
                "128",
                "--max-model-len=1M",
            ]),
            false,
        );
        assert_eq!(args.invocation, Some(Invocation::ApiServer));
        assert_eq!(args.model.as_deref(), Some("Qwen/Qwen2.5-7B"));
        assert_eq!(args.port, None);
        assert_eq!(args.max_num_seqs, Some(128));
        assert_eq!(args.max_model_len, Some(1 << 20));
    }

    #[test]
    fn image_entrypoint_reads_bare_args() {
        let args = parse(&words(&["--model", "m", "--port", "9000"]), true);
        assert_eq!(args.invocation, None);
        assert_eq!(args.model.as_deref(), Some("m"));
        assert_eq!(args.port, Some(9000));
        assert_eq!(
            parse(&words(&["--port", "9000"]), false),
            VllmArgs::default()
        );
    }

    #[test]
    fn shell_script_in_sh_dash_c() {
        let c = container(
            r#"
name: server
image: python:3.12
command: ["/bin/sh", "-c"]
args:
  - |
    pip install vllm && \
    exec vllm serve "$MODEL" \
      --port ${PORT} --max-num-seqs=32 # tuned for A10
    echo done --port 1
env:
  - {name: MODEL, value: "mistralai/Mistral-7B"}
  - {name: PORT, value: "8081"}
"#,
        );
        let args = parse(&container_words(&c), false);
        assert_eq!(args.invocation, Some(Invocation::Serve));
        assert_eq!(args.model.as_deref(), Some("mistralai/Mistral-7B"));
        assert_eq!(args.port, Some(8081));
        assert_eq!(args.max_num_seqs, Some(32));
    }

    #[test]
    fn kubernetes_var_expansion_and_escape() {
        let c = container(
            r#"
name: server
image: vllm/vllm-openai:v0.8.5
args: ["--max-num-seqs=$(SEQS)", "--served-model-name", "$$(LITERAL)", "--port", "$(UNKNOWN)"]
env: [{name: SEQS, value: "48"}]
"#,
        );
        let all = container_words(&c);
        assert_eq!(all[0], "--max-num-seqs=48");
        assert_eq!(all[2], "$(LITERAL)");
        let args = parse(&all, true);
        assert_eq!(args.max_num_seqs, Some(48));
        // An unknown variable leaves a value that is not a port: ignored, the default applies.
        assert_eq!(args.port, None);
    }

    #[test]
    fn single_string_command_is_split() {
        let c = container(
            r#"
name: server
image: ghcr.io/acme/llm:1
command: ["vllm serve facebook/opt-125m --port 7000"]
"#,
        );
        let args = parse(&container_words(&c), false);
        assert_eq!(args.invocation, Some(Invocation::Serve));
        assert_eq!(args.port, Some(7000));
    }

    #[test]
    fn shell_words_quotes_operators_and_continuations() {
        let none = |_: &str| None;
        assert_eq!(
            shell_words("a 'b c' \"d \\\"e\\\"\" f\\ g && h;i|j\\\nk", &none),
            words(&["a", "b c", "d \"e\"", "f g", "&&", "h", ";", "i", "|", "jk"])
        );
        assert_eq!(
            shell_words("x $UNSET ${ALSO}", &none),
            words(&["x", "$UNSET", "${ALSO}"])
        );
    }

    #[test]
    fn human_readable_ints_as_vllm_reads_them() {
        assert_eq!(human_readable_int("4096"), Some(4096));
        assert_eq!(human_readable_int("1k"), Some(1000));
        assert_eq!(human_readable_int("1K"), Some(1024));
        assert_eq!(human_readable_int("25.6k"), Some(25_600));
        assert_eq!(human_readable_int("128K"), Some(131_072));
        assert_eq!(human_readable_int("1m"), Some(1_000_000));
        assert_eq!(human_readable_int("1M"), Some(1_048_576));
        assert_eq!(human_readable_int("1.5K"), None);
        assert_eq!(human_readable_int("auto"), None);
        assert_eq!(human_readable_int("-1"), None);
        assert_eq!(human_readable_int(""), None);
    }
}
