//! `loopcast bench --quick`: every table is printed, `--write` replaces only the marked
//! block of its file, and a file without the markers is refused.

mod common;

use common::loopcast;

#[test]
fn bench_prints_every_table_and_rewrites_only_the_marked_block() {
    let dir = tempfile::tempdir().unwrap();
    let doc = dir.path().join("PERFORMANCE.md");
    let before = "# Performance\n\nwritten by hand\n\n<!-- loopcast bench: begin -->\nold figures\n<!-- loopcast bench: end -->\n\nafter\n";
    std::fs::write(&doc, before).unwrap();
    let out = loopcast(&["bench", "--quick", "--write", doc.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed = String::from_utf8_lossy(&out.stdout);
    for heading in [
        "### Latency and throughput",
        "### What-if cost",
        "### Loops used against accuracy",
        "### Throughput against AutoETS",
    ] {
        assert!(printed.contains(heading), "{heading} missing from\n{printed}");
    }
    assert!(printed.contains("| batch 256, adaptive exit |"), "{printed}");
    let after = std::fs::read_to_string(&doc).unwrap();
    assert!(after.starts_with("# Performance\n\nwritten by hand\n\n<!-- loopcast bench: begin -->"));
    assert!(after.ends_with("<!-- loopcast bench: end -->\n\nafter\n"), "{after}");
    assert!(!after.contains("old figures") && after.contains("### What-if cost"));

    // No markers: a usage error (exit 2) and the file is left alone.
    let plain = dir.path().join("plain.md");
    std::fs::write(&plain, "no markers\n").unwrap();
    let out = loopcast(&["bench", "--quick", "--write", plain.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_to_string(&plain).unwrap(), "no markers\n");
}
