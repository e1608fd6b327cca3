"""Clips to the browser: HTTP Range over the decrypted MP4, without decrypting the rest.

    payload = cache.get(clip_id, lambda: OpenedPayload(path, identities))
    return await send_plaintext(request, payload, etag=etag_for(clip_id, payload))

A ``<video>`` element seeks by asking for byte ranges; Chromium walks a
fragmented MP4 with a hundred or more of them. Each range decrypts only the
64 KiB chunks it touches, in the executor, in pieces, so a long download
neither blocks the loop nor holds the whole clip in memory. The opened
payload (file key, layout, descriptor) is cached per unlocked session and
dropped when it locks. Decrypted video is never cached by the browser
(``Cache-Control: no-store``): law 1 holds on the owner's computer too.
"""

import asyncio
import collections
import logging
import threading
from collections.abc import Callable

from aiohttp import web

from doorbell import vault
from doorbell.vault.payload import OpenedPayload

log = logging.getLogger(__name__)
PIECE = 1 << 20  # bytes decrypted per executor hop while streaming
NO_STORE = "private, no-store"


class RangeNotSatisfiable(Exception):
    pass


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The one byte range ``header`` asks of ``size`` bytes, as (start, end exclusive).

    None: serve the whole body (no header, another unit, several ranges, or
    nonsense, which RFC 9110 says to ignore). Raises RangeNotSatisfiable when
    the range lies wholly past the end.
    """
    if not header:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash or not (first.isdigit() or last.isdigit()):
        return None
    if not first:  # bytes=-N: the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable
        return max(0, size - suffix), size
    start = int(first)
    if last and not last.isdigit():
        return None
    end = min(size, int(last) + 1) if last else size
    if last and int(last) < start:
        return None
    if start >= size:
        raise RangeNotSatisfiable
    return start, end


def damage_message(clip_id: str, err: vault.VaultError) -> str:
    """What the owner is told of a clip that cannot be played (to its end): the clip,
    where the damage is (chunk and byte of its file) and how to get the rest back."""
    if isinstance(err, vault.PayloadError) and err.chunk is not None:
        return f"clip {clip_id} is damaged at {err.where()}: {err.detail}; {err.remedy()}"
    if isinstance(err, vault.HeaderError | vault.HeaderMacError):
        return (
            f"clip {clip_id} is damaged in its age header ({err.detail}): the header holds "
            "the file's key, so nothing in it can be decrypted; restore the clip file from "
            f"a backup copy ({err.source or 'its file'})"
        )
    return f"clip {clip_id} cannot be opened: {err.kind}: {err.detail}"


def etag_for(clip_id: str, payload: OpenedPayload) -> str:
    return f'"{clip_id}-{payload.ciphertext_size:x}-{payload.mtime_ns:x}"'


class PayloadCache:
    """The opened clips of one session, the last ``size`` used. Thread-safe."""

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self._items: collections.OrderedDict[str, OpenedPayload] = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, clip_id: str, opener: Callable[[], OpenedPayload]) -> OpenedPayload:
        with self._lock:
            payload = self._items.get(clip_id)
            if payload is not None:
                self._items.move_to_end(clip_id)
                return payload
        payload = opener()  # outside the lock: opening reads the file
        with self._lock:
            if clip_id in self._items:  # another thread opened it meanwhile
                payload.close()
                return self._items[clip_id]
            self._items[clip_id] = payload
            while len(self._items) > self.size:
                self._items.popitem(last=False)[1].close()
        return payload

    def evict(self, clip_id: str) -> None:
        with self._lock:
            payload = self._items.pop(clip_id, None)
        if payload is not None:
            payload.close()

    def close(self) -> None:
        with self._lock:
            items, self._items = list(self._items.values()), collections.OrderedDict()
        for payload in items:
            payload.close()


async def send_plaintext(
    request: web.Request,
    payload: OpenedPayload,
    *,
    etag: str,
    content_type: str = "video/mp4",
    filename: str | None = None,
) -> web.StreamResponse:
    """200, 206, 304 or 416 for ``request`` over the plaintext of ``payload``."""
    size = payload.size
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": etag,
        "Cache-Control": NO_STORE,
        "Content-Type": content_type,
    }
    if filename:
        headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    if etag in {tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")}:
        return web.Response(status=304, headers={k: headers[k] for k in ("ETag", "Cache-Control")})
    wanted = request.headers.get("Range")
    if_range = request.headers.get("If-Range")
    if if_range is not None and if_range.strip() != etag:
        wanted = None  # the client's copy is stale: send it all
    try:
        span = parse_range(wanted, size)
    except RangeNotSatisfiable:
        return web.Response(
            status=416, headers={"Content-Range": f"bytes */{size}", "Cache-Control": NO_STORE}
        )
    start, end = span if span is not None else (0, size)
    loop = asyncio.get_running_loop()
    # Decrypt the first piece before any header goes out, so a damaged chunk is a clean error.
    try:
        first = await loop.run_in_executor(None, payload.read_at, start, min(PIECE, end - start))
    except vault.PayloadError as err:
        message = damage_message(request.match_info.get("id", "?"), err)
        log.warning("clip playback stopped: %s", message)
        raise web.HTTPUnprocessableEntity(text=message + "\n") from None
    response = web.StreamResponse(status=206 if span is not None else 200, headers=headers)
    if span is not None:
        response.headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    response.content_length = end - start
    position = start + len(first)
    ahead = None
    try:
        await response.prepare(request)
        if request.method == "HEAD":
            return response
        piece = first
        while True:
            # decrypt the next piece while this one goes out: cipher and socket overlap
            ahead = (
                loop.run_in_executor(None, payload.read_at, position, min(PIECE, end - position))
                if position < end
                else None
            )
            await response.write(piece)
            if ahead is None:
                break
            piece = await ahead
            position += len(piece)
        await response.write_eof()
    except ConnectionError:
        pass  # the browser moved on (a seek aborts the request): nothing to report
    except vault.PayloadError as err:
        log.warning(
            "clip playback stopped mid-way: %s",
            damage_message(request.match_info.get("id", "?"), err),
        )
        if request.transport is not None:
            request.transport.close()
    return response
