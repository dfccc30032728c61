"""A pytest plugin that fails a test when a secret shows up where it must never be.

During each test it watches, it collects the evidence the run produced:

- log lines: records of the operator's and kopf's loggers in this process, plus any log file registered
  with :meth:`SecretScanner.add_file` (the operator processes of ``tests/bench/operator_stack.py``);
- every Kubernetes ``Event`` and the ``status`` (and annotations) of every ``video.openclaw.io`` object of
  each embedded Kubernetes API, taken just before it stops (Secrets are left out: that is where keys belong);

and the secrets: the Auth Token of every Twilio emulator, the secret of every API key created during the
test (caught as each key is made), and anything registered with :meth:`SecretScanner.add_secret`. At the
end of the test it looks for each secret, and for anything shaped like a JWT (a minted Access Token), in
all the evidence; a hit fails the test, naming where it was found but never printing the value.

``tests/conftest.py`` loads it for the whole suite, and every test is scanned except those marked
``no_secret_scan`` (tests that plant a secret in a log record on purpose, e.g. to check redaction).
``--no-secret-scan`` turns it off for a run.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}")
MIN_SECRET_LENGTH = 8
WATCHED_LOGGERS = ("twilio_video_operator", "kopf")
TEST_INFRASTRUCTURE_LOGGERS = ("twilio_video_emulator", "twilio_video_playground")
API_GROUP = "video.openclaw.io"


@dataclass(frozen=True)
class Hit:
    """Where a secret was found: the evidence's source, what matched (never the value), and where."""

    source: str
    what: str
    offset: int

    def __str__(self) -> str:
        return f"{self.what} in {self.source} at offset {self.offset}"


@dataclass
class SecretScanner:
    """Secrets that must not leak, the evidence to search, and the search."""

    secrets: dict[str, str] = field(default_factory=dict)  # value -> label (e.g. "API key SK... secret")
    evidence: list[tuple[str, str]] = field(default_factory=list)  # (source, text)
    files: dict[str, Path] = field(default_factory=dict)

    def reset(self) -> None:
        self.secrets.clear()
        self.evidence.clear()
        self.files.clear()

    def add_secret(self, value: str | None, label: str) -> None:
        if value and len(value) >= MIN_SECRET_LENGTH:
            self.secrets.setdefault(value, label)

    def add_text(self, source: str, text: str) -> None:
        self.evidence.append((source, text))

    def add_file(self, source: str, path: Path) -> None:
        """A log file, read when the scan runs (so lines written until the end are included)."""
        self.files[source] = path

    def add_objects(self, source: str, objects: Iterable[Mapping[str, Any]]) -> None:
        """Events whole; of other objects, the status and annotations (Secrets are skipped)."""
        for obj in objects:
            kind = str(obj.get("kind", ""))
            metadata = obj.get("metadata") or {}
            where = f"{source}: {kind} {metadata.get('namespace', '')}/{metadata.get('name', '')}"
            if kind == "Secret":
                continue
            if kind == "Event":
                self.add_text(where, json.dumps(obj, sort_keys=True))
            elif "status" in obj or metadata.get("annotations"):
                shown = {"status": obj.get("status"), "annotations": metadata.get("annotations")}
                self.add_text(where, json.dumps(shown, sort_keys=True))

    def _all_evidence(self) -> Iterator[tuple[str, str]]:
        yield from self.evidence
        for source, path in self.files.items():
            try:
                yield source, path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue

    def scan(self) -> list[Hit]:
        hits: list[Hit] = []
        for source, text in self._all_evidence():
            for value, label in self.secrets.items():
                position = text.find(value)
                if position >= 0:
                    hits.append(Hit(source, label, position))
            hits.extend(Hit(source, "a JWT (Access Token)", match.start()) for match in JWT.finditer(text))
        return hits


class _LogCollector(logging.Handler):
    """Keeps the rendered records of the operator's and kopf's loggers."""

    def __init__(self, scanner: SecretScanner) -> None:
        super().__init__(level=logging.DEBUG)
        self.scanner = scanner

    def emit(self, record: logging.LogRecord) -> None:
        name = record.name
        if not name.startswith(WATCHED_LOGGERS) or name.startswith(TEST_INFRASTRUCTURE_LOGGERS):
            return
        try:
            text = record.getMessage()
        except Exception:
            text = f"{record.msg} {record.args!r}"
        extras = {key: value for key, value in vars(record).items() if key not in _STANDARD_ATTRS}
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        self.scanner.add_text(f"log record of {name}", f"{text} {extras!r}")


_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def _wrap_before(
    owner: Any, method: str, before: Callable[[Any], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    original = getattr(owner, method)

    async def wrapped(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            before(self)
        except Exception as exc:  # evidence collection must never break a test's teardown
            logging.getLogger(__name__).warning("secret scan could not collect evidence: %r", exc)
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(owner, method, wrapped)


def install_collectors(scanner: SecretScanner, monkeypatch: pytest.MonkeyPatch) -> _LogCollector:
    from twilio_video_emulator import entities
    from twilio_video_emulator.server import Emulator
    from twilio_video_playground.kube import EmbeddedKubernetes
    from twilio_video_playground.kube.selectors import Selection

    def snapshot_kube(kube: Any) -> None:
        store, registry = kube.emulator.store, kube.emulator.registry
        for resource_type in registry.all():
            if resource_type.plural == "events" or resource_type.group == API_GROUP:
                scanner.add_objects("Kubernetes API", store.list_objects(resource_type, None, Selection()))

    def harvest_emulator(emulator: Any) -> None:
        scanner.add_secret(emulator.state.auth_token, "the emulator account's Auth Token")
        for key in emulator.state.keys.values():
            scanner.add_secret(key.secret, f"the secret of API key {key.sid}")

    _wrap_before(EmbeddedKubernetes, "stop", snapshot_kube, monkeypatch)
    _wrap_before(Emulator, "stop", harvest_emulator, monkeypatch)

    original_init = entities.ApiKey.__init__

    def key_created(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        scanner.add_secret(self.secret, f"the secret of API key {self.sid}")

    monkeypatch.setattr(entities.ApiKey, "__init__", key_created)
    collector = _LogCollector(scanner)
    logging.getLogger().addHandler(collector)
    return collector


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--no-secret-scan",
        action="store_true",
        default=False,
        help="do not fail tests whose logs, Events or statuses hold a secret or a JWT (secret_scan plugin)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "no_secret_scan: never scan this test (it plants secrets on purpose)")


def scan_enabled(item: pytest.Item) -> bool:
    if item.get_closest_marker("no_secret_scan") is not None:
        return False
    return not item.config.getoption("--no-secret-scan")


_SCANNER_KEY = pytest.StashKey[SecretScanner]()


@pytest.fixture
def secret_scanner(request: pytest.FixtureRequest) -> SecretScanner:
    """The scanner of the current test (a blank one when scanning is off for it)."""
    scanner: SecretScanner = request.node.stash.setdefault(_SCANNER_KEY, SecretScanner())
    return scanner


@pytest.fixture(autouse=True)
def _scan_for_secrets(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    if not scan_enabled(request.node):
        yield
        return
    scanner: SecretScanner = request.node.stash.setdefault(_SCANNER_KEY, SecretScanner())
    collector = install_collectors(scanner, monkeypatch)
    try:
        yield
    finally:
        logging.getLogger().removeHandler(collector)
    hits = scanner.scan()
    if hits:
        listed = "\n".join(f"  - {hit}" for hit in hits[:20])
        pytest.fail(f"secret scan: {len(hits)} leak(s) found (values not shown):\n{listed}", pytrace=False)
