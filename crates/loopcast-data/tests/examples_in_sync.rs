//! The sample files in examples/data are exactly what the documented script writes.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn example_data_is_generated_by_the_script() {
    // `cargo test` builds the examples next to the test binaries (target/<profile>/examples).
    let deps = std::env::current_exe().unwrap().parent().unwrap().to_path_buf();
    let script = deps.parent().unwrap().join("examples").join("make_example_data");
    assert!(script.exists(), "{} is built by cargo test", script.display());
    let out = tempfile::tempdir().unwrap();
    let status = Command::new(&script).arg(out.path()).status().unwrap();
    assert!(status.success());
    let committed = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/data"));
    for entry in std::fs::read_dir(out.path()).unwrap() {
        let name = entry.unwrap().file_name();
        let fresh = std::fs::read(out.path().join(&name)).unwrap();
        let shipped = std::fs::read(committed.join(&name))
            .unwrap_or_else(|e| panic!("examples/data/{} is missing: {e}", name.to_string_lossy()));
        assert!(
            fresh == shipped,
            "examples/data/{} differs from the script's output",
            name.to_string_lossy()
        );
    }
}
