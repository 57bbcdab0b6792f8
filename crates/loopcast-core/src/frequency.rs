//! Sampling frequency of a regular grid, fixed-length or calendar months.

use chrono::{DateTime, Datelike, NaiveDate};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

use crate::{CoreError, Timestamp};

const MICROS_PER_SECOND: i64 = 1_000_000;
const MICROS_PER_MINUTE: i64 = 60 * MICROS_PER_SECOND;
const MICROS_PER_HOUR: i64 = 60 * MICROS_PER_MINUTE;
const MICROS_PER_DAY: i64 = 24 * MICROS_PER_HOUR;
const MICROS_PER_WEEK: i64 = 7 * MICROS_PER_DAY;
/// 1970-01-05, the first Monday after the Unix epoch: weekly grids start on Mondays.
const FIRST_MONDAY: i64 = 4 * MICROS_PER_DAY;

/// What one of a unit is: microseconds, or calendar months.
#[derive(Clone, Copy)]
enum Unit {
    Micros(i64),
    Months(i64),
}

/// Every unit name a frequency may carry (lower case), with what one of it is.
const UNITS: [(&str, Unit); 29] = [
    ("us", Unit::Micros(1)),
    ("ms", Unit::Micros(1_000)),
    ("s", Unit::Micros(MICROS_PER_SECOND)),
    ("sec", Unit::Micros(MICROS_PER_SECOND)),
    ("second", Unit::Micros(MICROS_PER_SECOND)),
    ("seconds", Unit::Micros(MICROS_PER_SECOND)),
    ("m", Unit::Micros(MICROS_PER_MINUTE)),
    ("min", Unit::Micros(MICROS_PER_MINUTE)),
    ("minute", Unit::Micros(MICROS_PER_MINUTE)),
    ("minutes", Unit::Micros(MICROS_PER_MINUTE)),
    ("t", Unit::Micros(MICROS_PER_MINUTE)),
    ("h", Unit::Micros(MICROS_PER_HOUR)),
    ("hour", Unit::Micros(MICROS_PER_HOUR)),
    ("hours", Unit::Micros(MICROS_PER_HOUR)),
    ("d", Unit::Micros(MICROS_PER_DAY)),
    ("day", Unit::Micros(MICROS_PER_DAY)),
    ("days", Unit::Micros(MICROS_PER_DAY)),
    ("w", Unit::Micros(MICROS_PER_WEEK)),
    ("week", Unit::Micros(MICROS_PER_WEEK)),
    ("weeks", Unit::Micros(MICROS_PER_WEEK)),
    ("mo", Unit::Months(1)),
    ("month", Unit::Months(1)),
    ("months", Unit::Months(1)),
    ("q", Unit::Months(3)),
    ("quarter", Unit::Months(3)),
    ("quarters", Unit::Months(3)),
    ("y", Unit::Months(12)),
    ("year", Unit::Months(12)),
    ("years", Unit::Months(12)),
];

/// The step of a regular grid.
///
/// Fixed steps are aligned to the Unix epoch (so `5m` cells start at :00, :05, ...; `1d`
/// cells at midnight UTC), except multiples of a week, which start on Mondays. Month-based
/// steps (`1mo`, `1q` = `3mo`, `1y` = `12mo`) follow the calendar and start on the first
/// day of a month at midnight UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Frequency {
    /// A fixed step in microseconds (always > 0).
    Fixed(i64),
    /// A whole number of calendar months (always > 0).
    Months(u32),
}

impl Frequency {
    /// A fixed step of `minutes` minutes.
    pub fn minutes(minutes: i64) -> Self {
        Frequency::Fixed(minutes * MICROS_PER_MINUTE)
    }

    /// A fixed step of `hours` hours.
    pub fn hours(hours: i64) -> Self {
        Frequency::Fixed(hours * MICROS_PER_HOUR)
    }

    /// Index of the grid cell that contains `ts` (microseconds since the epoch, UTC).
    #[inline]
    pub fn cell(self, ts: Timestamp) -> i64 {
        match self {
            Frequency::Fixed(step) if step % MICROS_PER_WEEK == 0 => (ts - FIRST_MONDAY).div_euclid(step),
            Frequency::Fixed(step) => ts.div_euclid(step),
            Frequency::Months(n) => months_since_epoch(ts).div_euclid(i64::from(n)),
        }
    }

    /// Start time of grid cell `index` (microseconds since the epoch, UTC).
    pub fn cell_start(self, index: i64) -> Timestamp {
        match self {
            Frequency::Fixed(step) if step % MICROS_PER_WEEK == 0 => FIRST_MONDAY + index * step,
            Frequency::Fixed(step) => index * step,
            Frequency::Months(n) => month_start(index * i64::from(n)),
        }
    }

