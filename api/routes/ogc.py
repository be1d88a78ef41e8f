"""OGC API – Features (Part 1: Core) over the published grids and the admin areas, for QGIS.

Collections, one pair per territory:

- ``grids-<territory id>``: the grids of the territory's *published* plan (the
  collection exists only while the territory has one); feature id = the 15-digit
  grid code; properties as in the exports (:data:`gis.exports.table.TABLE_FIELDS`).
- ``streets-<territory id>``: the inferred streets of the published plan (推测巷道: the
  straight cuts its partition ran down gaps between buildings that look like streets, where
  the roads layer has none); feature id = the line's number in the plan; properties
  ``line_no``, ``kind``, ``name``, ``village_code``, ``width_m``, ``likeness``.
- ``areas-<territory id>``: the territory's district, towns/streets and
  villages/communities; feature id = the statistical code.

Features are stored and served in WGS84 longitude/latitude (CRS84); with OGC API – Features
Part 2 a client may ask (``crs``) for CGCS2000 (EPSG:4490) or the territory's 3° Gauss–Krüger
zone instead, in that system's axis order, and give ``bbox`` in any of them (``bbox-crs``).
Encoded as JSON / GeoJSON. Query parameters the API cannot use are 400 problem details, as
the standard asks, and unknown collections or features are 404 problem details.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import geopandas as gpd
import numpy as np
import pyproj
import shapely
from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy import Engine

from api.auth import PlansRead, Principal, partial, visible
from api.deps import get_engine, get_settings
from api.problems import BadRequest, NotAcceptable
from api.routes.plans import parse_bbox
from gis.errors import NotFound
from gis.exports.formats import FORMATS
from gis.exports.table import export_table
from gis.geometry import feature_collection
from gis.plans import published_plans, read_lines
from gis.settings import Settings
from gis.store import read_layer

JSON = "application/json"
GEOJSON = "application/geo+json"
OPENAPI = "application/vnd.oai.openapi+json;version=3.1"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG_URI = "http://www.opengis.net/def/crs/EPSG/0/"
#: CGCS2000 longitude/latitude, offered by every collection besides CRS84.
CGCS2000_URI = EPSG_URI + "4490"
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
]
COLLECTION_ID = re.compile(r"^(grids|streets|areas)-([0-9]{1,18})$")
#: The collections of a territory's published plan.
PLAN_KINDS = ("grids", "streets")
#: Exports linked from a grids collection as ``enclosure`` (the whole collection as a file).
ENCLOSURES = ("gpkg", "geojson", "shp.zip")


class OgcRoute(APIRoute):
    """A route whose malformed parameters are 400 Bad Request (OGC API), not 422."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                detail = "; ".join(
                    f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
                    for e in exc.errors())
                raise BadRequest(detail) from exc

        return route


router = APIRouter(prefix="/ogc", tags=["OGC API – Features"], route_class=OgcRoute)

Format = Annotated[str | None, Query(
    description="The encoding: `json` (GeoJSON for features). The Accept header works too.")]
CollectionId = Annotated[str, Path(
    alias="collectionId", description=(
        "`grids-<territory id>`, `streets-<territory id>` or `areas-<territory id>`"))]
Crs = Annotated[str | None, Query(description=(
    f"The CRS of the geometries (OGC API – Features Part 2): {CRS84} (the default), "
    f"{CGCS2000_URI} (CGCS2000, latitude first) or the territory's 3° Gauss–Krüger zone "
    f"({EPSG_URI}<4534–4554>, northing first) as the collection's `crs` lists them; "
    "`[EPSG:4490]` works too"))]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such collection or feature"},
    400: {"description": "A query parameter is malformed"},
    406: {"description": "The client accepts neither JSON nor GeoJSON"}}


# --- negotiation and links ------------------------------------------------------------------


