//! The errors of HTTP itself, each a JSON body `{"detail", "code"}` built here and nowhere else:
//! an unknown path, a method the path does not take, a body too large or of the wrong type, a
//! failed handler, a server that is shutting down. (The guide's own outcomes come from
//! [`crate::guide`].)

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

fn error(status: StatusCode, code: &str, detail: &str) -> Response {
    let body = serde_json::json!({ "detail": detail, "code": code }).to_string();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

pub(super) fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not_found", "Not found.")
}

pub(super) fn method_not_allowed() -> Response {
    error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "Method not allowed on this path.")
}

/// 401: no key, or not a live token's (`presented` tells which).
pub(super) fn unauthenticated(presented: bool) -> Response {
    let mut response = if presented {
        error(StatusCode::UNAUTHORIZED, "authentication_failed", "Invalid token.")
    } else {
        error(StatusCode::UNAUTHORIZED, "not_authenticated", "Authentication credentials were not provided.")
    };
    response.headers_mut().insert(header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Token"));
    response
}

/// 403: the token's role may not do this.
pub(super) fn forbidden() -> Response {
    error(StatusCode::FORBIDDEN, "permission_denied", "You do not have permission to perform this action.")
}

pub(super) fn bad_request(detail: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "invalid_request", detail)
}

pub(super) fn internal(detail: &str) -> Response {
    error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", detail)
}

pub(super) fn draining() -> Response {
    error(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", "The server is shutting down.")
}

/// The body of a request that must carry JSON: 415 unless it says it does, 413 or 400 when it
/// could not be read.
pub(super) fn json_body(
    headers: &HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<axum::body::Bytes, Response> {
    if let Some(refused) = not_json_content(headers) {
        return Err(refused);
    }
    body.map_err(|rejection| body_rejected(&rejection))
}

/// 415 unless the request says its body is JSON (`application/json`, any parameters).
fn not_json_content(headers: &HeaderMap) -> Option<Response> {
    let declared = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let media = declared.split(';').next().unwrap_or("").trim();
    (!media.eq_ignore_ascii_case("application/json")).then(|| {
        error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "The request body must be JSON (Content-Type: application/json).",
        )
    })
}

pub(super) fn too_large() -> Response {
    error(StatusCode::PAYLOAD_TOO_LARGE, "request_too_large", "The request body is larger than the server takes.")
}

/// A body that could not be read: 413 past the limit, 400 otherwise.
fn body_rejected(rejection: &axum::extract::rejection::BytesRejection) -> Response {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large()
    } else {
        error(StatusCode::BAD_REQUEST, "unreadable_body", &rejection.body_text())
    }
}
