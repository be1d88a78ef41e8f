/* Starts Swagger UI on /docs (api/app.py, maps/templates/docs.html) from the page's config
   block: the OpenAPI URL and the OAuth2 redirect. Nothing is fetched from another host: the
   online validator is off. */
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
    oauth2RedirectUrl: window.location.origin + cfg.oauth2RedirectUrl,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset]
  });
})();