def _accepted(header: str | None) -> set[str] | None:
    """The media ranges of an Accept header with q > 0 (None: no header, anything goes)."""
    if not header or not header.strip():
        return None
    out = set()
    for part in header.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if media and q > 0:
            out.add(media.lower())
    return out


def negotiate(request: Request, f: str | None, *, features: bool) -> str:
    """The media type to answer with, from ``?f=`` or else the Accept header.

    Features are GeoJSON (``application/geo+json``), or labelled
    ``application/json`` for a client that asks for plain JSON only; everything
    else is ``application/json``.
    """
    if f is not None:
        if f.strip().lower() not in ("json", "geojson", JSON, GEOJSON):
            raise BadRequest(f"f={f!r} is not served here: use f=json (this API has JSON and "
                             "GeoJSON only, no HTML pages)")
        return GEOJSON if features else JSON
    accepted = _accepted(request.headers.get("accept"))
    if accepted is None or accepted & {"*/*", "application/*"}:
        return GEOJSON if features else JSON
    if features and GEOJSON in accepted:
        return GEOJSON
    if JSON in accepted or GEOJSON in accepted:
        return JSON
    raise NotAcceptable(f"this resource is served as {GEOJSON if features else JSON} only; "
                        f"the request accepts {request.headers.get('accept')!r}")


def _href(request: Request, path: str) -> str:
    """An absolute URL on this server (behind a proxy, run uvicorn with --proxy-headers)."""
    return str(request.base_url).rstrip("/") + path


def _link(href: str, rel: str, media_type: str, title: str) -> dict[str, str]:
    return {"href": href, "rel": rel, "type": media_type, "title": title}


def _json(body: Any, media_type: str) -> JSONResponse:
    return JSONResponse(body, media_type=media_type)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- collections ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Collection:
    """One collection: what it holds and where its features come from."""

    id: str
    kind: str              # "grids", "streets" or "areas"
    territory_id: int
    territory_name: str
    #: The territory's 3° Gauss–Krüger zone (EPSG code).
    zone_epsg: int
    plan_id: int | None = None
    plan_version: int | None = None
    published_at: Any = None

    @property
    def id_column(self) -> str:
        """The property that is each feature's id."""
        return "line_no" if self.kind == "streets" else "code"

    @property
    def crs(self) -> list[str]:
        """The CRSs the features can be asked for in (the first is the default)."""
        return [CRS84, CGCS2000_URI, f"{EPSG_URI}{self.zone_epsg}"]

    @property
    def title(self) -> str:
        if self.kind == "grids":
            return f"网格 Grids — {self.territory_name} (v{self.plan_version})"
        if self.kind == "streets":
            return f"推测巷道 Inferred streets — {self.territory_name} (v{self.plan_version})"
        return f"行政区划 Admin areas — {self.territory_name}"

    @property
    def description(self) -> str:
        if self.kind == "streets":
            return (f"The inferred streets of the published plan of territory "
                    f"{self.territory_id} ({self.territory_name}), plan {self.plan_id} "
                    f"v{self.plan_version}: straight lines down gaps between buildings that "
                    "look like streets, where the roads layer has none (not surveyed roads). "
                    "Feature id: the line's number in the plan. width_m: the gap's width; "
                    "likeness: 0–1, how much it looks like a street; name: as the 四至 "
                    "names it (…旁巷道 or 无名巷道).")
        if self.kind == "grids":
            when = self.published_at.date().isoformat() if self.published_at else "?"
            return (f"The grids of the published plan of territory {self.territory_id} "
                    f"({self.territory_name}): plan {self.plan_id}, version "
                    f"{self.plan_version}, published {when}. Feature id: the 15-digit grid "
                    "code. flags: comma-separated, empty for a regular grid; grid_worker: "
                    "names separated by 、.")
        return (f"District, towns/streets and villages/communities of territory "
                f"{self.territory_id} ({self.territory_name}); level tells which. Feature "
                "id: the statistical code.")


