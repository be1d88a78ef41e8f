#!/usr/bin/env python3
"""Pin and check what `pip install` brings: the constraints file, and wheels for other machines.

    .venv/bin/python scripts/installs.py lock                 # (re)write constraints.txt
    .venv/bin/python scripts/installs.py check                # aarch64, Python 3.11, with the pins
    .venv/bin/python scripts/installs.py check --machine aarch64 --python 3.12 --extras dev

``lock`` resolves the dependencies of pyproject.toml with its ``dev`` extra (what
scripts/setup.sh, the CI and the two README commands install) for this machine and writes
every package's version to constraints.txt. ``check`` resolves the same requirements for
another machine and Python from wheels only (``--only-binary=:all:``, the manylinux tags of
glibc 2.17–2.35, i.e. Debian 12 and Ubuntu 22.04/24.04) with the pins applied, and says
which wheel each package would come from: a package without a wheel there fails it.

Both ask PyPI through pip (``pip install --dry-run --report``: only the wheels' metadata is
fetched, not the wheels). pip evaluates environment markers for the machine it runs on, so
the markers of pyproject.toml's own requirements are evaluated here for the target machine
(``pysqlite3-binary`` is x86_64 only); markers deeper down are pip's.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = ROOT / "constraints.txt"
#: glibc versions of the Linux distributions setup.sh supports (Ubuntu 22.04 has 2.35).
GLIBC_MINORS = range(17, 36)


def requirements(extras: list[str], machine: str, python: str) -> list[str]:
    """pyproject.toml's requirements (with ``extras``) that apply on ``machine`` running
    Python ``python``, markers removed."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = list(project["dependencies"])
    for extra in extras:
        wanted += project.get("optional-dependencies", {}).get(extra, [])
    env = dict(default_environment())
    env.update({"platform_machine": machine, "platform_system": "Linux",
                "sys_platform": "linux", "python_version": python,
                "python_full_version": f"{python}.0"})
    out = []
    for text in wanted:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate(env):  # type: ignore[arg-type]
            continue
        req.marker = None
        out.append(str(req))
    return out


def resolve(reqs: list[str], *, target: tuple[str, str] | None = None,
            constraints: Path | None = None) -> list[dict[str, str]]:
    """pip's resolution of ``reqs`` (name, version, file) without installing anything; for
    ``target`` = (machine, Python version), from that platform's wheels only."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed",
               "--quiet", "--disable-pip-version-check", "--report", str(report)]
        if target is not None:
            machine, python = target
            cmd += ["--only-binary=:all:", "--target", str(Path(tmp) / "t"),
                    "--python-version", python, "--implementation", "cp",
                    "--abi", "cp" + python.replace(".", ""),
                    "--platform", f"manylinux2014_{machine}"]
            for minor in GLIBC_MINORS:
                cmd += ["--platform", f"manylinux_2_{minor}_{machine}"]
        if constraints is not None:
            cmd += ["-c", str(constraints)]
        done = subprocess.run([*cmd, *reqs], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.stderr.write(done.stderr)
            raise SystemExit(f"pip could not resolve the requirements (exit {done.returncode})")
        items = json.loads(report.read_text(encoding="utf-8"))["install"]
    return sorted(({"name": i["metadata"]["name"], "version": i["metadata"]["version"],
                    "file": i["download_info"]["url"].rsplit("/", 1)[-1]} for i in items),
                  key=lambda p: p["name"].lower())


def lock(args: argparse.Namespace) -> int:
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    import platform
    found = resolve(requirements(args.extras, platform.machine(), python))
    lines = ["# Pinned versions of everything `pip install -e '.[dev]'` brings (scripts/setup.sh",
             "# and the CI install with `-c constraints.txt`). Refresh with:",
             "#     .venv/bin/python scripts/installs.py lock",
             f"# resolved on {platform.machine()}, Python {python}; "
             "check another machine with: .venv/bin/python scripts/installs.py check"]
    lines += [f"{p['name']}=={p['version']}" for p in found]
    CONSTRAINTS.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{CONSTRAINTS.name}: {len(found)} packages", file=sys.stderr)
    return 0


def check(args: argparse.Namespace) -> int:
    reqs = requirements(args.extras, args.machine, args.python)
    pins = None if args.no_constraints or not CONSTRAINTS.exists() else CONSTRAINTS
    found = resolve(reqs, target=(args.machine, args.python), constraints=pins)
    for p in found:
        print(f"{p['name']}=={p['version']}\t{p['file']}")
    foreign = [p["file"] for p in found if p["file"].endswith(".whl")
               and not (p["file"].endswith("-any.whl") or args.machine in p["file"])]
    if foreign or any(not p["file"].endswith(".whl") for p in found):
        print(f"not wheels for {args.machine}: {foreign}", file=sys.stderr)
        return 1
    print(f"{len(found)} packages resolve from wheels for Linux {args.machine}, Python "
          f"{args.python}" + (" with constraints.txt" if pins else ""), file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    lock_cmd = sub.add_parser("lock", help="write constraints.txt for this machine")
    lock_cmd.add_argument("--extras", nargs="*", default=["dev"])
    lock_cmd.set_defaults(run=lock)
    check_cmd = sub.add_parser("check", help="resolve for another machine from wheels only")
    check_cmd.add_argument("--machine", default="aarch64")
    check_cmd.add_argument("--python", default="3.11")
    check_cmd.add_argument("--extras", nargs="*", default=["dev"])
    check_cmd.add_argument("--no-constraints", action="store_true",
                           help="resolve the newest versions instead of the pins")
    check_cmd.set_defaults(run=check)
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
