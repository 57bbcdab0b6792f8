//! The grid step as the HTTP API spells it: one grammar, checked by the server and
//! published as the OpenAPI document's `pattern`, so a client that validates against the
//! document sends no frequency the server refuses, and the server takes none the
//! document rules out.

use std::sync::LazyLock;

use loopcast_core::Frequency;

use crate::problem::Problem;

/// Most digits of a count: 999,999 years still fit the month counter.
const MAX_DIGITS: usize = 6;

/// The grammar as an ECMA-262 pattern: an optional count from 1 to 999,999 without a
/// leading zero, then one of the unit names the core parser takes, in lower case (`5m`,
/// `1h`, `d`, `15min`, `3mo`).
pub(crate) static PATTERN: LazyLock<String> = LazyLock::new(|| {
    let units: Vec<&str> = Frequency::unit_names().collect();
    format!("^([1-9][0-9]{{0,{}}})?({})$", MAX_DIGITS - 1, units.join("|"))
});

/// `text` parsed as the API's frequency, refused (naming `field`) unless it matches
/// [`PATTERN`].
pub(crate) fn parse(field: impl Into<String>, text: &str) -> Result<Frequency, Problem> {
    let refused = || {
        Problem::invalid(
            field,
            format!(
                "`{text}` is not a frequency: a count and a unit such as 1m, 5m, 15min, 1h, 1d, 1w, 1mo, 1q, 1y"
            ),
        )
    };
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let count_ok = digits.is_empty() || (digits.len() <= MAX_DIGITS && !digits.starts_with('0'));
    if !count_ok || !Frequency::unit_names().any(|name| name == unit) {
        return Err(refused());
    }
    text.parse().map_err(|_| refused())
}

#[cfg(test)]
mod tests {
    use regex::Regex;

    use super::*;

    /// Accepted by the server exactly when the published pattern matches.
    fn agree(text: &str) -> bool {
        let pattern = Regex::new(&PATTERN).unwrap();
        pattern.is_match(text) == parse("frequency", text).is_ok()
    }

    #[test]
    fn the_server_takes_exactly_what_the_pattern_matches() {
        for unit in Frequency::unit_names() {
            for text in [unit.to_string(), format!("1{unit}"), format!("999999{unit}"), format!("0{unit}")] {
                assert!(agree(&text), "{text:?}");
            }
        }
        assert_eq!(parse("f", "5m").unwrap(), Frequency::minutes(5));
        assert_eq!(parse("f", "1h").unwrap(), Frequency::hours(1));
        for bad in ["", "0m", "05m", "1000000m", "5", "5 m", " 5m", "5m\n", "5M", "5x", "-5m", "5mm", "m5"] {
            assert!(agree(bad), "{bad:?}");
            let problem = parse("series[0].frequency", bad).unwrap_err();
            assert_eq!(problem.field.as_deref(), Some("series[0].frequency"), "{bad:?}");
            assert!(problem.detail.contains("is not a frequency"), "{bad:?}");
        }
    }
}
