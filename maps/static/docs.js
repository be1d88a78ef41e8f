/* Starts Swagger UI on /docs (api/app.py, maps/templates/docs.html) from the page's config
   block (the OpenAPI URL). Nothing is fetched from another host: the online validator is
   off. Sign-in is the OAuth2 password flow (Authorize), which needs no redirect page. */
(function () {
  "use strict";
  var cfg = JSON.parse(document.getElementById("gm-config").textContent);
  window.ui = SwaggerUIBundle({
    url: cfg.openapiUrl,
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset]
  });
})();
