"""A signed-in device and the checks the web fuzz tests (tests/test_fuzz_web.py) make.

    device = await make_device(aiohttp_client, data_dir)   # real app, store, owner, a clip
    response = await device.client.get(...)
    await answered_cleanly(response, caplog)               # < 500, short text, no ERROR log
    reply = await exchange(port, b"GET / HTTP/9.9\\r\\n\\r\\n")  # raw bytes at the socket

The device is the real app over a real store with one finished clip (video, fragment
index and thumbnail, each an age file), its owner paired as their browser would pair
(tests/owners.py) and signed in. Its wall clock (the throttle's) moves on ten minutes at
every reading, so the throttle's waits (five minutes at most) never stop a guess from
reaching the body being fuzzed; the session clock stands still, so the session never idles.
"""

import asyncio
import base64
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.test_utils import TestServer

from doorbell import vault
from doorbell.events import EventBus
from doorbell.store import INDEX, THUMBNAIL, VIDEO, ClipStore, Keyring
from doorbell.web.app import make_app
from doorbell.web.context import WebContext
from tests.owners import PairedOwner, pair_owner, sign_in

SHORT = 300  # bytes: "a short text" for an error answer
VIDEO_BYTES = os.urandom(3000) + bytes(range(256)) * 700  # about 180 kB: three vault chunks
JPEG = b"\xff\xd8\xff\xe0" + bytes(2000) + b"\xff\xd9"  # served encrypted, never decoded


class Frozen:
    """The sessions' monotonic clock: it never moves."""

    def __call__(self) -> float:
        return 1000.0


class Stepping:
    """The throttle's wall clock: ten minutes later at every reading."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        self.now += 600.0
        return self.now


@dataclass(repr=False)
class Device:
    client: object  # aiohttp's TestClient
    owner: PairedOwner
    csrf: str
    clip: str  # a finished clip: video, fragment index, thumbnail
    files: dict[str, bytes]  # "file", "index", "thumbnail" -> its bytes on disk
    store: ClipStore
    data_dir: Path

    def __repr__(self) -> str:
        return f"Device(clip={self.clip!r}, owner={self.owner.id!r})"

    def _repr_pretty_(self, printer, cycle: bool) -> None:  # as hypothesis prints a failure
        printer.text(repr(self))

    def signed(self, **headers: str) -> dict[str, str]:
        """Headers of a signed-in change: the CSRF token, and ``headers``."""
        return {"X-CSRF-Token": self.csrf, **headers}


def add_clip(store: ClipStore) -> str:
    """A finished clip with a thumbnail and a fragment index (an age file of random bytes:
    the device serves it without opening it)."""
    recording = store.new_clip("bell", start=1_700_000_000.0)
    recording.write_thumbnail(JPEG)
    recording.video.write(VIDEO_BYTES)
    clip = recording.finish(end=1_700_000_012.0).id
    recipients = Keyring.in_data_dir(store.data_dir).recipients()
    index = vault.encrypt_bytes(os.urandom(700), recipients)
    store.path(clip, INDEX).write_bytes(index)
    return clip


async def make_device(aiohttp_client, data_dir: Path, **server: object) -> Device:
    """The device on a real server on 127.0.0.1; ``server``: AppRunner's options."""
    store = ClipStore.open(data_dir)
    owner = pair_owner(data_dir)
    context = WebContext(
        store=store,
        keyring=Keyring.in_data_dir(data_dir),
        clock=Frozen(),
        wall_clock=Stepping(),
        press_bell=lambda: None,
        work_factor=10,
    )
    context.bus = EventBus(asyncio.get_running_loop())
    test_server = TestServer(make_app(context))
    await test_server.start_server(**server)  # the runner's options (TestServer drops them)
    client = await aiohttp_client(test_server)
    csrf = await sign_in(client, owner)
    clip = add_clip(store)
    tails = {"file": VIDEO, "index": INDEX, "thumbnail": THUMBNAIL}
    files = {tail: store.path(clip, suffix).read_bytes() for tail, suffix in tails.items()}
    return Device(client, owner, csrf, clip, files, store, data_dir)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def refused_by_aiohttp(record: logging.LogRecord) -> bool:
    """Whether ``record`` is aiohttp's own line for a request its HTTP parser refused with a
    400 (a duplicate Host, a byte that may not be in a URL...): one such line a bad request,
    measured and rate-limited apart (test_the_log_grows_far_slower_than_bad_requests_come).
    A handler's crash is logged by the same logger, with another exception: not this."""
    error = record.exc_info[1] if record.exc_info else None
    return (
        record.name == "aiohttp.server"
        and isinstance(error, HttpProcessingError)
        and 400 <= (error.code or 0) < 500
    )


