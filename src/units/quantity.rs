//! Kubernetes resource quantities as pod specs and Istio annotations write them: CPU (`100m`,
//! `0.5`, `2`) and memory (`128Mi`, `1Gi`, `500M`, `1e9`).

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid quantity {input:?}: expected a number with an optional suffix, like 100m, 0.5, 128Mi or 1Gi"
)]
pub struct QuantityError {
    pub input: String,
}

/// The quantity's value in base units (cores for CPU, bytes for memory).
pub fn parse(input: &str) -> Result<f64, QuantityError> {
    let text = input.trim();
    let error = || QuantityError {
        input: input.to_string(),
    };
    let number_len = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(number_len);
    if number.is_empty() {
        return Err(error());
    }
    let value: f64 = number.parse().map_err(|_| error())?;
    let multiplier = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exponent if exponent.starts_with(['e', 'E']) => {
            let power: i32 = exponent[1..].parse().map_err(|_| error())?;
            10f64.powi(power)
        }
        _ => return Err(error()),
    };
    let total = value * multiplier;
    if !total.is_finite() || total < 0.0 {
        return Err(error());
    }
    Ok(total)
}

/// CPU in millicores.
pub fn cpu_millis(input: &str) -> Result<u64, QuantityError> {
    parse(input).map(|cores| (cores * 1000.0).round() as u64)
}

/// Memory in bytes.
pub fn memory_bytes(input: &str) -> Result<u64, QuantityError> {
    parse(input).map(|bytes| bytes.round() as u64)
}

/// `100m`, `4`, `2.5`
pub fn display_cpu(millis: u64) -> String {
    if millis % 1000 == 0 {
        format!("{}", millis / 1000)
    } else if millis < 1000 {
        format!("{millis}m")
    } else {
        format!("{}", millis as f64 / 1000.0)
    }
}

/// `128Mi`, `32Gi`, `1.5Gi`, `500M` shown as bytes in the largest binary unit that reads well.
pub fn display_memory(bytes: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("Ti", 1 << 40),
        ("Gi", 1 << 30),
        ("Mi", 1 << 20),
        ("Ki", 1 << 10),
    ];
    for (unit, size) in UNITS {
        if bytes >= size {
            let value = bytes as f64 / size as f64;
            return if bytes % size == 0 {
                format!("{}{unit}", bytes / size)
            } else {
                format!("{:.1}{unit}", value)
            };
        }
    }
    format!("{bytes}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu_forms() {
        assert_eq!(cpu_millis("100m").unwrap(), 100);
        assert_eq!(cpu_millis("0.5").unwrap(), 500);
        assert_eq!(cpu_millis("2").unwrap(), 2000);
        assert_eq!(cpu_millis(" 1500m ").unwrap(), 1500);
    }

    #[test]
    fn parses_memory_forms() {
        assert_eq!(memory_bytes("128Mi").unwrap(), 128 << 20);
        assert_eq!(memory_bytes("1Gi").unwrap(), 1 << 30);
        assert_eq!(memory_bytes("500M").unwrap(), 500_000_000);
        assert_eq!(memory_bytes("1e9").unwrap(), 1_000_000_000);
        assert_eq!(memory_bytes("65536").unwrap(), 65536);
    }

    #[test]
    fn rejects_what_is_not_a_quantity() {
        for bad in ["", "Mi", "12XB", "1.2.3", "-1", "abc"] {
            assert!(parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn displays_short_forms() {
        assert_eq!(display_cpu(100), "100m");
        assert_eq!(display_cpu(4000), "4");
        assert_eq!(display_cpu(2500), "2.5");
        assert_eq!(display_memory(128 << 20), "128Mi");
        assert_eq!(display_memory(3 << 29), "1.5Gi");
        assert_eq!(display_memory(512), "512");
    }
}
