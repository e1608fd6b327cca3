"""Owners and their sessions: pairing, login by challenge, invites, removal, sign-out.

Nothing here ever receives a passphrase, an identity or a file key (docs/ARCHITECTURE.md,
"Owners"). The owner's browser makes their identity and wraps it under their passphrase;
the device keeps the recipient, the wrapped identity (which it cannot open) and a
verifier of a second derivation of the passphrase (``auth``), which releases the
wrapped identity to a new browser of that owner. Login is a challenge only the identity
opens.

    POST /api/pair           {code, name, recipient, wrapped, salt, work_factor, auth}
    POST /api/owners/find    {name}             -> {owner, salt, work_factor}
    POST /api/owners/release {owner, auth}      -> {wrapped, name}   (throttled)
    POST /api/login/challenge {owner}           -> {challenge, file}
    POST /api/login          {challenge, answer} -> {csrf_token, owner, name} + cookie
    POST /api/rings/pass     (signed in)         -> {on, lifetime} + ring cookie
    GET / DELETE /api/rings/pass (ring pass)     -> {on} / {on: false}, cookie deleted

Every guessable secret (the setup code, an invite, ``auth``) is checked only after the
throttle allows the client (and the owner) another guess, before the body is read.
"""

import base64
import datetime
import logging
import math

import aiohttp_jinja2
from aiohttp import web

from doorbell.owners import AuthRecord, OwnersError, client_key
from doorbell.web import ring_passes
from doorbell.web.body import b64_field, field, read_json
from doorbell.web.context import (
    CHALLENGES,
    CONTEXT,
    OWNERS,
    RING_PASS,
    RING_PASSES,
    SESSIONS,
    SETUP_CODE,
    THROTTLE,
    session_of,
)
from doorbell.web.sessions import COOKIE, EVERYWHERE, LOCKED, REMOVED

log = logging.getLogger(__name__)


def _throttled(request: web.Request, *keys: str) -> list[str]:
    """The throttle keys of this request (its client's, and ``keys``); 429 while any says
    wait. Called before the body is read: a throttled guess costs nothing."""
    wanted = [client_key(request.remote), *keys]
    wait = request.app[THROTTLE].wait(wanted)
    if wait > 0:
        raise web.HTTPTooManyRequests(
            text=f"too many wrong tries; try again in {math.ceil(wait)} s\n",
            headers={"Retry-After": str(math.ceil(wait))},
        )
    return wanted


def _signed_in(request: web.Request, owner_id: str, extra: dict) -> web.Response:
    context = request.app[CONTEXT]
    session = request.app[SESSIONS].open(owner_id)
    response = web.json_response({**extra, "csrf_token": session.csrf, "owner": owner_id})
    response.set_cookie(
        COOKIE, session.token, httponly=True, samesite="Strict", secure=context.secure_cookies
    )
    return response


# --- pages ----------------------------------------------------------------------------------


def page_values(request: web.Request, **values: object) -> dict:
    from doorbell.web.app import IMPORT_MAP
    from doorbell.web.context import SESSION
    from doorbell.web.vendor import EMPTY_MAP

    context = request.app[CONTEXT]
    import_map = request.app[IMPORT_MAP]
    session = request.get(SESSION)
    owner = request.app[OWNERS].get(session.owner_id) if session else None
    return {
        "csrf": session.csrf if session else "",
        "demo": context.press_bell is not None,
        "unlocked": session is not None,
        "owner_name": owner.name if owner else "",
        "owner_id": owner.id if owner else "",
        "work_factor": context.work_factor,
        "idle_seconds": int(context.settings.idle_lock_minutes * 60),
        "import_map": import_map,  # rendered verbatim in base.html (web.vendor)
        "library_missing": import_map == EMPTY_MAP,
        **values,
    }


async def setup_page(request: web.Request) -> web.StreamResponse:
    """Pairing: a new owner's browser makes their key. Needs the setup code or an invite."""
    values = page_values(
        request,
        invite=request.query.get("invite", "")[:32],
        first=not request.app[OWNERS].has_owner(),
    )
    return aiohttp_jinja2.render_template("setup.html", request, values)


async def unlock_page(request: web.Request) -> web.StreamResponse:
    if request.app[SESSIONS].get(request.cookies.get(COOKIE), touch=False):
        raise web.HTTPSeeOther("/")
    if not request.app[OWNERS].has_owner():
        raise web.HTTPSeeOther("/setup")
    return aiohttp_jinja2.render_template("unlock.html", request, page_values(request))


