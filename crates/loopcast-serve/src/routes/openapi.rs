//! The OpenAPI document as the server keeps it: generated from the request and response
//! types, with the bounds the server enforces filled in from its model and limits, so a
//! client that validates against the document sends nothing the server refuses for a
//! bound (and a schema-valid request past a bound cannot happen).

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use loopcast_model::ModelConfig;
use serde_json::{Value, json};
use utoipa::OpenApi;

use super::{jobs, model};
use crate::api::MAX_SERIES_CALIBRATION;
use crate::config::Limits;
use crate::datasets;
use crate::frequency_field;
use crate::prepare::Bounds;
use crate::state::AppState;

/// This document, with the bounds of this server's model and limits.
#[utoipa::path(get, path = "/openapi.json", responses((status = 200, description = "OpenAPI 3.1 document")), security((), ("bearer" = [])))]
pub(super) async fn openapi(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], document(state.worker().bounds()))
}

/// The OpenAPI document of a server of `model` under `limits`, pretty-printed
/// (`schemas/openapi.json` holds the shipped model's under the default limits).
pub fn openapi_json(model: &ModelConfig, limits: &Limits) -> String {
    document(&Bounds::new(model, limits))
}

fn document(bounds: &Bounds) -> String {
    let mut document = serde_json::to_value(ApiDoc::openapi()).expect("the document serialises");
    let schemas = &mut document["components"]["schemas"];
    let limits = &bounds.limits;
    let (low, high) = (bounds.levels[0], bounds.levels[bounds.levels.len() - 1]);
    for request in ["ForecastRequest", "WhatIfRequest", "PlanRequest", "JobRequest"] {
        let properties = &mut schemas[request]["properties"];
        bound(&mut properties["horizon"], json!({"minimum": 1, "maximum": bounds.max_horizon}));
        bound(
            &mut properties["quantiles"],
            json!({"minItems": 1, "maxItems": limits.max_quantiles, "uniqueItems": true}),
        );
        bound(&mut properties["quantiles"]["items"], json!({"minimum": low, "maximum": high}));
        if properties.get("series").and_then(|series| series.get("type")) == Some(&json!("array")) {
            bound(&mut properties["series"], json!({"minItems": 1, "maxItems": limits.max_series}));
        }
    }
    let plans = &mut schemas["WhatIfRequest"]["properties"]["plans"];
    bound(plans, json!({"minItems": 1, "maxItems": limits.max_scenarios}));
    let candidates = &mut schemas["PlanRequest"]["properties"]["max_candidates"];
    bound(candidates, json!({"minimum": 1, "maximum": limits.max_plan_candidates}));
    let compute = &mut schemas["ComputeOptions"]["properties"];
    for loops in ["min_loops", "max_loops"] {
        bound(&mut compute[loops], json!({"minimum": 1, "maximum": limits.max_loops}));
    }
    bound(&mut compute["exit_threshold"], json!({"minimum": 0}));
    bound(&mut compute["series_calibration"], json!({"minimum": 0, "maximum": MAX_SERIES_CALIBRATION}));
    // A target is forecast, never planned, and needs one observed value.
    let target_rule = json!({
        "if": {"properties": {"role": {"const": "target"}}, "required": ["role"]},
        "then": {"properties": {"values": {"contains": {"type": "number"}}, "future": {"type": "null"}}},
    });
    bound(&mut schemas["ChannelInput"], target_rule);
    bound(&mut schemas["ChannelInput"]["properties"]["values"], json!({"maxItems": limits.max_context}));
    let frequency = json!({"pattern": *frequency_field::PATTERN});
    bound(&mut schemas["MappingInput"]["properties"]["frequency"], frequency.clone());
    let series = &mut schemas["SeriesInput"]["properties"];
    bound(&mut series["frequency"], frequency.clone());
    let target = json!({"type": "object", "properties": {"role": {"const": "target"}}, "required": ["role"]});
    bound(&mut series["channels"], json!({"contains": target}));
    // The grid: `timestamps`, or `start` with `frequency`.
    let grid = json!({"oneOf": [
        {"required": ["timestamps"], "properties": {"timestamps": {"type": "array"}, "start": {"type": "null"}}},
        {
            "required": ["start", "frequency"],
            "properties": {"start": {"type": "string"}, "frequency": {"type": "string"}, "timestamps": {"type": "null"}},
        },
    ]});
    bound(&mut schemas["SeriesInput"], grid);
    // A wide table names its columns' roles.
    let wide = json!({
        "if": {"properties": {"layout": {"const": "wide"}}, "required": ["layout"]},
        "then": {"properties": {"mapping": {"type": "object"}}, "required": ["mapping"]},
    });
    bound(&mut schemas["JobRequest"], wide);
    let parameters = document["paths"]["/v1/series"]["post"]["parameters"].as_array_mut();
    let query = parameters.into_iter().flatten().find(|p| p["name"] == "frequency");
    bound(query.map_or(&mut Value::Null, |p| &mut p["schema"]), frequency);
    serde_json::to_string_pretty(&document).expect("the document serialises") + "\n"
}

/// Sets the keywords of `bounds` on `schema`, which the generated document must have.
fn bound(schema: &mut Value, bounds: Value) {
    let (Some(schema), Value::Object(bounds)) = (schema.as_object_mut(), &bounds) else {
        panic!("the OpenAPI document lost a bounded field: {bounds}");
    };
    schema.extend(bounds.clone());
}

#[derive(OpenApi)]
#[openapi(
    info(title = "loopcast", description = "Forecasts, counterfactual what-ifs and capacity plans for operations telemetry."),
    paths(model::forecast, model::whatif, model::plan, datasets::read_series, datasets::list_examples, datasets::get_example, jobs::post_job, jobs::list_jobs, jobs::get_job, jobs::delete_job, jobs::job_output, jobs::put_file, model::models, model::health, model::ready, model::metrics_text, openapi),
    modifiers(&BearerAuth),
)]
struct ApiDoc;
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "Needed only when the server has an API key (`api_key`, `LOOPCAST_API_KEY`); without one every route answers without it",
                    ))
                    .build(),
            ),
        );
    }
}
