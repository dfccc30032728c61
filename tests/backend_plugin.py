"""Which Kubernetes API a test runs on (``tests/kube_backends.py``), as a pytest plugin of the whole suite.

- ``real_kube``: the session's real kube-apiserver and etcd (``tests/real_kube.py``), started once when a
  test first asks for it; skipped where the tier cannot be had, failing instead under ``CI=true``.
- ``kube_backend``: a not yet started :class:`~kube_backends.KubeBackend` for a test bed; the embedded API
  unless the test is parametrised.
- ``@pytest.mark.both_backends``: the test runs twice, ``[embedded]`` and ``[real]``.
- The terminal summary says how many tests used each backend: the embedded API when one served the test a
  request (in this process), the real one when the test ran with the ``real_kube`` fixture or as the ``real``
  case of a backend parametrisation.
"""

from __future__ import annotations

import weakref
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field

import pytest

from kube_backends import BACKENDS, EmbeddedBackend, KubeBackend, RealBackend
from real_kube import RealKube, TierUnavailable, locate_binary, running, unavailable
from twilio_video_playground.kube import EmbeddedKubernetes

MARKER = "both_backends"


@dataclass
class Tally:
    """Tests per backend, and the embedded APIs of this process with their request counts."""

    embedded: set[str] = field(default_factory=set)
    real: set[str] = field(default_factory=set)
    servers: weakref.WeakSet[EmbeddedKubernetes] = field(default_factory=weakref.WeakSet)
    """Every embedded API started so far and still alive (session fixtures keep theirs)."""
    started_in_test: list[EmbeddedKubernetes] = field(default_factory=list)
    """Those started during the current test, kept until it is counted (a test bed drops its own)."""
    served_before: dict[int, int] = field(default_factory=dict)
    real_version: str | None = None
    real_unavailable: str | None = None
    """Why the real tier could not be had in this run, if a test asked for it and it could not."""

    def started(self, server: EmbeddedKubernetes) -> None:
        self.servers.add(server)
        self.started_in_test.append(server)

    def test_starts(self) -> None:
        self.started_in_test.clear()
        self.served_before = {id(server): _served(server) for server in list(self.servers)}

    def embedded_served(self) -> bool:
        """Whether an embedded API served a request since :meth:`test_starts`."""
        servers = {id(server): server for server in [*self.servers, *self.started_in_test]}
        served = any(_served(server) > self.served_before.get(key, 0) for key, server in servers.items())
        self.started_in_test.clear()
        return served


TALLY = pytest.StashKey[Tally]()


def _served(server: EmbeddedKubernetes) -> int:
    return sum(server.request_counts.values())


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}: run on the embedded Kubernetes API and on the real kube-apiserver"
    )
    tally = Tally()
    config.stash[TALLY] = tally
    # Every embedded API started in this process is watched, whoever starts it (fixtures, test beds, the
    # fidelity suite's thread), so that a test is counted when one of them served it.
    original = EmbeddedKubernetes.start

    async def start(self: EmbeddedKubernetes, host: str = "127.0.0.1", port: int = 0) -> None:
        tally.started(self)
        await original(self, host, port)

    patcher = pytest.MonkeyPatch()
    patcher.setattr(EmbeddedKubernetes, "start", start)
    config.add_cleanup(patcher.undo)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker(MARKER) is None:
        return
    if "kube_backend" not in metafunc.fixturenames:
        raise pytest.UsageError(
            f"{metafunc.definition.nodeid} is marked {MARKER} but uses no fixture built on kube_backend"
        )
    metafunc.parametrize("kube_backend", BACKENDS, indirect=True)


@pytest.fixture(scope="session")
def real_kube(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Iterator[RealKube]:
    """A real API server for the whole session: admin kubeconfig, URL and a ``kubectl`` runner."""
    tally = pytestconfig.stash[TALLY]
    try:
        binary = locate_binary()
    except TierUnavailable as exc:
        tally.real_unavailable = str(exc)
        unavailable(str(exc))
    try:
        with running(binary, tmp_path_factory.mktemp("real-kube")) as kube:
            tally.real_version = server_version(kube)
            yield kube
    except TierUnavailable as exc:
        tally.real_unavailable = str(exc)
        unavailable(str(exc))


def server_version(kube: RealKube) -> str | None:
    status, body, _ = kube.request("GET", "/version")
    return str(body.get("gitVersion")) if status == 200 else None


@pytest.fixture
def kube_backend(request: pytest.FixtureRequest) -> KubeBackend:
    """The backend of this test's bed, not started yet: the test bed starts and stops it."""
    name = getattr(request, "param", "embedded")
    if name == "real":
        return RealBackend(request.getfixturevalue("real_kube"))
    return EmbeddedBackend()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(
    item: pytest.Item, nextitem: pytest.Item | None
) -> Generator[None, object, object]:
    tally = item.config.stash[TALLY]
    tally.test_starts()
    try:
        return (yield)
    finally:
        if tally.embedded_served():
            tally.embedded.add(item.nodeid)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if call.when == "call" and not report.skipped and uses_real_server(item):
        item.config.stash[TALLY].real.add(item.nodeid)
    return report


def uses_real_server(item: pytest.Item) -> bool:
    """The test asks for ``real_kube`` (directly or through its fixtures), or it is the ``real`` case of a
    backend parametrisation (``kube_backend`` here, the fidelity suite's ``api``), whose fixture asks for
    ``real_kube`` only when that case runs."""
    callspec = getattr(item, "callspec", None)
    if callspec is not None and "real" in callspec.params.values():
        return True
    return "real_kube" in getattr(item, "fixturenames", ())


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    tally = config.stash[TALLY]
    if not tally.embedded and not tally.real and tally.real_unavailable is None:
        return
    version = f" {tally.real_version}" if tally.real_version else ""
    terminalreporter.write_line(
        f"Kubernetes API backends: {len(tally.embedded)} tests on the embedded API, "
        f"{len(tally.real)} on the real kube-apiserver{version}"
    )
    if tally.real_unavailable is not None:
        # The one reason of every skipped (or, under CI=true, failed) test of the real tier.
        first_line = tally.real_unavailable.splitlines()[0]
        terminalreporter.write_line(f"Real kube-apiserver tier not run: {first_line}")