def _collections(engine: Engine, territory_id: int | None = None) -> list[Collection]:
    out = []
    for row in published_plans(engine, territory_id):
        if row.plan_id is not None:
            out += [Collection(f"{kind}-{row.id}", kind, row.id, row.name,
                               int(row.metric_epsg), row.plan_id, row.version,
                               row.published_at) for kind in PLAN_KINDS]
        out.append(Collection(f"areas-{row.id}", "areas", row.id, row.name,
                              int(row.metric_epsg)))
    return out


def _collection(engine: Engine, collection_id: str) -> Collection:
    match = COLLECTION_ID.match(collection_id)
    found = _collections(engine, int(match.group(2))) \
        if match and int(match.group(2)) < 2**31 else []
    for collection in found:
        if collection.id == collection_id:
            return collection
    if match and match.group(1) in PLAN_KINDS and found:
        raise NotFound(f"territory {match.group(2)} has no published plan, so there is no "
                       f"collection {collection_id!r}; publish a plan with "
                       "POST /plans/{id}/publish")
    raise NotFound(f"no collection {collection_id!r}; the collections are listed at "
                   "/ogc/collections")


def _features(engine: Engine, collection: Collection, who: Principal,
              bbox: tuple[float, float, float, float] | None = None) -> gpd.GeoDataFrame:
    """The collection's features (WGS84, in id order) the account may see, only those meeting
    ``bbox`` if given."""
    if collection.kind == "grids":
        assert collection.plan_id is not None
        return export_table(engine, collection.plan_id, bbox=bbox, areas=partial(who))
    if collection.kind == "streets":
        assert collection.plan_id is not None
        return read_lines(engine, collection.plan_id, kind="inferred_street", bbox=bbox,
                          areas=partial(who))
    areas = read_layer(engine, collection.territory_id, "admin_areas")
    areas = areas.sort_values("code", kind="stable").reset_index(drop=True)
    if not who.everywhere:
        areas = areas[np.asarray([who.overlaps(str(c)) for c in areas["code"]], dtype=bool)]
    if bbox is not None:
        areas = areas[shapely.intersects(areas.geometry.to_numpy(), shapely.box(*bbox))]
    return areas.reset_index(drop=True)


def _extent(features: gpd.GeoDataFrame) -> list[float] | None:
    if features.empty:
        return None
    return [round(float(v), 7) for v in features.total_bounds]


def _collection_doc(request: Request, collection: Collection, engine: Engine,
                    who: Principal) -> dict[str, Any]:
    base = f"/ogc/collections/{collection.id}"
    links = [
        _link(_href(request, base), "self", JSON, "This collection"),
        _link(_href(request, base + "/items"), "items", GEOJSON, "The features (GeoJSON)"),
    ]
    if collection.kind == "grids":
        links += [_link(_href(request, f"/plans/{collection.plan_id}/export.{fmt}"),
                        "enclosure", FORMATS[fmt].media_type.split(";")[0],
                        f"All grids as {fmt}") for fmt in ENCLOSURES]
    doc: dict[str, Any] = {
        "id": collection.id,
        "title": collection.title,
        "description": collection.description,
        "itemType": "feature",
        "crs": collection.crs,
        "storageCrs": CRS84,
        "links": links,
    }
    bounds = _extent(_features(engine, collection, who))
    if bounds is not None:
        doc["extent"] = {"spatial": {"bbox": [bounds], "crs": CRS84}}
    return doc


# --- paging and bbox ------------------------------------------------------------------------


_SAFE_CURIE = re.compile(r"^\[?EPSG:([0-9]{4,6})\]?$", re.IGNORECASE)


def _crs_uri(text: str) -> str:
    """A CRS as the request names it, as a URI (``CRS84``, ``[EPSG:4490]``, ``EPSG:4490`` and
    the https form are read as their ``http://www.opengis.net/def/crs/…`` URIs)."""
    text = text.strip()
    if text.upper() in ("CRS84", "OGC:CRS84", "[OGC:CRS84]"):
        return CRS84
    if (curie := _SAFE_CURIE.match(text)) is not None:
        return EPSG_URI + curie.group(1)
    return re.sub(r"^https://", "http://", text)


