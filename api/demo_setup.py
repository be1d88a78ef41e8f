"""The demo end to end: generate a district, import, partition, publish, report events."""

from __future__ import annotations

import contextlib
import secrets
import sys
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from api.console import Output
from api.importing import counts_table, import_file
from gis.errors import GridmapError

#: What the generator can lay out: below 5,000 households a district has too few for its
#: towns and villages; above 2,000,000 the demo stops being a demo.
MIN_HOUSEHOLDS = 5_000
MAX_HOUSEHOLDS = 2_000_000
MAX_EVENTS = 1_000_000
MAX_DISTRICTS = 88


@dataclass
class Demo:
    """What the demo made, for the command to report and serve."""

    folder: Path
    households: int
    gpkg: Path
    database_url: str
    db_path: Path
    territory_id: int
    layer_counts: dict[str, int]
    plan_id: int
    report: dict[str, Any]
    paths: dict[str, Path]
    events: dict[str, int] = field(default_factory=dict)
    admin_password: str = ""
    seconds: float = 0.0

    def figures(self) -> dict[str, Any]:
        """The demo as one JSON-ready document (``gridmap demo --json``)."""
        r = self.report
        return {
            "households": self.households, "territory_id": self.territory_id,
            "plan_id": self.plan_id, "database_url": self.database_url,
            "layers": self.layer_counts, "grids": r["n_grids"],
            "in_range_share": r["in_range_share"], "forced": r["n_forced"],
            "barrier_boundary_share": r["barrier_boundary_share"],
            "min_households": r["params"]["min_households"],
            "max_households": r["params"]["max_households"],
            "events": self.events, "admin": {"username": "admin",
                                             "password": self.admin_password},
            "files": {"territory": str(self.gpkg), "database": str(self.db_path),
                      **{k: str(v) for k, v in self.paths.items()}},
            "seconds": round(self.seconds, 1),
        }


    def lines(self, base: str | None) -> list[Any]:
        """What the demo shows when done: the layers, the plan's figures, what to open and how
        to sign in; ``base``: the address it will be served at (None: not served)."""
        r, plan_id = self.report, self.plan_id
        out: list[Any] = [
            counts_table(f"territory {self.territory_id} in {self.db_path}", self.layer_counts),
            f"划分 partitioned into {r['n_grids']} grids 网格 (plan {plan_id}, published 已发布): "
            f"{r['in_range_share']:.1%} in {r['params']['min_households']}–"
            f"{r['params']['max_households']} households (forced excluded: {r['n_forced']}), "
            f"{r['barrier_boundary_share']:.0%} of boundaries on roads, rivers and admin lines"]
        if self.events:
            out.append(f"事件 {sum(self.events.values())} events reported over the last 3 days: "
                       + ", ".join(f"{k} {v}" for k, v in self.events.items()))
        out += [
            f"took {self.seconds:.1f} s\n", "[bold]What to open 打开:[/]",
            f"  • {self.gpkg}  — the demo district's layers (QGIS: drag the file in)",
            f"  • {self.paths['grids']}  — the grids with codes and 四至; "
            f"{self.paths['report']} — the quality report",
            f"  • {self.db_path}  — the embedded SpatiaLite database (QGIS: Layer ▸ Add "
            "SpatiaLite layer)",
            f"[bold]登录 sign in:[/] user [bold]admin[/], password [bold]{self.admin_password}[/] "
            "(an administrator of every area; make others with `gridmap user add`)"]
        if base is None:
            return [*out, f"  • gridmap serve --database-url {self.database_url}  — serve it "
                          "over HTTP"]
        return [
            *out,
            f"  • {base}/  — 首页 the index: plans, maps, posters, exports",
            f"  • {base}/plans/{plan_id}/map  — 网格划分方案 the planner's map",
            f"  • {base}/screen  — 指挥中心大屏 the command-centre screen",
            f"  • {base}/docs  — the API; {base}/plans/{plan_id}/grids — the grids as GeoJSON; "
            f"{base}/plans/{plan_id}/export.xlsx — the grid table",
            f"  • {base}/ogc  — OGC API – Features: in QGIS, Layer ▸ Add Layer ▸ Add WFS / OGC "
            "API – Features Layer, new connection with this URL"]


def check_options(households: int, events: int, districts: int) -> None:
    """A clear error for options the generator cannot honour (before anything is written)."""
    if not MIN_HOUSEHOLDS <= households <= MAX_HOUSEHOLDS:
        raise GridmapError(f"--households must be between {MIN_HOUSEHOLDS:,} and "
                           f"{MAX_HOUSEHOLDS:,} (the generator needs {MIN_HOUSEHOLDS:,} for a "
                           "district's towns and villages)")
    if not 0 <= events <= MAX_EVENTS:
        raise GridmapError(f"--events must be between 0 and {MAX_EVENTS:,}")
    if not 1 <= districts <= MAX_DISTRICTS:
        raise GridmapError(f"--districts must be between 1 and {MAX_DISTRICTS}")


