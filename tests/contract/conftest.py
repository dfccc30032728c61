"""Fixtures for the emulator's contract tests.

The emulator runs in a background thread with its own event loop, so the real ``twilio`` client works both
synchronously (plain ``def`` tests) and asynchronously (``async def`` tests) against it. Every request the
client makes is recorded; at teardown each 2xx response is validated against Twilio's OpenAPI spec with
openapi-core. A response that does not
validate fails the test; missing specs fail it too.

The specs are vendored in ``tests/contract/twilio-oai``; a file in ``$SHARED_DIR/twilio-oai``, when set,
replaces the vendored one of the same name.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

import pytest
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse
from twilio.http.response import Response
from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import VideoGrant
from twilio.rest import Client

from twilio_video_emulator.core import EmulatorState
from twilio_video_emulator.server import Emulator, start_emulator
from twilio_video_operator.gateway.base_url import AsyncBaseUrlHttpClient, BaseUrlHttpClient

REPO_ROOT = Path(__file__).resolve().parents[2]
SPEC_FILES = {
    "video": ("twilio_video_v1.json", "https://video.twilio.com"),
    "api": ("twilio_api_v2010.json", "https://api.twilio.com"),
    "iam": ("twilio_iam_v1.json", "https://iam.twilio.com"),
    "verify": ("twilio_verify_v2.json", "https://verify.twilio.com"),
    "studio": ("twilio_studio_v2.json", "https://studio.twilio.com"),
    "messaging": ("twilio_messaging_v1.json", "https://messaging.twilio.com"),
}
T = TypeVar("T")


def pytest_configure(config: pytest.Config) -> None:
    # twilio's aiohttp transport still builds aiohttp.BasicAuth; nothing to act on in these tests.
    config.addinivalue_line("filterwarnings", "ignore:BasicAuth is deprecated:DeprecationWarning")


# --------------------------------------------------------------------------------------------- specs


VENDORED_SPECS = Path(__file__).resolve().parent / "twilio-oai"


def spec_path(name: str) -> Path:
    """``$SHARED_DIR/twilio-oai/<name>`` when set and present, else the vendored copy."""
    shared = os.environ.get("SHARED_DIR")
    if shared and (Path(shared) / "twilio-oai" / name).is_file():
        return Path(shared) / "twilio-oai" / name
    return VENDORED_SPECS / name


@pytest.fixture(scope="session")
def openapi_specs() -> dict[str, OpenAPI]:
    """Twilio's specs, parsed once. Missing specs fail the tests."""
    paths = {product: spec_path(name) for product, (name, _) in SPEC_FILES.items()}
    missing = [str(path) for path in paths.values() if not path.is_file()]
    if missing:
        pytest.fail(
            f"Twilio OpenAPI specs not found: {', '.join(missing)}. They are vendored in "
            "tests/contract/twilio-oai; a file of the same name in $SHARED_DIR/twilio-oai replaces one.",
            pytrace=False,
        )
    return {
        product: OpenAPI.from_dict(jsonlib.loads(path.read_text(encoding="utf-8")))
        for product, path in paths.items()
    }


def product_of(path: str) -> str:
    """Which Twilio product (and spec) serves ``path``; the emulator serves them all on one port."""
    if path.startswith("/2010-04-01/"):
        return "api"
    if path == "/v1/Keys" or path.startswith("/v1/Keys/"):
        return "iam"
    if path == "/v1/Services" or path.startswith("/v1/Services/"):
        return "messaging"
    if path == "/v2/Services" or path.startswith("/v2/Services/"):
        return "verify"
    if path == "/v2/Flows" or path.startswith("/v2/Flows/"):
        return "studio"
    return "video"


# ------------------------------------------------------------------------------------------ recorder


@dataclass
class Exchange:
    """One request the twilio client made and the response it got."""

    method: str
    url: str
    query: dict[str, str]
    status: int
    content_type: str
    text: str

    @property
    def path(self) -> str:
        return urlsplit(self.url).path


@dataclass
class ResponseRecorder:
    exchanges: list[Exchange] = field(default_factory=list)

    def record(self, method: str, url: str, params: Any, response: Response) -> None:
        query = dict(parse_qsl(urlsplit(url).query))
        if params:
            query.update({str(k): str(v) for k, v in dict(params).items()})
        headers = response.headers or {}
        content_type = next((str(v) for k, v in dict(headers).items() if k.lower() == "content-type"), "")
        self.exchanges.append(
            Exchange(method.upper(), url, query, response.status_code, content_type, response.text)
        )

    def validate(self, specs: dict[str, OpenAPI]) -> list[str]:
        """Problems found in the recorded 2xx responses (empty when all conform)."""
        problems = []
        for exchange in self.exchanges:
            if not 200 <= exchange.status < 300:
                continue
            product = product_of(exchange.path)
            request = MockRequest(
                SPEC_FILES[product][1], exchange.method.lower(), exchange.path, args=exchange.query
            )
            mimetype = exchange.content_type.split(";")[0].strip() or "application/json"
            response = MockResponse(
                exchange.text.encode("utf-8"), status_code=exchange.status, content_type=mimetype
            )
            try:
                specs[product].validate_response(request, response)
            except Exception as error:
                problems.append(f"{exchange.method} {exchange.path} -> {exchange.status}: {_describe(error)}")
        return problems


