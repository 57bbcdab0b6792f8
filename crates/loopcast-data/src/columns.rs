//! Finding the columns of a table (with aliases) and turning Arrow arrays into the plain
//! values ingestion works with.

use arrow::array::{Array, ArrayRef, AsArray, PrimitiveArray, StringViewArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Schema, TimeUnit, TimestampMicrosecondType};
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use std::path::Path;

use crate::DataError;
use loopcast_core::Timestamp;

/// Accepted names of the series identifier column, in order of preference.
pub const SERIES_ALIASES: &[&str] = &["series_id", "unique_id", "item_id"];
/// Accepted names of the timestamp column.
pub const TIMESTAMP_ALIASES: &[&str] = &["timestamp", "ds"];
/// Accepted names of the channel column.
pub const CHANNEL_ALIASES: &[&str] = &["channel"];
/// Accepted names of the value column.
pub const VALUE_ALIASES: &[&str] = &["value", "y"];
/// Accepted names of the optional role column.
pub const ROLE_ALIASES: &[&str] = &["role"];

/// The column named `explicit`, or else the first alias present (exact match first, then
/// case-insensitive). An explicit name that is absent is an error.
pub(crate) fn find_column(
    path: &Path,
    schema: &Schema,
    explicit: Option<&str>,
    aliases: &[&str],
) -> Result<Option<String>, DataError> {
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    if let Some(name) = explicit {
        return if names.contains(&name) {
            Ok(Some(name.to_string()))
        } else {
            Err(missing_column(path, schema, name))
        };
    }
    let exact = aliases.iter().find(|a| names.contains(a));
    let loose = || aliases.iter().find_map(|a| names.iter().find(|n| n.eq_ignore_ascii_case(a)).copied());
    Ok(exact.copied().or_else(loose).map(str::to_string))
}

/// A missing-column error listing what the table has.
pub(crate) fn missing_column(path: &Path, schema: &Schema, column: &str) -> DataError {
    DataError::MissingColumn {
        path: path.to_path_buf(),
        column: column.to_string(),
        available: schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", "),
    }
}

/// What a column must be able to hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ColumnKind {
    /// Text or integer identifiers.
    Key,
    /// Text only (channel and role names).
    Text,
    /// Timestamps, dates, or text holding them.
    Time,
    /// Numbers or booleans.
    Number,
}

impl ColumnKind {
    fn expected(self) -> &'static str {
        match self {
            ColumnKind::Key => "a string or integer",
            ColumnKind::Text => "a string",
            ColumnKind::Time => "a timestamp, a date or a string holding one",
            ColumnKind::Number => "a number or boolean",
        }
    }

    pub(crate) fn accepts(self, data_type: &DataType) -> bool {
        let text = matches!(data_type, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
            || matches!(data_type, DataType::Dictionary(_, v) if matches!(**v, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View));
        // An all-null column (as inferred from an empty CSV) fits any kind: its rows are
        // reported one by one.
        if data_type == &DataType::Null {
            return true;
        }
        match self {
            ColumnKind::Text => text,
            ColumnKind::Key => text || data_type.is_integer(),
            ColumnKind::Time => {
                text || matches!(data_type, DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64)
            }
            ColumnKind::Number => data_type.is_numeric() || data_type == &DataType::Boolean,
        }
    }
}

/// Checks that `column` of `schema` can hold `kind`.
pub(crate) fn check_type(
    path: &Path,
    schema: &Schema,
    column: &str,
    kind: ColumnKind,
) -> Result<(), DataError> {
    let field = schema.field_with_name(column).map_err(|_| missing_column(path, schema, column))?;
    if kind.accepts(field.data_type()) {
        Ok(())
    } else {
        Err(DataError::WrongType {
            path: path.to_path_buf(),
            column: column.to_string(),
            found: field.data_type().to_string(),
            expected: kind.expected(),
        })
    }
}

fn cast_error(column: &str, e: impl std::fmt::Display) -> String {
    format!("column `{column}`: {e}")
}

/// A text or integer column as strings (string views: no copy of the text).
pub(crate) fn as_strings(array: &ArrayRef, column: &str) -> Result<StringViewArray, String> {
    let views = cast(array, &DataType::Utf8View).map_err(|e| cast_error(column, e))?;
    Ok(views.as_string_view().clone())
}

/// Longest string a string view holds whole (its first 32 bits are the length).
const INLINE_VIEW_LEN: u32 = 12;

/// Small values (channel indices, roles) looked up by the strings of string-view columns,
/// matching the 16-byte view before the text.
///
/// A view holds a string of up to 12 bytes whole, and the rows decoded from one Parquet
/// dictionary page share their views, so most rows cost one integer comparison instead of
/// a string comparison or a hash. The view of a longer string points into its array's
/// buffers and means nothing in another array: call [`ViewCache::next_array`] before
/// looking up rows of a new array.
#[derive(Debug)]
pub(crate) struct ViewCache<T> {
    entries: Vec<(u128, T)>,
}

