//! `loopcast calibrate` on the shipped model: fits its effect intervals on validation-range
//! twins and writes the same weights with the fitted `effect_widening`.

mod common;

use common::{json, loopcast};

#[test]
fn calibrate_writes_the_same_weights_with_fitted_effect_intervals() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("calibrated");
    let args = ["calibrate", "--windows", "24", "--out", out.to_str().unwrap(), "--json"];
    let result = json(&args);
    let widening = result["effect_widening"].as_f64().unwrap();
    assert!(widening.is_finite() && widening > 0.0, "{result}");
    assert!(result["material_effects"].as_u64().unwrap() > 0, "{result}");
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["effect_widening"].as_f64(), Some(widening));
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/loopcast-small/weights.bpk");
    assert!(std::fs::read(out.join("weights.bpk")).unwrap() == std::fs::read(shipped).unwrap());
    // The same fit again from the written model: deterministic, and it reads its own
    // widening back (the intervals were fitted with it, so the fit does not move).
    let again = json(&[
        "calibrate",
        "--model",
        out.to_str().unwrap(),
        "--windows",
        "24",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(again["effect_widening_before"].as_f64(), Some(widening));
    assert!(
        (again["effect_widening"].as_f64().unwrap() - widening).abs() < 1e-6 * widening.max(1.0),
        "{again}"
    );

    let refused = loopcast(&["calibrate", "--windows", "0", "--out", out.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(2));
}
