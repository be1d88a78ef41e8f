"""The SpatiaLite store without pysqlite3-binary (aarch64 has no wheel): the interpreter's
sqlite3 where it loads extensions, a clear error where it cannot."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from gis.database import sqlite_driver
from gis.errors import DatabaseError

ROOT = Path(__file__).parents[2]

#: Run by another interpreter with pysqlite3 made unimportable: the store is created, every
#: migration runs, and a geometry goes in and comes back.
PROGRAM = """
import sys
sys.modules["pysqlite3"] = None          # as on aarch64, where no wheel exists
from sqlalchemy import text
from gis.database import make_engine, upgrade
engine = make_engine(sys.argv[1])
upgrade(engine)
with engine.connect() as conn:
    module = type(conn.connection.dbapi_connection).__module__
    wkt = conn.execute(text("SELECT AsText(GeomFromText('POINT(113.3 23.2)', 4326))")).scalar()
print(module, wkt)
"""


def _loads_extensions(python: str) -> bool:
    probe = ("import sqlite3, sys; "
             "sys.exit(0 if hasattr(sqlite3.Connection, 'enable_load_extension') else 1)")
    return subprocess.run([python, "-c", probe], check=False).returncode == 0


def test_the_interpreters_sqlite3_is_used_when_it_loads_extensions_else_a_clear_error(
) -> None:
    if hasattr(sqlite3.Connection, "enable_load_extension"):
        assert sqlite_driver("sqlite3") is sqlite3
    else:
        with pytest.raises(DatabaseError, match="python3 -m venv"):
            sqlite_driver("sqlite3")
    with pytest.raises(DatabaseError, match="auto, pysqlite3 or sqlite3"):
        sqlite_driver("sqlite4")


def test_a_store_on_the_system_pythons_sqlite3_without_pysqlite3(tmp_path: Path) -> None:
    # This interpreter if its sqlite3 loads extensions (a venv of Debian's python3, as
    # scripts/setup.sh makes), else Debian's own python3 with this venv's packages.
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [sys.executable, f"/usr/bin/python{version}"]
    python = next((p for p in candidates if Path(p).exists() and _loads_extensions(p)), None)
    assert python is not None, f"no Python {version} here loads SQLite extensions"
    env = {**os.environ, "GRIDMAP_SQLITE_DRIVER": "auto",
           "PYTHONPATH": os.pathsep.join([str(ROOT), sysconfig.get_paths()["purelib"]])}
    done = subprocess.run([python, "-c", PROGRAM, f"sqlite:///{tmp_path / 'store.sqlite'}"],
                          capture_output=True, text=True, env=env, check=False, timeout=300)
    assert done.returncode == 0, done.stderr
    module, wkt = done.stdout.split(maxsplit=1)
    assert module == "sqlite3" and wkt.strip() == "POINT(113.3 23.2)"