def _describe(error: BaseException) -> str:
    """The schema errors behind an openapi-core validation error, or the error itself."""
    seen: BaseException | None = error
    while seen is not None:
        schema_errors = getattr(seen, "schema_errors", None)
        if schema_errors:
            return "; ".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in schema_errors)
        seen = seen.__cause__
    return repr(error)


class RecordingHttpClient(BaseUrlHttpClient):
    """Synchronous twilio http client that sends Twilio hosts to the emulator and records every exchange."""

    def __init__(self, base_url: str, recorder: ResponseRecorder, **kwargs: Any) -> None:
        super().__init__(base_url, **kwargs)
        self.recorder = recorder

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        response = super().request(method, url, *args, **kwargs)
        self.recorder.record(method, url, kwargs.get("params"), response)
        return response


class RecordingAsyncHttpClient(AsyncBaseUrlHttpClient):
    """Async (aiohttp) variant of :class:`RecordingHttpClient`; build it inside a running loop."""

    def __init__(self, base_url: str, recorder: ResponseRecorder, **kwargs: Any) -> None:
        super().__init__(base_url, **kwargs)
        self.recorder = recorder

    async def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        response = await super().request(method, url, *args, **kwargs)
        self.recorder.record(method, url, kwargs.get("params"), response)
        return response


@pytest.fixture
def twilio_recorder(openapi_specs: dict[str, OpenAPI]) -> Iterator[ResponseRecorder]:
    """Records the twilio client's traffic; fails the test if a 2xx response does not match the spec."""
    recorder = ResponseRecorder()
    yield recorder
    problems = recorder.validate(openapi_specs)
    if problems:
        pytest.fail("responses that do not conform to Twilio's spec:\n" + "\n".join(problems), pytrace=False)


# ------------------------------------------------------------------------------------------ emulator


