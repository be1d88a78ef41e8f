"""Where the pages' files are: served at ``/static``.

``vendor/`` holds Leaflet 1.9.4, Leaflet.markercluster 1.5.3 and Swagger UI 5.36.0 as
published on npm, with their licences; nothing is fetched from a CDN, so the pages work
offline.
"""

from pathlib import Path

STATIC = Path(__file__).parent / "static"
TEMPLATES = Path(__file__).parent / "templates"
