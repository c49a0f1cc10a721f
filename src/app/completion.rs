//! Shell completion. `completion bash|zsh|fish` prints clap_complete's script for the binary.
//! `__complete WORDS…` answers kubectl's plugin completion: kubectl (1.26+) runs
//! `kubectl_complete-infermesh` from PATH with the words typed after `kubectl infermesh`, the
//! last one being the word to complete (empty for a new word), and reads cobra's format back:
//! one candidate a line (`value<TAB>description`), then `:DIRECTIVE`, cobra's
//! `ShellCompDirective` bits (kubernetes `kubectl/pkg/cmd/plugin/plugin_completion.go`,
//! spf13/cobra `completions.go`).

use crate::cli::{Cli, CompletionShell};
use clap::{Arg, ArgAction, Command, CommandFactory, ValueHint};

/// The argument that asks for completions, as cobra names its hidden command.
pub const COMPLETE_REQUEST: &str = "__complete";
/// The name the scripts complete.
const BIN_NAME: &str = "kubectl-infermesh";

/// cobra's `ShellCompDirectiveDefault`: the shell may complete file names.
const DIRECTIVE_DEFAULT: u8 = 0;
/// cobra's `ShellCompDirectiveNoFileComp`: no file names when no candidate fits.
const DIRECTIVE_NO_FILE_COMP: u8 = 4;

/// The completion script for `shell`.
pub fn script(shell: CompletionShell) -> String {
    let shell = match shell {
        CompletionShell::Bash => clap_complete::Shell::Bash,
        CompletionShell::Zsh => clap_complete::Shell::Zsh,
        CompletionShell::Fish => clap_complete::Shell::Fish,
    };
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, BIN_NAME, &mut script);
    let script = String::from_utf8_lossy(&script).into_owned();
    match shell {
        // clap_complete 4.6 names the root `kubectl__infermesh` where it tracks the words typed
        // but `kubectl__subcmd__infermesh` in the cases per subcommand (a `-` in the binary's
        // name is turned into two different separators), so no subcommand would complete.
        clap_complete::Shell::Bash => script.replace(
            &format!("{}{}", BIN_NAME.replace('-', "__subcmd__"), "__subcmd__"),
            &format!("{}{}", BIN_NAME.replace('-', "__"), "__subcmd__"),
        ),
        // Its fish script offers no values for positionals (the lab's modes): added here.
        clap_complete::Shell::Fish => script + &fish_positional_values(&command),
        _ => script,
    }
}

/// fish lines for the listed values of each subcommand's positionals.
fn fish_positional_values(root: &Command) -> String {
    let condition = format!("__fish_{}_using_subcommand", BIN_NAME.replace('-', "_"));
    let mut lines = String::new();
    for sub in root.get_subcommands() {
        for positional in sub.get_positionals() {
            for value in positional.get_possible_values() {
                let help = value.get_help().map(one_line).unwrap_or_default();
                lines.push_str(&format!(
                    "complete -c {BIN_NAME} -n \"{condition} {}\" -f -a '{}' -d '{}'\n",
                    sub.get_name(),
                    value.get_name(),
                    help.replace('\'', "\\'")
                ));
            }
        }
    }
    lines
}

/// What `__complete` prints: candidates with descriptions, and the directive.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Completions {
    pub candidates: Vec<(String, String)>,
    pub directive: u8,
}

impl Completions {
    /// cobra's output: `value\tdescription` lines, then `:DIRECTIVE`.
    pub fn render(&self) -> String {
        let mut text = String::new();
        for (value, description) in &self.candidates {
            text.push_str(value);
            if !description.is_empty() {
                text.push('\t');
                text.push_str(description);
            }
            text.push('\n');
        }
        text.push_str(&format!(":{}\n", self.directive));
        text
    }
}

/// Completes the last of `words`, the words after the plugin's name.
pub fn complete(words: &[String]) -> Completions {
    let mut root = Cli::command();
    // Propagates the global flags (-v) and adds --help to every subcommand.
    root.build();
    let (typed, current) = match words.split_last() {
        Some((last, before)) => (before, last.as_str()),
        None => (&[][..], ""),
    };
    let state = walk(&root, typed);
    let command = state.command;
    if let Some(flag) = state.pending_value {
        return values_of(flag, current, "");
    }
    if !state.only_positionals
        && let Some(rest) = current.strip_prefix("--")
        && let Some((name, value)) = rest.split_once('=')
    {
        return match long_flag(command, name) {
            Some(flag) if flag.get_action().takes_values() => {
                values_of(flag, value, &format!("--{name}="))
            }
            _ => Completions {
                directive: DIRECTIVE_NO_FILE_COMP,
                ..Completions::default()
            },
        };
    }
    if !state.only_positionals && current.starts_with('-') {
        return flags_of(command, current, &state.seen);
    }
    let mut candidates = Vec::new();
    if state.positionals == 0 {
        for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
            if sub.get_name().starts_with(current) {
                candidates.push((sub.get_name().to_string(), about(sub)));
            }
        }
    }
    if let Some(positional) = command
        .get_positionals()
        .filter(|arg| !arg.is_hide_set())
        .nth(state.positionals)
    {
        let values = values_of(positional, current, "");
        if candidates.is_empty() {
            return values;
        }
        candidates.extend(values.candidates);
    }
    Completions {
        candidates,
        directive: DIRECTIVE_NO_FILE_COMP,
    }
}

