"""``/v1/CompositionSettings/Default`` and ``/v1/RecordingSettings/Default``: fetch and replace.

Both hold an account's external storage (S3) and encryption settings; each account (main or subaccount) has
its own, addressed by the request's principal. A ``POST`` replaces the whole
resource (``FriendlyName`` required) and answers ``200``. When composition settings enable AWS storage, each
composition completed afterwards reports ``media_external_location`` as
``{AwsS3Url}/{CompositionSid}.{format}``; the media stays downloadable from the emulator as well.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from aiohttp import web
from multidict import MultiMapping

from .auth import account_of
from .compositions import COMPOSITIONS_KEY, Composition, service_of
from .core import STATE_KEY, EmulatorState, TwilioError, add_route, param_bool, read_params

SETTINGS_KEY = "composition_settings"
_CREDENTIAL_SID = re.compile(r"^CR[0-9a-fA-F]{32}$")
_URL = re.compile(r"^https?://[^/\s]+\S*$")


@dataclass
class StorageSettings:
    friendly_name: str | None = None
    aws_credentials_sid: str | None = None
    aws_s3_url: str | None = None
    aws_storage_enabled: bool = False
    encryption_key_sid: str | None = None
    encryption_enabled: bool = False


def _bad(message: str) -> TwilioError:
    return TwilioError(400, 20001, message)


def _credential(params: MultiMapping[str], name: str) -> str | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    if not _CREDENTIAL_SID.match(value):
        raise _bad(f"{name} must be a Credential SID (CR followed by 32 hex digits)")
    return value


def parse_settings(params: MultiMapping[str]) -> StorageSettings:
    """The new settings from a ``POST``; absent optional parameters take their defaults."""
    name = params.get("FriendlyName")
    if name is None or not name.strip():
        raise _bad("Missing required parameter FriendlyName")
    url = params.get("AwsS3Url") or None
    if url is not None and (not _URL.match(url) or len(url) > 2048):
        raise _bad("AwsS3Url must be an http(s) URL")
    settings = StorageSettings(
        friendly_name=name,
        aws_credentials_sid=_credential(params, "AwsCredentialsSid"),
        aws_s3_url=url,
        aws_storage_enabled=param_bool(params, "AwsStorageEnabled", False),
        encryption_key_sid=_credential(params, "EncryptionKeySid"),
        encryption_enabled=param_bool(params, "EncryptionEnabled", False),
    )
    if settings.aws_storage_enabled and not (settings.aws_credentials_sid and settings.aws_s3_url):
        raise _bad("AwsStorageEnabled requires AwsCredentialsSid and AwsS3Url")
    if settings.encryption_enabled and not settings.encryption_key_sid:
        raise _bad("EncryptionEnabled requires EncryptionKeySid")
    return settings


@dataclass
class AccountSettings:
    compositions: StorageSettings = field(default_factory=StorageSettings)
    recordings: StorageSettings = field(default_factory=StorageSettings)

    def dump(self) -> dict[str, Any]:
        return {"compositions": asdict(self.compositions), "recordings": asdict(self.recordings)}

    @classmethod
    def load(cls, data: dict[str, Any]) -> AccountSettings:
        return cls(
            StorageSettings(**data.get("compositions", {})), StorageSettings(**data.get("recordings", {}))
        )


class SettingsService:
    """Every account's composition and recording settings; kept in ``state.extensions``."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self.accounts: dict[str, AccountSettings] = {}

    def of(self, account_sid: str) -> AccountSettings:
        return self.accounts.setdefault(account_sid, AccountSettings())

    def external_location(self, composition: Composition) -> str | None:
        settings = self.of(composition.account_sid).compositions
        if not settings.aws_storage_enabled or not settings.aws_s3_url:
            return None
        return f"{settings.aws_s3_url.rstrip('/')}/{composition.sid}.{composition.options.format}"

    def dump(self) -> dict[str, Any]:
        # The main account's settings stay at the top level, where files written before subaccounts have them.
        main = self.state.account_sid
        others = {sid: settings.dump() for sid, settings in self.accounts.items() if sid != main}
        return {**self.of(main).dump(), "accounts": others}

    def load(self, data: dict[str, Any]) -> None:
        self.accounts = {sid: AccountSettings.load(raw) for sid, raw in data.get("accounts", {}).items()}
        self.accounts[self.state.account_sid] = AccountSettings.load(data)


def settings_of(state: EmulatorState) -> SettingsService:
    service = state.extensions.get(SETTINGS_KEY)
    if not isinstance(service, SettingsService):
        raise RuntimeError("composition settings are not installed")
    return service


def render_settings(
    state: EmulatorState, settings: StorageSettings, path: str, account_sid: str
) -> dict[str, Any]:
    return {
        "account_sid": account_sid,
        "friendly_name": settings.friendly_name,
        "aws_credentials_sid": settings.aws_credentials_sid,
        "aws_s3_url": settings.aws_s3_url,
        "aws_storage_enabled": settings.aws_storage_enabled,
        "encryption_key_sid": settings.encryption_key_sid,
        "encryption_enabled": settings.encryption_enabled,
        "url": state.url(path),
    }


COMPOSITION_SETTINGS_PATH = "/v1/CompositionSettings/Default"
RECORDING_SETTINGS_PATH = "/v1/RecordingSettings/Default"


async def fetch_composition_settings(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    account_sid = account_of(request)
    settings = settings_of(state).of(account_sid).compositions
    return web.json_response(render_settings(state, settings, COMPOSITION_SETTINGS_PATH, account_sid))


async def create_composition_settings(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    account_sid = account_of(request)
    settings = parse_settings(await read_params(request))
    settings_of(state).of(account_sid).compositions = settings
    return web.json_response(render_settings(state, settings, COMPOSITION_SETTINGS_PATH, account_sid))


async def fetch_recording_settings(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    account_sid = account_of(request)
    settings = settings_of(state).of(account_sid).recordings
    return web.json_response(render_settings(state, settings, RECORDING_SETTINGS_PATH, account_sid))


async def create_recording_settings(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    account_sid = account_of(request)
    settings = parse_settings(await read_params(request))
    settings_of(state).of(account_sid).recordings = settings
    return web.json_response(render_settings(state, settings, RECORDING_SETTINGS_PATH, account_sid))


def install(app: web.Application, state: EmulatorState) -> None:
    service = SettingsService(state)
    state.extensions[SETTINGS_KEY] = service
    state.persisters[SETTINGS_KEY] = (service.dump, service.load)
    if COMPOSITIONS_KEY in state.extensions:  # installed before this module (see app.MODULES)
        service_of(state).external_location = service.external_location
    add_route(app, "GET", COMPOSITION_SETTINGS_PATH, fetch_composition_settings, "FetchCompositionSettings")
    add_route(
        app, "POST", COMPOSITION_SETTINGS_PATH, create_composition_settings, "CreateCompositionSettings"
    )
    add_route(app, "GET", RECORDING_SETTINGS_PATH, fetch_recording_settings, "FetchRecordingSettings")
    add_route(app, "POST", RECORDING_SETTINGS_PATH, create_recording_settings, "CreateRecordingSettings")
