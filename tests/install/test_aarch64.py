"""Installs on ARM (信创: Kunpeng, Phytium): every dependency, pinned by constraints.txt,
resolves from aarch64 wheels. Asks PyPI, so it is kept out of the default run:
``pytest -m install tests/install`` (about 20 s a Python version)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "scripts"))

import installs

pytestmark = pytest.mark.install


@pytest.mark.parametrize("python", ["3.11", "3.12"])
def test_every_pinned_dependency_has_an_aarch64_wheel(python: str,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    assert installs.main(["check", "--machine", "aarch64", "--python", python]) == 0
    out = capsys.readouterr().out
    names = {line.split("==")[0].lower() for line in out.splitlines()}
    assert {"numpy", "shapely", "pyogrio", "pyproj", "psycopg-binary", "fastapi"} <= names
    assert "pysqlite3-binary" not in names      # x86_64 only: the system sqlite3 instead
    assert all("aarch64" in line or "-any.whl" in line for line in out.splitlines())


def test_the_check_fails_for_a_package_without_an_aarch64_wheel() -> None:
    with pytest.raises(SystemExit, match="could not resolve"):
        installs.resolve(["pysqlite3-binary"], target=("aarch64", "3.11"))


def test_markers_are_read_for_the_target_machine() -> None:
    arm = installs.requirements(["dev"], "aarch64", "3.11")
    x86 = installs.requirements(["dev"], "x86_64", "3.11")
    assert not any(r.startswith("pysqlite3-binary") for r in arm)
    assert any(r.startswith("pysqlite3-binary") for r in x86)
    assert not any(r.startswith("psycopg") for r in installs.requirements([], "x86_64", "3.11"))
