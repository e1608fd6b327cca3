"""The handlers: pages (server-rendered) and the small JSON API they use.

The two long-lived responses, the live view and the event stream, are in
:mod:`doorbell.web.streams`.

Every handler runs behind the guards in :mod:`doorbell.web.app`: by the time
an owner route runs, the request has an unlocked session (``session_of``)
and, if it changes anything, a valid CSRF token. Slow work (scrypt, file
decryption, JPEG encoding) goes to the default executor so the loop keeps
serving.
"""

import asyncio
import datetime
import json
import logging
import shutil

import aiohttp_jinja2
from aiohttp import web

from doorbell import vault
from doorbell.errors import DoorbellError
from doorbell.store import Clip, ClipNotFound
from doorbell.store.keyring import check_passphrase
from doorbell.vault.payload import OpenedPayload
from doorbell.web.context import CONTEXT, SESSION, SESSIONS, THROTTLE, session_of
from doorbell.web.sessions import COOKIE, Throttle

log = logging.getLogger(__name__)
PAGE_SIZE = 24
TRIGGERS = ("bell", "motion", "pir")
_unlocking = asyncio.Lock()  # one passphrase check at a time: throttling cannot be raced


async def _run(func, *args):  # noqa: ANN001 - a thin executor hop
    return await asyncio.get_running_loop().run_in_executor(None, func, *args)


BODY_LIMIT = 4096  # bytes: every JSON body the pages send is under 1 KiB (a passphrase, a flag)


async def _json(request: web.Request) -> dict:
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


def _clip(request: web.Request) -> Clip:
    clip_id = request.match_info["id"]
    try:
        return request.app[CONTEXT].store.get(clip_id)
    except ClipNotFound:
        raise web.HTTPNotFound(text="no such clip\n") from None


def clip_json(clip: Clip) -> dict:
    """A clip as the API and the event stream give it. ``time_uncertain``: it was recorded
    before the clock was known to be set, so ``start`` and ``end`` may be off (corrected
    once the clock is synchronised, if that happens in the same boot)."""
    return {
        "id": clip.id,
        "start": clip.start,
        "end": clip.end,
        "trigger": clip.trigger,
        "bytes": clip.bytes,
        "keep": clip.keep,
        "time_uncertain": clip.time_uncertain,
    }


def _set_session_cookie(request: web.Request, response: web.Response, token: str) -> None:
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="Strict",
        secure=request.app[CONTEXT].secure_cookies,
        path="/",
    )


# --- public ---------------------------------------------------------------------------------


async def health(request: web.Request) -> web.Response:
    """Liveness for scripts and systemd: says nothing about clips, keys or sessions."""
    return web.json_response({"ok": True})


async def unlock_page(request: web.Request) -> web.StreamResponse:
    context = request.app[CONTEXT]
    if not context.keyring.has_identity():
        raise web.HTTPSeeOther("/setup")
    if request.app[SESSIONS].get(request.cookies.get(COOKIE), touch=False):
        raise web.HTTPSeeOther("/")
    return aiohttp_jinja2.render_template("unlock.html", request, _page(request))


def _throttled(throttle: Throttle) -> None:
    """429 while the unlock throttle says wait."""
    wait = throttle.wait()
    if wait > 0:
        raise web.HTTPTooManyRequests(
            text=f"too many wrong passphrases; try again in {wait:.0f} s\n",
            headers={"Retry-After": str(max(1, round(wait)))},
        )


