"""The application factory and the guards every request passes.

    app = make_app(WebContext(store=..., keyring=..., bus=..., settings=...))

Sessions past their idle time or lifetime are ended by the app's own background task
(``cleanup_ctx``), which tells their open tabs at once (the event stream).
Five middlewares, outermost first: in-request marking for the connection
guard (:mod:`doorbell.web.guard`: a connection inside a request is never pushed
out); security headers on every response (errors too); the device's own name
and origin only (421/403, against DNS rebinding); errors as short plain
messages, never a traceback; and access, which looks the route up in
:data:`routes.ROUTES` and lets a request through only as its row says (anything
not in the table needs the owner; a body over the row's size is refused before
a byte of it is read). A ring pass (:mod:`doorbell.web.ring_passes`) opens the ring
routes only, and no session opens them: each kind of access is its own cookie.
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
from doorbell.owners import Challenges, Owners, SetupCode, Throttle
from doorbell.web import ring_passes, streams, vendor
from doorbell.web.context import (
    ACCESS,
    BODY_LIMIT,
    CHALLENGES,
    CONTEXT,
    OWNERS,
    RING_PASS,
    RING_PASSES,
    SESSION,
    SESSIONS,
    SETUP_CODE,
    THROTTLE,
    WebContext,
)
from doorbell.web.guard import PENALTY_STATUSES, REFUSED_STATUSES
from doorbell.web.origin import host_allowed, origin_matches, own_names
from doorbell.web.routes import (
    OWNER,
    PAIR_BODY,
    PUBLIC,
    RINGS,
    ROUTES,
    STATIC_PREFIX,
    VENDOR_PREFIX,
)
from doorbell.web.sessions import COOKIE, REMOVED, Sessions

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
EXPIRE_SECONDS = 5.0  # how often sessions past their time are looked for and ended
OWN_NAMES = web.AppKey("own_names", frozenset)  # the names the pages answer to
IMPORT_MAP = web.AppKey("import_map", str)  # the pages' import map (web.vendor), verbatim
SECURITY_HEADERS_KEY = web.AppKey("security_headers", dict)


def csp(import_map_hash: str) -> str:
    """The pages' Content-Security-Policy: this device's own files only, the one inline
    script being the import map (allowed by its hash), pictures and video from blob: URLs
    (what the page decrypted), no frames, no other site, no plug-ins."""
    return (
        f"default-src 'self'; script-src 'self' {import_map_hash}; img-src 'self' blob:; "
        "media-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; "
        "form-action 'self'; object-src 'none'"
    )


SECURITY_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


@web.middleware
async def in_request(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Tell the connection guard this request's connection is busy until its response,
    and whether an owner signed in made it, or it sent a body no page sends."""
    guard = request.app[CONTEXT].guard
    sock = request.transport.get_extra_info("socket") if request.transport else None
    if guard is None or sock is None:
        return await handler(request)
    fd = sock.fileno()
    guard.started(fd)
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as err:
        status = err.status
        raise
    finally:
        an_owner = SESSION in request or RING_PASS in request
        if an_owner and status not in REFUSED_STATUSES:
            guard.trust(fd)  # an owner's: their connection stays, their client is known
        elif status in PENALTY_STATUSES:  # a body too big or too slow: no page sends one
            guard.penalize(fd)
        if status in REFUSED_STATUSES:  # refused again and again: refused at accept
            guard.refused(fd)
        guard.finished(fd)


