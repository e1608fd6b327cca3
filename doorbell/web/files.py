"""A clip's files to the owner's browser, as they are on the card: ciphertext.

    GET /clips/{id}/file        the clip's age file (fragmented MP4 inside)
    GET /clips/{id}/index       its fragment index, an age file (404: none, e.g. cut short)
    GET /clips/{id}/thumbnail   its thumbnail, an age file
    GET /clips/{id}/recording   the clip's age file as far as it is written (being recorded)

Plain file responses (sendfile, HTTP Range, ETag), so the device does nothing but serve
bytes: the browser decrypts each 64 KiB chunk it fetches (static/player.js) and seeks by
asking for the chunks it needs. The device never opens them: it holds no key.
"""

from pathlib import Path

from aiohttp import web

from doorbell.store import INDEX, THUMBNAIL, VIDEO, Clip, ClipNotFound
from doorbell.store.layout import PART
from doorbell.web.context import CONTEXT

HEADERS = {"Cache-Control": "private, no-cache", "Content-Type": "application/octet-stream"}


def _clip(request: web.Request) -> Clip:
    try:
        return request.app[CONTEXT].store.get(request.match_info["id"])
    except ClipNotFound:
        raise web.HTTPNotFound(text="no such clip\n") from None


def _send(path: Path, what: str) -> web.FileResponse:
    if not path.is_file():
        raise web.HTTPNotFound(text=f"this clip has no {what}\n")
    return web.FileResponse(path, headers=HEADERS)


async def clip_file(request: web.Request) -> web.StreamResponse:
    clip = _clip(request)
    if clip.state == "recording":
        raise web.HTTPConflict(text="this clip is still being recorded\n")
    return _send(request.app[CONTEXT].store.path(clip.id, VIDEO), "video file")


async def clip_index(request: web.Request) -> web.StreamResponse:
    clip = _clip(request)
    return _send(request.app[CONTEXT].store.path(clip.id, INDEX), "fragment index")


async def thumbnail(request: web.Request) -> web.StreamResponse:
    clip = _clip(request)
    return _send(request.app[CONTEXT].store.path(clip.id, THUMBNAIL), "thumbnail")


async def growing_file(request: web.Request) -> web.StreamResponse:
    """A clip's age file as far as it is written: its ``.part`` while it is being recorded,
    its finished file once it is (the same bytes, then the final chunk: the page reads on
    into it). The page reads only whole sealed 64 KiB chunks, so the one being written is
    never opened. 404 when there is no file now (between the ``.part`` and its rename: the
    page asks again)."""
    clip = _clip(request)
    store = request.app[CONTEXT].store
    part = store.path(clip.id, VIDEO + PART)
    if clip.state == "recording" and part.is_file():
        return web.FileResponse(part, headers={**HEADERS, "Cache-Control": "no-store"})
    return _send(store.path(clip.id, VIDEO), "video file now")