impl<T: Copy> ViewCache<T> {
    /// Entries kept; telemetry has a handful of distinct channel names per batch.
    const CAPACITY: usize = 32;

    pub(crate) fn new() -> Self {
        Self { entries: Vec::with_capacity(Self::CAPACITY) }
    }

    /// Forgets the views that point into the previous array's buffers.
    pub(crate) fn next_array(&mut self) {
        self.entries.retain(|(view, _)| (*view as u32) <= INLINE_VIEW_LEN);
    }

    /// The value for the (non-null) string at `row`, computed from the text on a miss.
    #[inline]
    pub(crate) fn get(&mut self, array: &StringViewArray, row: usize, compute: impl FnOnce(&str) -> T) -> T {
        let view = array.views()[row];
        if let Some((_, value)) = self.entries.iter().find(|(v, _)| *v == view) {
            return *value;
        }
        let value = compute(array.value(row));
        if self.entries.len() < Self::CAPACITY {
            self.entries.push((view, value));
        }
        value
    }
}

/// Whether the (non-null) strings at rows `a` and `b` are equal, by view where it can tell.
#[inline]
pub(crate) fn same_string(array: &StringViewArray, a: usize, b: usize) -> bool {
    let views = array.views();
    views[a] == views[b] || (views[a] as u32 > INLINE_VIEW_LEN && array.value(a) == array.value(b))
}

/// A numeric or boolean column as `f64` (nulls kept).
pub(crate) fn as_f64(array: &ArrayRef, column: &str) -> Result<arrow::array::Float64Array, String> {
    let values = cast(array, &DataType::Float64).map_err(|e| cast_error(column, e))?;
    Ok(values.as_primitive::<arrow::datatypes::Float64Type>().clone())
}

/// One timestamp cell of the input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum TimeCell<'a> {
    /// Microseconds since the epoch, UTC.
    At(Timestamp),
    /// A null.
    Null,
    /// Text that is not a timestamp.
    Unparseable(&'a str),
}

/// A time column of one batch, read cell by cell without copying it.
#[derive(Debug)]
pub(crate) enum TimeColumn {
    /// Timestamps or dates, as microseconds since the epoch, UTC.
    Micros(PrimitiveArray<TimestampMicrosecondType>),
    /// Text, parsed as it is read.
    Text(StringViewArray),
}

impl TimeColumn {
    /// The cell at `row`.
    #[inline]
    pub(crate) fn get(&self, row: usize) -> TimeCell<'_> {
        match self {
            TimeColumn::Micros(micros) if micros.is_null(row) => TimeCell::Null,
            TimeColumn::Micros(micros) => TimeCell::At(micros.value(row)),
            TimeColumn::Text(text) if text.is_null(row) => TimeCell::Null,
            TimeColumn::Text(text) => {
                let text = text.value(row);
                parse_time(text).map_or(TimeCell::Unparseable(text), TimeCell::At)
            }
        }
    }
}

/// A time column as microseconds since the epoch, UTC. Timestamps without a zone are
/// taken as UTC; text is parsed as RFC 3339 / ISO 8601 (date, or date and time).
pub(crate) fn as_times(array: &ArrayRef, column: &str) -> Result<TimeColumn, String> {
    match array.data_type() {
        DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64 => {
            // Keep the zone: the stored instants are UTC either way.
            let zone = match array.data_type() {
                DataType::Timestamp(_, zone) => zone.clone(),
                _ => None,
            };
            let micros = cast(array, &DataType::Timestamp(TimeUnit::Microsecond, zone))
                .map_err(|e| cast_error(column, e))?;
            Ok(TimeColumn::Micros(micros.as_primitive::<TimestampMicrosecondType>().clone()))
        }
        _ => as_strings(array, column).map(TimeColumn::Text),
    }
}

/// Parses RFC 3339 (`2024-03-01T10:00:00Z`, `+02:00` offsets), the same with a space, and
/// zone-less date-times or dates (taken as UTC).
pub(crate) fn parse_time(text: &str) -> Option<Timestamp> {
    let text = text.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(text) {
        return Some(dt.timestamp_micros());
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%.f%#z"] {
        if let Ok(dt) = DateTime::parse_from_str(text, format) {
            return Some(dt.timestamp_micros());
        }
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M"] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(text, format) {
            return Some(dt.and_utc().timestamp_micros());
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|dt| dt.and_utc().timestamp_micros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_timestamp_spellings() {
        let utc = parse_time("2024-03-01T10:00:00Z").unwrap();
        assert_eq!(parse_time("2024-03-01 10:00:00"), Some(utc));
        assert_eq!(parse_time("2024-03-01T12:00:00+02:00"), Some(utc));
        assert_eq!(parse_time("2024-03-01 10:00"), Some(utc));
        assert_eq!(parse_time("2024-03-01T10:00:00.000"), Some(utc));
        assert_eq!(parse_time("2024-03-01"), Some(utc - 10 * 3_600_000_000));
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time("2024-13-01"), None);
    }
}
