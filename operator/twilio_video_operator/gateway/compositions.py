"""Compositions (Video v1) and the URL of their media."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urljoin

from twilio_video_operator.gateway import catalog
from twilio_video_operator.gateway.bound import BoundOperations, SdkClient, sdk_params
from twilio_video_operator.gateway.classify import error_from_response
from twilio_video_operator.gateway.errors import NotFoundError, TerminalError
from twilio_video_operator.gateway.records import CompositionInfo, composition_info
from twilio_video_operator.gateway.transport import header

VIDEO_BASE = "https://video.twilio.com"
_LIST_PAGE_SIZE = 100  # the maximum ListComposition allows


class CompositionOperations(BoundOperations):
    async def create_composition(
        self,
        *,
        room_sid: str,
        video_layout: Mapping[str, Any] | None = None,
        audio_sources: Sequence[str] | None = None,
        audio_sources_excluded: Sequence[str] | None = None,
        resolution: str | None = None,
        format: str | None = None,
        trim: bool | None = None,
        status_callback: str | None = None,
        status_callback_method: str | None = None,
    ) -> CompositionInfo:
        """CreateComposition. Parameters left at ``None`` are not sent.

        Never retried once the request may have been sent: after a 5xx, timeout or dropped connection it
        raises ``RetryableError(maybe_applied=True)``; use ``list_compositions(room_sid)`` to find out.
        """
        params = sdk_params(
            room_sid=room_sid,
            video_layout=dict(video_layout) if video_layout is not None else None,
            audio_sources=list(audio_sources) if audio_sources is not None else None,
            audio_sources_excluded=list(audio_sources_excluded)
            if audio_sources_excluded is not None
            else None,
            resolution=resolution,
            format=format,
            trim=trim,
            status_callback=status_callback,
            status_callback_method=status_callback_method,
        )

        async def attempt(client: SdkClient) -> CompositionInfo:
            return composition_info(await client.video.v1.compositions.create_async(**params))

        return await self._call(catalog.CREATE_COMPOSITION, attempt)

    async def fetch_composition(self, sid: str) -> CompositionInfo | None:
        """FetchComposition; ``None`` when Twilio does not know the SID."""

        async def attempt(client: SdkClient) -> CompositionInfo:
            return composition_info(await client.video.v1.compositions(sid).fetch_async())

        try:
            return await self._call(catalog.FETCH_COMPOSITION, attempt)
        except NotFoundError:
            return None

    async def list_compositions(self, room_sid: str, status: str | None = None) -> list[CompositionInfo]:
        """ListComposition filtered by room (and status), every page."""

        async def attempt(client: SdkClient) -> list[CompositionInfo]:
            records = await client.video.v1.compositions.list_async(
                **sdk_params(room_sid=room_sid, status=status), page_size=_LIST_PAGE_SIZE
            )
            return [composition_info(record) for record in records]

        return await self._call(catalog.LIST_COMPOSITION, attempt)

    async def delete_composition(self, sid: str) -> bool:
        """DeleteComposition. True when deleted now, False when it was already gone (404)."""

        async def attempt(client: SdkClient) -> bool:
            await client.video.v1.compositions(sid).delete_async()
            return True

        try:
            return await self._call(catalog.DELETE_COMPOSITION, attempt)
        except NotFoundError:
            return False

    async def composition_media_url(self, sid: str, ttl_seconds: int | None = None) -> str:
        """Where the composition's media file can be downloaded: the target of ``/Media``'s redirect.

        The redirect is not followed. Twilio answers either with a 302 and ``Location`` or with JSON
        ``{"redirect_to": ...}``; ``ttl_seconds`` asks for the URL's validity (``Ttl``). Raises
        ``NotFoundError`` for an unknown composition and ``TerminalError`` when no media is available.
        """
        url = f"{VIDEO_BASE}/v1/Compositions/{sid}/Media"

        async def attempt(client: SdkClient) -> str:
            response = await client.request_async(
                "GET", url, params=sdk_params(Ttl=ttl_seconds) or None, allow_redirects=False
            )
            status = int(response.status_code)
            if 300 <= status < 400:
                location = header(response.headers, "Location")
                if location:
                    return urljoin(url, location)
            elif 200 <= status < 300:
                target = _redirect_target(response.text)
                if target:
                    return target
            else:
                raise error_from_response(
                    catalog.FETCH_COMPOSITION_MEDIA, response, self._creds.secret_values
                )
            raise TerminalError(
                f"media response (HTTP {status}) names no location",
                operation=catalog.FETCH_COMPOSITION_MEDIA.op_id,
                status=status,
            )

        return self._reachable_url(await self._call(catalog.FETCH_COMPOSITION_MEDIA, attempt))


def _redirect_target(text: str | None) -> str | None:
    try:
        payload = json.loads(text or "")
    except ValueError:
        return None
    target = payload.get("redirect_to") if isinstance(payload, dict) else None
    return str(target) if target else None
