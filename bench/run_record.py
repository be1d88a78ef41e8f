"""What a benchmark records about its run: the machine, its uptime line, the result JSON."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any


def machine(with_platform: bool = True) -> str:
    """The machine in a line: architecture, cores, Python (and the OS platform)."""
    out = (f"{platform.machine()}, {os.cpu_count()} cores (shared with other work), "
           f"Python {platform.python_version()}")
    return f"{out}, {platform.platform()}" if with_platform else out


def uptime() -> str:
    out = subprocess.run(["uptime"], capture_output=True, text=True)
    return out.stdout.strip()


def write_json(path: Path, result: dict[str, Any]) -> None:
    """The result as UTF-8 JSON (Chinese kept readable), indented by 2, its folder made."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
