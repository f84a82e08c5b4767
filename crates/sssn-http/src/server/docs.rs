//! `GET /docs`: interactive API documentation (Swagger UI) over `/openapi.json`, as v1's
//! FastAPI served it. Every asset is embedded in the binary (`assets/swagger-ui`, from the
//! npm package `swagger-ui-dist`), so the page works offline and loads nothing from a CDN;
//! the Content-Security-Policy holds the browser to that.
//!
//! These are pages for people, not API operations, so they are not in the route table
//! ([`crate::api::ROUTES`]) nor in the OpenAPI document (FastAPI leaves them out too).

use std::sync::Arc;

use axum::Router;
use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;
use crate::error::ApiError;

/// An embedded file: name under `/docs/`, media type, bytes.
struct Asset {
    name: &'static str,
    media: &'static str,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $media:literal) => {
        Asset {
            name: $name,
            media: $media,
            bytes: include_bytes!(concat!("../../assets/swagger-ui/", $name)),
        }
    };
}

const PAGE: &[u8] = include_bytes!("../../assets/swagger-ui/index.html");

const ASSETS: &[Asset] = &[
    asset!("swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
    asset!("swagger-ui.css", "text/css; charset=utf-8"),
    asset!("init.js", "text/javascript; charset=utf-8"),
    asset!("favicon-32x32.png", "image/png"),
    asset!("LICENSE", "text/plain; charset=utf-8"),
    asset!("NOTICE", "text/plain; charset=utf-8"),
    asset!(
        "swagger-ui-bundle.js.LICENSE.txt",
        "text/plain; charset=utf-8"
    ),
];

/// Scripts, styles, images and requests from this server only. Swagger UI sets inline
/// styles, hence `'unsafe-inline'` for styles (never for scripts).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
     font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The `/docs` routes, merged into the server's router.
pub(crate) fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/docs", get(page))
        .route("/docs/{asset}", get(asset))
}

async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        PAGE,
    )
        .into_response()
}

async fn asset(Path(name): Path<String>) -> Response {
    let Some(a) = ASSETS.iter().find(|a| a.name == name) else {
        return ApiError::route_not_found().into_response();
    };
    (
        [
            (header::CONTENT_TYPE, a.media),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            // The files change only with the binary.
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        a.bytes,
    )
        .into_response()
}
