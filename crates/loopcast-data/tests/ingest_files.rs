//! Reading real Parquet, CSV and Arrow IPC files, long and wide, and every bad input.

mod common;

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray, TimestampMillisecondArray};
use common::{batch, ipc_file, ipc_stream, lenient, parquet, read_all, read_err, text};
use loopcast_core::{Aggregation, ChannelMapping, Frequency, Role};
use loopcast_data::{
    DataError, FileColumn, InputFormat, Layout, ReadOptions, RejectReason, RoleSource, file_columns,
};

const MIN: i64 = 60_000;

fn strings(values: &[&str]) -> ArrayRef {
    Arc::new(StringArray::from(values.to_vec()))
}

fn millis(values: &[i64]) -> ArrayRef {
    Arc::new(TimestampMillisecondArray::from(values.to_vec()))
}

fn floats(values: &[Option<f64>]) -> ArrayRef {
    Arc::new(Float64Array::from(values.to_vec()))
}

/// Two series, two channels, 5-minute steps, rows shuffled; `b` misses one cpu scrape.
fn long_batch() -> arrow::array::RecordBatch {
    batch(vec![
        ("series_id", strings(&["b", "a", "a", "b", "a", "a", "b", "b", "a", "b"])),
        ("timestamp", millis(&[0, 5 * MIN, 0, 10 * MIN, 0, 5 * MIN, 0, 10 * MIN, 10 * MIN, 5 * MIN])),
        ("channel", strings(&["cpu", "cpu", "cpu", "cpu", "rps", "rps", "rps", "rps", "cpu", "rps"])),
        (
            "value",
            floats(&[
                Some(0.5),
                Some(0.2),
                Some(0.1),
                Some(0.7),
                Some(10.0),
                Some(11.0),
                Some(20.0),
                Some(22.0),
                Some(0.3),
                Some(21.0),
            ]),
        ),
    ])
}

#[tokio::test]
async fn long_parquet_is_regularised_per_series() {
    let dir = tempfile::tempdir().unwrap();
    let path = parquet(dir.path(), "long.parquet", &long_batch());
    let (series, report) = read_all(&path, ReadOptions::default()).await.unwrap();
    assert_eq!(series.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    let a = &series[0];
    assert_eq!(a.frequency, Frequency::minutes(5));
    assert_eq!(a.channel("cpu").unwrap().values, vec![0.1, 0.2, 0.3]);
    assert_eq!(a.channel("rps").unwrap().observed, vec![true, true, false]);
    assert_eq!(report.rows, 10);
    assert_eq!(report.values.used, 10);
    assert_eq!(report.series, 2);
    assert_eq!(report.cells, 12);
    assert_eq!(report.gap_cells, 2, "a has no rps at 10 min, b no cpu at 5 min");
    assert_eq!(report.role_source, RoleSource::DefaultAllTargets);
    assert!(report.frequency_inferred);
}

#[tokio::test]
async fn csv_and_arrow_ipc_read_like_parquet() {
    let dir = tempfile::tempdir().unwrap();
    let batch = long_batch();
    let (expected, _) =
        read_all(&parquet(dir.path(), "l.parquet", &batch), ReadOptions::default()).await.unwrap();
    for path in [ipc_file(dir.path(), "l.arrow", &batch), ipc_stream(dir.path(), "l.arrows", &batch)] {
        let (series, _) = read_all(&path, ReadOptions::default()).await.unwrap();
        assert_eq!(series, expected, "{}", path.display());
    }
    let mut csv = String::from("series_id,timestamp,channel,value\n");
    for s in &expected {
        for c in &s.channels {
            for (i, v) in c.values.iter().enumerate() {
                if c.observed[i] {
                    let t = chrono::DateTime::from_timestamp_micros(s.timestamp(i)).unwrap().to_rfc3339();
                    csv.push_str(&format!("{},{t},{},{v}\n", s.id, c.spec.name));
                }
            }
        }
    }
    let (series, _) = read_all(&text(dir.path(), "l.csv", &csv), ReadOptions::default()).await.unwrap();
    assert_eq!(series, expected);
}

#[tokio::test]
async fn nixtla_names_and_integer_ids_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let b = batch(vec![
        ("unique_id", Arc::new(Int64Array::from(vec![7, 7, 7])) as ArrayRef),
        ("ds", millis(&[0, 60 * MIN, 120 * MIN])),
        ("y", floats(&[Some(1.0), None, Some(3.0)])),
    ]);
    let (series, report) =
        read_all(&parquet(dir.path(), "n.parquet", &b), ReadOptions::default()).await.unwrap();
    assert_eq!(series[0].id, "7");
    assert_eq!(series[0].channels[0].spec.name, "y");
    assert_eq!(series[0].channels[0].observed, vec![true, false, true]);
    assert_eq!(report.frequency, Some(Frequency::hours(1)));
    assert_eq!((report.values.used, report.values.missing), (2, 1));
}

