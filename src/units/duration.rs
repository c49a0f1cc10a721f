//! Durations as Istio, Envoy and kubectl write them: Go style (`1h30m`, `300s`, `500ms`),
//! protobuf JSON (`0.500s`), and kubectl's bare `0`.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration {input:?}: expected a number with a unit, like 300s, 5m, 1h30m or 0.500s"
)]
pub struct DurationError {
    pub input: String,
}

/// Parses `300s`, `5m`, `1h30m`, `0.500s`, `100ms`, `1.5h`, and `0` (zero, as kubectl accepts).
pub fn parse(input: &str) -> Result<Duration, DurationError> {
    let text = input.trim();
    let error = || DurationError {
        input: input.to_string(),
    };
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() {
        return Err(error());
    }
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(error)?;
        if number_len == 0 {
            return Err(error());
        }
        let value: f64 = rest[..number_len].parse().map_err(|_| error())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(error()),
        };
        total += value * seconds_per_unit;
        rest = &rest[unit_len..];
    }
    if !total.is_finite() || !(0.0..=1e12).contains(&total) {
        return Err(error());
    }
    Ok(Duration::from_secs_f64(total))
}

/// Renders a duration the short way a human reads it: `300s`, `1.5s`, `250ms`, `0s`.
pub fn display(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis == 0 && duration.is_zero() {
        "0s".to_string()
    } else if millis < 1000 {
        format!("{millis}ms")
    } else if millis % 1000 == 0 {
        format!("{}s", millis / 1000)
    } else {
        let seconds = format!("{:.3}", duration.as_secs_f64());
        format!("{}s", seconds.trim_end_matches('0'))
    }
}

/// A span of time as a person says it: `5m30s`, `6m`, `1h2m`; under a minute as [`display`].
pub fn human(duration: Duration) -> String {
    if duration < Duration::from_secs(60) {
        return display(duration);
    }
    let seconds = duration.as_secs();
    match (seconds / 3600, seconds % 3600 / 60, seconds % 60) {
        (0, minutes, 0) => format!("{minutes}m"),
        (0, minutes, secs) => format!("{minutes}m{secs}s"),
        (hours, 0, _) => format!("{hours}h"),
        (hours, minutes, _) => format!("{hours}h{minutes}m"),
    }
}

/// `3d4h`, `5h12m`, `7m30s`, `42s`.
pub fn age_text(seconds: u64) -> String {
    let (days, hours, minutes, secs) = (
        seconds / 86_400,
        seconds % 86_400 / 3600,
        seconds % 3600 / 60,
        seconds % 60,
    );
    if days > 0 {
        format!("{days}d{hours}h")
    } else if hours > 0 {
        format!("{hours}h{minutes}m")
    } else if minutes > 0 {
        format!("{minutes}m{secs}s")
    } else {
        format!("{secs}s")
    }
}

/// Serde helpers for `Duration` fields written as `300s` in evidence JSON.
pub mod serde_text {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::display(*value))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        super::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn human_spans_read_in_minutes_from_a_minute_up() {
        assert_eq!(human(Duration::from_secs(42)), "42s");
        assert_eq!(human(Duration::from_millis(1500)), "1.5s");
        assert_eq!(human(Duration::from_secs(360)), "6m");
        assert_eq!(human(Duration::from_secs(330)), "5m30s");
        assert_eq!(human(Duration::from_secs(3600)), "1h");
        assert_eq!(human(Duration::from_secs(3720)), "1h2m");
    }

    use super::*;

    #[test]
    fn ages_read_like_kubectl_get_pods() {
        assert_eq!(age_text(42), "42s");
        assert_eq!(age_text(450), "7m30s");
        assert_eq!(age_text(5 * 3600 + 12 * 60 + 9), "5h12m");
        assert_eq!(age_text(3 * 86_400 + 4 * 3600), "3d4h");
    }

    #[test]
    fn parses_the_forms_istio_envoy_and_kubectl_write() {
        assert_eq!(parse("300s").unwrap(), Duration::from_secs(300));
        assert_eq!(parse("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("0.500s").unwrap(), Duration::from_millis(500));
        assert_eq!(parse("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse("0s").unwrap(), Duration::ZERO);
        assert_eq!(parse("0").unwrap(), Duration::ZERO);
    }

    #[test]
    fn rejects_what_is_not_a_duration() {
        for bad in ["", "s", "15", "15x", "abc", "1.2.3s", "-5s"] {
            assert!(parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn displays_short_forms() {
        assert_eq!(display(Duration::from_secs(300)), "300s");
        assert_eq!(display(Duration::from_millis(1500)), "1.5s");
        assert_eq!(display(Duration::from_millis(250)), "250ms");
        assert_eq!(display(Duration::ZERO), "0s");
    }
}
