//! Counterfactual and planner scoring with the shipped model on a few held-out twins.

use loopcast_eval::counterfactual::{EffectModel, TwinSpec, evaluate_effects, twin_episodes};
use loopcast_eval::plan_eval::{PlanEvalSpec, evaluate_planner};
use loopcast_model::{Device, ForecastOptions, LoopedWorldModel};

fn twins(episodes: usize) -> TwinSpec {
    TwinSpec { episodes, context: 384, horizon: 48, ..TwinSpec::default() }
}

#[test]
fn every_model_scores_the_same_twins_and_the_blind_model_sees_no_effect() {
    let model = LoopedWorldModel::shipped(&Device::flex()).unwrap();
    let episodes = twin_episodes(twins(3)).unwrap();
    let mut seen = Vec::new();
    let report = evaluate_effects(
        Some(&model),
        &episodes,
        &EffectModel::ALL,
        &ForecastOptions::default(),
        &mut |done| {
            seen.push(done);
            true
        },
    )
    .unwrap();
    assert_eq!(seen.last(), Some(&3), "progress reaches the end: {seen:?}");
    assert_eq!((report.episodes, report.departures), (3, 9));
    let material = report.overall[&EffectModel::Loopcast].material;
    assert!(material > 0, "some twin effects are material");
    for model in EffectModel::ALL {
        // Materiality depends on the truth only, so every model scores the same effects.
        assert_eq!(report.overall[&model].material, material, "{model:?}");
        let rows: Vec<_> = report.rows.iter().filter(|r| r.model == model).collect();
        assert_eq!(rows.len(), material);
        assert!(rows.iter().all(|r| r.error.is_finite() && r.error >= 0.0));
    }
    // Twins differ only in their actions: blind to them, the model predicts no effect.
    let blind = report.overall[&EffectModel::ActionBlind];
    assert_eq!(blind.median_error, Some(1.0));
    assert_eq!(blind.sign_accuracy, Some(0.0));
    // The simulator, knowing the service, predicts effects far better than none.
    let oracle = report.overall[&EffectModel::Oracle];
    assert!(oracle.median_error.unwrap() < 0.5, "{oracle:?}");
    assert!(oracle.sign_accuracy.unwrap() > 0.7, "{oracle:?}");
    let markdown = report.markdown();
    for row in ["| action_blind |", "| arx |", "| oracle |"] {
        assert!(markdown.contains(row), "{row} missing from\n{markdown}");
    }
}

#[test]
fn a_progress_callback_can_stop_the_run() {
    let model = LoopedWorldModel::shipped(&Device::flex()).unwrap();
    let episodes = twin_episodes(twins(2)).unwrap();
    let stopped = evaluate_effects(
        Some(&model),
        &episodes,
        &EffectModel::ALL,
        &ForecastOptions::default(),
        &mut |_| false,
    );
    assert!(matches!(stopped, Err(loopcast_eval::EvalError::Stopped)));
}

#[test]
fn planner_choices_are_scored_against_the_oracle_in_the_simulator() {
    let model = LoopedWorldModel::shipped(&Device::flex()).unwrap();
    let spec = PlanEvalSpec { twins: twins(2), budget: 8, ..PlanEvalSpec::default() };
    let report = evaluate_planner(&model, &spec, &ForecastOptions::default(), &mut |_| true).unwrap();
    assert_eq!(report.episodes, 2);
    assert_eq!(report.rows.len(), 6, "a loopcast, a perfect-model and an operator row per problem");
    assert!(report.mean_candidates > 0.0 && report.mean_candidates <= 8.0);
    for row in &report.rows {
        assert!(row.slo_ms > 0.0);
        if let (Some(cost), Some(oracle)) = (row.cost, row.oracle_cost) {
            // The oracle is the cheapest of a set holding every candidate, so nothing that
            // truly keeps the SLO is cheaper.
            if row.truly_meets {
                assert!(cost >= oracle - 1e-9, "{row:?}");
            }
        }
        if row.planner == "operator" {
            assert!(row.planned && row.cost.unwrap() >= 48.0, "at least one replica per step: {row:?}");
        }
    }
    // Judged by the simulator itself, the search only returns schedules that keep the SLO.
    for row in report.rows.iter().filter(|r| r.planner == "perfect_model" && r.planned) {
        assert!(row.truly_meets, "{row:?}");
    }
    for summary in [report.loopcast, report.perfect_model, report.operator] {
        assert!(summary.planned <= summary.solvable);
        if let Some(ratio) = summary.median_cost_ratio {
            assert!(ratio >= 1.0 - 1e-9);
        }
    }
}
