"""The command line as a shell sees it: results on stdout, messages on stderr, exit codes 0/1/2/3,
--json one document, --quiet silent, shell completion."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
from conftest import tiny_layers, write_layers

from gis.accounts import account_of_key
from gis.database import make_engine
from gis.store import layer_counts

ROOT = Path(__file__).resolve().parents[2]
GRIDMAP = str(Path(sys.executable).with_name("gridmap"))
UNREACHABLE = "postgresql+psycopg://nobody@127.0.0.1:1/none"


def gridmap(*args: str | Path, stdin: str | None = None,
            **environ: str) -> subprocess.CompletedProcess[str]:
    """Run ``gridmap ARGS`` as a shell would, stdout and stderr apart."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200", **environ}
    env.pop("GRIDMAP_DATABASE_URL", None)
    return subprocess.run([GRIDMAP, *map(str, args)], input=stdin, capture_output=True,
                          text=True, env=env, timeout=600, check=False)


def ok_json(*args: str | Path) -> dict[str, Any]:
    done = gridmap(*args, "--json")
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))      # one JSON document, nothing else on stdout


def silent(*args: str | Path) -> None:
    done = gridmap(*args, "--quiet")
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_import_and_overlays_json_quiet_and_plain(db_url: str, tmp_path: Path) -> None:
    path = write_layers(tiny_layers(), tmp_path, "GPKG")
    figures = ok_json("import", path, "--database-url", db_url, "--name", "小区域")
    engine = make_engine(db_url)
    try:
        assert figures["territory_id"] == 1
        assert figures["layers"] == layer_counts(engine, 1) and figures["layers"]["buildings"] == 5
    finally:
        engine.dispose()
    silent("import", path, "--database-url", db_url)
    plain = gridmap("import", path, "--database-url", db_url)
    assert plain.returncode == 0
    # the table is the result (stdout); the timing is a message (stderr)
    assert "territory 3 imported" in plain.stdout and "建筑/地址 buildings" in plain.stdout
    assert "took" in plain.stderr and "imported" not in plain.stderr
    assert ok_json("overlay", "list", "2", "--database-url", db_url) == {
        "territory_id": 2, "overlays": []}
    silent("overlay", "list", "2", "--database-url", db_url)
    missing = gridmap("overlay", "list", "9", "--database-url", db_url, "--json")
    assert missing.returncode == 1 and missing.stdout == "" and "错误 error" in missing.stderr


def test_exit_codes_per_class(spatialite_url: str, tmp_path: Path) -> None:
    layers = tiny_layers()
    layers["buildings"] = layers["buildings"].drop(columns="households")
    layers["buildings"] = layers["buildings"][layers["buildings"].geom_type == "Point"]
    bad = write_layers(layers, tmp_path / "bad", "GeoJSON")
    good = write_layers(tiny_layers(), tmp_path / "good", "GPKG")
    cases = [
        (("import", good, "--database-url", spatialite_url), 0, None),
        (("import", bad, "--database-url", spatialite_url), 1, "households"),
        (("import", tmp_path / "nowhere.gpkg", "--database-url", spatialite_url), 1,
         "nowhere.gpkg"),
        (("demo", "--households", "4999", "--no-serve", "--out", tmp_path / "d"), 1,
         "between 5,000 and 2,000,000"),
        (("import", good, "--no-such-option"), 2, "No such option"),
        (("import",), 2, "Missing argument"),
        (("frobnicate",), 2, "No such command"),
        (("import", good, "--database-url", UNREACHABLE), 3, "cannot be reached"),
        (("overlay", "list", "1", "--database-url", UNREACHABLE), 3, "cannot be reached"),
        (("user", "list", "--database-url", UNREACHABLE, "--json"), 3, "cannot be reached"),
        (("partition", good, "--out", tmp_path / "p", "--scheduler", "tcp://127.0.0.1:1"), 3,
         "could not be reached"),
    ]
    for args, code, said in cases:
        done = gridmap(*args)
        assert done.returncode == code, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr, args
        if code:
            assert done.stdout == "" and said in done.stderr, (args, done.stderr)
    assert not (tmp_path / "d").exists()


def test_user_key_pipes_and_user_list(db_url: str) -> None:
    added = gridmap("user", "add", "admin", "--role", "admin", "--area", "*",
                    "--password-stdin", "--database-url", db_url, stdin="a-long-password\n")
    assert added.returncode == 0 and added.stdout == "" and "admin" in added.stderr
    made = gridmap("user", "key", "admin", "--name", "scripts", "--database-url", db_url)
    assert made.returncode == 0 and made.stderr == ""
    key = made.stdout.removesuffix("\n")
    assert key and "\n" not in key and key == key.strip()
    engine = make_engine(db_url)
    try:
        found = account_of_key(engine, key)
        assert found is not None and found.username == "admin"
    finally:
        engine.dispose()
    listed = ok_json("user", "list", "--database-url", db_url)
    assert [(a["username"], a["role"], a["areas"], a["disabled"])
            for a in listed["accounts"]] == [("admin", "admin", ["*"], False)]
    silent("user", "list", "--database-url", db_url)