    /// The nominal step in microseconds (a month counts as 30.436875 days).
    pub fn nominal_micros(self) -> i64 {
        match self {
            Frequency::Fixed(step) => step,
            Frequency::Months(n) => i64::from(n) * 2_629_746 * MICROS_PER_SECOND,
        }
    }

    /// The conventional seasonal period in steps: a day for steps that divide a day
    /// (288 at 5 minutes, 24 hourly), a week for daily steps, a year for weekly and
    /// monthly ones (52, 12, 4 quarterly); 1 (no season) otherwise.
    pub fn season(self) -> usize {
        let whole = |period: i64, step: i64| if period % step == 0 { (period / step) as usize } else { 1 };
        match self {
            Frequency::Fixed(step) if step < MICROS_PER_DAY => whole(MICROS_PER_DAY, step),
            Frequency::Fixed(step) if step == MICROS_PER_DAY => 7,
            Frequency::Fixed(step) if step == MICROS_PER_WEEK => 52,
            Frequency::Fixed(_) => 1,
            Frequency::Months(n) => whole(12, i64::from(n)),
        }
    }

    /// The frequency that best explains a typical spacing between consecutive
    /// observations: calendar months when the spacing is 28–31 days (or a multiple of
    /// it up to a year), the fixed step otherwise. `None` when the spacing is not positive.
    pub fn from_spacing(spacing_micros: i64) -> Option<Self> {
        if spacing_micros <= 0 {
            return None;
        }
        let days = spacing_micros as f64 / MICROS_PER_DAY as f64;
        for months in [1u32, 2, 3, 4, 6, 12] {
            let lo = 28.0 * f64::from(months) - 0.5;
            let hi = 31.0 * f64::from(months) + 0.5 + f64::from(months / 12);
            if spacing_micros % MICROS_PER_DAY == 0 && (lo..=hi).contains(&days) {
                return Some(Frequency::Months(months));
            }
        }
        Some(Frequency::Fixed(spacing_micros))
    }
}

fn months_since_epoch(ts: Timestamp) -> i64 {
    let dt = DateTime::from_timestamp_micros(ts).unwrap_or_default();
    (i64::from(dt.year()) - 1970) * 12 + i64::from(dt.month0())
}

fn month_start(months: i64) -> Timestamp {
    let year = 1970 + months.div_euclid(12);
    let month = months.rem_euclid(12) as u32 + 1;
    i32::try_from(year)
        .ok()
        .and_then(|y| NaiveDate::from_ymd_opt(y, month, 1))
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|dt| dt.and_utc().timestamp_micros())
        .unwrap_or(i64::MAX)
}

impl fmt::Display for Frequency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Frequency::Months(12) => write!(f, "1y"),
            Frequency::Months(3) => write!(f, "1q"),
            Frequency::Months(n) => write!(f, "{n}mo"),
            Frequency::Fixed(step) => {
                let units = [
                    (MICROS_PER_WEEK, "w"),
                    (MICROS_PER_DAY, "d"),
                    (MICROS_PER_HOUR, "h"),
                    (MICROS_PER_MINUTE, "m"),
                    (MICROS_PER_SECOND, "s"),
                    (1_000, "ms"),
                    (1, "us"),
                ];
                let (size, unit) =
                    units.iter().find(|(size, _)| step % size == 0).copied().unwrap_or((1, "us"));
                write!(f, "{}{unit}", step / size)
            }
        }
    }
}

impl FromStr for Frequency {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || CoreError::InvalidFrequency(s.to_string());
        let text = s.trim().to_ascii_lowercase();
        let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
        let (digits, unit) = text.split_at(split);
        let count: i64 = if digits.is_empty() { 1 } else { digits.parse().map_err(|_| invalid())? };
        if count <= 0 {
            return Err(invalid());
        }
        let months = |per: i64| u32::try_from(count * per).map(Frequency::Months).map_err(|_| invalid());
        let fixed = |per: i64| count.checked_mul(per).map(Frequency::Fixed).ok_or_else(invalid);
        let unit = unit.trim();
        match UNITS.iter().find(|(name, _)| *name == unit).map(|(_, size)| *size) {
            Some(Unit::Micros(per)) => fixed(per),
            Some(Unit::Months(per)) => months(per),
            None => Err(invalid()),
        }
    }
}

