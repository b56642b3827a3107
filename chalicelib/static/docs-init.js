// Starts Swagger UI on the docs page. A file of its own, not an inline script, so the page
// needs no 'unsafe-inline' in its Content-Security-Policy. The spec URL is relative, so the
// page works behind API Gateway's stage prefix too (/<stage>/docs -> /<stage>/openapi.json).
window.addEventListener("DOMContentLoaded", function () {
  window.ui = SwaggerUIBundle({
    url: "openapi.json",
    dom_id: "#docs",
    persistAuthorization: true,
    validatorUrl: null // no badge fetched from swagger.io: the page works without internet
  });
});
