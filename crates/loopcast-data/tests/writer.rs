//! Long-format Parquet output: round trip through the reader, and atomic replacement.

mod common;

use std::sync::Arc;

use arrow::array::{Float64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use loopcast_core::{ChannelSpec, ChannelValues, Frequency, RegularSeries, Role};
use loopcast_data::{
    AtomicParquetWriter, LongSeriesWriter, ReadOptions, RoleSource, long_schema, write_long_parquet,
};

fn series(id: &str) -> RegularSeries {
    RegularSeries::new(
        id,
        Frequency::minutes(5),
        100,
        vec![
            ChannelValues {
                spec: ChannelSpec::new("cpu", Role::Target),
                values: vec![0.5, 0.0, 0.7],
                observed: vec![true, false, true],
            },
            ChannelValues {
                spec: ChannelSpec::new("replicas", Role::Action),
                values: vec![3.0, 3.0, 4.0],
                observed: vec![true, true, true],
            },
        ],
    )
    .unwrap()
}

#[tokio::test]
async fn long_output_reads_back_as_the_same_series() {
    let dir = tempfile::tempdir().unwrap();
    let written = vec![series("a"), series("b")];
    let path = write_long_parquet(dir.path().join("out.parquet"), &written).unwrap();
    let (read, report) = common::read_all(&path, ReadOptions::default()).await.unwrap();
    assert_eq!(read, written);
    assert_eq!(report.role_source, RoleSource::RoleColumn);
    assert_eq!(report.values.missing, 2, "the unobserved cells are written as nulls");
}

#[tokio::test]
async fn scenario_files_read_back_one_scenario_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("twins.parquet");
    let mut writer = LongSeriesWriter::create(&path, true).unwrap();
    let mut other = series("a");
    other.channels[1].values[2] = 6.0;
    writer.write_series(&series("a"), Some("plan-0")).unwrap();
    writer.write_series(&other, Some("plan-1")).unwrap();
    let err = writer.write_series(&series("a"), None).unwrap_err();
    assert!(err.to_string().contains("no scenario label"), "{err}");
    assert!(!path.exists(), "nothing at the target before finish");
    writer.finish().unwrap();
    let options = ReadOptions { filter: Some("scenario = 'plan-1'".into()), ..ReadOptions::default() };
    let (read, _) = common::read_all(&path, options).await.unwrap();
    assert_eq!(read, vec![other]);
}

#[test]
fn an_unfinished_write_leaves_the_old_file_alone() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("scores.parquet");
    std::fs::write(&target, b"previous run").unwrap();
    let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Float64, false)]));
    let batch =
        RecordBatch::try_new(schema.clone(), vec![Arc::new(Float64Array::from(vec![1.0, 2.0]))]).unwrap();
    {
        let mut writer = AtomicParquetWriter::create(&target, schema.clone()).unwrap();
        writer.write(&batch).unwrap();
        // Dropped here without finish(), as after a crash or an error.
    }
    assert_eq!(std::fs::read(&target).unwrap(), b"previous run");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left behind");

    let mut writer = AtomicParquetWriter::create(&target, schema).unwrap();
    writer.write(&batch).unwrap();
    writer.finish().unwrap();
    let file = std::fs::File::open(&target).unwrap();
    let rows: usize = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap()
        .map(|b| b.unwrap().num_rows())
        .sum();
    assert_eq!(rows, 2);
}

#[test]
fn the_published_schema_matches_the_writer() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../schemas/telemetry_long.schema.json"
    ))
    .unwrap();
    let published: serde_json::Value = serde_json::from_str(&text).unwrap();
    let fields = published["fields"].as_array().unwrap();
    let schema = long_schema(true);
    assert_eq!(fields.len(), schema.fields().len());
    assert_eq!(long_schema(false).fields().len(), fields.len() - 1);
    for (json, field) in fields.iter().zip(schema.fields()) {
        assert_eq!(json["name"], field.name().as_str());
        assert_eq!(json["type"], field.data_type().to_string(), "type of {}", field.name());
        assert_eq!(json["nullable"], field.is_nullable(), "nullability of {}", field.name());
    }
}
