"""Configuration in one place: pydantic settings read from ``GRIDMAP_*`` environment variables."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gis.band import MAX_HOUSEHOLDS, MIN_HOUSEHOLDS, TARGET_HOUSEHOLDS

#: 天地图's Web Mercator (``_w``) WMTS layers: the map and its annotation layer.
TIANDITU_LAYERS = {"vec": ("vec", "cva"), "img": ("img", "cia")}
TIANDITU_ATTRIBUTION = "天地图 © 国家地理信息公共服务平台"


def tianditu_url(layer: str, key: str) -> str:
    """The Leaflet tile template of 天地图 layer ``layer`` (``vec``, ``cva``, ``img``,
    ``cia``) in Web Mercator, through its WMTS KVP interface on hosts t0–t7."""
    return (f"https://t{{s}}.tianditu.gov.cn/{layer}_w/wmts?SERVICE=WMTS&REQUEST=GetTile"
            f"&VERSION=1.0.0&LAYER={layer}&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles"
            f"&TILEMATRIX={{z}}&TILEROW={{y}}&TILECOL={{x}}&tk={key}")


class Settings(BaseSettings):
    """Every tunable of gridmap; set ``GRIDMAP_<NAME>`` to change one."""

    model_config = SettingsConfigDict(env_prefix="GRIDMAP_", env_file=".env", extra="ignore")

    #: SQLAlchemy URL of the store. ``sqlite:///path`` is the embedded SpatiaLite
    #: default; ``postgresql+psycopg://user@host/db`` is PostGIS.
    database_url: str = "sqlite:///gridmap.sqlite"
    #: Path of the SpatiaLite extension (GeoAlchemy2 reads ``SPATIALITE_LIBRARY_PATH``).
    spatialite_library_path: str = "mod_spatialite"
    #: The SQLite driver: ``auto`` (pysqlite3 where its wheel is installed, else the
    #: interpreter's sqlite3), ``pysqlite3`` or ``sqlite3`` (gis.database.sqlite_driver).
    sqlite_driver: Literal["auto", "pysqlite3", "sqlite3"] = "auto"
    #: PostgreSQL connections each server process keeps open, and how many more it may open
    #: under load (closed again when returned). Requests waiting for a connection queue; a
    #: pool smaller than the load means connecting anew (a PostgreSQL fork) for many requests.
    db_pool_size: int = 20
    db_max_overflow: int = 0
    #: While PostgreSQL is away: how long opening a connection may take (seconds) and how
    #: long a request waits for a free pooled connection; past either it gets a 503.
    db_connect_timeout_s: int = 5
    db_pool_timeout_s: float = 10.0
    #: SpatiaLite: how long a write waits for another writer to finish (seconds; SQLite
    #: has one writer at a time); past it the request gets 503 "busy, retry" (Retry-After).
    sqlite_busy_timeout_s: float = 5.0
    #: Household band of a grid (the urban standard, gis/band.py: 300-500 households).
    min_households: int = MIN_HOUSEHOLDS
    max_households: int = MAX_HOUSEHOLDS
    target_households: int = TARGET_HOUSEHOLDS
    #: The largest upload the service accepts, in megabytes (a request over it gets 413).
    max_upload_mb: int = 512
    #: What one upload or file may hold (docs/limits.md): features (territory layers together,
    #: or rows of an event import), vertices in all and per feature, and for a .zip the
    #: declared unpacked size, the unpacked/packed ratio of any member over 1 MB, and the
    #: number of members. Over a limit the upload is refused before it is unpacked or checked.
    max_features: int = 2_000_000
    max_vertices: int = 20_000_000
    max_feature_vertices: int = 250_000
    max_unzipped_mb: int = 2_048
    max_zip_ratio: int = 500
    max_zip_members: int = 10_000
    #: Partition, redraw and rebalance work and the routing of bulk event imports run on a
    #: Dask cluster, never in the web process (docs/scale.md): the address of its scheduler
    #: (``tcp://host:8786``: a cluster started the ordinary way, ``dask scheduler`` and
    #: ``dask worker``, on this machine or many), or empty for a ``LocalCluster`` of worker
    #: processes on this machine (``gridmap serve`` starts one for all its processes).
    dask_scheduler: str = ""
    #: Worker processes of that LocalCluster (0: one per CPU the server may use).
    dask_workers: int = 0
    #: Nice value of the service's engine tasks on the workers, so that a web server sharing
    #: the machine with them stays responsive (0: leave them alone).
    dask_nice: int = 10
    #: Jobs a server process drives at once (the others wait, queued); the cluster computes
    #: them, the server process only waits and records their progress.
    job_workers: int = 2
    #: At most this many queued or running jobs per account and per territory (0: no
    #: limit); one more is refused with 429 and Retry-After ``job_retry_after_s``.
    job_limit_per_account: int = 3
    job_limit_per_territory: int = 2
    job_retry_after_s: int = 30
    #: A job whose process sent no progress for this long is taken as dead (seconds).
    job_stale_after_s: int = 900
    #: A partition or redraw job still running after this long is marked failed ("timed out")
    #: and its result discarded (seconds; 0: no limit).
    job_timeout_s: float = 1800.0
    #: Features per page of the OGC API (the default and the most a client may ask for).
    page_limit: int = 100
    page_limit_max: int = 10_000
    #: Events: a JSON file of time limits {category: {level: hours}} (default table if
    #: empty), where yellow starts (last share of the limit), the GPS error within which
    #: a point near a grid edge is flagged, and how often overdue events are escalated
    #: (seconds; 0 turns the automatic escalation off).
    event_rules_path: str = ""
    #: Which department handles each event category (多网融合): a JSON object
    #: ``{"category": "department"}`` (GRIDMAP_EVENT_DEPARTMENTS); an event routed to a grid
    #: also gets the unit of that department's overlay (docs/overlays.md).
    event_departments: dict[str, str] = {
        "safety_hazard": "应急", "dispute": "公安", "sanitation": "城管", "municipal": "城管",
        "livelihood": "民政"}
    yellow_share: float = 0.2
    near_boundary_m: float = 10.0
    #: An event reported with an address (no x/y) is routed when the geocoder places it at
    #: this level or a more precise one (events.geocode.LEVELS); else it is kept as
    #: ``needs_location`` for an operator to place on the desk's map.
    geocode_min_level: Literal["door", "building", "compound", "road", "intersection",
                               "community"] = "road"
    #: Addresses one POST /geocode may carry.
    geocode_batch_max: int = 10_000
    escalation_interval_s: float = 60.0
    #: How far in the past and in the future an event's ``reported_at`` may lie (days and
    #: minutes from the server's clock); outside that window a report is refused (400).
    reported_at_max_age_days: float = 30.0
    reported_at_max_ahead_minutes: float = 10.0
    #: Event photos: the largest photo stored (kilobytes; the phone page resizes to about
    #: 1600 px and 200–400 kB first), the most pixels one may have, and photos per event.
    photo_max_kb: int = 4_096
    photo_max_pixels: int = 40_000_000
    photos_per_event: int = 9
    #: Maps: the basemap's tile URL template (``{z}/{x}/{y}``; empty = no basemap, the pages
    #: work offline), its attribution, and the coordinate system its tiles are drawn in
    #: (``wgs84``; ``gcj02`` for AMap/Tencent; ``bd09`` for Baidu): overlays are shifted into
    #: it so grids line up with the streets on screen.
    basemap_url: str = ""
    basemap_attribution: str = ""
    basemap_crs: Literal["wgs84", "gcj02", "bd09"] = "wgs84"
    #: A second tile layer drawn over the basemap (its labels: 天地图's cva_w/cia_w), and the
    #: values of ``{s}`` in both templates.
    basemap_labels_url: str = ""
    basemap_subdomains: str = "abc"
    #: A named basemap that fills the four settings above: ``tianditu`` (天地图, the
    #: official basemap; needs ``tianditu_key``, a 天地图 browser key from
    #: console.tianditu.gov.cn). ``tianditu_layers``: ``vec`` (streets: vec_w + cva_w) or
    #: ``img`` (imagery: img_w + cia_w). Its Web Mercator tiles are drawn in CGCS2000,
    #: which is WGS84 to within a few centimetres: nothing is shifted.
    basemap: Literal["", "tianditu"] = ""
    tianditu_key: str = ""
    tianditu_layers: Literal["vec", "img"] = "vec"
    #: Vector tiles kept in memory per server process (megabytes; 0 turns the cache off).
    tile_cache_mb: int = 64
    #: Accounts: how long a token from POST /token lasts (minutes), and events one account
    #: may create per minute on average (POST /events; bursts of ``event_rate_burst``; 0
    #: turns the limit off). Each server process counts on its own.
    token_minutes: int = 480
    event_rate_per_minute: float = 600.0
    event_rate_burst: int = 120
    #: Sign-in cookies only over HTTPS (set it when the service is behind TLS).
    secure_cookies: bool = False
    #: Origins (``https://grid.example.gov.cn``, comma-separated) whose pages may act with
    #: the sign-in cookie besides this server's own Host: set it behind a proxy that
    #: rewrites the Host header (see docs/security.md, CSRF).
    trusted_origins: str = ""
    #: Sign-in throttling (docs/security.md): failed sign-ins allowed per account and per
    #: client address in each window of ``signin_window_s`` seconds; past either, 429 with
    #: Retry-After until the window ends. Counted in the store, shared by every process.
    signin_failures_per_account: int = 5
    signin_failures_per_address: int = 30
    signin_window_s: int = 900
    #: Password checks (argon2id, 64 MiB each) running at once per process; 0 = the number
    #: of cores. Sign-ins beyond wait up to ``signin_wait_s`` seconds, then get 503.
    password_checks: int = 0
    signin_wait_s: float = 10.0
    #: Posters: made at once per process (each is seconds of CPU; 0 = the number of cores),
    #: how long a request waits for a turn (seconds; then 503 with Retry-After), and the
    #: memory kept for made posters (megabytes; 0 turns the cache off).
    poster_workers: int = 0
    poster_wait_s: float = 30.0
    poster_cache_mb: int = 128
    #: The zone pages show times in (an IANA name; the pages say which) and the screen's
    #: "today" is counted in. The API answers in UTC with its offset whatever this is.
    timezone: str = "Asia/Shanghai"

    @model_validator(mode="after")
    def _named_basemap(self) -> Settings:
        if self.basemap != "tianditu":
            return self
        if not re.fullmatch(r"[A-Za-z0-9]{16,64}", self.tianditu_key):
            raise ValueError("GRIDMAP_BASEMAP=tianditu needs GRIDMAP_TIANDITU_KEY, the 32 "
                             "letters and digits of a 天地图 browser key (申请: "
                             "https://console.tianditu.gov.cn)")
        if self.basemap_url or self.basemap_crs != "wgs84":
            raise ValueError("GRIDMAP_BASEMAP=tianditu sets the basemap itself: leave "
                             "GRIDMAP_BASEMAP_URL and GRIDMAP_BASEMAP_CRS unset")
        base, labels = TIANDITU_LAYERS[self.tianditu_layers]
        self.basemap_url = tianditu_url(base, self.tianditu_key)
        self.basemap_labels_url = tianditu_url(labels, self.tianditu_key)
        self.basemap_subdomains = "01234567"
        self.basemap_attribution = self.basemap_attribution or TIANDITU_ATTRIBUTION
        return self

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"GRIDMAP_TIMEZONE: unknown time zone {value!r}; use an IANA "
                             "name such as Asia/Shanghai or Asia/Urumqi") from exc
        return value


@lru_cache
def get_settings() -> Settings:
    return Settings()