#[tokio::test]
async fn wide_files_follow_the_mapping() {
    let dir = tempfile::tempdir().unwrap();
    let path = text(
        dir.path(),
        "w.csv",
        "host,ts,cpu,replicas,temp\nh1,2024-01-01T00:00:00Z,0.5,3,10\nh1,2024-01-01T00:01:00Z,0.7,3,11\nh1,2024-01-01T00:05:00Z,0.4,4,12\n",
    );
    let mapping = ChannelMapping::from_toml(
        "series_id = \"host\"\ntimestamp = \"ts\"\nfrequency = \"5m\"\n[channels]\ncpu = \"target\"\nreplicas = \"action\"\ntemp = { role = \"covariate\", known_future = true }\n",
    )
    .unwrap();
    let options = ReadOptions { layout: Layout::Wide, mapping: Some(mapping), ..ReadOptions::default() };
    let (series, report) = read_all(&path, options).await.unwrap();
    let names: Vec<_> = report.channels.iter().map(|c| (c.name.as_str(), c.role)).collect();
    assert_eq!(names, [("cpu", Role::Target), ("replicas", Role::Action), ("temp", Role::Covariate)]);
    let h1 = &series[0];
    assert_eq!(h1.channel("cpu").unwrap().values, vec![0.6, 0.4]);
    assert_eq!(h1.channel("replicas").unwrap().spec.aggregation, Aggregation::Last);
    assert_eq!(h1.channel("replicas").unwrap().values, vec![3.0, 4.0]);
    assert!(!report.frequency_inferred);
    assert_eq!(report.values.used, 9);
}

#[tokio::test]
async fn file_columns_say_which_can_be_channels() {
    let dir = tempfile::tempdir().unwrap();
    let path = text(dir.path(), "w.txt", "host,ts,cpu,up\nh1,2024-01-01T00:00:00Z,0.5,true\n");
    let columns = file_columns(&path, Some(InputFormat::Csv)).await.unwrap();
    let column = |name: &str, numeric| FileColumn { name: name.into(), numeric };
    assert_eq!(
        columns,
        [column("host", false), column("ts", false), column("cpu", true), column("up", true)]
    );
    let err = file_columns(&path, None).await.unwrap_err();
    assert!(matches!(err, DataError::UnknownFormat { .. }), "{err}");
}

#[tokio::test]
async fn where_filters_with_sql_over_the_file_columns() {
    let dir = tempfile::tempdir().unwrap();
    let path = parquet(dir.path(), "long.parquet", &long_batch());
    let options =
        ReadOptions { filter: Some("series_id = 'b' AND channel = 'rps'".into()), ..ReadOptions::default() };
    let (series, report) = read_all(&path, options).await.unwrap();
    assert_eq!(series.len(), 1);
    assert_eq!(report.rows, 3);
    assert_eq!(report.channels.len(), 1);
    let bad = ReadOptions { filter: Some("no_such_column > 1".into()), ..ReadOptions::default() };
    let err = read_err(&path, bad).await;
    assert!(matches!(err, DataError::Query { .. }), "{err}");
    assert!(err.to_string().contains("no_such_column"), "{err}");
}

#[tokio::test]
async fn a_long_mapping_without_channels_only_names_columns() {
    let dir = tempfile::tempdir().unwrap();
    let path = text(
        dir.path(),
        "m.csv",
        "host,at,channel,value\nh,2024-01-01T00:00:00Z,cpu,1\nh,2024-01-01T00:05:00Z,rps,2\n",
    );
    let mapping = ChannelMapping::from_toml("series_id = \"host\"\ntimestamp = \"at\"\n").unwrap();
    let (series, report) =
        read_all(&path, ReadOptions { mapping: Some(mapping), ..ReadOptions::default() }).await.unwrap();
    assert_eq!(report.role_source, RoleSource::DefaultAllTargets);
    assert_eq!(series[0].id, "h");
    let names: Vec<_> = report.channels.iter().map(|c| (c.name.as_str(), c.role)).collect();
    assert_eq!(names, [("cpu", Role::Target), ("rps", Role::Target)]);
}

