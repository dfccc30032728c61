"""Watch streams: newline-delimited JSON events, as the API server sends them for ``?watch=true``."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp.web

from twilio_video_playground.kube.errors import ApiError
from twilio_video_playground.kube.registry import ResourceType
from twilio_video_playground.kube.selectors import Selection
from twilio_video_playground.kube.store import ExpiredError, ObjectStore, Subscription, WatchEvent

TICK = 1.0  # how often an idle stream checks for a closed connection or a server stop


def _as_stored(obj: dict[str, Any]) -> Mapping[str, Any]:
    return obj


def translate(
    event: WatchEvent,
    selection: Selection,
    served: Callable[[dict[str, Any]], Mapping[str, Any]] = _as_stored,
) -> str | None:
    """The event type a filtered watcher sees: objects entering or leaving the selection are ADDED/DELETED
    (``served``: the stored object in the shape the watched API serves)."""
    now_matches = selection.matches(served(event.obj))
    if event.type != "MODIFIED":
        return event.type if now_matches else None
    was_matching = event.old is not None and selection.matches(served(event.old))
    if now_matches:
        return "MODIFIED" if was_matching else "ADDED"
    return "DELETED" if was_matching else None


@dataclass
class WatchStream:
    """One watch request of one resource type, narrowed by a selection."""

    store: ObjectStore
    rt: ResourceType
    selection: Selection
    render: Callable[[dict[str, Any]], dict[str, Any]]  # the served form of an object (e.g. a Table)
    stopping: Callable[[], bool]  # true once the server shuts down
    duration: float | None = None  # timeoutSeconds
    initial_events_bookmark: bool = False  # sendInitialEvents=true

    async def serve(
        self, raw_request: aiohttp.web.BaseRequest, since: int | None
    ) -> aiohttp.web.StreamResponse:
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
        try:
            subscription = self.store.subscribe(self.rt, since)
        except ExpiredError as exc:
            await response.prepare(raw_request)
            await self._write(response, "ERROR", ApiError(410, str(exc), reason="Expired").status())
            await response.write_eof()
            return response
        try:
            await response.prepare(raw_request)
            await self._stream(raw_request, response, subscription)
            await response.write_eof()
        except ConnectionError:
            pass  # the client went away
        finally:
            self.store.unsubscribe(subscription)
        return response

    def _served(self, obj: dict[str, Any]) -> Mapping[str, Any]:
        return self.store.served(self.rt, obj)

    async def _write(
        self, response: aiohttp.web.StreamResponse, event_type: str, obj: Mapping[str, Any]
    ) -> None:
        line = json.dumps({"type": event_type, "object": obj}, separators=(",", ":"))
        await response.write(line.encode() + b"\n")

    async def _send(
        self, response: aiohttp.web.StreamResponse, event_type: str, obj: Mapping[str, Any]
    ) -> None:
        await self._write(response, event_type, self.render(self.store.present(self.rt, obj)))

    async def _stream(
        self,
        raw_request: aiohttp.web.BaseRequest,
        response: aiohttp.web.StreamResponse,
        subscription: Subscription,
    ) -> None:
        if subscription.initial is not None:
            for obj in subscription.initial:
                if self.selection.matches(self._served(obj)):
                    await self._send(response, "ADDED", obj)
            if self.initial_events_bookmark:
                metadata = {
                    "resourceVersion": self.store.resource_version,
                    "annotations": {"k8s.io/initial-events-end": "true"},
                }
                bookmark = {"kind": self.rt.kind, "apiVersion": self.rt.api_version, "metadata": metadata}
                await self._write(response, "BOOKMARK", bookmark)
        for event in subscription.backlog:
            if event_type := translate(event, self.selection, self._served):
                await self._send(response, event_type, event.obj)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.duration if self.duration is not None else math.inf
        while not self.stopping():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            try:
                live = await asyncio.wait_for(subscription.queue.get(), timeout=min(remaining, TICK))
            except TimeoutError:
                transport = raw_request.transport
                if transport is None or transport.is_closing():
                    return
                continue
            if live is None:
                return
            if event_type := translate(live, self.selection, self._served):
                await self._send(response, event_type, live.obj)
