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
    // Whole nanoseconds, exactly: a float would turn `8542516.469s` into 8542516.469000001 s.
    let mut nanos: u128 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(error)?;
        if number_len == 0 {
            return Err(error());
        }
        let number = &rest[..number_len];
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per_unit: u128 = match &rest[..unit_len] {
            "ns" => 1,
            "us" | "µs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(error()),
        };
        nanos = nanos
            .checked_add(number_nanos(number, nanos_per_unit).ok_or_else(error)?)
            .ok_or_else(error)?;
        rest = &rest[unit_len..];
    }
    if nanos > MAX_SECONDS * 1_000_000_000 {
        return Err(error());
    }
    let seconds = u64::try_from(nanos / 1_000_000_000).map_err(|_| error())?;
    let sub = u32::try_from(nanos % 1_000_000_000).map_err(|_| error())?;
    Ok(Duration::new(seconds, sub))
}

/// The longest duration read (about 31,700 years): more is a mistake, not a timeout.
const MAX_SECONDS: u128 = 1_000_000_000_000;

/// `12.5` of a unit of `per_unit` nanoseconds, rounded down to whole nanoseconds.
fn number_nanos(number: &str, per_unit: u128) -> Option<u128> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
        return None;
    }
    // Digits past these cannot change whole nanoseconds of any unit up to an hour.
    let fraction = &fraction[..fraction.len().min(24)];
    let whole: u128 = if whole.is_empty() {
        0
    } else if whole.len() > 24 {
        return None;
    } else {
        whole.parse().ok()?
    };
    let mut nanos = whole.checked_mul(per_unit)?;
    if !fraction.is_empty() {
        let digits: u128 = fraction.parse().ok()?;
        let scale = 10u128.checked_pow(u32::try_from(fraction.len()).ok()?)?;
        nanos = nanos.checked_add(digits.checked_mul(per_unit)? / scale)?;
    }
    Some(nanos)
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
    fn large_decimal_durations_read_exactly() {
        // Found by the property durations_read_back_as_displayed (tests/properties.rs).
        assert_eq!(
            parse("8542516.469s").unwrap(),
            Duration::from_millis(8_542_516_469)
        );
        assert_eq!(parse("0.000000001s").unwrap(), Duration::from_nanos(1));
        assert_eq!(parse("1.5h").unwrap(), Duration::from_secs(5400));
        assert!(parse("1..5s").is_err() && parse(".s").is_err());
        assert!(parse("99999999999999999999999999h").is_err());
    }

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
