// The document is /docs, so "openapi.json" is the server's own /openapi.json (also when
// the router is nested under a prefix). No validator: nothing leaves the server.
window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
};
