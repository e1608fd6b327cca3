"""Reading a request's JSON body, small and only once the caller may send it.

body = await read_json(request)          # a dict; 413 past the route's size, 400 if not JSON
text = field(body, "name", str)          # 400 naming the field if it is missing or wrong
raw = b64_field(body, "wrapped", max_bytes=2048)
"""

import asyncio
import base64
import binascii
import json
from typing import Any, TypeVar

from aiohttp import web

from doorbell.web.context import BODY_LIMIT as BODY_LIMIT_KEY

BODY_LIMIT = 4096  # bytes, when a route gives none: the pages' biggest body (routes.PAIR_BODY)
BODY_SECONDS = 10.0  # a body must arrive whole in this time (408 after: a slow sender)
T = TypeVar("T")


async def run(func, *args):  # noqa: ANN001, ANN201 - a thin executor hop
    return await asyncio.get_running_loop().run_in_executor(None, func, *args)


async def read_json(request: web.Request) -> dict:
    """The request's JSON object, read only up to the route's size (``BODY_LIMIT`` on
    the request, from the route table; 413 beyond: a request costs no more memory than
    that, signed in or not) and within :data:`BODY_SECONDS` (408 after)."""
    if request.content_type != "application/json":
        raise web.HTTPUnsupportedMediaType(text="send JSON (Content-Type: application/json)\n")
    limit = request.get(BODY_LIMIT_KEY, BODY_LIMIT)
    too_big = web.HTTPRequestEntityTooLarge(limit, request.content_length or limit + 1)
    if request.content_length is not None and request.content_length > limit:
        raise too_big
    data = bytearray()
    try:
        async with asyncio.timeout(BODY_SECONDS):
            while chunk := await request.content.read(limit + 1 - len(data)):
                data += chunk
                if len(data) > limit:
                    raise too_big
    except TimeoutError:
        raise web.HTTPRequestTimeout(text="the body came too slowly\n") from None
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
    if isinstance(value, str) and not _encodable(value):  # "\ud800" is valid JSON
        raise web.HTTPBadRequest(text=f"{name}: {what or 'text'} is needed (not UTF-16 halves)\n")
    return value


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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
