"""Resource use of a running process from ``/proc``: peak and current RSS, CPU seconds (Linux only)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcessSample:
    """One reading of a process: memory in bytes, CPU time (user + system) in seconds."""

    rss_bytes: int
    peak_rss_bytes: int
    cpu_seconds: float


def _status_kib(text: str, field: str) -> int:
    for line in text.splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise ValueError(f"/proc status has no {field}")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may contain spaces; the fields after its closing parenthesis are fixed.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / _CLOCK_TICKS


def sample(pid: int) -> ProcessSample:
    """Read ``VmRSS``, ``VmHWM`` (peak RSS) and utime+stime of ``pid``; raises OSError once it is gone."""
    status = Path(f"/proc/{pid}/status").read_text()
    return ProcessSample(
        rss_bytes=_status_kib(status, "VmRSS") * 1024,
        peak_rss_bytes=_status_kib(status, "VmHWM") * 1024,
        cpu_seconds=cpu_seconds(pid),
    )


def mib(value: int) -> float:
    return round(value / (1024 * 1024), 1)
