"""A clip's files to the owner's browser, as they are on the card: ciphertext.

    GET /clips/{id}/file        the clip's age file (fragmented MP4 inside)
    GET /clips/{id}/index       its fragment index, an age file (404: none, e.g. cut short)
    GET /clips/{id}/thumbnail   its thumbnail, an age file

Plain file responses (sendfile, HTTP Range, ETag), so the device does nothing but serve
bytes: the browser decrypts each 64 KiB chunk it fetches (static/player.js) and seeks by
asking for the chunks it needs. The device never opens them: it holds no key.
"""

from pathlib import Path

from aiohttp import web

from doorbell.store import INDEX, THUMBNAIL, VIDEO, Clip, ClipNotFound
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
