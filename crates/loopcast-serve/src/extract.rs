//! The request extractors that name what is wrong: JSON bodies whose errors name the
//! field, bodies that may come as Arrow IPC streams, and the JSON parser behind both.

use axum::body::Bytes;
use axum::extract::{FromRequest, Query, Request};
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use crate::arrow_io::{ARROW_STREAM, ArrowQuery, FromArrow};
use crate::objects::Object;
use crate::problem::Problem;

/// What the extractors need of the handlers' state: the body limit their 413 names.
pub trait BodyLimit {
    /// The most bytes a request body may have.
    fn max_body_bytes(&self) -> usize;
}

/// A JSON body whose errors name the field: 400 for broken JSON, 422 for a value of the
/// wrong type or shape, 413 past the body limit, 415 for another media type.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: BodyLimit + Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let media = media_type(&request);
        if media != "application/json" && !media.ends_with("+json") {
            return Err(Problem::unsupported_media(request_media(&request), &["application/json"]));
        }
        let bytes = body_bytes(request, state).await?;
        parse(&bytes).map(ApiJson)
    }
}

/// A body as JSON, or as an Arrow IPC stream (`application/vnd.apache.arrow.stream`) with
/// the other fields as query parameters; errors as [`ApiJson`]'s.
#[derive(Debug)]
pub struct ApiBody<T>(pub T);

impl<T: DeserializeOwned + FromArrow, S: BodyLimit + Send + Sync> FromRequest<S> for ApiBody<T> {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        // Every refusal comes after the body is read: a response sent over an unread body
        // makes the server close the connection, and a client that reuses it (any HTTP
        // client's pool) sees its next request fail without an answer.
        let media = media_type(&request);
        if media == ARROW_STREAM {
            let query = Query::<ArrowQuery>::try_from_uri(request.uri())
                .map_err(|e| Problem::invalid("query", e.body_text()));
            let bytes = body_bytes(request, state).await?;
            T::from_arrow(&bytes, query?.0).map(ApiBody)
        } else if media == "application/json" || media.ends_with("+json") {
            ApiJson::<T>::from_request(request, state).await.map(|ApiJson(value)| ApiBody(value))
        } else {
            let problem =
                Problem::unsupported_media(request_media(&request), &["application/json", ARROW_STREAM]);
            body_bytes(request, state).await?;
            Err(problem)
        }
    }
}

/// The request's media type without parameters, lower-cased (empty when absent).
fn media_type(request: &Request) -> String {
    request_media(request).split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

/// The request's `Content-Type` as sent.
fn request_media(request: &Request) -> &str {
    request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// The body's bytes, refused past the limit.
async fn body_bytes<S: BodyLimit + Send + Sync>(request: Request, state: &S) -> Result<Bytes, Problem> {
    Bytes::from_request(request, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::too_large(state.max_body_bytes())
        } else {
            Problem::malformed(rejection.body_text())
        }
    })
}

/// Parses a JSON body, an object; the error names the path of the field at fault.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value =
        serde_path_to_error::deserialize(&mut deserializer).map(|o: Object<T>| o.0).map_err(|error| {
            let path = error.path().to_string();
            let inner = error.into_inner();
            match inner.classify() {
                serde_json::error::Category::Data => {
                    Problem::invalid(if path == "." { "body".to_string() } else { path }, inner.to_string())
                }
                _ => Problem::malformed(format!("not valid JSON: {inner}")),
            }
        })?;
    deserializer.end().map_err(|e| Problem::malformed(format!("not valid JSON: {e}")))?;
    Ok(value)
}