@web.middleware
async def security_headers(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as err:
        err.headers.update(request.app[SECURITY_HEADERS_KEY])
        raise
    if not response.prepared:
        response.headers.update(request.app[SECURITY_HEADERS_KEY])
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
    except OSError:  # a file name the file system cannot even look up (too long, say)
        if not request.path.startswith((STATIC_PREFIX, VENDOR_PREFIX)):
            raise
        raise web.HTTPNotFound(text="no such file\n") from None
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
    key = _route_key(request)
    if key is None and isinstance(request.match_info.http_exception, web.HTTPException):
        raise request.match_info.http_exception  # 404 / 405: nothing to guard
    row = app[ACCESS].get(key)
    public_file = request.path.startswith((STATIC_PREFIX, VENDOR_PREFIX))
    if row is None and public_file and request.method in ("GET", "HEAD"):
        return await handler(request)
    access_kind, page, body = row if row is not None else (OWNER, False, 0)
    request[BODY_LIMIT] = body
    if request.content_length is not None and request.content_length > body:
        raise web.HTTPRequestEntityTooLarge(body, request.content_length)
    if access_kind == PUBLIC:
        return await handler(request)
    if access_kind == RINGS:
        request[RING_PASS] = _ring_pass(request)
        return await handler(request)
    session = app[SESSIONS].get(request.cookies.get(COOKIE), touch=request.path != "/api/events")
    if session is not None and _owner_gone(app, session.owner_id):
        session = None
    if session is None:
        if page:
            raise web.HTTPSeeOther("/unlock" if app[OWNERS].has_owner() else "/setup")
        raise web.HTTPUnauthorized(text="locked: unlock first\n")
    if request.method not in ("GET", "HEAD") and not session.csrf_ok(
        request.headers.get("X-CSRF-Token")
    ):
        raise web.HTTPForbidden(text="missing or wrong X-CSRF-Token\n")
    request[SESSION] = session
    return await handler(request)


def _ring_pass(request: web.Request) -> ring_passes.RingPass:
    """The live ring pass the request's cookie names (no CSRF token: the cookie is
    SameSite=Strict, and own_origin refused any other site's page); 401 without one."""
    app = request.app
    ring_pass = app[RING_PASSES].get(request.cookies.get(ring_passes.COOKIE))
    if ring_pass is not None and _owner_gone(app, ring_pass.owner_id):
        ring_pass = None
    if ring_pass is None:
        raise web.HTTPUnauthorized(
            text="no ring pass: allow rings on this browser while unlocked\n"
        )
    return ring_pass


def _owner_gone(app: web.Application, owner_id: str) -> bool:
    """Whether ``owner_id`` is no longer an owner (keys/ lost or edited by hand): then
    their sessions and ring passes end (``removed``)."""
    if app[OWNERS].get(owner_id) is not None:
        return False
    app[SESSIONS].end_owner(owner_id, REMOVED)
    app[RING_PASSES].end_owner(owner_id, ring_passes.REMOVED)
    return True


def make_app(context: WebContext) -> web.Application:
    """The aiohttp application for ``context``: routes, guards, templates, static files
    and the browser's age library."""
    app = web.Application(
        middlewares=[in_request, security_headers, own_origin, plain_errors, access],
        client_max_size=PAIR_BODY,
    )
    app[CONTEXT] = context
    app[OWN_NAMES] = own_names(context.settings.server_names)
    settings = context.settings
    app[SESSIONS] = Sessions(
        settings.idle_lock_minutes * 60, settings.session_hours * 3600, context.clock
    )
    app[RING_PASSES] = ring_passes.RingPasses(ring_passes.LIFETIME_SECONDS, context.clock)
    app[OWNERS] = Owners(context.keyring, context.wall_clock)
    app[SETUP_CODE] = SetupCode(context.data_dir)
    app[CHALLENGES] = Challenges(context.clock)
    app[streams.STREAM_SLOTS] = streams.Slots()
    app[THROTTLE] = Throttle(context.data_dir / "throttle.json", context.wall_clock)
    library = _library(context)
    app[IMPORT_MAP] = library.import_map if library else vendor.EMPTY_MAP
    app[SECURITY_HEADERS_KEY] = {
        **SECURITY_HEADERS,
        "Content-Security-Policy": csp(vendor.csp_hash(app[IMPORT_MAP])),
    }
    vendor.add_vendor_routes(app, library)
    app[ACCESS] = {}
    for route in ROUTES:
        if route.path == "/api/bell" and context.press_bell is None:
            continue  # only the demo has a bell to press from the browser
        if route.method == "GET":  # and HEAD, as HTTP wants
            app.router.add_get(route.path, route.handler)
        else:
            app.router.add_route(route.method, route.path, route.handler)
        app[ACCESS][(route.method, route.path)] = (route.access, route.page, route.body)
    app.router.add_static(STATIC_PREFIX.rstrip("/"), HERE / "static", append_version=True)
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=jinja2.select_autoescape(default=True),
    )
    app.cleanup_ctx.append(_expire_idle_sessions)
    app.on_shutdown.append(_lock_everything)
    return app


def _library(context: WebContext) -> vendor.Vendor | None:
    """The browser's age library to serve: the context's node_modules, else the one
    found (web.vendor); None when it is not installed (the pages say so)."""
    if context.node_modules is None:
        return vendor.installed()
    try:
        return vendor.Vendor.load(context.node_modules)
    except vendor.VendorError as err:
        log.error("%s", err)
        return None


async def _expire_idle_sessions(app: web.Application) -> AsyncIterator[None]:
    """Background task for the app's lifetime: end sessions past their idle time or
    lifetime (a session is also refused the moment it is used past its time; this tells
    the open tabs of one nobody uses any more, through their event streams)."""

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
    app[SESSIONS].end_all()
    app[RING_PASSES].end_all(ring_passes.SHUTDOWN)