#[tokio::test]
async fn role_column_gives_roles() {
    let dir = tempfile::tempdir().unwrap();
    let path = text(
        dir.path(),
        "r.csv",
        "series_id,timestamp,channel,role,value\ns,2024-01-01T00:00:00Z,cpu,target,1\ns,2024-01-01T00:00:00Z,replicas,action,2\ns,2024-01-01T00:05:00Z,cpu,target,1\n",
    );
    let (_, report) = read_all(&path, ReadOptions::default()).await.unwrap();
    assert_eq!(report.role_source, RoleSource::RoleColumn);
    assert_eq!(report.channels[1].role, Role::Action);
    let path = text(
        dir.path(),
        "r2.csv",
        "series_id,timestamp,channel,role,value\ns,2024-01-01T00:00:00Z,cpu,target,1\ns,2024-01-01T00:05:00Z,cpu,action,2\n",
    );
    let err = read_err(&path, ReadOptions::default()).await;
    assert!(err.to_string().contains("channel `cpu` has roles"), "{err}");
}

// ---- bad input: every error names the file and the column/row/series ----

#[tokio::test]
async fn missing_columns_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let b = batch(vec![
        ("series_id", strings(&["a"])),
        ("timestamp", millis(&[0])),
        ("channel", strings(&["cpu"])),
    ]);
    let path = parquet(dir.path(), "novalue.parquet", &b);
    let err = read_err(&path, ReadOptions::default()).await;
    assert!(matches!(&err, DataError::MissingColumn { column, .. } if column.starts_with("value")), "{err}");
    assert!(err.to_string().contains("novalue.parquet"), "{err}");
    let b = batch(vec![("series_id", strings(&["a"])), ("value", floats(&[Some(1.0)]))]);
    let err = read_err(&parquet(dir.path(), "notime.parquet", &b), ReadOptions::default()).await;
    assert!(err.to_string().contains("missing column `timestamp"), "{err}");
    assert!(err.to_string().contains("found: series_id, value"), "{err}");
}

#[tokio::test]
async fn wrong_types_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let b = batch(vec![
        ("series_id", strings(&["a"])),
        ("timestamp", millis(&[0])),
        ("channel", strings(&["cpu"])),
        ("value", strings(&["high"])),
    ]);
    let err = read_err(&parquet(dir.path(), "t.parquet", &b), ReadOptions::default()).await;
    assert!(matches!(&err, DataError::WrongType { column, .. } if column == "value"), "{err}");
    let b = batch(vec![
        ("series_id", strings(&["a"])),
        ("timestamp", floats(&[Some(0.0)])),
        ("value", floats(&[Some(1.0)])),
    ]);
    let err = read_err(&parquet(dir.path(), "t2.parquet", &b), ReadOptions::default()).await;
    assert!(matches!(&err, DataError::WrongType { column, .. } if column == "timestamp"), "{err}");
}

#[tokio::test]
async fn unparseable_timestamps_name_the_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = text(
        dir.path(),
        "ts.csv",
        "series_id,timestamp,channel,value\na,2024-01-01T00:00:00Z,cpu,1\na,yesterday,cpu,2\na,2024-01-01T00:10:00Z,cpu,3\n",
    );
    let err = read_err(&path, ReadOptions::default()).await;
    let message = err.to_string();
    assert!(
        message.contains("row 2") && message.contains("`timestamp`") && message.contains("yesterday"),
        "{message}"
    );
    let (series, report) = read_all(&path, lenient()).await.unwrap();
    assert_eq!(report.values.rejected, 1);
    assert_eq!(report.rejected_by_reason["unparseable_timestamp"], 1);
    assert_eq!(report.rejection_samples[0].row, 2);
    assert_eq!(series[0].frequency, Frequency::minutes(10), "spacing of the two rows left");
    assert_eq!(series[0].len(), 2);
}

