"""A small ntfy-compatible server on a free loopback port (or ``host``'s), for tests and
the bench.

    server = NtfyServer()                # NtfyServer(host="192.168.1.20"): that address
    await server.start()
    url = server.url("doorbell")        # ntfy://127.0.0.1:PORT/doorbell
    ...
    got = await server.wait_for(1)      # the notifications it accepted
    server.fail(500, times=2)           # the next two requests get a 500
    server.stall()                      # requests hang until server.release()
    await server.stop(); await server.start()   # refused meanwhile; the same port again

It answers as ntfy does (https://docs.ntfy.sh/publish/) to what Apprise's ntfy service
sends: a JSON message POSTed to ``/`` (``topic``, ``message``, ``title``, with
``X-Priority``, ``X-Tags``, ``X-Icon`` … as headers), or a body PUT or POSTed to
``/<topic>`` (an attachment, or a plain message with ``X-Title``). Every request is
recorded, with what it carried, so a test can prove that nothing but text went out.
"""

import asyncio
import json
import secrets
import time
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Received:
    """One request as the server saw it; ``at`` is ``time.perf_counter()`` on arrival."""

    at: float
    method: str
    path: str
    status: int
    headers: dict[str, str]
    body: bytes
    topic: str = ""
    title: str = ""
    message: str = ""
    fields: dict = field(default_factory=dict)  # the JSON body's keys and values

    @property
    def attachment(self) -> bool:
        """True if anything but text came: a file, an attach URL or an icon."""
        return (
            self.method == "PUT"
            or "filename" in self.fields
            or "attach" in self.fields
            or "icon" in self.fields
            or any(k.lower() in ("x-attach", "x-icon", "x-filename") for k in self.headers)
        )


class NtfyServer:
    """See the module's docstring. Runs on the loop that calls :meth:`start`."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.requests: list[Received] = []  # every request, failed or not
        self.host = host
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._fail_status = 0
        self._fail_times = 0
        self._stalled: asyncio.Event | None = None
        self._arrived = asyncio.Condition()

    @property
    def delivered(self) -> list[Received]:
        """The notifications it accepted (answered 200)."""
        return [r for r in self.requests if r.status == 200]

    def url(self, topic: str = "doorbell", scheme: str = "ntfy", **params: str) -> str:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        return f"{scheme}://{self.host}:{self.port}/{topic}" + (f"?{query}" if query else "")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{topic:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        if not self.port:
            self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        """Close the port: connections are refused until :meth:`start` again."""
        self.release()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def fail(self, status: int = 500, times: int = 1_000_000) -> None:
        """Answer the next ``times`` requests with ``status`` (ntfy's JSON error)."""
        self._fail_status, self._fail_times = status, times

    def recover(self) -> None:
        self._fail_times = 0

    def stall(self) -> None:
        """Hold every request unanswered until :meth:`release`."""
        self._stalled = asyncio.Event()

    def release(self) -> None:
        if self._stalled is not None:
            self._stalled.set()
            self._stalled = None

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """The first ``count`` notifications delivered, once there are that many."""
        async with self._arrived:
            await asyncio.wait_for(
                self._arrived.wait_for(lambda: len(self.delivered) >= count), timeout
            )
        return self.delivered[:count]

    async def _handle(self, request: web.Request) -> web.Response:
        at = time.perf_counter()
        body = await request.read()
        topic = request.match_info["topic"]
        fields: dict = {}
        title = request.headers.get("X-Title", request.headers.get("Title", ""))
        message = ""
        if not topic and request.method in ("POST", "PUT"):
            try:
                fields = json.loads(body)
            except ValueError:
                return self._error(400, 40001, "invalid request: body must be JSON")
            if not isinstance(fields, dict):
                return self._error(400, 40001, "invalid request: body must be a JSON object")
            topic = str(fields.get("topic", ""))
            title = str(fields.get("title", title))
            message = str(fields.get("message", ""))
        elif request.method in ("POST", "PUT"):
            message = body.decode("utf-8", "replace")
        else:
            return self._error(405, 40500, "method not allowed")
        stalled = self._stalled
        if stalled is not None:
            await stalled.wait()
        status = 200
        if self._fail_times > 0:
            self._fail_times -= 1
            status = self._fail_status
        received = Received(
            at, request.method, request.path, status, dict(request.headers), body,
            topic, title, message, fields,
        )  # fmt: skip
        async with self._arrived:
            self.requests.append(received)
            self._arrived.notify_all()
        if status != 200:
            return self._error(status, status * 100 + 1, "internal server error")
        answer = {
            "id": secrets.token_hex(6),
            "time": int(time.time()),
            "expires": int(time.time()) + 43200,
            "event": "message",
            "topic": topic,
            "message": message,
        } | ({"title": title} if title else {})
        return web.json_response(answer)

    @staticmethod
    def _error(status: int, code: int, text: str) -> web.Response:
        return web.json_response(
            {"code": code, "http": status, "error": text},
            status=status,
        )
