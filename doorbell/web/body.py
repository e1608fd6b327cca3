"""Reading a request's JSON body, small and only once the caller may send it.

body = await read_json(request)          # a dict; 413 past BODY_LIMIT, 400 if not JSON
text = field(body, "name", str)          # 400 naming the field if it is missing or wrong
raw = b64_field(body, "wrapped", max_bytes=2048)
"""

import asyncio
import base64
import binascii
import json
from typing import Any, TypeVar

from aiohttp import web

BODY_LIMIT = 4096  # bytes: every JSON body the pages send is under 3 KiB (a wrapped identity)
T = TypeVar("T")


async def run(func, *args):  # noqa: ANN001, ANN201 - a thin executor hop
    return await asyncio.get_running_loop().run_in_executor(None, func, *args)


async def read_json(request: web.Request) -> dict:
    """The request's JSON object, read only up to :data:`BODY_LIMIT` bytes (413 beyond:
    a request costs no more memory than that, signed in or not)."""
    if request.content_type != "application/json":
        raise web.HTTPUnsupportedMediaType(text="send JSON (Content-Type: application/json)\n")
    too_big = web.HTTPRequestEntityTooLarge(BODY_LIMIT, request.content_length or BODY_LIMIT + 1)
    if request.content_length is not None and request.content_length > BODY_LIMIT:
        raise too_big
    data = await request.content.read(BODY_LIMIT + 1)
    if len(data) > BODY_LIMIT:
        raise too_big
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise web.HTTPBadRequest(text="the body is not valid JSON\n") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="the body must be a JSON object\n")
    return body


def field(body: dict, name: str, kind: type[T], what: str = "") -> T:
    """``body[name]`` if it is a ``kind`` (a bool is not an int); 400 naming it otherwise."""
    value: Any = body.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise web.HTTPBadRequest(text=f"{name}: {what or kind.__name__} is needed\n")
    return value


def b64_field(body: dict, name: str, *, exact: int | None = None, max_bytes: int = 64) -> bytes:
    """``body[name]`` decoded from base64; 400 naming it if it is not, or its length is off."""
    text = field(body, name, str, "base64 text")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise web.HTTPBadRequest(text=f"{name}: base64 text is needed\n") from None
    if (exact is not None and len(raw) != exact) or len(raw) > max_bytes or not raw:
        size = f"{exact} bytes" if exact is not None else f"1-{max_bytes} bytes"
        raise web.HTTPBadRequest(text=f"{name}: {size} are needed\n")
    return raw
