"""``make bench`` end to end at a tiny size: every scenario runs, converges and writes its results.

Nothing here looks at timing; it keeps the benchmark harness (separate emulator process, the naive
baseline, the Twilio-limits and Composition scenarios, the summary) working on a fresh machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from real_kube import TierUnavailable, locate_binary, unavailable

REPO_ROOT = Path(__file__).resolve().parents[2]
BENCH_DIR = REPO_ROOT / "tests" / "bench"
RUN = BENCH_DIR / "run.py"
SCENARIOS = (
    "scale-videoroom-operator-4",
    "scale-videoroom-naive-4",
    "limits-operator-8",
    "limits-naive-8",
    "scale-composition-operator-3",
)


def test_every_scenario_runs_converges_and_is_summarised(tmp_path: Path) -> None:
    output = tmp_path / "bench-results"
    argv = [
        sys.executable,
        str(RUN),
        "--sizes=4",
        "--idle-seconds=1",
        "--compositions=3",
        "--limits-size=8",
        "--latency-ms=20",
        "--baseline-timeout=15",  # the naive operator never converges under a limit
        "--no-scripts",
        "--kube=embedded",
        f"--output={output}",
    ]
    finished = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]

    for name in SCENARIOS:
        result = json.loads((output / f"{name}.json").read_text(encoding="utf-8"))
        assert "error" not in result, (name, result.get("error"), result.get("traceback"))
        assert result["available"] is True, name
        if name != "limits-naive-8":  # the baseline fails its reconciles on 429s: that is what it shows
            assert result["converged"] is True, (name, result.get("pending_sample"), result.get("failed"))
            assert result["done"] == result["objects"], name
    limits = json.loads((output / "limits-operator-8.json").read_text(encoding="utf-8"))
    assert limits["throughput"]["successful_requests"] >= 8
    assert limits["failed_reconciles"]["failed_by_429"] == 0
    operator = json.loads((output / "scale-videoroom-operator-4.json").read_text(encoding="utf-8"))
    assert operator["twilio_calls"]["by_operation"]["CreateRoom"]["count"] == 4
    assert operator["lifecycle"]["twilio_calls_per_room"] == 2.0
    assert operator["idle"]["twilio_calls_per_object_minute"] == 0
    summary = json.loads((output / "summary.json").read_text(encoding="utf-8"))
    assert [entry["rooms"] for entry in summary["scale"]] == [4]
    assert set(summary["limits"]) == {"limits-operator-8", "limits-naive-8"}
    assert set(summary["compositions"]) == {"scale-composition-operator-3"}
    assert (output / "SUMMARY.md").read_text(encoding="utf-8").strip()


def test_the_scale_scenario_runs_on_the_real_kube_apiserver(tmp_path: Path) -> None:
    """``--kube real``: a server of the scenario's own whose audit log counts the operator's requests, not
    the benchmark's (which creates the rooms)."""
    try:
        locate_binary()
    except TierUnavailable as exc:
        unavailable(str(exc))
    output = tmp_path / "bench-results"
    argv = [
        sys.executable,
        str(RUN),
        "--kube=real",
        "--sizes=4",
        "--idle-seconds=1",
        "--no-baseline",
        "--compositions=0",
        "--limits-size=0",
        "--no-scripts",
        f"--output={output}",
    ]
    finished = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]

    result = json.loads((output / "scale-videoroom-operator-4-real.json").read_text(encoding="utf-8"))
    assert "error" not in result, (result.get("error"), result.get("traceback"))
    assert result["kube"] == "real" and result["converged"] is True and result["done"] == 4
    assert result["lifecycle"]["twilio_calls_per_room"] == 2.0
    requests = result["kube_requests"]["by_request"]
    assert requests["patch videorooms.video.openclaw.io/status"] >= 4
    assert requests["watch videorooms.video.openclaw.io"] >= 1
    assert "create videorooms.video.openclaw.io" not in requests  # the benchmark's own creates
    summary = json.loads((output / "summary.json").read_text(encoding="utf-8"))
    assert list(summary["scale"][0]["backends"]) == ["real"]
    assert "operator (real)" in (output / "SUMMARY.md").read_text(encoding="utf-8")


def test_a_scripts_result_is_its_last_json_object_on_one_line_or_indented() -> None:
    sys.path.insert(0, str(BENCH_DIR))
    try:
        from scenarios import last_json_object
    finally:
        sys.path.remove(str(BENCH_DIR))
    indented = 'progress\n{"partial": 1}\n{\n  "tokens": {\n    "p99_ms": 2.0\n  }\n}\n'
    assert last_json_object(indented) == {"tokens": {"p99_ms": 2.0}}
    assert last_json_object('{"a": 1}\nnot json\n{"b": 2}\ntrailing words') == {"b": 2}
    assert last_json_object("no json at all\n[1, 2]") is None