def _chosen_crs(collection: Collection, text: str | None, what: str) -> str:
    """The URI of the collection's CRS ``text`` names (CRS84 when None); 400 otherwise."""
    if text is None:
        return CRS84
    uri = _crs_uri(text)
    if uri not in collection.crs:
        raise BadRequest(f"{what} {text!r} is not offered by collection {collection.id!r}; "
                         f"use one of {', '.join(collection.crs)}")
    return uri


def _transformer(source: str, target: str) -> pyproj.Transformer:
    """Between two of the offered CRSs, each in its own axis order (CRS84: lon, lat;
    EPSG:4490: lat, lon; a Gauss–Krüger zone: northing, easting)."""
    def crs(uri: str) -> pyproj.CRS:
        return pyproj.CRS.from_user_input("OGC:CRS84" if uri == CRS84 else
                                          "EPSG:" + uri.rsplit("/", 1)[1])
    return pyproj.Transformer.from_crs(crs(source), crs(target), always_xy=False)


def _bbox(text: str | None, bbox_crs: str) -> tuple[float, float, float, float] | None:
    """``bbox`` (in ``bbox_crs``'s axis order) as a CRS84 box around it."""
    if text is not None and len(parts := text.split(",")) == 6:  # 3D: drop the heights
        text = ",".join(parts[i] for i in (0, 1, 3, 4))
    if bbox_crs == CRS84 or text is None:
        return parse_bbox(text)
    try:
        a0, a1, a2, a3 = (float(v) for v in text.split(","))
    except ValueError as exc:
        raise BadRequest(f"bbox {text!r} must be four numbers in {bbox_crs}'s axis order "
                         "(min, min, max, max)") from exc
    if not all(np.isfinite((a0, a1, a2, a3))) or a0 > a2 or a1 > a3:
        raise BadRequest(f"bbox {text!r} must be finite with each minimum below its maximum")
    try:
        box = _transformer(bbox_crs, CRS84).transform_bounds(a0, a1, a2, a3, densify_pts=21)
    except pyproj.exceptions.ProjError as exc:
        raise BadRequest(f"bbox {text!r} cannot be read in {bbox_crs}") from exc
    if not all(np.isfinite(box)):
        raise BadRequest(f"bbox {text!r} lies outside where {bbox_crs} is defined")
    return parse_bbox(",".join(repr(float(v)) for v in box))


def _in_crs(features: gpd.GeoDataFrame, uri: str) -> gpd.GeoDataFrame:
    """The features with their geometries in ``uri``'s axis order (the frame still says
    WGS84: it is only written as GeoJSON)."""
    if uri == CRS84 or features.empty:
        return features
    transformer = _transformer(CRS84, uri)

    def move(xy: np.ndarray) -> np.ndarray:
        a, b = transformer.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([a, b])

    out = features.copy()
    out.geometry = shapely.transform(features.geometry.to_numpy(), move)
    return out


def _precision(uri: str) -> int:
    """Decimals of the coordinates: 7 in CRS84 (RFC 7946), 8 in EPSG:4490, 3 in metres."""
    return 7 if uri == CRS84 else 8 if uri == CGCS2000_URI else 3


def _page_limit(limit: int | None, settings: Settings) -> int:
    """The page size: the request's ``limit``, the default, never over the maximum."""
    return min(limit if limit is not None else settings.page_limit, settings.page_limit_max)


# --- routes ---------------------------------------------------------------------------------


@router.get("", summary="Landing page of the OGC API – Features",
            responses={200: {"content": {JSON: {}}}, **NOT_FOUND})