def make_demo(out: Output, folder: Path, *, households: int, seed: int, events: int,
              districts: int) -> Demo:
    """Generate the demo territory into ``folder``, import it into a fresh SpatiaLite file
    there, partition it on the Dask cluster, publish the plan, report ``events`` events and
    add an administrator with a new password."""
    from data.demo import generate, generate_province
    from gis.accounts import add_account
    from gis.database import make_engine

    check_options(households, events, districts)
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    # The generator draws its bar on stdout; stdout is for results.
    with contextlib.redirect_stdout(sys.stderr):
        territory = generate(households, seed, progress=not out.quiet) if districts == 1 \
            else generate_province(districts, households, seed, progress=not out.quiet)
    gpkg = territory.write(folder / "territory.gpkg")
    out.say(f"生成 generated {territory.households:,} households → {gpkg}")
    db_path = folder / "gridmap.sqlite"
    for stale in folder.glob("gridmap.sqlite*"):
        stale.unlink()
    url = f"sqlite:///{db_path}"
    name = "白云示范区 demo" if districts == 1 else f"示范市 demo city of {districts} districts"
    territory_id, counts = import_file(out, gpkg, url, name=name)
    engine = make_engine(url)
    try:
        with out.status("划分网格 partitioning (on a Dask cluster) ..."):
            result, paths = _partition(gpkg, folder / "plan")
        with out.status("发布 publishing the plan ..."):
            plan_id = _publish(engine, territory_id, result)
        demo = Demo(folder=folder, households=int(territory.households), gpkg=gpkg,
                    database_url=url, db_path=db_path, territory_id=territory_id,
                    layer_counts=counts, plan_id=plan_id, report=result.report, paths=paths)
        if events > 0:
            with out.status("上报事件 reporting the demo's events ..."):
                demo.events = report_demo_events(engine, territory_id, events, seed)
        demo.admin_password = secrets.token_urlsafe(9)
        add_account(engine, "admin", demo.admin_password, "admin", "*", "演示管理员 demo admin")
    finally:
        engine.dispose()
    demo.seconds = time.perf_counter() - started
    return demo


def _partition(gpkg: Path, folder: Path) -> tuple[Any, dict[str, Path]]:
    from gis.io.territory import read_territory
    from gis.settings import get_settings
    from partitioning.cluster import partition_on_cluster, shared_compute
    from partitioning.output import write_partition
    from partitioning.params import PartitionParams
    from partitioning.towns import split_territory

    settings = get_settings()
    compute = shared_compute(settings.dask_scheduler, settings.dask_workers)
    result = partition_on_cluster(compute.client(), split_territory(read_territory(gpkg)),
                                  PartitionParams())
    return result, write_partition(result, folder)


def _publish(engine: Any, territory_id: int, result: Any) -> int:
    """Store the partition as a plan and publish it; the plan's id."""
    from gis.plans import publish_plan, write_plan
    from partitioning.output import grid_table

    blocks = result.blocks[["village_code", "households", "households_estimated",
                            "population", "grid_code", "geometry"]].to_crs(4326)
    p = result.params
    plan_id = write_plan(
        engine, territory_id, grid_table(result), blocks, result.report,
        {"min_households": p.min_households, "max_households": p.max_households,
         "target_households": p.target_households, "seed": p.seed,
         "service_radius_m": p.service_radius_m},
        note="demo 演示", created_by="gridmap demo", lines=result.streets)
    publish_plan(engine, plan_id)
    return plan_id


def report_demo_events(engine: Any, territory_id: int, n: int, seed: int) -> dict[str, int]:
    """Report ``n`` demo events of the last three days under the published plan and walk
    the older ones along the closed loop (most resolved in time, some late), so the
    command centre shows every light; returns the count per state."""
    import numpy as np

    from data.demo import demo_events
    from events.router_cache import RouterCache
    from events.rules import Rules
    from events.store import create_events_columns, event_clocks, status_counts, transition
    from gis.models.base import utcnow
    from gis.plans import published_plan_id, read_grids
    from gis.settings import get_settings

    settings = get_settings()
    rules = Rules.load(settings.event_rules_path or None, settings.yellow_share)
    plan_id = published_plan_id(engine, territory_id)
    if plan_id is None:
        raise GridmapError("the demo's events need a published plan")
    made = demo_events(read_grids(engine, plan_id), n, seed)
    now = utcnow()
    routed = RouterCache(engine, settings.near_boundary_m).get(territory_id).route_columns(
        made["lon"], made["lat"], "wgs84")
    columns = {k: routed[k] for k in ("territory_id", "plan_id", "grid_id", "grid_code",
                                      "village_code", "town_code", "district_code",
                                      "distance_m", "other_grid_code", "flags")}
    reported = [now - timedelta(hours=float(h)) for h in made["age_h"]]
    columns.update(category=made["category"], source=made["source"], coord_sys="wgs84",
                   x=made["lon"], y=made["lat"], reported_at=reported,
                   description=made["description"], reporter=made["reporter"])
    create_events_columns(engine, columns, routed["lon"], routed["lat"], rules)
    rows = event_clocks(engine, territory_id)
    rng = np.random.default_rng(seed)
    for i, (event_id, at, deadline) in enumerate(rows):
        share = i / max(len(rows), 1)          # oldest first: the older, the further along
        if share > 0.8:
            continue
        at = at if at.tzinfo else at.replace(tzinfo=now.tzinfo)
        deadline = deadline if deadline.tzinfo else deadline.replace(tzinfo=now.tzinfo)
        handler = f"处置员{int(rng.integers(1, 20)):02d}"
        steps = [("accept", "街道受理员", None), ("dispatch", "街道受理员", handler),
                 ("start", handler, None), ("resolve", handler, None)]
        if share > 0.45:
            steps = steps[:int(rng.integers(1, 4))]
        # Resolved within the limit nine times in ten, the rest late (when already due).
        span = (deadline - at) * (rng.uniform(0.1, 0.9) if rng.random() < 0.9 else 1.3)
        for k, (action, actor, new_handler) in enumerate(steps, 1):
            moment = min(at + span * k / len(steps), now)
            transition(engine, event_id, action, actor=actor, rules=rules, now=moment,
                       handler=new_handler)
    return status_counts(engine, territory_id)
