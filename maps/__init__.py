"""What people look at: planner maps, the command-centre screen, posters, tiles."""

from pathlib import Path

#: Files the pages load, served at ``/static`` (``vendor/``: Leaflet 1.9.4 and
#: Leaflet.markercluster 1.5.3, as published on npm, with their licences; nothing is
#: fetched from a CDN, so the pages work offline).
STATIC = Path(__file__).parent / "static"
