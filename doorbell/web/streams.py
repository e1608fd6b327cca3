"""The long-lived responses: the live view (MJPEG), the event stream (SSE) and the
ring stream of a locked page (SSE).

The first two run until the tab goes away or its session ends (locked, idle, past its
lifetime, the owner removed or signed out everywhere), and end at once when it
does: the event stream's last message says why (``event: session``), so the
page can tell the owner and offer to unlock again. The live view counts its
viewers, so the recording LED is on while anyone watches (law 8).

The ring stream (``GET /api/rings``) needs a ring pass, not a session
(:mod:`doorbell.web.ring_passes`), and outlives the session: it carries the time of
each ring (``event: bell``) and nothing else, until the pass ends, when its last
message says why (``event: rings``).

Each holds a connection for as long as it runs, so each has a cap per session (per
pass, for rings) and in all (:data:`CAPS`); past it the answer is 429, and the tab
tries again later.
"""

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator

from aiohttp import web

from doorbell.events import BellPressed, ClipFinished, ClipStarted, MotionChanged, PirChanged
from doorbell.web import ring_passes
from doorbell.web.context import CONTEXT, RING_PASS, RING_PASSES, SESSIONS, session_of
from doorbell.web.sessions import COOKIE
from doorbell.web.views import clip_card, recording_card, recording_now

HEARTBEAT = 15.0  # seconds between SSE keep-alive comments
# (per session, in all). Events: a browser's tabs (the page has one stream a tab).
# Live: two views a session, six in all: each costs a JPEG written per frame shown.
# Rings (per pass): a locked browser's tabs; eight in all, one a pass (ring_passes.CAP).
CAPS = {"events": (4, 32), "live": (2, 6), "rings": (2, 8)}


class Slots:
    """How many streams of each kind are open, per session (or ring pass) token and in
    all."""

    def __init__(self, caps: dict[str, tuple[int, int]] = CAPS) -> None:
        self.caps = caps
        self.open: Counter[tuple[str, str]] = Counter()
        self.refused = 0

    @contextlib.contextmanager
    def claim(self, kind: str, token: str) -> Iterator[None]:
        """Hold a slot of ``kind`` for ``token``'s session; 429 when none is free."""
        per_session, in_all = self.caps[kind]
        if self.open[(kind, token)] >= per_session or self.open[(kind, "")] >= in_all:
            self.refused += 1
            raise web.HTTPTooManyRequests(
                text=f"too many {kind} streams open; close a tab and try again\n",
                headers={"Retry-After": "10"},
            )
        self.open[(kind, token)] += 1
        self.open[(kind, "")] += 1
        try:
            yield
        finally:
            for key in ((kind, token), (kind, "")):
                self.open[key] -= 1
                if not self.open[key]:
                    del self.open[key]


STREAM_SLOTS = web.AppKey("stream_slots", Slots)


async def _in_slot(
    request: web.Request,
    kind: str,
    stream: Callable[[web.Request, str], Awaitable[web.StreamResponse]],
    cookie: str = COOKIE,
) -> web.StreamResponse:
    """Run ``stream(request, token)`` holding a slot of ``kind`` for the token in the
    request's ``cookie`` (the session's, or the ring pass's); 429 when none is free."""
    token = request.cookies.get(cookie) or ""
    with request.app[STREAM_SLOTS].claim(kind, token):
        return await stream(request, token)


