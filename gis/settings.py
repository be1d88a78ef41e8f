"""Configuration in one place: pydantic settings read from ``GRIDMAP_*`` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every tunable of gridmap; set ``GRIDMAP_<NAME>`` to change one."""

    model_config = SettingsConfigDict(env_prefix="GRIDMAP_", env_file=".env", extra="ignore")

    #: SQLAlchemy URL of the store. ``sqlite:///path`` is the embedded SpatiaLite
    #: default; ``postgresql+psycopg://user@host/db`` is PostGIS.
    database_url: str = "sqlite:///gridmap.sqlite"
    #: Path of the SpatiaLite extension (GeoAlchemy2 reads ``SPATIALITE_LIBRARY_PATH``).
    spatialite_library_path: str = "mod_spatialite"
    #: Where ``gridmap demo`` writes its territory and database.
    demo_dir: Path = Path("demo")
    #: Household band of a grid (the urban standard: 300-500 households).
    min_households: int = 300
    max_households: int = 500
    target_households: int = 400


@lru_cache
def get_settings() -> Settings:
    return Settings()