/// Where the typed words leave the command line.
struct Walked<'a> {
    command: &'a Command,
    /// A flag whose value is the word being completed.
    pending_value: Option<&'a Arg>,
    /// Positional words of `command` typed so far.
    positionals: usize,
    /// After `--`.
    only_positionals: bool,
    /// Ids of the flags given.
    seen: Vec<String>,
}

fn walk<'a>(root: &'a Command, typed: &[String]) -> Walked<'a> {
    let mut state = Walked {
        command: root,
        pending_value: None,
        positionals: 0,
        only_positionals: false,
        seen: Vec::new(),
    };
    for word in typed {
        if state.pending_value.take().is_some() {
            continue;
        }
        if state.only_positionals || word == "-" || !word.starts_with('-') {
            match state.command.find_subcommand(word) {
                Some(sub) if state.positionals == 0 && !state.only_positionals => {
                    state.command = sub;
                    state.seen.clear();
                }
                _ => state.positionals += 1,
            }
            continue;
        }
        if word == "--" {
            state.only_positionals = true;
            continue;
        }
        if let Some(rest) = word.strip_prefix("--") {
            let (name, inline) = match rest.split_once('=') {
                Some((name, _)) => (name, true),
                None => (rest, false),
            };
            if let Some(flag) = long_flag(state.command, name) {
                state.seen.push(flag.get_id().to_string());
                if flag.get_action().takes_values() && !inline {
                    state.pending_value = Some(flag);
                }
            }
            continue;
        }
        // A cluster of short flags (`-vv`, `-ojson`, `-n` VALUE).
        let shorts: Vec<char> = word.chars().skip(1).collect();
        for (index, short) in shorts.iter().enumerate() {
            let Some(flag) = state
                .command
                .get_arguments()
                .find(|arg| arg.get_short() == Some(*short))
            else {
                break;
            };
            state.seen.push(flag.get_id().to_string());
            if flag.get_action().takes_values() {
                if index + 1 == shorts.len() {
                    state.pending_value = Some(flag);
                }
                break;
            }
        }
    }
    state
}

fn long_flag<'a>(command: &'a Command, name: &str) -> Option<&'a Arg> {
    command
        .get_arguments()
        .find(|arg| arg.get_long() == Some(name))
}

/// The flags of `command` that start with `current`: long ones for `--`, short ones too for `-`;
/// one given already is not offered again unless it repeats.
fn flags_of(command: &Command, current: &str, seen: &[String]) -> Completions {
    let mut candidates = Vec::new();
    for arg in command.get_arguments() {
        if arg.is_positional() || arg.is_hide_set() {
            continue;
        }
        let repeats = matches!(arg.get_action(), ArgAction::Append | ArgAction::Count);
        if !repeats && seen.iter().any(|id| id == arg.get_id().as_str()) {
            continue;
        }
        let help = help_line(arg);
        if let Some(long) = arg.get_long() {
            let flag = format!("--{long}");
            if flag.starts_with(current) {
                candidates.push((flag, help.clone()));
            }
        }
        if let Some(short) = arg.get_short()
            && !current.starts_with("--")
        {
            let flag = format!("-{short}");
            if flag.starts_with(current) {
                candidates.push((flag, help));
            }
        }
    }
    Completions {
        candidates,
        directive: DIRECTIVE_NO_FILE_COMP,
    }
}

/// The values of `arg` that start with `current`, each written after `prefix`; a path argument
/// with no listed values leaves it to the shell's file completion.
fn values_of(arg: &Arg, current: &str, prefix: &str) -> Completions {
    let values = arg.get_possible_values();
    if values.is_empty() {
        let directive = if takes_a_path(arg) {
            DIRECTIVE_DEFAULT
        } else {
            DIRECTIVE_NO_FILE_COMP
        };
        return Completions {
            candidates: Vec::new(),
            directive,
        };
    }
    let candidates = values
        .iter()
        .filter(|value| !value.is_hide_set() && value.get_name().starts_with(current))
        .map(|value| {
            let help = value.get_help().map(one_line).unwrap_or_default();
            (format!("{prefix}{}", value.get_name()), help)
        })
        .collect();
    Completions {
        candidates,
        directive: DIRECTIVE_NO_FILE_COMP,
    }
}

