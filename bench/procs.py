"""What the benchmarks read from /proc (Linux): process trees, CPU seconds, memory, load."""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def load1() -> float:
    return round(os.getloadavg()[0], 2)


# ------------------------------------------------------------------------------------------------
# Process trees


def parents() -> dict[int, list[int]]:
    """Every live process's children, by parent id (one pass over /proc)."""
    out: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (entry / "stat").read_text()
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            out.setdefault(ppid, []).append(int(entry.name))
    return out


def tree(root: int) -> list[int]:
    """``root`` and its descendants, from one pass over /proc (:func:`parents`)."""
    children = parents()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _children(pid: int) -> list[int]:
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                out.extend(int(c) for c in fh.read().split())
    except OSError:
        pass
    return out


def tree_of(pid: int) -> list[int]:
    """``pid`` and its descendants, asking each process for its children (cheaper than
    :func:`tree` when sampled every few milliseconds)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(_children(p))
    return out


def parent_of(pid: int) -> int:
    """A process's parent pid (0 once it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(stat.rsplit(")", 1)[1].split()[1])


def cmdline(pid: int) -> str:
    """A process's command line ("" once it is gone)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


# ------------------------------------------------------------------------------------------------
# CPU and memory


def tree_cpu_s(root: int) -> float:
    """CPU seconds (user + system) of a process and its descendants, live or ended (an ended
    child's time is in its parent's cutime/cstime once reaped)."""
    total = 0
    for pid in tree(root):
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = Path(f"/proc/{pid}/stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            total += sum(int(f) for f in fields[11:15])
    return total / CLK_TCK


def pss_kb(pid: int) -> int:
    """A process's proportional set size (its share of the pages it shares), kB; 0 once gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def status_kb(pid: int) -> dict[str, int]:
    """VmRSS, RssAnon (private), RssShmem (kB) and Threads from /proc/PID/status and Pss (the
    process's share of pages it shares with others) from /proc/PID/smaps_rollup."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "RssAnon", "RssShmem", "Threads"):
            out[name] = int(value.split()[0])
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                out["Pss"] = int(line.split()[1])
    return out


class PeakPss:
    """Samples the PSS of every process of a tree in a thread until stopped: the peak of
    each process (``peak_kb``, with its command line in ``what``) and of their sum
    (``total_kb``)."""

    def __init__(self, root: int, every: float = 0.05) -> None:
        self.root, self.every = root, every
        self.peak_kb: dict[int, int] = {}
        self.total_kb = 0
        self.what: dict[int, str] = {}
        self.parent: dict[int, int] = {}     # each sampled process's parent
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            total = 0
            for pid in tree_of(self.root):
                if pid not in self.parent:
                    self.parent[pid] = parent_of(pid)
                kb = pss_kb(pid)
                total += kb
                if kb > self.peak_kb.get(pid, 0):
                    self.peak_kb[pid] = kb
                    self.what.setdefault(pid, cmdline(pid))
            self.total_kb = max(self.total_kb, total)
            self._stop.wait(self.every)

    def __enter__(self) -> PeakPss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_mb(self) -> int:
        """The peak of the tree's summed PSS, MB."""
        return round(self.total_kb / 1024)
