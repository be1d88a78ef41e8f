"""Exports of a plan's grids as files (GeoPackage, Shapefile, GeoJSON, CSV, XLSX, DXF, KML).

:func:`gis.exports.table.export_table` builds the table every export (and the OGC API) serves:
the stored grid fields plus the names and codes of the grid's village/community and
town/street (from ``admin_areas``) and its grid workers (from ``staff`` and ``staff_grids``).
:func:`gis.exports.formats.write_export` writes it in one format (a writer module per kind:
``vector``, ``shapefile``, ``sheets``, ``cad``), in the coordinate system and (Shapefile) text
encoding of :class:`gis.exports.options.Options`; :func:`gis.exports.plan.export_plan` does
both for a stored plan and names the file.
"""