fn takes_a_path(arg: &Arg) -> bool {
    matches!(
        arg.get_value_hint(),
        ValueHint::AnyPath | ValueHint::FilePath | ValueHint::DirPath
    ) || arg
        .get_value_names()
        .is_some_and(|names| names.iter().any(|name| name == "PATH" || name == "FILE"))
}

fn about(command: &Command) -> String {
    command.get_about().map(one_line).unwrap_or_default()
}

fn help_line(arg: &Arg) -> String {
    arg.get_help().map(one_line).unwrap_or_default()
}

/// The first line of a help text, without tabs (they separate value and description).
fn one_line(text: &clap::builder::StyledStr) -> String {
    let text = text.to_string();
    let first = text.lines().next().unwrap_or_default();
    first.replace('\t', " ").trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        let mut words: Vec<String> = line.split(' ').map(str::to_string).collect();
        if line.is_empty() {
            words = vec![String::new()];
        }
        words
    }

    fn values(line: &str) -> (Vec<String>, u8) {
        let completions = complete(&words(line));
        let values = completions
            .candidates
            .into_iter()
            .map(|(value, _)| value)
            .collect();
        (values, completions.directive)
    }

    #[test]
    fn subcommands_at_the_top_and_by_prefix() {
        let (all, directive) = values("");
        for name in ["diagnose", "probe", "lab", "completion"] {
            assert!(all.iter().any(|value| value == name), "{name}: {all:?}");
        }
        assert_eq!(directive, DIRECTIVE_NO_FILE_COMP);
        assert_eq!(values("di").0, ["diagnose"]);
        assert_eq!(values("-v l").0, ["lab"]);
    }

    #[test]
    fn output_values_after_the_flag_in_every_spelling() {
        let expected = ["table", "wide", "json", "yaml", "markdown"];
        assert_eq!(values("diagnose -o ").0, expected);
        assert_eq!(values("diagnose --output ").0, expected);
        assert_eq!(values("diagnose -f k8s/ -o j").0, ["json"]);
        assert_eq!(values("diagnose --output=y").0, ["--output=yaml"]);
        let (probe, _) = values("probe -o ");
        assert!(probe.contains(&"json".to_string()) && !probe.contains(&"yaml".to_string()));
    }

    #[test]
    fn lab_modes_and_shells_are_the_positionals_values() {
        let (modes, directive) = values("lab ");
        assert_eq!(
            modes,
            [
                "healthy",
                "stream-timeout",
                "stream-idle",
                "connection-pool",
                "buffer-limit",
                "cold-start"
            ]
        );
        assert_eq!(directive, DIRECTIVE_NO_FILE_COMP);
        assert_eq!(values("lab stream-").0, ["stream-timeout", "stream-idle"]);
        assert_eq!(values("completion ").0, ["bash", "zsh", "fish"]);
        // One mode only: nothing after it.
        assert!(values("lab healthy ").0.is_empty());
    }

    #[test]
    fn flags_of_the_subcommand_and_the_global_ones() {
        let (flags, _) = values("diagnose --pro");
        assert_eq!(flags, ["--probe", "--probe-budget"]);
        let (all, _) = values("diagnose -");
        for flag in [
            "-f",
            "--filename",
            "-n",
            "--namespace",
            "--verbose",
            "--help",
        ] {
            assert!(all.iter().any(|value| value == flag), "{flag}: {all:?}");
        }
        // Given once, not offered again; -f repeats.
        let (after, _) = values("diagnose --probe --");
        assert!(!after.contains(&"--probe".to_string()), "{after:?}");
        assert!(after.contains(&"--filename".to_string()));
        let (again, _) = values("diagnose -f a.yaml --file");
        assert_eq!(again, ["--filename"]);
    }

    #[test]
    fn paths_are_left_to_the_shell_and_free_text_is_not() {
        assert_eq!(values("diagnose -f "), (vec![], DIRECTIVE_DEFAULT));
        assert_eq!(
            values("diagnose --save-evidence "),
            (vec![], DIRECTIVE_DEFAULT)
        );
        assert_eq!(values("diagnose -n "), (vec![], DIRECTIVE_NO_FILE_COMP));
        assert_eq!(values("diagnose "), (vec![], DIRECTIVE_NO_FILE_COMP));
    }

    #[test]
    fn cobras_format_ends_with_the_directive() {
        let completions = Completions {
            candidates: vec![
                ("lab".to_string(), "Reproduce".to_string()),
                ("x".to_string(), String::new()),
            ],
            directive: 4,
        };
        assert_eq!(completions.render(), "lab\tReproduce\nx\n:4\n");
        assert_eq!(complete(&[]).render().lines().last(), Some(":4"));
    }
}
