"""The ``twilio-video-operator`` command line: parsing, exit codes and delegation."""

from __future__ import annotations

import argparse
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from settings_environment import clear_settings

from twilio_video_emulator import serving
from twilio_video_operator import __version__, tool_commands
from twilio_video_operator.cli import TOKEN_MODULE, main

SCRIPT = Path(sys.executable).parent / "twilio-video-operator"


@pytest.fixture
def bare_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    return clear_settings(monkeypatch)


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    output = capsys.readouterr().out
    for command in ("run", "dev", "emulator", "token"):
        assert command in output


def test_dev_help_documents_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["dev", "--help"])
    output = capsys.readouterr().out
    for option in ("--state-dir", "--apply", "--http-port"):
        assert option in output


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"twilio-video-operator {__version__}"


def test_a_command_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([])
    assert exited.value.code == 2
    assert "COMMAND" in capsys.readouterr().err


def test_run_with_a_missing_setting_prints_one_line_and_exits_2(
    bare_environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bare_environment.setenv("TWILIO_AUTH_TOKEN", "auth-token-value")
    bare_environment.setenv("PUBLIC_BASE_URL", "https://video.example.com")
    assert main(["run"]) == 2
    captured = capsys.readouterr()
    assert captured.err == "setting TWILIO_ACCOUNT_SID: is required but not set\n"
    assert "auth-token-value" not in captured.err + captured.out


def test_run_with_a_malformed_setting_names_it(
    bare_environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bare_environment.setenv("TWILIO_ACCOUNT_SID", "AC" + "0" * 32)
    bare_environment.setenv("TWILIO_AUTH_TOKEN", "auth-token-value")
    bare_environment.setenv("PUBLIC_BASE_URL", "https://video.example.com")
    bare_environment.setenv("VIDEO_MAX_PARTICIPANTS", "abc")
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("setting VIDEO_MAX_PARTICIPANTS:")
    assert err.count("\n") == 1


def test_installed_script_reports_a_missing_setting(tmp_path: Path) -> None:
    """The console script as users run it: exit code 2 and the one line on stderr, nothing else."""
    environment = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PUBLIC_BASE_URL": "https://v.example.com"}
    result = subprocess.run(
        [str(SCRIPT), "run"], env=environment, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert result.stderr == "setting TWILIO_ACCOUNT_SID: is required but not set\n"


def test_run_without_usable_kubernetes_credentials_exits_1_with_one_line(tmp_path: Path) -> None:
    environment = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "KUBECONFIG": str(tmp_path / "missing-kubeconfig"),
        "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "TWILIO_AUTH_TOKEN": "auth-token-value",
        "PUBLIC_BASE_URL": "https://v.example.com",
    }
    result = subprocess.run(
        [str(SCRIPT), "run"], env=environment, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 1
    assert result.stderr.startswith("cannot log in to Kubernetes: unusable kubeconfig:")
    assert "missing-kubeconfig" in result.stderr
    assert result.stderr.count("\n") == 1


def test_token_without_the_token_service_fails_clearly(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, TOKEN_MODULE, None)  # as if the module were not part of the build
    assert main(["token", "--namespace", "a", "--room", "lobby", "--identity", "alice"]) == 2
    assert capsys.readouterr().err == "token minting is not available in this build\n"


def test_token_requires_its_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["token", "--namespace", "a", "--room", "lobby"])
    assert exited.value.code == 2
    assert "--identity" in capsys.readouterr().err


def test_token_delegates_to_the_token_service_when_present(monkeypatch: pytest.MonkeyPatch) -> None:
    received: list[argparse.Namespace] = []

    def token_main(args: argparse.Namespace) -> int:
        received.append(args)
        return 7

    monkeypatch.setitem(sys.modules, TOKEN_MODULE, types.SimpleNamespace(main=token_main))
    argv = ["token", "--namespace", "a", "--room", "lobby", "--identity", "alice", "--ttl", "600"]
    assert main(argv) == 7
    (args,) = received
    assert (args.namespace, args.room, args.identity, args.ttl) == ("a", "lobby", "alice", 600)


def test_emulator_delegates_with_its_options(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``emulator`` comes from the emulator's distribution (an entry point) and runs its server."""
    received: list[argparse.Namespace] = []

    def run(args: argparse.Namespace) -> int:
        received.append(args)
        return 0

    monkeypatch.setattr(serving, "run", run)
    state = tmp_path / "state.json"
    assert main(["emulator", "--port", "8099", "--state", str(state)]) == 0
    assert main(["emulator"]) == 0
    assert [(a.host, a.port, a.state) for a in received] == [
        ("127.0.0.1", 8099, str(state)),
        ("127.0.0.1", 0, None),
    ]


class FakeEntryPoint:
    def __init__(self, name: str, load: Any) -> None:
        self.name, self.value, self._load = name, f"fake:{name}", load

    def load(self) -> Any:
        return self._load()


def use_entry_points(monkeypatch: pytest.MonkeyPatch, *found: FakeEntryPoint) -> None:
    monkeypatch.setattr(tool_commands, "entry_points", lambda group: list(found))


def test_a_missing_tool_says_which_distribution_provides_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use_entry_points(monkeypatch)
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "(not installed)" in capsys.readouterr().out
    assert main(["dev", "--apply", "examples"]) == 2
    err = capsys.readouterr().err
    assert "twilio-video-playground" in err and "is not installed" in err and "make install" in err
    assert main(["emulator"]) == 2
    assert "twilio-video-emulator" in capsys.readouterr().err


def test_a_tool_that_fails_to_load_does_not_break_the_operator(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], bare_environment: pytest.MonkeyPatch
) -> None:
    def broken() -> Any:
        raise ImportError("no module named kmock")

    use_entry_points(monkeypatch, FakeEntryPoint("dev", broken), FakeEntryPoint("odd", lambda: object()))
    assert main(["dev"]) == 2
    assert "failed to load (ImportError: no module named kmock)" in capsys.readouterr().err
    assert main(["run"]) == 2  # the operator's own commands still work (here: a setting is missing)


def test_a_tool_cannot_replace_a_built_in_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], bare_environment: pytest.MonkeyPatch
) -> None:
    class Hijack:
        help = description = "not the operator"

        def add_arguments(self, parser: argparse.ArgumentParser) -> None:
            pass

        def run(self, args: argparse.Namespace) -> int:
            raise AssertionError("a plugin ran instead of the operator")

    use_entry_points(monkeypatch, FakeEntryPoint("run", Hijack), FakeEntryPoint("extra", Hijack))
    assert main(["run"]) == 2
    with pytest.raises(AssertionError, match="a plugin ran"):
        main(["extra"])


@pytest.mark.parametrize(
    ("script", "option"),
    [
        ("twilio-video-emulator", "--state"),
        ("twilio-video-playground", "--replicas"),
        ("twilio-video-demo", ""),
    ],
)
def test_each_tool_has_its_own_console_script(script: str, option: str) -> None:
    result = subprocess.run(
        [str(SCRIPT.with_name(script)), "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: {script}")
    assert option in result.stdout