impl Frequency {
    /// Every unit name [`Frequency::from_str`] takes, in lower case (`us`, `ms`, `s`, …,
    /// `years`); a count may come before one.
    pub fn unit_names() -> impl Iterator<Item = &'static str> {
        UNITS.iter().map(|(name, _)| *name)
    }
}

impl Serialize for Frequency {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Frequency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn seasons_are_a_day_a_week_or_a_year() {
        assert_eq!(Frequency::minutes(5).season(), 288);
        assert_eq!(Frequency::hours(1).season(), 24);
        assert_eq!(Frequency::minutes(7).season(), 1, "7 minutes do not divide a day");
        assert_eq!(Frequency::Fixed(MICROS_PER_DAY).season(), 7);
        assert_eq!(Frequency::Fixed(MICROS_PER_WEEK).season(), 52);
        assert_eq!(Frequency::Months(1).season(), 12);
        assert_eq!(Frequency::Months(3).season(), 4);
        assert_eq!(Frequency::Months(12).season(), 1);
    }

    fn ts(text: &str) -> Timestamp {
        DateTime::parse_from_rfc3339(text).unwrap().timestamp_micros()
    }

    #[test]
    fn parses_and_prints_canonical_names() {
        for (text, canonical) in [
            ("5m", "5m"),
            ("5min", "5m"),
            ("60m", "1h"),
            ("30s", "30s"),
            ("1h", "1h"),
            ("24h", "1d"),
            ("1w", "1w"),
            ("1mo", "1mo"),
            ("3mo", "1q"),
            ("1y", "1y"),
            ("h", "1h"),
        ] {
            assert_eq!(text.parse::<Frequency>().unwrap().to_string(), canonical, "{text}");
        }
        for bad in ["", "0m", "-5m", "5 parsecs", "m5"] {
            assert!(bad.parse::<Frequency>().is_err(), "{bad}");
        }
    }

    #[test]
    fn fixed_cells_align_to_the_epoch() {
        let f = Frequency::minutes(5);
        let t = ts("2024-03-01T10:07:30Z");
        assert_eq!(f.cell_start(f.cell(t)), ts("2024-03-01T10:05:00Z"));
    }

    #[test]
    fn weekly_cells_start_on_monday() {
        let f: Frequency = "1w".parse().unwrap();
        // 2024-03-07 is a Thursday; its week starts on Monday 2024-03-04.
        let t = ts("2024-03-07T12:00:00Z");
        assert_eq!(f.cell_start(f.cell(t)), ts("2024-03-04T00:00:00Z"));
    }

    #[test]
    fn month_cells_follow_the_calendar() {
        let f = Frequency::Months(1);
        let feb = f.cell(ts("2024-02-29T23:00:00Z"));
        let mar = f.cell(ts("2024-03-01T00:00:00Z"));
        assert_eq!(mar - feb, 1);
        assert_eq!(f.cell_start(feb), ts("2024-02-01T00:00:00Z"));
        let q = Frequency::Months(3);
        assert_eq!(q.cell_start(q.cell(ts("2024-05-15T00:00:00Z"))), ts("2024-04-01T00:00:00Z"));
        assert_eq!(f.cell_start(f.cell(ts("1969-12-15T00:00:00Z"))), ts("1969-12-01T00:00:00Z"));
    }

    #[test]
    fn spacing_of_a_month_is_a_calendar_month() {
        let day = MICROS_PER_DAY;
        assert_eq!(Frequency::from_spacing(31 * day), Some(Frequency::Months(1)));
        assert_eq!(Frequency::from_spacing(92 * day), Some(Frequency::Months(3)));
        assert_eq!(Frequency::from_spacing(365 * day), Some(Frequency::Months(12)));
        assert_eq!(Frequency::from_spacing(7 * day), Some(Frequency::Fixed(7 * day)));
        assert_eq!(Frequency::from_spacing(MICROS_PER_HOUR), Some(Frequency::hours(1)));
        assert_eq!(Frequency::from_spacing(0), None);
    }

    proptest! {
        #[test]
        fn a_cell_contains_its_start_and_not_the_next(t in -2_000_000_000_000_000i64..4_000_000_000_000_000i64,
                                                       step in prop::sample::select(vec!["1s", "5m", "1h", "1d", "1w", "1mo", "1q", "1y"])) {
            let f: Frequency = step.parse().unwrap();
            let cell = f.cell(t);
            let start = f.cell_start(cell);
            prop_assert!(start <= t);
            prop_assert!(t < f.cell_start(cell + 1));
            prop_assert_eq!(f.cell(start), cell);
        }
    }
}
