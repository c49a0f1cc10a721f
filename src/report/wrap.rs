//! Prose wrapped at word boundaries to a width, for the terminal: a word never breaks, and the
//! lines after the first hang under it.

/// `text` in lines of at most `width` characters (a longer word gets a line of its own), the
/// lines after the first indented by `hang` spaces. `None` leaves it as it is.
pub fn words(text: &str, width: Option<usize>, hang: usize) -> String {
    let Some(width) = width else {
        return text.to_string();
    };
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    let mut used = 0;
    // The first line keeps its own leading spaces (an indent); the rest hang.
    let lead = text.len() - text.trim_start().len();
    line.push_str(&text[..lead]);
    used += lead;
    let mut first_word = true;
    for word in text.split_whitespace() {
        let length = word.chars().count();
        if !first_word && used + 1 + length > width {
            lines.push(std::mem::take(&mut line));
            line.push_str(&" ".repeat(hang));
            used = hang;
            first_word = true;
        }
        if !first_word {
            line.push(' ');
            used += 1;
        }
        line.push_str(word);
        used += length;
        first_word = false;
    }
    lines.push(line);
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_at_words_and_hangs_the_rest() {
        let text = "Root cause: #2 stream-timeout: Streaming cut early by a timeout (critical, confidence high)";
        let wrapped = words(text, Some(40), 2);
        for line in wrapped.lines() {
            assert!(line.chars().count() <= 40, "{line:?}");
        }
        assert_eq!(
            wrapped,
            "Root cause: #2 stream-timeout: Streaming\n  cut early by a timeout (critical,\n  confidence high)"
        );
        assert_eq!(
            wrapped.split_whitespace().collect::<Vec<_>>(),
            text.split_whitespace().collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_word_longer_than_the_width_is_not_cut_and_no_width_keeps_the_text() {
        assert_eq!(
            words("  see nvidia.com/gpu-is-long here", Some(10), 4),
            "  see\n    nvidia.com/gpu-is-long\n    here"
        );
        assert_eq!(words("a  b", None, 2), "a  b");
    }
}
