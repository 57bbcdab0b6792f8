//! Input file formats and table layouts.

use serde::{Deserialize, Serialize};
use std::path::Path;

use crate::DataError;

/// The container format of an input file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum InputFormat {
    /// Apache Parquet.
    #[default]
    Parquet,
    /// Comma-separated values with a header row.
    Csv,
    /// Arrow IPC, file or stream format (Feather v2 included).
    ArrowIpc,
}

impl InputFormat {
    /// The format implied by a file's extension.
    pub fn from_path(path: &Path) -> Result<Self, DataError> {
        let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).unwrap_or_default();
        match ext.as_str() {
            "parquet" | "pq" => Ok(InputFormat::Parquet),
            "csv" => Ok(InputFormat::Csv),
            "arrow" | "arrows" | "ipc" | "feather" => Ok(InputFormat::ArrowIpc),
            _ => Err(DataError::UnknownFormat { path: path.to_path_buf() }),
        }
    }
}

/// How a table lays out channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// One row per (series, timestamp, channel) value.
    #[default]
    Long,
    /// One row per (series, timestamp), one column per channel; needs a mapping.
    Wide,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_pick_the_reader() {
        assert_eq!(InputFormat::from_path(Path::new("a/b.PARQUET")).unwrap(), InputFormat::Parquet);
        assert_eq!(InputFormat::from_path(Path::new("b.csv")).unwrap(), InputFormat::Csv);
        assert_eq!(InputFormat::from_path(Path::new("b.arrows")).unwrap(), InputFormat::ArrowIpc);
        let err = InputFormat::from_path(Path::new("b.xlsx")).unwrap_err();
        assert!(err.to_string().contains("b.xlsx"), "{err}");
    }
}
