"""The handlers: pages (server-rendered) and the small JSON API they use.

The two long-lived responses, the live view and the event stream, are in
:mod:`doorbell.web.streams`; owners, pairing and login in :mod:`doorbell.web.auth`;
the clips' encrypted files in :mod:`doorbell.web.files`.

Every handler runs behind the guards in :mod:`doorbell.web.app`: by the time
an owner route runs, the request has a signed-in session and, if it changes
anything, a valid CSRF token. The pages carry metadata only (times, triggers,
sizes); every picture in them is decrypted by the owner's browser.
"""

import datetime
import logging
import shutil

import aiohttp_jinja2
from aiohttp import web

from doorbell.errors import DoorbellError
from doorbell.store import Clip, ClipNotFound, ClipStore
from doorbell.web.auth import page_values
from doorbell.web.body import read_json, run
from doorbell.web.context import CONTEXT, OWNERS, SESSIONS
from doorbell.web.guard import PENALTY_SECONDS

log = logging.getLogger(__name__)
PAGE_SIZE = 24
TRIGGERS = ("bell", "motion", "pir")


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


# --- public ---------------------------------------------------------------------------------


async def health(request: web.Request) -> web.Response:
    """Liveness for scripts and systemd: says nothing about clips, keys or sessions."""
    return web.json_response({"ok": True})


# --- the owner's pages ----------------------------------------------------------------------


def _day_bounds(day: str) -> tuple[float, float]:
    """The day's start and end in local time, epoch seconds: from its local midnight to
    the next day's, which on a daylight-saving day is 23 or 25 hours later, not 24 (a
    fixed offset plus one day put 23:30 on the night the clocks go back under no day,
    and 00:30 after they go forward under two). 400 for anything but a date (or one at
    the ends of the calendar: 0001-01-01 and 9999-12-31 have no next day or no local
    midnight)."""
    try:
        date = datetime.date.fromisoformat(day)
        start, end = (
            datetime.datetime.combine(d, datetime.time()).astimezone()
            for d in (date, date + datetime.timedelta(days=1))
        )
        return start.timestamp(), end.timestamp()
    except (ValueError, OverflowError, OSError):
        raise web.HTTPBadRequest(text=f"day: expected YYYY-MM-DD, not {day[:40]!r}\n") from None


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
        "seconds": f"{duration:.3f}" if duration is not None else "",
        "partial": clip.state == "partial",
    }


def clip_card(clip: Clip) -> dict:
    """A clip as its card in the list shows it: :func:`clip_json` and the card's words
    (``when``, ``day`` in the device's local time, ``duration``, ``seconds``,
    ``partial``). The event stream's ``clip`` message carries it, so a card the page adds
    without a reload reads as the ones the page came with."""
    return _view(clip)


def recording_card(at: float, trigger: str, clip_id: str | None) -> dict:
    """A clip being recorded, as its card shows it and the event stream's ``recording``
    message gives it: ``at`` (wall-clock seconds), ``trigger``, ``id`` (None when not
    known), and in the device's local time ``time`` ("14:02") and ``day`` ("2026-11-30")."""
    local = datetime.datetime.fromtimestamp(at).astimezone()
    return {
        "at": at,
        "trigger": trigger,
        "id": clip_id or None,
        "time": f"{local:%H:%M}",
        "day": local.date().isoformat(),
    }


def recording_now(
    store: ClipStore,
    *,
    trigger: str | None = None,
    since: float | None = None,
    before: float | None = None,
) -> list[Clip]:
    """The clips being recorded at this moment, newest first (filtered as
    :meth:`ClipStore.list`): a row a crash left "recording" is not one."""
    rows = store.list(states=("recording",), trigger=trigger, since=since, before=before)
    now = []
    for clip in rows:
        try:
            now.append(store.get(clip.id))
        except ClipNotFound:
            continue
    return now


