"""The demo territory generator and small sample data."""
