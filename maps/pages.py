"""Pages from Jinja2 templates: one autoescaping environment, one rule for JSON inside HTML.

Every HTML page the service answers is rendered here, from ``maps/templates/``. Every value
reaches the page through the template's autoescape (text, attributes, ``<title>``), and
whatever a page's script needs is one JSON data block, ``<script type="application/json"
id="gm-config">{{ config|tojson }}</script>`` (``|tojson`` escapes ``<``, ``>``, ``&`` and
``'``, so no value can end the block), read by the page's own file under ``/static``. No page
holds an inline script: the Content-Security-Policy (``api/headers.py``) forbids them.
"""

from __future__ import annotations

import functools
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from maps.assets import TEMPLATES

#: The id of the JSON data block a page's script reads its configuration from.
CONFIG_ID = "gm-config"


@functools.cache
def environment() -> Environment:
    """The one environment: autoescape on for every template, undefined names an error."""
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                      auto_reload=False)
    # Chinese stays readable in the page source; the HTML-unsafe characters are still
    # written as \u003c, \u003e, \u0026, \u0027 by |tojson.
    env.policies["json.dumps_kwargs"] = {"ensure_ascii": False, "sort_keys": True}
    return env


def render(template: str, **values: Any) -> str:
    """The page ``template`` (a file in maps/templates/) with ``values``."""
    return environment().get_template(template).render(config_id=CONFIG_ID, **values)