def errors_logged(caplog) -> list[str]:
    """The ERROR (and worse) records of the test so far, as text; not aiohttp's lines for
    requests its parser refused (:func:`refused_by_aiohttp`)."""
    return [
        f"{r.name} {r.levelname}: {r.getMessage()} {r.exc_info[1] if r.exc_info else ''}"
        for r in caplog.get_records("call")
        if r.levelno >= logging.ERROR and not refused_by_aiohttp(r)
    ]


async def answered_cleanly(response, caplog, what: object = "") -> bytes:
    """Check an answer to bad input: not a 5xx, an error's text short and without a
    traceback, nothing logged at ERROR. Returns the body."""
    body = await response.read()
    assert response.status < 500, (what, response.status, body[:SHORT])
    if response.status >= 400:
        assert len(body) <= SHORT, (what, response.status, body[:SHORT])
        assert b"Traceback" not in body, (what, body)
    assert not errors_logged(caplog), (what, errors_logged(caplog))
    return body


# --- raw HTTP at the socket -------------------------------------------------------------------

ANSWER_SECONDS = 2.0  # a deadline for an answer that is due at once (not a sleep)


@dataclass
class Reply:
    status: int | None  # None: the server closed without an answer
    raw: bytes
    waited: bool  # the server was still waiting for more when the deadline passed


async def exchange(
    port: int, data: bytes, *, wait: float = ANSWER_SECONDS, then_close: bool = False
) -> Reply:
    """Send ``data`` on a new connection to 127.0.0.1:``port`` (``then_close``: and shut
    the sending side, as a client that gives up); the answer's status line and head, once
    the head is whole or the server closes. A server still waiting after ``wait`` seconds
    (the request is not over, as far as it can tell) is left."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    raw, waited = b"", False
    try:
        writer.write(data)
        if then_close:
            writer.write_eof()
        async with asyncio.timeout(wait):
            while b"\r\n\r\n" not in raw:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                raw += chunk
    except TimeoutError:
        waited = True
    except ConnectionError:
        pass  # reset: refused, which is an answer too
    finally:
        writer.close()
    status = None
    if raw.startswith(b"HTTP/1."):
        parts = raw.split(b" ", 2)
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
    return Reply(status, raw, waited)


class LogBytes(logging.Handler):
    """Counts what each record would add to the service's log (``doorbell: %(message)s``
    and the traceback, as cli/serve.py configures it), by logger, level and message."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("doorbell: %(message)s"))
        self.by_kind: dict[tuple[str, str, str], list[int]] = {}

    def emit(self, record: logging.LogRecord) -> None:
        size = len(self.format(record).encode("utf-8", "replace")) + 1
        kind = (record.name, record.levelname, str(record.msg))
        seen = self.by_kind.setdefault(kind, [0, 0])
        seen[0] += 1
        seen[1] += size

    def total(self, at_least: int = logging.DEBUG) -> int:
        return sum(
            b
            for (_, level, _), (_, b) in self.by_kind.items()
            if logging.getLevelName(level) >= at_least
        )
