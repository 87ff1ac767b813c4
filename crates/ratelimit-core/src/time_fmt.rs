//! Human-readable windows (`1m`, `1d`, `10s`, `250ms`) for messages and names.

use core::fmt;

use crate::time::{
    NANOS_PER_DAY, NANOS_PER_HOUR, NANOS_PER_MILLI, NANOS_PER_MINUTE, NANOS_PER_SEC,
};

/// Writes the window in the largest unit that divides it exactly.
pub(crate) fn write_window(f: &mut fmt::Formatter<'_>, nanos: u64) -> fmt::Result {
    const UNITS: [(u64, &str); 6] = [
        (NANOS_PER_DAY, "d"),
        (NANOS_PER_HOUR, "h"),
        (NANOS_PER_MINUTE, "m"),
        (NANOS_PER_SEC, "s"),
        (NANOS_PER_MILLI, "ms"),
        (1, "ns"),
    ];
    for (unit, suffix) in UNITS {
        if nanos >= unit && nanos % unit == 0 {
            return write!(f, "{}{suffix}", nanos / unit);
        }
    }
    write!(f, "{nanos}ns")
}

#[cfg(test)]
mod tests {
    use crate::error::LimitName;

    fn name(window: u64) -> String {
        LimitName {
            resource: "tokens",
            window,
        }
        .to_string()
    }

    #[test]
    fn windows_print_in_their_natural_unit() {
        assert_eq!(name(60_000_000_000), "tokens per 1m");
        assert_eq!(name(86_400_000_000_000), "tokens per 1d");
        assert_eq!(name(10_000_000_000), "tokens per 10s");
        assert_eq!(name(1_500_000_000), "tokens per 1500ms");
        assert_eq!(name(7), "tokens per 7ns");
        assert_eq!(name(0), "tokens");
    }
}