def _streaming(content_type: str) -> web.StreamResponse:
    """A response written as it goes, never stored by the browser or a proxy."""
    return web.StreamResponse(
        headers={
            "Content-Type": content_type,
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )


# --- live -----------------------------------------------------------------------------------


async def live_stream(request: web.Request) -> web.StreamResponse:
    """MJPEG (multipart/x-mixed-replace) of the masked camera picture, at ``live_fps``."""
    context = request.app[CONTEXT]
    if context.live is None:
        raise web.HTTPServiceUnavailable(text="no camera\n")
    return await _in_slot(request, "live", _live)


async def _live(request: web.Request, token: str) -> web.StreamResponse:
    context = request.app[CONTEXT]
    assert context.live is not None
    session = session_of(request)
    response = _streaming("multipart/x-mixed-replace; boundary=frame")
    await response.prepare(request)
    period = 1.0 / context.settings.live_fps
    context.live.watching(+1)  # law 8: the LED is on while anyone watches
    last = -1
    try:
        while (
            request.app[SESSIONS].get(token, touch=False) is not None and not session.ended.is_set()
        ):
            latest = context.live.latest_jpeg()
            if latest is not None and latest[0] != last:
                last, jpeg = latest
                head = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                await response.write(head.encode() + jpeg + b"\r\n")
            await asyncio.sleep(period)
    except ConnectionError:  # the tab went away
        pass
    finally:
        context.live.watching(-1)
    return response


# --- events ---------------------------------------------------------------------------------


def sse_message(event: object) -> bytes | None:
    """The Server-Sent Events message for a bus event (None: not for browsers): ``bell``,
    ``motion``, ``recording`` (a clip began: ``views.recording_card``) and ``clip`` (a clip
    ended: ``views.clip_card``, the words of its card with it)."""
    data: dict[str, object]
    if isinstance(event, BellPressed):
        name, data = "bell", {"at": event.at}
    elif isinstance(event, MotionChanged | PirChanged):
        kind = "motion" if isinstance(event, MotionChanged) else "pir"
        name, data = "motion", {"at": event.at, "active": event.active, "source": kind}
    elif isinstance(event, ClipStarted):
        name, data = "recording", recording_card(event.at, event.trigger, event.id)
    elif isinstance(event, ClipFinished):
        name, data = "clip", clip_card(event.clip)
    else:
        return None
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


def recordings_message(ids: list[str]) -> bytes:
    """The event stream's first message: the ids of the clips being recorded as it
    (re)connects, so a page drops the cards of those that ended while it was away."""
    return f"event: recordings\ndata: {json.dumps({'ids': ids})}\n\n".encode()


def session_ended_message(reason: str) -> bytes:
    """The event stream's last message: the session ended, and why (see web.sessions)."""
    return f"event: session\ndata: {json.dumps({'ended': reason})}\n\n".encode()


async def events(request: web.Request) -> web.StreamResponse:
    """``text/event-stream`` of bell, motion, recording and clip events, until the session
    locks."""
    context = request.app[CONTEXT]
    if context.bus is None:
        raise web.HTTPServiceUnavailable(text="no event bus\n")
    return await _in_slot(request, "events", _events)


async def _events(request: web.Request, token: str) -> web.StreamResponse:
    session = session_of(request)

    def first() -> bytes:  # read once subscribed: a clip starting now is in one or the other
        now = recording_now(request.app[CONTEXT].store)
        return b": connected\n\nretry: 3000\n" + recordings_message([c.id for c in now])

    def live() -> bool:
        return request.app[SESSIONS].get(token, touch=False) is not None

    def last() -> bytes:
        return session_ended_message(session.end_reason or "locked")

    return await _relay(request, first, session.ended, live, sse_message, last)


# --- rings on a locked page -----------------------------------------------------------------


def bell_only(event: object) -> bytes | None:
    """The ring stream's message for a bus event: ``event: bell`` with its time for a
    ring, None for anything else (no motion, no clip, no recording card, no picture)."""
    return sse_message(event) if isinstance(event, BellPressed) else None


def rings_ended_message(reason: str) -> bytes:
    """The ring stream's last message: the pass ended, and why (see web.ring_passes)."""
    return f"event: rings\ndata: {json.dumps({'ended': reason})}\n\n".encode()


async def rings(request: web.Request) -> web.StreamResponse:
    """``text/event-stream`` of rings only, for a browser holding a ring pass, locked or
    not, until the pass ends."""
    if request.app[CONTEXT].bus is None:
        raise web.HTTPServiceUnavailable(text="no event bus\n")
    return await _in_slot(request, "rings", _rings, cookie=ring_passes.COOKIE)


async def _rings(request: web.Request, token: str) -> web.StreamResponse:
    ring_pass = request[RING_PASS]

    def live() -> bool:
        return request.app[RING_PASSES].get(token) is not None  # past its lifetime: ends

    def last() -> bytes:
        return rings_ended_message(ring_pass.end_reason or ring_passes.EXPIRED)

    def first() -> bytes:
        return b": connected\n\nretry: 3000\n\n"

    return await _relay(request, first, ring_pass.ended, live, bell_only, last)


# --- one stream of bus events, until its holder's access ends -------------------------------


async def _relay(
    request: web.Request,
    first: Callable[[], bytes],
    ended: asyncio.Event,
    live: Callable[[], bool],
    message: Callable[[object], bytes | None],
    last: Callable[[], bytes],
) -> web.StreamResponse:
    """Subscribe to the bus, write ``first()``, then ``message(event)`` for each bus event (None: not sent) and a
    keep-alive comment every :data:`HEARTBEAT` s without one, until ``ended`` is set or
    ``live()`` says no (checked at each wake); then ``last()``, and the stream ends."""
    bus = request.app[CONTEXT].bus
    assert bus is not None
    response = _streaming("text/event-stream")
    subscription = bus.subscribe()
    ending = asyncio.ensure_future(ended.wait())
    getting: asyncio.Future | None = None
    try:
        await response.prepare(request)
        await response.write(first())  # one block: the comment, the retry and what follows
        while True:
            getting = asyncio.ensure_future(subscription.get())
            done, _ = await asyncio.wait(
                {getting, ending}, timeout=HEARTBEAT, return_when=asyncio.FIRST_COMPLETED
            )
            event = getting.result() if getting in done else None
            if getting not in done:
                getting.cancel()
            if ending.done() or not live():
                await response.write(last())
                break  # nothing more for this tab
            said = message(event) if event is not None else b": keep-alive\n\n"
            if said:
                await response.write(said)
    except ConnectionError:  # the tab went away
        pass
    finally:
        ending.cancel()
        if getting is not None:
            getting.cancel()  # the tab went away while it waited: nothing left pending
        subscription.close()
        with contextlib.suppress(Exception):
            await response.write_eof()
    return response
