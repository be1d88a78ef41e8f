"""The API's documentation page (/docs): Swagger UI from the vendored copy, no CDN."""

from __future__ import annotations

from maps.pages import render

SWAGGER = "/static/vendor/swagger-ui"
DOCS_JS = "/static/docs.js"


def docs_html(title: str, openapi_url: str) -> str:
    """Swagger UI over ``openapi_url``, started by /static/docs.js."""
    return render("docs.html", title=f"{title} – 接口文档 API",
                  config={"openapiUrl": openapi_url},
                  styles=[f"{SWAGGER}/swagger-ui.css"],
                  scripts=[f"{SWAGGER}/swagger-ui-bundle.js", DOCS_JS])
