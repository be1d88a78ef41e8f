"""Geometry foundations: coordinate systems, reading layers, the database."""
