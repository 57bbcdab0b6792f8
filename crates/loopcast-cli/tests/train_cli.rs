//! `loopcast train` and `loopcast models` as a user runs them: a tiny recipe trains and
//! its model loads; bad recipes and clashing runs get one-line errors and exit codes.

mod common;

use common::{TINY, json, loopcast};

#[test]
fn the_shipped_model_is_the_default() {
    let description = json(&["models", "--json"]);
    assert_eq!(description["name"], "loopcast-small");
    assert_eq!(description["source"], "embedded");
    assert_eq!(description["parameters"], 258_718);
}

#[test]
fn a_recipe_trains_and_its_model_loads() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tiny.toml");
    std::fs::write(&config, TINY).unwrap();
    let out = dir.path().join("run");
    let (config, out) = (config.to_str().unwrap(), out.to_str().unwrap());
    let run = loopcast(&["train", "--config", config, "--out", out, "--quiet"]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(String::from_utf8_lossy(&run.stdout).contains("trained 4 steps"));
    let model = format!("{out}/model");
    let description = json(&["models", "--model", &model, "--json"]);
    assert_eq!(description["config"]["d_model"], 16);
    assert_eq!(std::fs::read_to_string(format!("{out}/metrics.jsonl")).unwrap().lines().count(), 2);

    // The same directory again without --resume: refused, nothing touched.
    let again = loopcast(&["train", "--config", config, "--out", out, "--quiet"]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--resume"));
}

#[test]
fn bad_recipes_are_refused_naming_the_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, TINY.replace("batch_size = 2", "batch_size = 3")).unwrap();
    let out = dir.path().join("run");
    let run = loopcast(&["train", "--config", config.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(65));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("bad.toml") && stderr.contains("batch_size"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    std::fs::write(&config, TINY.replace("[loss]", "[loss]\npinbal = 1.0")).unwrap();
    let run = loopcast(&["train", "--config", config.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(65));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("pinbal") && stderr.contains("line 18"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    let wide = "real_share = 0.2\n[[data.real]]\npath = \"wide.csv\"\nformat = \"wide\"\n[validation]";
    std::fs::write(&config, TINY.replace("[validation]", wide)).unwrap();
    let run = loopcast(&["train", "--config", config.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(65));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("wide.csv") && stderr.contains("needs `targets`"), "{stderr}");

    let resume = loopcast(&[
        "train",
        "--config",
        config.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--resume",
    ]);
    assert_ne!(resume.status.code(), Some(0));
    let missing = loopcast(&["models", "--model", dir.path().join("nothing").to_str().unwrap()]);
    assert_eq!(missing.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("config.json"));
}
