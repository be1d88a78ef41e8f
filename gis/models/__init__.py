"""The stored tables (GeoAlchemy2), a module per domain on one Base (gis.models.base).

Importing the package imports every domain module, so that ``Base.metadata`` holds every
table (Alembic compares it with the migrations) and relationships named by string resolve.
"""

from gis.models import accounts, events, jobs, overlays, plans, staff, territories  # noqa: F401
