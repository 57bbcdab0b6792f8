//! `docs/SIMULATOR.md` lists every parameter with the range the code draws it from.

use loopcast_sim::{ParamRanges, Scale};

#[test]
fn the_parameter_table_matches_the_code() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/SIMULATOR.md")).unwrap();
    let table = ParamRanges::table();
    let rows = doc.lines().filter(|l| l.starts_with("| `")).count();
    for info in &table {
        let scale = match info.scale {
            Scale::Linear => "linear",
            Scale::Log => "log",
        };
        let row = format!(
            "| `{}` | {} – {} | {scale} | {} | {} |",
            info.name, info.low, info.high, info.unit, info.doc
        );
        assert!(doc.contains(&row), "docs/SIMULATOR.md lacks or differs on:\n{row}");
    }
    assert!(rows >= table.len());
}
