"""Live events over the real stack: the remote-control rig (TLS HTTPS + XMPP relay, real
gateways, simulated locks on a virtual link) and the sharing rig (ASGI app, rows only),
plus an SSE client reading ``GET /v1/events/stream`` over the rig's real TLS socket."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from tests.integration.ras.commands.conftest import rig  # noqa: F401 - the fixture
from tests.integration.ras.sharing.conftest import rig as sharing_rig  # noqa: F401
from tests.support import auth

WAIT_S = 10.0


@dataclass(frozen=True)
class SseEvent:
    id: int
    kind: str
    data: dict[str, Any]


class SseClient:
    """One open ``/v1/events/stream``; parses events as the HTML standard says."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.comments = 0
        self.retry: int | None = None
        self._lines = response.aiter_lines()
        self._opened = False

    async def opened(self) -> None:
        """Until the stream's first field (``retry:``): from then on the cursor is fixed."""
        while self.retry is None:
            line = await asyncio.wait_for(anext(self._lines), WAIT_S)
            if line.startswith("retry:"):
                self.retry = int(line.split(":", 1)[1])

    async def next(self, match: Callable[[SseEvent], bool] = lambda _: True) -> SseEvent:
        async def read() -> SseEvent:
            fields: dict[str, str] = {}
            async for line in self._lines:
                if line.startswith(":"):
                    self.comments += 1
                    continue
                if line == "":
                    if "data" in fields:
                        event = SseEvent(
                            int(fields["id"]), fields["event"], json.loads(fields["data"])
                        )
                        fields = {}
                        if match(event):
                            return event
                    fields = {}
                    continue
                name, _, value = line.partition(":")
                fields[name] = value[1:] if value.startswith(" ") else value
                if name == "retry":
                    self.retry = int(fields[name])
            raise AssertionError("the stream ended")

        return await asyncio.wait_for(read(), WAIT_S)


@contextlib.asynccontextmanager
async def sse(
    client: httpx.AsyncClient,
    token: str,
    last_event_id: int | None = None,
    params: dict[str, Any] | None = None,
) -> AsyncIterator[SseClient]:
    headers = {**auth(token), "accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    async with client.stream(
        "GET", "/v1/events/stream", headers=headers, params=params or {}
    ) as response:
        assert response.status_code == 200, (await response.aread()).decode()
        assert response.headers["content-type"].startswith("text/event-stream")
        reader = SseClient(response)
        await reader.opened()
        yield reader


async def feed(client: httpx.AsyncClient, token: str, **params: Any) -> list[dict[str, Any]]:
    response = await client.get("/v1/events", params=params, headers=auth(token))
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()
    return events