class RunningEmulator:
    """An emulator served from its own thread and event loop."""

    def __init__(self, state_file: str | None = None) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="emulator", daemon=True)
        self._thread.start()
        self.emulator: Emulator = self.run(start_emulator(host="127.0.0.1", port=0, state_file=state_file))

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        """Run ``coroutine`` on the emulator's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def call(self, fn: Callable[[], T], timeout: float = 10.0) -> T:
        """Run ``fn`` on the emulator's loop (use this to touch ``state`` safely)."""

        async def invoke() -> T:
            return fn()

        return self.run(invoke(), timeout)

    @property
    def url(self) -> str:
        return self.emulator.url

    @property
    def state(self) -> EmulatorState:
        return self.emulator.state

    @property
    def credentials(self) -> dict[str, str]:
        return self.call(lambda: self.emulator.credentials)

    def stop(self) -> None:
        if not self.loop.is_running():
            return
        try:
            self.run(self.emulator.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
            self.loop.close()


@pytest.fixture
def emulator() -> Iterator[RunningEmulator]:
    running = RunningEmulator()
    yield running
    running.stop()


EmulatorFactory = Callable[..., RunningEmulator]


@pytest.fixture
def emulator_factory() -> Iterator[EmulatorFactory]:
    """``emulator_factory(state_file=None) -> RunningEmulator``; each one is stopped at teardown."""
    started: list[RunningEmulator] = []

    def start(state_file: str | None = None) -> RunningEmulator:
        running = RunningEmulator(state_file)
        started.append(running)
        return running

    yield start
    for running in started:
        if running.loop.is_running():
            running.stop()


@dataclass
class ControlResponse:
    status: int
    body: Any


ControlCall = Callable[..., ControlResponse]


def control_call(
    base_url: str, method: str, path: str, json: Any = None, timeout: float = 10.0
) -> ControlResponse:
    """Call the emulator's control API; ``path`` may omit the ``/_emulator`` prefix."""
    if not path.startswith("/_emulator/"):
        path = "/_emulator/" + path.lstrip("/")
    data = None if json is None else jsonlib.dumps(json).encode()
    request = urllib.request.Request(base_url + path, data=data, method=method.upper())
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            status, raw = answer.status, answer.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    return ControlResponse(status, jsonlib.loads(raw) if raw else None)


@pytest.fixture
def emulator_control(emulator: RunningEmulator) -> ControlCall:
    """``emulator_control(method, path, json=None) -> ControlResponse(status, body)``."""

    def call(method: str, path: str, json: Any = None) -> ControlResponse:
        return control_call(emulator.url, method, path, json)

    return call


# ------------------------------------------------------------------------------------------- clients


@pytest.fixture
def twilio_client(emulator: RunningEmulator, twilio_recorder: ResponseRecorder) -> Client:
    """The real synchronous client, authenticated with the Account SID and Auth Token."""
    credentials = emulator.credentials
    http_client = RecordingHttpClient(emulator.url, twilio_recorder)
    return Client(credentials["account_sid"], credentials["auth_token"], http_client=http_client)


@pytest.fixture
def key_client(emulator: RunningEmulator, twilio_recorder: ResponseRecorder) -> Client:
    """The real synchronous client, authenticated with the emulator's standard API key."""
    credentials = emulator.credentials
    http_client = RecordingHttpClient(emulator.url, twilio_recorder)
    return Client(
        credentials["api_key"],
        credentials["api_secret"],
        credentials["account_sid"],
        http_client=http_client,
    )


ClientFactory = Callable[..., Client]


@pytest.fixture
def make_client(emulator: RunningEmulator, twilio_recorder: ResponseRecorder) -> ClientFactory:
    """``make_client(username, password, account_sid=None)``: a recorded sync client with other credentials
    (e.g. a new key); ``account_sid`` (default: the main account) is the one v2010 paths name."""

    def make(username: str, password: str, account_sid: str | None = None) -> Client:
        http_client = RecordingHttpClient(emulator.url, twilio_recorder)
        return Client(username, password, account_sid or emulator.state.account_sid, http_client=http_client)

    return make


@dataclass(frozen=True)
class Subaccount:
    """Credentials of a subaccount made by ``POST /_emulator/accounts``, with a Standard key of it."""

    account_sid: str
    auth_token: str
    api_key: str
    api_secret: str


@pytest.fixture
def subaccount(emulator_control: ControlCall) -> Subaccount:
    """A fresh subaccount of the emulator's main account."""
    answer = emulator_control("POST", "accounts", {"friendlyName": "tenant"})
    assert answer.status == 201, answer.body
    body = answer.body
    return Subaccount(body["accountSid"], body["authToken"], body["apiKey"], body["apiSecret"])


@pytest.fixture
def subaccount_client(subaccount: Subaccount, make_client: ClientFactory) -> Client:
    """The real synchronous client, authenticated with the subaccount's SID and Auth Token."""
    return make_client(subaccount.account_sid, subaccount.auth_token, subaccount.account_sid)


@pytest.fixture
async def async_twilio_client(
    emulator: RunningEmulator, twilio_recorder: ResponseRecorder
) -> AsyncIterator[Client]:
    """The real client with the aiohttp transport (use the ``*_async`` methods); closed at teardown."""
    credentials = emulator.credentials
    http_client = RecordingAsyncHttpClient(emulator.url, twilio_recorder)
    client = Client(credentials["account_sid"], credentials["auth_token"], http_client=http_client)
    yield client
    await http_client.close()


# --------------------------------------------------------------------------------------------- media


TokenFactory = Callable[..., str]


@pytest.fixture
def access_token(emulator: RunningEmulator) -> TokenFactory:
    """``access_token(identity, room=None, ttl=3600, key_sid=None, secret=None, account_sid=None) -> JWT``
    via AccessToken; the defaults are the main account and its standard key."""

    def mint(
        identity: str,
        room: str | None = None,
        ttl: int = 3600,
        key_sid: str | None = None,
        secret: str | None = None,
        account_sid: str | None = None,
    ) -> str:
        credentials = emulator.credentials
        token = AccessToken(
            account_sid or credentials["account_sid"],
            key_sid or credentials["api_key"],
            secret or credentials["api_secret"],
            identity=identity,
            ttl=ttl,
        )
        token.add_grant(VideoGrant(room=room))
        return str(token.to_jwt())

    return mint


JoinCall = Callable[..., str]


@pytest.fixture
def join_participant(emulator_control: ControlCall, access_token: TokenFactory) -> JoinCall:
    """``join_participant(room, identity, tracks=None) -> PA sid``: connect with a valid Access Token."""

    def join(room: str, identity: str, tracks: list[dict[str, str]] | None = None) -> str:
        body: dict[str, Any] = {"identity": identity, "token": access_token(identity, room)}
        if tracks is not None:
            body["tracks"] = tracks
        answer = emulator_control("POST", f"rooms/{room}/participants", body)
        assert answer.status == 201, answer.body
        return str(answer.body["sid"])

    return join


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0, interval: float = 0.02) -> None:
    """Poll ``predicate`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(interval)
