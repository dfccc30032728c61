"""The playground on the real kube-apiserver (``dev --kube real``): the README's story (``make demo``) runs
on it from start to end, and without the built program the command says, in one line, how to build it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from real_kube import REPO_ROOT, TierUnavailable, locate_binary, unavailable
from twilio_video_playground.demo.story import run_demo
from twilio_video_playground.real_kube import BINARY_ENV


@pytest.fixture(scope="module")
def binary() -> Path:
    try:
        return locate_binary()
    except TierUnavailable as exc:
        unavailable(str(exc))


# A parameter rather than a constant: the backend summary counts the test as one of the real API's.
@pytest.mark.parametrize("kube", ["real"])
async def test_the_readme_story_runs_on_the_real_api_server(
    binary: Path, kube: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(BINARY_ENV, str(binary))

    code = await run_demo(REPO_ROOT / "examples", wait_seconds=30, kube=kube)

    output = capsys.readouterr().out
    assert code == 0, output
    assert "Starting the playground (real kube-apiserver, Twilio emulator, operator)" in output
    assert "The demo finished successfully." in output
    assert output.count("\n==> ") >= 9, output  # start, the eight steps... and the stop


def test_dev_without_the_program_names_make_kube_apiserver(tmp_path: Path) -> None:
    missing = tmp_path / "kube-apiserver"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "twilio_video_operator",
            "dev",
            "--kube",
            "real",
            "--state-dir",
            str(tmp_path),
        ],
        env={"PATH": "/usr/bin:/bin", BINARY_ENV: str(missing), "LOG_LEVEL": "ERROR"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 2, done
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"no kube-apiserver at {missing}: build it with `make kube-apiserver` (needs Go) "
        f"or set {BINARY_ENV} to a built one"
    ]