def landing(request: Request, who: PlansRead, f: Format = None) -> JSONResponse:
    media_type = negotiate(request, f, features=False)
    app = request.app
    links = [
        _link(_href(request, "/ogc"), "self", JSON, "This document"),
        _link(_href(request, "/ogc/conformance"), "conformance", JSON,
              "The standards this API conforms to"),
        _link(_href(request, "/ogc/collections"), "data", JSON, "The collections"),
    ]
    if app.openapi_url:
        links.insert(1, _link(_href(request, app.openapi_url), "service-desc", OPENAPI,
                              "The API definition (OpenAPI)"))
    if app.docs_url:
        links.insert(2, _link(_href(request, app.docs_url), "service-doc", "text/html",
                              "The API documentation"))
    return _json({
        "title": "gridmap 网格化服务管理",
        "description": "Published grids and admin areas of every territory, as OGC API – "
                       "Features collections (CRS84; CGCS2000 and the territory's "
                       "Gauss–Krüger zone on request, Part 2). In QGIS: Layer ▸ Add Layer "
                       "▸ Add WFS / OGC API – Features Layer, with this URL.",
        "links": links,
    }, media_type)


@router.get("/conformance", summary="The conformance classes implemented",
            responses={200: {"content": {JSON: {}}}, **NOT_FOUND})
def conformance(request: Request, who: PlansRead, f: Format = None) -> JSONResponse:
    return _json({"conformsTo": CONFORMANCE}, negotiate(request, f, features=False))


@router.get("/collections", summary="The collections: published grids and streets, admin areas",
            responses={200: {"content": {JSON: {}}}, **NOT_FOUND})
def collections(request: Request, who: PlansRead, f: Format = None,
                engine: Engine = Depends(get_engine)) -> JSONResponse:
    media_type = negotiate(request, f, features=False)
    return _json({
        "links": [_link(_href(request, "/ogc/collections"), "self", JSON,
                        "The collections")],
        "crs": [CRS84, CGCS2000_URI],
        "collections": [_collection_doc(request, c, engine, who) for c in _collections(engine)
                        if visible(request, who, c.territory_id)],
    }, media_type)


@router.get("/collections/{collectionId}", summary="One collection",
            responses={200: {"content": {JSON: {}}}, **NOT_FOUND})
def collection(request: Request, who: PlansRead, collection_id: CollectionId,
               f: Format = None, engine: Engine = Depends(get_engine)) -> JSONResponse:
    media_type = negotiate(request, f, features=False)
    return _json(_collection_doc(request, _visible(request, who, engine, collection_id),
                                 engine, who), media_type)


def _visible(request: Request, who: Principal, engine: Engine, collection_id: str
             ) -> Collection:
    found = _collection(engine, collection_id)
    if not visible(request, who, found.territory_id):
        raise NotFound(f"no collection {collection_id!r}")
    return found


@router.get(
    "/collections/{collectionId}/items", response_class=Response,
    summary="The features of a collection, a page at a time",
    responses={200: {"content": {GEOJSON: {}}, "description": "A FeatureCollection"},
               **NOT_FOUND})