async def owners_page(request: web.Request) -> web.StreamResponse:
    me = session_of(request).owner_id
    owners = [{**o.public(), "you": o.id == me} for o in request.app[OWNERS].list()]
    recovery = request.app[OWNERS].recovery()
    values = page_values(request, owners=owners, recovery=recovery)
    return aiohttp_jinja2.render_template("owners.html", request, values)


# --- pairing --------------------------------------------------------------------------------


async def pair(request: web.Request) -> web.Response:
    """A new owner, proved by the setup code (someone at the device) or an invite."""
    keys = _throttled(request)  # per client: 40 bits at its pace outlast any household
    body = await read_json(request)
    code = field(body, "code", str, "the setup code or an invite code")
    name = field(body, "name", str)
    recipient = field(body, "recipient", str, "an age1… public key")
    wrapped = b64_field(body, "wrapped", max_bytes=2048)
    salt = b64_field(body, "salt", exact=16)
    auth = b64_field(body, "auth", exact=32)
    work_factor = field(body, "work_factor", int)
    owners, setup_code = request.app[OWNERS], request.app[SETUP_CODE]
    try:  # everything checked before a code is tried: a refused pairing uses up nothing
        record = AuthRecord.from_auth(salt, work_factor, auth)
        owners.check_new(name, recipient, wrapped)
    except OwnersError as err:
        raise web.HTTPBadRequest(text=f"{err}\n") from None
    by_setup = setup_code.matches(code)
    if not by_setup and not owners.use_invite(code):
        failures = request.app[THROTTLE].failed(keys)
        log.warning("pairing refused: a wrong setup or invite code (%d in a row)", failures)
        raise web.HTTPForbidden(text="that is not the setup code or an open invite\n")
    request.app[THROTTLE].succeeded(keys)
    try:
        owner = owners.add(name, recipient, wrapped=wrapped, auth=record)
    except OwnersError as err:
        raise web.HTTPBadRequest(text=f"{err}\n") from None
    if by_setup:
        setup_code.consume()
    how = "the setup code" if by_setup else "an invite"
    log.info("owner %s paired with %s (recipient %s)", owner.name, how, owner.recipient)
    return _signed_in(request, owner.id, {"name": owner.name})


# --- a new browser: the wrapped identity, after an online check -----------------------------


async def find_owner(request: web.Request) -> web.Response:
    body = await read_json(request)
    return web.json_response(request.app[OWNERS].lookup(field(body, "name", str)))


async def release(request: web.Request) -> web.Response:
    """The owner's wrapped identity, for a browser that proved the passphrase (``auth``)."""
    _throttled(request)  # the client's own count, before the body is read
    body = await read_json(request)
    owner_id = field(body, "owner", str)[:32]
    keys = _throttled(request, f"owner:{owner_id}")
    auth = b64_field(body, "auth", exact=32)
    owner = request.app[OWNERS].get(owner_id)
    if owner is None or owner.auth is None or owner.wrapped is None or not owner.auth.proves(auth):
        failures = request.app[THROTTLE].failed(keys)
        log.warning("a wrong passphrase proof for an owner (%d in a row)", failures)
        raise web.HTTPUnauthorized(text="wrong name or passphrase\n")
    request.app[THROTTLE].succeeded(keys)
    return web.json_response({"wrapped": owner.wrapped, "name": owner.name, "owner": owner.id})


# --- login ----------------------------------------------------------------------------------


async def login_challenge(request: web.Request) -> web.Response:
    body = await read_json(request)
    owner = request.app[OWNERS].get(field(body, "owner", str)[:32])
    if owner is None:
        raise web.HTTPNotFound(text="no such owner on this doorbell: pair this browser again\n")
    file, challenge_id = request.app[CHALLENGES].issue(owner.id, owner.recipient)
    return web.json_response({"challenge": challenge_id, "file": base64.b64encode(file).decode()})


async def login(request: web.Request) -> web.Response:
    body = await read_json(request)
    challenge_id = field(body, "challenge", str)[:64]
    answer = b64_field(body, "answer", exact=32)
    owner_id = request.app[CHALLENGES].answer(challenge_id, answer)
    owner = request.app[OWNERS].get(owner_id) if owner_id else None
    if owner is None:
        raise web.HTTPUnauthorized(text="the login challenge was not answered: try again\n")
    return _signed_in(request, owner.id, {"name": owner.name})


