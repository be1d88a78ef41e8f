"""The store and its I/O: settings, CRS, the layer contract, reading files (io), the database."""
