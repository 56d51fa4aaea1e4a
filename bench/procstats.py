"""Tiny /proc readers shared by the bench scripts (Linux only, stdlib only).

CPU time is read straight from ``/proc/<pid>/stat`` (utime + stime of every
live process in the tree), so the numbers do not depend on the load generator
being fast or accurate: they are what the kernel charged to the process.
"""

from __future__ import annotations

import os
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
_PROC = Path("/proc")


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the ``(comm)``; index 0 is field 3 (state)."""
    try:
        raw = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process in seconds (0.0 if it is gone)."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def descendants(pid: int) -> list[int]:
    """All live descendants of ``pid`` (children, grandchildren, ...)."""
    children: dict[int, list[int]] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is None:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    out: list[int] = []
    stack = list(children.get(pid, []))
    while stack:
        child = stack.pop()
        out.append(child)
        stack.extend(children.get(child, []))
    return out


def tree(pid: int) -> list[int]:
    return [pid, *descendants(pid)]


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of ``pid`` plus all its live descendants (e.g. server workers)."""
    return sum(cpu_seconds(p) for p in tree(pid))


def rss_mb(pid: int) -> float:
    """Resident set size of one process in MiB (0.0 if it is gone)."""
    try:
        for line in (_PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def tree_rss_mb(pid: int) -> float:
    """Sum of RSS over the process tree (over-counts pages shared by forked workers)."""
    return sum(rss_mb(p) for p in tree(pid))


def self_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system