async def lock(request: web.Request) -> web.Response:
    request.app[SESSIONS].end(request.cookies.get(COOKIE), LOCKED)
    response = web.json_response({"locked": True})
    response.del_cookie(COOKIE, path="/")
    return response


# --- an owner's own account, and the others -------------------------------------------------


async def api_owners(request: web.Request) -> web.Response:
    me = session_of(request).owner_id
    owners = [{**o.public(), "you": o.id == me} for o in request.app[OWNERS].list()]
    return web.json_response({"owners": owners, "recovery": request.app[OWNERS].recovery()})


async def invite(request: web.Request) -> web.Response:
    code, expires = request.app[OWNERS].new_invite(session_of(request).owner_id)
    when = datetime.datetime.fromtimestamp(expires).astimezone()
    return web.json_response(
        {"code": code, "expires": expires, "expires_text": f"{when:%a %d %b %H:%M}"}
    )


async def remove_owner(request: web.Request) -> web.Response:
    owner_id = request.match_info["id"]
    if request.app[OWNERS].get(owner_id) is None:
        raise web.HTTPNotFound(text="no such owner\n")
    try:
        owner = request.app[OWNERS].remove(owner_id)
    except OwnersError as err:
        raise web.HTTPConflict(text=f"{err}\n") from None
    ended = request.app[SESSIONS].end_owner(owner.id, REMOVED)
    passes = request.app[RING_PASSES].end_owner(owner.id, ring_passes.REMOVED)
    by = session_of(request).owner_id
    log.info(
        "owner %s removed by %s; %d session(s) and %d ring pass(es) ended",
        owner.name,
        by,
        ended,
        passes,
    )
    return web.json_response({"removed": owner.id, "sessions_ended": ended})


async def sign_out_everywhere(request: web.Request) -> web.Response:
    owner_id = session_of(request).owner_id
    ended = request.app[SESSIONS].end_owner(owner_id, EVERYWHERE)
    passes = request.app[RING_PASSES].end_owner(owner_id, ring_passes.EVERYWHERE)
    response = web.json_response({"sessions_ended": ended, "ring_passes_ended": passes})
    response.del_cookie(COOKIE, path="/")
    response.del_cookie(ring_passes.COOKIE, path=ring_passes.PATH)
    return response


# --- rings on a locked page (web.ring_passes) -----------------------------------------------


async def allow_rings(request: web.Request) -> web.Response:
    """The owner, signed in, lets this browser hear rings while locked: a new pass in an
    HttpOnly cookie sent only to the ring routes. The pass this browser held before, if
    any, ends (``replaced``)."""
    context, passes = request.app[CONTEXT], request.app[RING_PASSES]
    passes.end(request.cookies.get(ring_passes.COOKIE), ring_passes.REPLACED)
    ring_pass = passes.issue(session_of(request).owner_id)
    lifetime = int(passes.lifetime_seconds)
    response = web.json_response({"on": True, "lifetime": lifetime})
    response.set_cookie(
        ring_passes.COOKIE,
        ring_pass.token,
        path=ring_passes.PATH,
        max_age=lifetime,
        httponly=True,
        samesite="Strict",
        secure=context.secure_cookies,
    )
    return response


async def ring_pass_state(request: web.Request) -> web.Response:
    """Whether this browser's pass is live (the access check answered 401 if not)."""
    return web.json_response({"on": RING_PASS in request})


async def stop_rings(request: web.Request) -> web.Response:
    """This browser hears no more rings while locked: its pass ends (``turned off``, its
    open stream told), its cookie is deleted. Locked or not."""
    request.app[RING_PASSES].end(request[RING_PASS].token, ring_passes.TURNED_OFF)
    response = web.json_response({"on": False})
    response.del_cookie(ring_passes.COOKIE, path=ring_passes.PATH)
    return response


async def change_passphrase(request: web.Request) -> web.Response:
    """The owner's browser re-wrapped their identity under a new passphrase."""
    body = await read_json(request)
    wrapped = b64_field(body, "wrapped", max_bytes=2048)
    salt = b64_field(body, "salt", exact=16)
    auth = b64_field(body, "auth", exact=32)
    work_factor = field(body, "work_factor", int)
    try:
        record = AuthRecord.from_auth(salt, work_factor, auth)
        request.app[OWNERS].set_wrapped(session_of(request).owner_id, wrapped, record)
    except OwnersError as err:
        raise web.HTTPBadRequest(text=f"{err}\n") from None
    return web.json_response({"changed": True})