def items(
    request: Request,
    who: PlansRead,
    collection_id: CollectionId,
    bbox: Annotated[str | None, Query(description=(
        "minlon,minlat,maxlon,maxlat (CRS84, or in bbox-crs); features intersecting it"))
        ] = None,
    bbox_crs: Annotated[str | None, Query(alias="bbox-crs", description=(
        f"The CRS of bbox (default {CRS84}): one the collection's `crs` lists; the four "
        "numbers in its axis order"))] = None,
    limit: Annotated[int | None, Query(ge=1, description=(
        "Features per page (default and maximum: the server's GRIDMAP_PAGE_LIMIT and "
        "GRIDMAP_PAGE_LIMIT_MAX; more is cut to the maximum)"))] = None,
    offset: Annotated[int, Query(ge=0, description="Features to skip (follow the next link)")]
    = 0,
    crs: Crs = None,
    f: Format = None,
    engine: Engine = Depends(get_engine),
    settings: Settings = Depends(get_settings),
) -> Response:
    media_type = negotiate(request, f, features=True)
    found = _visible(request, who, engine, collection_id)
    out_crs = _chosen_crs(found, crs, "crs")
    box = _bbox(bbox, _chosen_crs(found, bbox_crs, "bbox-crs"))
    size = _page_limit(limit, settings)
    features = _features(engine, found, who, box)
    page = features.iloc[offset:offset + size]
    base = f"/ogc/collections/{found.id}"
    links = [_link(str(request.url), "self", GEOJSON, "This page"),
             _link(_href(request, base), "collection", JSON, found.title)]
    if offset + size < len(features):
        links.append(_link(str(request.url.include_query_params(
            limit=size, offset=offset + size)), "next", GEOJSON, "The next page"))
    if offset > 0:
        links.append(_link(str(request.url.include_query_params(
            limit=size, offset=max(0, offset - size))), "prev", GEOJSON,
            "The previous page"))
    body = feature_collection(_in_crs(page, out_crs), id_column=found.id_column,
                              precision=_precision(out_crs), extra={
        "numberMatched": len(features), "numberReturned": len(page), "timeStamp": _now(),
        "links": links})
    return Response(body, media_type=media_type, headers={"Content-Crs": f"<{out_crs}>"})


@router.get(
    "/collections/{collectionId}/items/{featureId}", response_class=Response,
    summary="One feature",
    responses={200: {"content": {GEOJSON: {}}, "description": "A Feature"}, **NOT_FOUND})
def item(
    request: Request,
    who: PlansRead,
    collection_id: CollectionId,
    feature_id: Annotated[str, Path(alias="featureId", description=(
        "The grid code (grids), the line number (streets) or statistical code (areas)"))],
    crs: Crs = None,
    f: Format = None,
    engine: Engine = Depends(get_engine),
) -> Response:
    media_type = negotiate(request, f, features=True)
    found = _visible(request, who, engine, collection_id)
    out_crs = _chosen_crs(found, crs, "crs")
    features = _features(engine, found, who)
    ids = features[found.id_column].astype(str) if len(features) else features.index
    hit = features[np.asarray(ids == feature_id, dtype=bool)]
    if hit.empty:
        raise NotFound(f"no feature {feature_id!r} in collection {found.id!r}")
    feature = json.loads(feature_collection(_in_crs(hit, out_crs), id_column=found.id_column,
                                            precision=_precision(out_crs)))["features"][0]
    base = f"/ogc/collections/{found.id}"
    feature["links"] = [
        _link(_href(request, f"{base}/items/{feature_id}"), "self", GEOJSON, "This feature"),
        _link(_href(request, base), "collection", JSON, found.title)]
    return Response(json.dumps(feature, ensure_ascii=False).encode("utf-8"),
                    media_type=media_type, headers={"Content-Crs": f"<{out_crs}>"})


# --- the API definition ---------------------------------------------------------------------


def describe_limit(app: FastAPI, settings: Settings) -> None:
    """Declare ``limit`` once in the OpenAPI document, with this server's default and maximum.

    QGIS reads them from ``components/parameters/limit`` to choose its page size.
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = generate()
        schema.setdefault("components", {}).setdefault("parameters", {})["limit"] = {
            "name": "limit", "in": "query", "required": False, "style": "form",
            "explode": False,
            "description": "Features per page; more than the maximum is cut to it.",
            "schema": {"type": "integer", "minimum": 1, "maximum": settings.page_limit_max,
                       "default": settings.page_limit},
        }
        for path, operations in schema.get("paths", {}).items():
            if path.startswith("/ogc/collections/") and path.endswith("/items"):
                params = operations.get("get", {}).get("parameters", [])
                operations["get"]["parameters"] = [
                    {"$ref": "#/components/parameters/limit"} if p.get("name") == "limit"
                    else p for p in params]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