def test_files_commands_report_figures_as_json(tmp_path: Path) -> None:
    territory = write_layers(tiny_layers(), tmp_path / "t", "GPKG")
    plan = tmp_path / "plan"
    parts = ok_json("partition", territory, "--out", plan, "--workers", "1")
    grids = gpd.read_file(plan / "grids.gpkg", layer="grids")
    assert parts["n_grids"] == len(grids) > 0
    assert parts["households"] == int(grids["households"].sum())
    assert Path(parts["files"]["grids"]) == plan / "grids.gpkg"
    redrawn = ok_json("redraw", plan, territory, "--out", tmp_path / "again")
    assert redrawn["grids_before"] == redrawn["grids_after"] == redrawn["grids_kept"] == len(grids)
    assert redrawn["households_moved"] == 0

    points = grids.to_crs(3857).representative_point().to_crs(4326)
    events = pd.DataFrame({"id": range(len(points)), "lon": points.x, "lat": points.y})
    events = pd.concat([events, pd.DataFrame({"id": [99], "lon": [100.0], "lat": [30.0]})])
    events.to_csv(tmp_path / "e.csv", index=False)
    routed = ok_json("route", tmp_path / "e.csv", "--grids", plan / "grids.gpkg",
                     "--coord-sys", "wgs84", "--out", tmp_path / "r.csv")
    assert (routed["events"], routed["routed"], routed["outside"]) == (
        len(points) + 1, len(points), 1)
    (tmp_path / "r.csv").unlink()
    silent("route", tmp_path / "e.csv", "--grids", plan / "grids.gpkg", "--coord-sys", "wgs84",
           "--out", tmp_path / "r.csv")
    assert len(pd.read_csv(tmp_path / "r.csv", encoding="utf-8-sig")) == len(points) + 1
    plain = gridmap("route", tmp_path / "e.csv", "--grids", plan / "grids.gpkg",
                    "--coord-sys", "wgs84", "--out", tmp_path / "r.csv")
    assert "routed 已落格" in plain.stdout and "routed 已落格" not in plain.stderr
    piped = gridmap("route", tmp_path / "e.csv", "--grids", plan / "grids.gpkg",
                    "--coord-sys", "wgs84", "--out", "-")      # `… --out - > routed.csv`
    assert piped.returncode == 0 and "routed 已落格" in piped.stderr
    back = pd.read_csv(io.StringIO(piped.stdout), dtype=str, keep_default_na=False)
    assert list(back["id"]) == [str(i) for i in events["id"]]
    assert (back["grid_code"] != "").sum() == len(points) and back["grid_code"].iloc[-1] == ""
    both = gridmap("route", tmp_path / "e.csv", "--grids", plan / "grids.gpkg",
                   "--coord-sys", "wgs84", "--out", "-", "--json")
    assert both.returncode == 1 and both.stdout == "" and "choose one" in both.stderr

    (tmp_path / "a.csv").write_text("id,地址\n1,景泰街道\n2,无此地\n", encoding="utf-8")
    coded = ok_json("geocode", tmp_path / "a.csv", "--territory", territory, "--out",
                    tmp_path / "g.csv")
    assert coded["addresses"] == 2 and sum(coded["levels"].values()) == 2


def test_demo_json_quiet(tmp_path: Path) -> None:
    done = gridmap("demo", "--households", "5000", "--events", "20", "--no-serve", "--out",
                   tmp_path / "demo", "--json", "--quiet")
    assert done.returncode == 0 and done.stderr == "", done.stderr
    figures = json.loads(done.stdout)
    assert figures["plan_id"] == 1 and figures["grids"] > 5 and figures["url"] is None
    assert sum(figures["events"].values()) == 20
    assert Path(figures["files"]["grids"]).exists() and figures["admin"]["password"]
    engine = make_engine(figures["database_url"])
    try:
        assert layer_counts(engine, 1) == figures["layers"]
    finally:
        engine.dispose()


def test_help_documents_exit_codes_and_completion() -> None:
    shown = gridmap("--help")
    text = " ".join(shown.stdout.replace("│", " ").split())
    assert shown.returncode == 0
    for said in ("0 ok", "1 bad input", "2 usage", "3 unavailable", "--install-completion",
                 "--show-completion"):
        assert said in text, said
    # The shell named, not detected from the processes above (a test may run under none).
    script = gridmap("--show-completion", "bash",
                     _TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION="1")
    assert script.returncode == 0 and "_GRIDMAP_COMPLETE" in script.stdout
    for command in (["partition"], ["redraw"], ["route"], ["geocode"], ["import"], ["demo"],
                    ["overlay", "add"], ["overlay", "list"], ["user", "list"]):
        helped = gridmap(*command, "--help").stdout
        assert "--json" in helped and "--quiet" in helped, command