async def clips_page(request: web.Request) -> web.StreamResponse:
    store = request.app[CONTEXT].store
    filters = _filters(request)
    clips = store.list(limit=PAGE_SIZE + 1, **filters)
    newest_page = not request.query.get("before")
    recording = recording_now(store, **filters) if newest_page else []
    more = clips[PAGE_SIZE].start if len(clips) > PAGE_SIZE else None
    values = page_values(
        request,
        clips=[_view(c) for c in clips[:PAGE_SIZE]],
        recording=[recording_card(c.start, c.trigger, c.id) for c in recording],
        trigger=request.query.get("trigger", ""),
        day=request.query.get("day", ""),
        next_before=clips[PAGE_SIZE - 1].start if more is not None else None,
        triggers=TRIGGERS,
    )
    return aiohttp_jinja2.render_template("clips.html", request, values)


async def player_page(request: web.Request) -> web.StreamResponse:
    clip = _clip(request)
    return aiohttp_jinja2.render_template(
        "player.html", request, page_values(request, clip=_view(clip))
    )


async def live_page(request: web.Request) -> web.StreamResponse:
    return aiohttp_jinja2.render_template("live.html", request, page_values(request))


def _status_view(status: dict) -> dict:
    """The status page's words for the clock, the frames and the connections (``clock``,
    ``frames`` and ``connections`` as the service's ``status()`` gives them; any may be
    missing)."""
    clock = status.get("clock") or {}
    frames = status.get("frames") or {}
    last_at = frames.get("last_at")
    last = "no frame yet"
    if last_at is not None:
        when = datetime.datetime.fromtimestamp(last_at).astimezone()
        last = f"last frame at {when:%Y-%m-%d %H:%M:%S}"
    counts = f"{frames.get('received', 0)} received, {frames.get('dropped', 0)} dropped"
    if frames.get("missed"):
        counts += f", {frames['missed']} missed (the device fell behind the camera)"
    net = status.get("connections") or {}
    total = sum(net.get(k, 0) for k in ("refused_per_client", "refused_full", "refused_penalty"))
    refused = f"{total} refused"
    if held_off := net.get("refused_penalty", 0):  # the README's troubleshooting names it
        refused += f" ({held_off} from clients held off for {PENALTY_SECONDS:g} s)"
    return {
        "clock_text": clock.get("text") or "unknown",
        "clock_synchronised": clock.get("synchronised"),
        "frames_text": f"{counts}; {last}" if frames else "unknown",
        "connections_text": (
            f"{net.get('open', 0)} open; since start {refused}, "
            f"{net.get('pushed_out', 0)} idle ones closed to make room"
            if net
            else "unknown"
        ),
    }


async def status_page(request: web.Request) -> web.StreamResponse:
    status = await run(_status, request.app)
    values = page_values(request, status=status, **_status_view(status))
    return aiohttp_jinja2.render_template("status.html", request, values)


# --- clips ----------------------------------------------------------------------------------


async def api_clips(request: web.Request) -> web.Response:
    clips = request.app[CONTEXT].store.list(**_filters(request))
    return web.json_response({"clips": [clip_json(c) for c in clips]})


async def api_keep(request: web.Request) -> web.Response:
    clip = _clip(request)
    keep = (await read_json(request)).get("keep")
    if not isinstance(keep, bool):
        raise web.HTTPBadRequest(text="keep: true or false\n")
    clip = request.app[CONTEXT].store.set_keep(clip.id, keep)
    return web.json_response(clip_json(clip))


async def api_delete(request: web.Request) -> web.Response:
    clip = _clip(request)
    await run(request.app[CONTEXT].store.delete, clip.id)
    log.info("clip %s deleted by the owner", clip.id)
    return web.json_response({"deleted": clip.id})


# --- the rest of the API --------------------------------------------------------------------


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
        "owners": [o.name for o in app[OWNERS].list()],
        **context.status(),
    }


async def api_status(request: web.Request) -> web.Response:
    return web.json_response(await run(_status, request.app))