#[tokio::test]
async fn out_of_order_rows_are_caught_when_declared_sorted() {
    let dir = tempfile::tempdir().unwrap();
    let path = text(
        dir.path(),
        "o.csv",
        "series_id,timestamp,channel,value\na,2024-01-01T00:00:00Z,cpu,1\na,2024-01-01T00:10:00Z,cpu,2\na,2024-01-01T00:05:00Z,cpu,3\n",
    );
    let sorted = ReadOptions { assume_sorted: true, ..ReadOptions::default() };
    let err = read_err(&path, sorted.clone()).await;
    assert!(matches!(err, DataError::OutOfOrder { row: 3, .. }), "{err}");
    assert!(err.to_string().contains("series `a` goes back in time"), "{err}");
    let path = text(
        dir.path(),
        "o2.csv",
        "series_id,timestamp,channel,value\na,2024-01-01T00:00:00Z,cpu,1\nb,2024-01-01T00:00:00Z,cpu,2\na,2024-01-01T00:05:00Z,cpu,3\n",
    );
    let err = read_err(&path, sorted).await;
    assert!(matches!(err, DataError::OutOfOrder { row: 3, .. }), "{err}");
    // Without the promise, loopcast sorts and both files read fine.
    assert_eq!(read_all(&path, ReadOptions::default()).await.unwrap().0.len(), 2);
}

#[tokio::test]
async fn conflicting_duplicates_name_both_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = text(
        dir.path(),
        "d.csv",
        "series_id,timestamp,channel,value\na,2024-01-01T00:00:00Z,cpu,1\na,2024-01-01T00:05:00Z,cpu,2\na,2024-01-01T00:05:00Z,cpu,2\na,2024-01-01T00:05:00Z,cpu,5\n",
    );
    let err = read_err(&path, ReadOptions::default()).await;
    let message = err.to_string();
    assert!(
        message.contains("row 4") && message.contains("series `a`") && message.contains("at row 2"),
        "{message}"
    );
    let (_, report) = read_all(&path, lenient()).await.unwrap();
    assert_eq!((report.values.used, report.values.duplicates, report.values.rejected), (2, 1, 1));
}

#[tokio::test]
async fn non_finite_values_name_the_row() {
    let dir = tempfile::tempdir().unwrap();
    let b = batch(vec![
        ("series_id", strings(&["a", "a", "a"])),
        ("timestamp", millis(&[0, MIN, 2 * MIN])),
        ("channel", strings(&["cpu", "cpu", "cpu"])),
        ("value", floats(&[Some(1.0), Some(f64::INFINITY), Some(f64::NAN)])),
    ]);
    let path = parquet(dir.path(), "nf.parquet", &b);
    let err = read_err(&path, ReadOptions::default()).await;
    let DataError::Rejected { rejection, .. } = &err else { panic!("{err}") };
    assert_eq!((rejection.row, rejection.column.as_str()), (2, "value"));
    assert!(matches!(rejection.reason, RejectReason::NonFinite { .. }));
    let (_, report) = read_all(&path, lenient()).await.unwrap();
    assert_eq!(report.rejected_by_reason["non_finite"], 2);
}

#[tokio::test]
async fn empty_input_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = text(dir.path(), "e.csv", "series_id,timestamp,channel,value\n");
    let err = read_err(&path, ReadOptions::default()).await;
    assert!(matches!(err, DataError::EmptyInput { filter: None, .. }), "{err}");
    let path = parquet(dir.path(), "zero.parquet", &long_batch().slice(0, 0));
    let err = read_err(&path, ReadOptions::default()).await;
    assert!(matches!(err, DataError::EmptyInput { filter: None, .. }), "{err}");
    assert!(err.to_string().contains("zero.parquet: no rows"), "{err}");
    let path = parquet(dir.path(), "f.parquet", &long_batch());
    let options = ReadOptions { filter: Some("series_id = 'zzz'".into()), ..ReadOptions::default() };
    let err = read_err(&path, options).await;
    assert!(matches!(err, DataError::EmptyInput { .. }), "{err}");
    assert!(err.to_string().contains("no rows match the filter `series_id = 'zzz'`"), "{err}");
}

#[tokio::test]
async fn mapped_channels_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    let path = parquet(dir.path(), "m.parquet", &long_batch());
    let mapping = ChannelMapping::from_toml("[channels]\ncpu = \"target\"\nmemory = \"target\"\n").unwrap();
    let err = read_err(&path, ReadOptions { mapping: Some(mapping), ..ReadOptions::default() }).await;
    assert!(matches!(&err, DataError::ChannelNotInData { channel, .. } if channel == "memory"), "{err}");
    let mapping = ChannelMapping::from_toml("[channels]\ncpu = \"target\"\nload = \"action\"\n").unwrap();
    let options = ReadOptions { layout: Layout::Wide, mapping: Some(mapping), ..ReadOptions::default() };
    let err = read_err(&path, options).await;
    assert!(matches!(&err, DataError::ChannelNotInData { channel, .. } if channel == "cpu"), "{err}");
    // Channels in the data but not in the mapping are reported, not silently dropped.
    let mapping = ChannelMapping::from_toml("[channels]\ncpu = \"target\"\n").unwrap();
    let options = ReadOptions { mapping: Some(mapping), frequency: Some(Frequency::minutes(5)), ..lenient() };
    let (_, report) = read_all(&path, options).await.unwrap();
    assert_eq!(report.rejected_by_reason["unmapped_channel"], 5);
    assert_eq!(report.values.total(), 10);
}

