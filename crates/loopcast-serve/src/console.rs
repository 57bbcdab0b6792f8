//! The web console at `/`: a page, a script and a style sheet embedded in the binary, with
//! no other server and nothing fetched from elsewhere. It runs in the browser on the
//! service's own public API (`/v1/examples`, `/v1/series`, `/v1/forecast`, `/v1/whatif`,
//! `/v1/plan`), so everything it shows can be had over REST.

use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::problem::Problem;

/// The console's files: name, media type, contents.
const ASSETS: &[(&str, &str, &str)] = &[
    ("console.js", "text/javascript; charset=utf-8", include_str!("../console/console.js")),
    ("charts.js", "text/javascript; charset=utf-8", include_str!("../console/charts.js")),
    ("console.css", "text/css; charset=utf-8", include_str!("../console/console.css")),
];

/// Only the service's own origin: no inline script, no third-party anything.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; \
                                       script-src 'self'; connect-src 'self'; frame-ancestors 'none'";

fn asset(media: &'static str, body: &'static str) -> Response {
    let mut response = ([(header::CONTENT_TYPE, media)], body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// `GET /`: the console's page.
pub(crate) async fn index() -> Response {
    asset("text/html; charset=utf-8", include_str!("../console/index.html"))
}

/// `GET /console/{file}`: the console's script and style sheet.
pub(crate) async fn file(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(file, _, _)| *file == name) {
        Some((_, media, body)) => asset(media, body),
        None => Problem::not_found(format!("the console has no file `{name}`")).into_response(),
    }
}