async def unlock(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    throttle = request.app[THROTTLE]
    _throttled(throttle)  # before the body is read: a throttled guess costs nothing
    body = await _json(request)
    passphrase = body.get("passphrase")
    if not isinstance(passphrase, str) or not passphrase:
        raise web.HTTPBadRequest(text="passphrase: a non-empty string is needed\n")
    async with _unlocking:
        _throttled(throttle)
        try:
            identities = await _run(context.keyring.unlock, passphrase)
        except vault.NoIdentityMatchError:
            throttle.failed()
            log.warning("a wrong passphrase was given (%d in a row)", throttle.failures)
            raise web.HTTPUnauthorized(text="wrong passphrase\n") from None
        throttle.succeeded()
    return _opened(request, identities, {})


def _opened(request: web.Request, identities: list, extra: dict) -> web.Response:
    context = request.app[CONTEXT]
    session = request.app[SESSIONS].open(identities)
    asyncio.get_running_loop().run_in_executor(None, context.on_unlock, identities)
    response = web.json_response({**extra, "csrf_token": session.csrf})
    _set_session_cookie(request, response, session.token)
    return response


# --- first run ------------------------------------------------------------------------------


async def setup_page(request: web.Request) -> web.StreamResponse:
    return aiohttp_jinja2.render_template("setup.html", request, _page(request))


async def setup(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    body = await _json(request)
    passphrase, confirm = body.get("passphrase"), body.get("confirm")
    if not isinstance(passphrase, str) or passphrase != confirm:
        raise web.HTTPBadRequest(text="the two passphrases differ\n")
    try:
        check_passphrase(passphrase)
    except DoorbellError as err:
        raise web.HTTPBadRequest(text=f"{err}\n") from None
    async with _unlocking:
        if context.keyring.has_identity():
            raise web.HTTPConflict(text="the owner identity exists already\n")
        identity = await _run(context.keyring.init, passphrase, context.work_factor)
    log.info("first-run setup made the owner identity %s", identity.recipient)
    return _opened(
        request,
        [identity],
        {"recipient": str(identity.recipient), "identity_file": str(context.keyring.identity_file)},
    )


# --- the owner's pages ----------------------------------------------------------------------


def _page(request: web.Request, **values: object) -> dict:
    context = request.app[CONTEXT]
    session = request.get(SESSION)
    return {
        "csrf": session.csrf if session else "",
        "demo": context.press_bell is not None,
        "unlocked": session is not None,
        **values,
    }


def _day_bounds(day: str) -> tuple[float, float]:
    try:
        date = datetime.date.fromisoformat(day)
    except ValueError:
        raise web.HTTPBadRequest(text=f"day: expected YYYY-MM-DD, not {day!r}\n") from None
    start = datetime.datetime.combine(date, datetime.time()).astimezone()
    return start.timestamp(), (start + datetime.timedelta(days=1)).timestamp()


def _filters(request: web.Request) -> dict:
    query = request.query
    filters: dict = {}
    trigger = query.get("trigger") or None
    if trigger is not None and trigger not in TRIGGERS:
        raise web.HTTPBadRequest(text=f"trigger: one of {', '.join(TRIGGERS)}\n")
    filters["trigger"] = trigger
    if query.get("day"):
        filters["since"], filters["before"] = _day_bounds(query["day"])
    if query.get("before"):
        try:
            before = float(query["before"])
        except ValueError:
            raise web.HTTPBadRequest(text="before: a time in seconds\n") from None
        filters["before"] = min(before, filters.get("before", before))
    return filters


def _view(clip: Clip) -> dict:
    start = datetime.datetime.fromtimestamp(clip.start).astimezone()
    duration = clip.duration
    return {
        **clip_json(clip),
        "when": start.strftime("%a %d %b %H:%M:%S"),
        "day": start.date().isoformat(),
        "duration": f"{duration:.0f} s" if duration is not None else "",
        "partial": clip.state == "partial",
    }


async def clips_page(request: web.Request) -> web.StreamResponse:
    store = request.app[CONTEXT].store
    filters = _filters(request)
    clips = store.list(limit=PAGE_SIZE + 1, **filters)
    more = clips[PAGE_SIZE].start if len(clips) > PAGE_SIZE else None
    values = _page(
        request,
        clips=[_view(c) for c in clips[:PAGE_SIZE]],
        trigger=request.query.get("trigger", ""),
        day=request.query.get("day", ""),
        next_before=clips[PAGE_SIZE - 1].start if more is not None else None,
        triggers=TRIGGERS,
    )
    return aiohttp_jinja2.render_template("clips.html", request, values)


async def player_page(request: web.Request) -> web.StreamResponse:
    clip = _clip(request)
    return aiohttp_jinja2.render_template("player.html", request, _page(request, clip=_view(clip)))


async def live_page(request: web.Request) -> web.StreamResponse:
    return aiohttp_jinja2.render_template("live.html", request, _page(request))


def _status_view(status: dict) -> dict:
    """The status page's words for the clock and the frames (``clock`` and ``frames`` as
    the service's ``status()`` gives them; either may be missing)."""
    clock = status.get("clock") or {}
    frames = status.get("frames") or {}
    last_at = frames.get("last_at")
    last = "no frame yet"
    if last_at is not None:
        when = datetime.datetime.fromtimestamp(last_at).astimezone()
        last = f"last frame at {when:%Y-%m-%d %H:%M:%S}"
    counts = f"{frames.get('received', 0)} received, {frames.get('dropped', 0)} dropped"
    return {
        "clock_text": clock.get("text") or "unknown",
        "clock_synchronised": clock.get("synchronised"),
        "frames_text": f"{counts}; {last}" if frames else "unknown",
    }


async def status_page(request: web.Request) -> web.StreamResponse:
    status = await _run(_status, request.app)
    values = _page(request, status=status, **_status_view(status))
    return aiohttp_jinja2.render_template("status.html", request, values)


# --- clips ----------------------------------------------------------------------------------


async def video(request: web.Request) -> web.StreamResponse:
    from doorbell.web.playback import damage_message, etag_for, send_plaintext

    clip = _clip(request)
    if clip.state != "complete":
        raise web.HTTPConflict(text="this clip is not finished yet\n")
    store = request.app[CONTEXT].store
    session = session_of(request)
    cache = session.cache
    assert cache is not None  # make_app gives every session a PayloadCache

    def opened() -> OpenedPayload:
        return cache.get(clip.id, lambda: store.open_payload(clip.id, session.identities))

    try:
        payload = await _run(opened)
    except ClipNotFound:
        raise web.HTTPNotFound(text="no such clip\n") from None
    except vault.VaultError as err:
        message = damage_message(clip.id, err)
        log.warning("%s", message)
        raise web.HTTPUnprocessableEntity(text=message + "\n") from None
    download = f"doorbell-{clip.id}.mp4" if "download" in request.query else None
    return await send_plaintext(
        request, payload, etag=etag_for(clip.id, payload), filename=download
    )


async def thumbnail(request: web.Request) -> web.Response:
    clip = _clip(request)
    store = request.app[CONTEXT].store
    try:
        jpeg = await _run(store.read_thumbnail, clip.id, session_of(request).identities)
    except vault.VaultError as err:
        log.warning("thumbnail of clip %s cannot be read: %s", clip.id, err.detail)
        jpeg = None
    if jpeg is None:
        raise web.HTTPNotFound(text="no thumbnail\n")
    return web.Response(
        body=jpeg, content_type="image/jpeg", headers={"Cache-Control": "private, no-store"}
    )


async def api_clips(request: web.Request) -> web.Response:
    clips = request.app[CONTEXT].store.list(**_filters(request))
    return web.json_response({"clips": [clip_json(c) for c in clips]})


async def api_keep(request: web.Request) -> web.Response:
    clip = _clip(request)
    keep = (await _json(request)).get("keep")
    if not isinstance(keep, bool):
        raise web.HTTPBadRequest(text="keep: true or false\n")
    clip = request.app[CONTEXT].store.set_keep(clip.id, keep)
    return web.json_response(clip_json(clip))


async def api_delete(request: web.Request) -> web.Response:
    clip = _clip(request)
    session = session_of(request)
    if session.cache is not None:
        session.cache.evict(clip.id)
    await _run(request.app[CONTEXT].store.delete, clip.id)
    log.info("clip %s deleted by the owner", clip.id)
    return web.json_response({"deleted": clip.id})


# --- the rest of the API --------------------------------------------------------------------


async def lock(request: web.Request) -> web.Response:
    request.app[SESSIONS].lock(request.cookies.get(COOKIE))
    response = web.json_response({"locked": True})
    response.del_cookie(COOKIE, path="/")
    return response


async def api_bell(request: web.Request) -> web.Response:
    press = request.app[CONTEXT].press_bell
    if press is None:
        raise web.HTTPNotFound(text="no mock bell: this is not the demo\n")
    press()
    return web.json_response({"pressed": True}, status=202)


def _status(app: web.Application) -> dict:
    context = app[CONTEXT]
    store = context.store
    clips = store.list()
    disk = shutil.disk_usage(store.folder)
    try:
        recipients = [str(r) for r in context.keyring.recipients()]
    except (DoorbellError, OSError, UnicodeDecodeError):  # missing, a folder, not text
        recipients = []
    return {
        "clips": len(clips),
        "clip_bytes": sum(c.bytes for c in clips),
        "kept": sum(1 for c in clips if c.keep),
        "disk_free": disk.free,
        "disk_total": disk.total,
        "recipients": recipients,
        "tls_fingerprint": context.tls_fingerprint,
        "unlocked_sessions": len(app[SESSIONS]),
        **context.status(),
    }


async def api_status(request: web.Request) -> web.Response:
    return web.json_response(await _run(_status, request.app))