#[tokio::test]
async fn mixed_frequencies_are_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let b = batch(vec![
        ("series_id", strings(&["a", "a", "a", "b", "b", "b"])),
        ("timestamp", millis(&[0, 5 * MIN, 10 * MIN, 0, 60 * MIN, 120 * MIN])),
        ("value", floats(&[Some(1.0); 6])),
    ]);
    let path = parquet(dir.path(), "mixed.parquet", &b);
    let err = read_err(&path, ReadOptions::default()).await;
    assert!(matches!(&err, DataError::MixedFrequencies { series, .. } if series == "b"), "{err}");
    assert!(err.to_string().contains("every 5m") && err.to_string().contains("every 1h"), "{err}");
    let given = ReadOptions { frequency: Some(Frequency::hours(1)), ..ReadOptions::default() };
    let (series, _) = read_all(&path, given).await.unwrap();
    assert_eq!(series[0].channels[0].values, vec![1.0], "three 5m values fall into one hourly cell");
}

#[tokio::test]
async fn the_wide_layout_needs_a_mapping() {
    let dir = tempfile::tempdir().unwrap();
    let path = parquet(dir.path(), "w.parquet", &long_batch());
    let err = read_err(&path, ReadOptions { layout: Layout::Wide, ..ReadOptions::default() }).await;
    assert!(matches!(err, DataError::MappingRequired { .. }), "{err}");
}

#[tokio::test]
async fn missing_files_and_unknown_extensions_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let err = read_err(&dir.path().join("absent.parquet"), ReadOptions::default()).await;
    assert!(matches!(err, DataError::Io { .. }) && err.to_string().contains("absent.parquet"), "{err}");
    let err = read_err(&text(dir.path(), "x.xlsx", "a"), ReadOptions::default()).await;
    assert!(matches!(err, DataError::UnknownFormat { .. }), "{err}");
}

/// Row numbers in errors are file rows whether loopcast streams the file as it is (series
/// grouped), filters it, or has to sort it (series interleaved), across batch boundaries.
#[tokio::test]
async fn rejected_rows_are_file_rows_on_every_read_path() {
    let dir = tempfile::tempdir().unwrap();
    let row = |id: &str, minute: i64, value: &str| {
        let t = chrono::DateTime::from_timestamp(minute * 60, 0).unwrap().to_rfc3339();
        format!("{id},{t},cpu,{value}\n")
    };
    let header = "series_id,timestamp,channel,value\n";
    let mut grouped = header.to_string();
    let mut interleaved = header.to_string();
    for step in 0..5 {
        interleaved += &row("a", step, "1");
        interleaved += &row("b", step, if step == 3 { "NaN" } else { "2" });
    }
    for id in ["a", "b"] {
        for step in 0..5 {
            grouped += &row(id, step, if id == "b" && step == 3 { "NaN" } else { "2" });
        }
    }
    let small_batches = ReadOptions { batch_size: 3, ..ReadOptions::default() };
    let filtered = ReadOptions { filter: Some("series_id = 'b'".into()), ..small_batches.clone() };
    for (name, text_, bad_row) in [("grouped.csv", &grouped, 9), ("interleaved.csv", &interleaved, 8)] {
        let path = text(dir.path(), name, text_);
        for options in [small_batches.clone(), filtered.clone()] {
            let err = read_err(&path, options.clone()).await;
            let DataError::Rejected { rejection, .. } = &err else { panic!("{name}: {err}") };
            assert_eq!(rejection.row, bad_row, "{name} with filter {:?}", options.filter);
            assert_eq!(rejection.series.as_deref(), Some("b"));
        }
        let (series, report) =
            read_all(&path, ReadOptions { strict: false, ..small_batches.clone() }).await.unwrap();
        assert_eq!(series.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["a", "b"], "{name}");
        assert_eq!((report.rows, report.values.used, report.values.rejected), (10, 9, 1), "{name}");
    }
}
