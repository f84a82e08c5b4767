//! `/docs`: Swagger UI over `/openapi.json`, from assets embedded in the binary.

mod common;

use common::{serve, started};
use reqwest::Url;
use sssn::channel::BroadcastChannel;
use sssn_http::server::DOCS_CONTENT_SECURITY_POLICY;

/// The values of `attr="…"` in `html`.
fn attribute_values(html: &str, attr: &str) -> Vec<String> {
    let needle = format!("{attr}=\"");
    html.match_indices(&needle)
        .map(|(i, _)| {
            let rest = &html[i + needle.len()..];
            rest[..rest.find('"').unwrap()].to_owned()
        })
        .collect()
}

#[tokio::test]
async fn the_docs_page_loads_swagger_ui_from_embedded_assets_only() {
    let ch = started(BroadcastChannel::new("feed").public()).await;
    let h = serve(vec![ch]).await;
    let page_url = Url::parse(&h.url("/docs")).unwrap();

    let resp = h.http.get(page_url.clone()).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let headers = resp.headers().clone();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(
        headers["content-security-policy"],
        DOCS_CONTENT_SECURITY_POLICY
    );
    assert!(DOCS_CONTENT_SECURITY_POLICY.contains("script-src 'self';"));
    let html = resp.text().await.unwrap();
    assert!(html.contains("<div id=\"swagger-ui\"></div>"));

    let mut refs = attribute_values(&html, "src");
    refs.extend(attribute_values(&html, "href"));
    assert_eq!(refs.len(), 4, "bundle, init, stylesheet, icon: {refs:?}");
    let mut scripts = String::new();
    for r in &refs {
        assert!(
            !r.contains("//") && !r.starts_with('/'),
            "{r}: relative, on this server"
        );
        let url = page_url.join(r).unwrap();
        assert!(url.path().starts_with("/docs/"), "{url}");
        let resp = h.http.get(url.clone()).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{url}");
        let media = resp.headers()["content-type"].to_str().unwrap().to_owned();
        let body = resp.bytes().await.unwrap();
        let expected = match r.rsplit('.').next().unwrap() {
            "js" => "text/javascript; charset=utf-8",
            "css" => "text/css; charset=utf-8",
            "png" => "image/png",
            other => panic!("unexpected asset type {other}"),
        };
        assert_eq!(media, expected, "{url}");
        if media.starts_with("text/") {
            let text = std::str::from_utf8(&body).unwrap();
            assert!(
                !text.contains("sourceMappingURL"),
                "{url} points at a file not served"
            );
            if media.starts_with("text/javascript") {
                scripts.push_str(text);
            } else {
                assert!(!text.contains("url(http"), "{url} loads from elsewhere");
            }
        }
    }
    assert!(
        scripts.len() > 1_000_000,
        "the Swagger UI bundle is served whole"
    );
    assert!(scripts.contains("SwaggerUIBundle"));

    // The page is pointed at this server's document, and the validator badge is off.
    assert!(scripts.contains("url: \"openapi.json\""));
    assert!(scripts.contains("validatorUrl: null"));
    let doc_url = page_url.join("openapi.json").unwrap();
    assert_eq!(doc_url.path(), "/openapi.json");
    let doc: serde_json::Value = h
        .http
        .get(doc_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert!(
        doc["paths"].get("/docs").is_none(),
        "pages for people are not API operations"
    );

    // The licence ships with the assets; anything else under /docs is a 404.
    let licence = h.http.get(h.url("/docs/LICENSE")).send().await.unwrap();
    assert_eq!(licence.status(), 200);
    assert!(licence.text().await.unwrap().contains("Apache License"));
    let missing = h
        .call(reqwest::Method::GET, "/docs/../Cargo.toml", None, None)
        .await;
    assert_eq!(missing.status, 404);
    let missing = h
        .call(reqwest::Method::GET, "/docs/nothing.js", None, None)
        .await;
    missing.expect_error(404);
}
