"""The application factory and the guards every request passes.

    app = make_app(WebContext(store=..., keyring=..., bus=..., settings=...))

Idle sessions are locked by the app's own background task (``cleanup_ctx``).
Four middlewares, outermost first: security headers on every response
(errors too); the device's own name and origin only (421/403, against DNS
rebinding); errors as short plain messages, never a traceback; and access,
which looks the route up in :data:`routes.ROUTES` and lets a request through
only as its row says (anything not in the table needs the owner).
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from doorbell.errors import DoorbellError
from doorbell.web.context import ACCESS, CONTEXT, SESSION, SESSIONS, THROTTLE, WebContext
from doorbell.web.origin import host_allowed, origin_matches, own_names
from doorbell.web.routes import OWNER, PUBLIC, ROUTES, SETUP, STATIC_PREFIX
from doorbell.web.sessions import COOKIE, ClipCache, Sessions, Throttle

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
EXPIRE_SECONDS = 30.0  # how often idle sessions are looked for and locked
OWN_NAMES = web.AppKey("own_names", frozenset)  # the names the pages answer to

CSP = (
    "default-src 'self'; img-src 'self' blob:; media-src 'self' blob:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


@web.middleware
async def security_headers(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as err:
        err.headers.update(SECURITY_HEADERS)
        raise
    if not response.prepared:
        response.headers.update(SECURITY_HEADERS)
        response.headers.setdefault("Cache-Control", "no-store")
    return response


@web.middleware
async def own_origin(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every route answers only requests sent to this device by its own name or address,
    from its own pages (:mod:`doorbell.web.origin`: DNS rebinding)."""
    if not host_allowed(request.host, request.app[OWN_NAMES]):
        raise web.HTTPMisdirectedRequest(
            text="this doorbell answers to its own address or name only; add the name you "
            "use to [web] server_names\n"
        )
    if not origin_matches(request.headers.get("Origin"), request.host):
        raise web.HTTPForbidden(text="a request from another site's page is refused\n")
    return await handler(request)


@web.middleware
async def plain_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except DoorbellError as err:
        raise web.HTTPBadRequest(text=f"{err}\n") from None
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        raise web.HTTPInternalServerError(
            text="internal error; the log has the details\n"
        ) from None


def _route_key(request: web.Request) -> tuple[str, str] | None:
    route = request.match_info.route
    resource = getattr(route, "resource", None)
    if resource is None:
        return None
    method = "GET" if request.method == "HEAD" else request.method
    return method, resource.canonical


@web.middleware
async def access(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    app = request.app
    context = app[CONTEXT]
    key = _route_key(request)
    if key is None and isinstance(request.match_info.http_exception, web.HTTPException):
        raise request.match_info.http_exception  # 404 / 405: nothing to guard
    row = app[ACCESS].get(key)
    if row is None and request.path.startswith(STATIC_PREFIX) and request.method in ("GET", "HEAD"):
        return await handler(request)
    access_kind, page = row if row is not None else (OWNER, False)
    if access_kind == PUBLIC:
        return await handler(request)
    if access_kind == SETUP:
        if context.keyring.has_identity():
            if page:
                raise web.HTTPSeeOther("/unlock")
            raise web.HTTPConflict(text="the owner identity exists already\n")
        return await handler(request)
    session = app[SESSIONS].get(request.cookies.get(COOKIE), touch=request.path != "/api/events")
    if session is None:
        if page:
            raise web.HTTPSeeOther("/unlock" if context.keyring.has_identity() else "/setup")
        raise web.HTTPUnauthorized(text="locked: unlock first\n")
    if request.method not in ("GET", "HEAD") and not session.csrf_ok(
        request.headers.get("X-CSRF-Token")
    ):
        raise web.HTTPForbidden(text="missing or wrong X-CSRF-Token\n")
    request[SESSION] = session
    return await handler(request)


def make_app(
    context: WebContext, *, cache_factory: Callable[[], ClipCache] | None = None
) -> web.Application:
    """The aiohttp application for ``context``: routes, guards, templates, static files."""
    from doorbell.web.playback import PayloadCache

    app = web.Application(middlewares=[security_headers, own_origin, plain_errors, access])
    app[CONTEXT] = context
    app[OWN_NAMES] = own_names(context.settings.server_names)
    app[SESSIONS] = Sessions(
        context.settings.idle_lock_minutes * 60, context.clock, cache_factory or PayloadCache
    )
    app[THROTTLE] = Throttle(context.clock)
    app[ACCESS] = {}
    for route in ROUTES:
        if route.path == "/api/bell" and context.press_bell is None:
            continue  # only the demo has a bell to press from the browser
        app.router.add_route(route.method, route.path, route.handler)
        app[ACCESS][(route.method, route.path)] = (route.access, route.page)
    app.router.add_static(STATIC_PREFIX.rstrip("/"), HERE / "static", append_version=True)
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=jinja2.select_autoescape(default=True),
    )
    app.cleanup_ctx.append(_expire_idle_sessions)
    app.on_shutdown.append(_lock_everything)
    return app


async def _expire_idle_sessions(app: web.Application) -> AsyncIterator[None]:
    """Background task for the app's lifetime: lock sessions idle past ``idle_lock_minutes``
    (a session is also refused the moment it is used past its time; this drops the keys
    of one nobody uses any more)."""

    async def expire() -> None:
        while True:
            await app[CONTEXT].sleep(EXPIRE_SECONDS)
            app[SESSIONS].expire()

    task = asyncio.create_task(expire())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _lock_everything(app: web.Application) -> None:
    app[SESSIONS].lock_all()
