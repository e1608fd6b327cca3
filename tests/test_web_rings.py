"""Rings on a locked page, on the device's side: the ring pass (``POST``, ``GET`` and
``DELETE /api/rings/pass``) and the ring stream (``GET /api/rings``), through aiohttp's
test client with tests/test_web.py's real store, owner, app and bus, and its clock.

What a pass opens (the ring routes, and nothing else), what the stream carries (the
time of a ring, and nothing else), what ends a pass (turning it off, a newer pass,
sign-out everywhere, removal, its lifetime, shutdown) and what does not (the session
locking, by hand or when idle).
"""

import asyncio
import json
from http.cookies import SimpleCookie

from doorbell.events import (
    BellPressed,
    CameraState,
    ClipFinished,
    ClipStarted,
    MotionChanged,
    PirChanged,
)
from doorbell.owners import Owners
from doorbell.store import Keyring
from doorbell.web import ring_passes, routes, streams
from doorbell.web.context import RING_PASSES
from doorbell.web.sessions import COOKIE
from tests import test_web
from tests.owners import pair_owner, sign_in

# tests/test_web.py's fixtures: a real store, owner, app and bus
client, context, owner, store, clock = (
    test_web.client,
    test_web.context,
    test_web.owner,
    test_web.store,
    test_web.clock,
)

NO_PASS = "no ring pass: allow rings on this browser while unlocked"
RING_ROUTES = {
    ("GET", "/api/rings"),
    ("GET", "/api/rings/pass"),
    ("DELETE", "/api/rings/pass"),
}


def csrf(token: str) -> dict:
    return {"X-CSRF-Token": token}


def ring_cookie(token: str) -> dict:
    """A request header sending only ``token`` as the ring cookie (whatever the path)."""
    return {"Cookie": f"{ring_passes.COOKIE}={token}"}


async def allow_rings(client, owner) -> tuple[str, str]:
    """Sign ``owner`` in on ``client`` and allow rings there: (CSRF token, pass token)."""
    token = await sign_in(client, owner)
    response = await client.post("/api/rings/pass", headers=csrf(token))
    assert response.status == 200, await response.text()
    cookie = SimpleCookie(response.headers["Set-Cookie"])[ring_passes.COOKIE]
    return token, cookie.value


async def next_event(response, seconds: float = 5.0) -> tuple[str, dict]:
    """The next ``event:`` message of an SSE response (comments and retry skipped)."""
    async with asyncio.timeout(seconds):
        while True:
            block = (await response.content.readuntil(b"\n\n")).decode()
            if block.startswith("event: "):
                name, data = block.removesuffix("\n\n").split("\n")
                return name.removeprefix("event: "), json.loads(data.removeprefix("data: "))


async def opened(client, path: str = "/api/rings", **options):
    """An open SSE response, read past its first comment (subscribed to the bus)."""
    response = await client.get(path, **options)
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"] == "text/event-stream"
    assert await response.content.readuntil(b"\n\n") == b": connected\n\n"
    return response


# --- the pass -------------------------------------------------------------------------------


async def test_a_pass_needs_a_session_and_its_csrf_token(client, owner):
    assert (await client.post("/api/rings/pass")).status == 401
    token = await sign_in(client, owner)
    refused = await client.post("/api/rings/pass")
    assert refused.status == 403 and "X-CSRF-Token" in await refused.text()
    assert len(client.app[RING_PASSES]) == 0
    response = await client.post("/api/rings/pass", headers=csrf(token))
    assert response.status == 200 and await response.json() == {
        "on": True,
        "lifetime": 30 * 24 * 3600,
    }
    assert len(client.app[RING_PASSES]) == 1


async def test_the_pass_cookie_is_http_only_strict_and_sent_to_the_ring_routes_only(
    client, context, owner
):
    token = await sign_in(client, owner)
    response = await client.post("/api/rings/pass", headers=csrf(token))
    (header,) = response.headers.getall("Set-Cookie")
    cookie = SimpleCookie(header)[ring_passes.COOKIE]
    assert cookie["httponly"] is True and cookie["samesite"] == "Strict"
    assert cookie["path"] == "/api/rings" and cookie["max-age"] == str(30 * 24 * 3600)
    assert not cookie["secure"]  # plain HTTP on loopback: a Secure cookie would not be kept
    assert client.app[RING_PASSES].get(cookie.value).owner_id == owner.id
    assert cookie.value not in await response.text()  # the page never sees the token
    context.secure_cookies = True
    again = await client.post("/api/rings/pass", headers=csrf(token))
    assert SimpleCookie(again.headers["Set-Cookie"])[ring_passes.COOKIE]["secure"] is True


async def test_a_pass_says_it_is_on_and_a_second_one_replaces_the_first(
    aiohttp_client, client, owner
):
    token, first = await allow_rings(client, owner)
    assert await (await client.get("/api/rings/pass")).json() == {"on": True}
    stream = await opened(client)
    again = await client.post("/api/rings/pass", headers=csrf(token))
    second = SimpleCookie(again.headers["Set-Cookie"])[ring_passes.COOKIE].value
    assert second != first
    assert await next_event(stream) == ("rings", {"ended": "replaced"})
    assert len(client.app[RING_PASSES]) == 1
    elsewhere = await aiohttp_client(client.server)  # an empty cookie jar: the old cookie only
    stale = await elsewhere.get("/api/rings/pass", headers=ring_cookie(first))
    assert stale.status == 401 and NO_PASS in await stale.text()


# --- what opens the ring routes, and what a pass opens ---------------------------------------


async def test_the_ring_stream_needs_a_live_pass(client, owner):
    for headers in ({}, ring_cookie("not-a-pass"), ring_cookie("")):
        response = await client.get("/api/rings", headers=headers)
        assert response.status == 401 and NO_PASS in await response.text(), headers
        assert "Traceback" not in await response.text()
    await sign_in(client, owner)  # the session cookie alone opens no ring route
    for method, path in RING_ROUTES:
        response = await client.request(method, path)
        assert response.status == 401 and NO_PASS in await response.text(), (method, path)
    session = client.session.cookie_jar.filter_cookies(client.make_url("/"))[COOKIE].value
    assert (await client.get("/api/rings", headers=ring_cookie(session))).status == 401
    ended = client.app[RING_PASSES].issue(owner.id)
    client.app[RING_PASSES].end(ended.token)
    response = await client.get("/api/rings", headers=ring_cookie(ended.token))
    assert response.status == 401 and NO_PASS in await response.text()


async def test_a_ring_pass_opens_no_owner_route(aiohttp_client, client, owner):
    """Walks the router, as tests/test_web.py's route-table test does, sending the ring
    cookie to every route whatever its path: only the ring routes answer."""
    assert {(r.method, r.path) for r in routes.ROUTES if r.access == routes.RINGS} == RING_ROUTES
    assert {r.access for r in routes.ROUTES} == {routes.PUBLIC, routes.OWNER, routes.RINGS}
    ring_pass = client.app[RING_PASSES].issue(owner.id)
    seen = set()
    for route in client.app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter") or info.get("prefix")
        if route.method == "HEAD" or path is None or "prefix" in info:
            continue
        if path.startswith("/vendor/"):
            continue
        key = (route.method, path)
        access = next((r.access for r in routes.ROUTES if (r.method, r.path) == key), None)
        if access in (routes.PUBLIC, routes.RINGS):
            continue
        seen.add(key)
        response = await client.request(
            route.method,
            test_web.concrete(path),
            headers=ring_cookie(ring_pass.token),
            allow_redirects=False,
        )
        if response.status == 303:
            assert response.headers["Location"] == "/unlock", key
        else:
            assert response.status == 401, (key, response.status)
            assert "locked: unlock first" in await response.text(), key
    assert {("GET", "/"), ("GET", "/api/clips"), ("GET", "/clips/{id}/file")} <= seen
    assert {("GET", "/api/events"), ("POST", "/api/rings/pass")} <= seen
    as_session = await client.get("/api/clips", headers={"Cookie": f"{COOKIE}={ring_pass.token}"})
    assert as_session.status == 401  # nor is its token a session's
    assert client.app[RING_PASSES].get(ring_pass.token) is ring_pass  # still live, unused


async def test_a_foreign_page_cannot_turn_rings_off_or_listen(client, owner):
    """No CSRF token on the ring routes: own_origin refuses another site's page for
    every method, DELETE too, before the pass is even looked at."""
    _, token = await allow_rings(client, owner)
    for method, path in RING_ROUTES:
        response = await client.request(method, path, headers={"Origin": "http://evil.example"})
        assert response.status == 403, (method, path)
        assert "another site's page" in await response.text()
    assert client.app[RING_PASSES].get(token) is not None
    ours = await client.delete("/api/rings/pass", headers={"Origin": str(client.make_url(""))})
    assert ours.status == 200 and client.app[RING_PASSES].get(token) is None


# --- what the stream carries ----------------------------------------------------------------


async def test_a_locked_browser_hears_rings_and_nothing_else(client, context, store, owner):
    token, _ = await allow_rings(client, owner)
    stream = await opened(client)
    assert (await client.post("/api/lock", headers=csrf(token))).status == 200
    assert (await client.get("/api/clips")).status == 401  # locked
    clip = store.get(test_web.add_clip(store, "bell", 1_700_000_000))
    context.bus.publish(MotionChanged(at=2.0, active=True))
    context.bus.publish(PirChanged(at=2.5, active=True))
    context.bus.publish(ClipStarted(3.0, "bell", clip.id))
    context.bus.publish(ClipFinished(clip))
    context.bus.publish(CameraState(3.5, "running"))
    context.bus.publish(BellPressed(at=4.25))
    received = b""
    async with asyncio.timeout(5):
        while b"event:" not in received:
            received += await stream.content.readuntil(b"\n\n")
    assert received.endswith(b'event: bell\ndata: {"at": 4.25}\n\n')
    assert received.count(b"event:") == 1 and clip.id.encode() not in received
    later = await opened(client)  # locked, a new stream opens too
    context.bus.publish(BellPressed(at=5.0))
    assert await next_event(later) == ("bell", {"at": 5.0})
    assert await next_event(stream) == ("bell", {"at": 5.0})
    for response in (stream, later):
        response.close()


async def test_idle_locking_leaves_the_pass(client, context, owner, clock):
    await allow_rings(client, owner)
    clock.now += context.settings.idle_lock_minutes * 60 + 1
    assert (await client.get("/api/clips")).status == 401
    stream = await opened(client)
    context.bus.publish(BellPressed(at=7.0))
    assert await next_event(stream) == ("bell", {"at": 7.0})
    stream.close()


async def test_the_stream_keeps_alive_and_ends_when_the_pass_is_past_its_lifetime(
    client, context, owner, clock, monkeypatch
):
    monkeypatch.setattr(streams, "HEARTBEAT", 0.05)
    await allow_rings(client, owner)
    stream = await opened(client)
    async with asyncio.timeout(5):
        while (await stream.content.readuntil(b"\n\n")) != b": keep-alive\n\n":
            pass
    clock.now += ring_passes.LIFETIME_SECONDS + 1
    assert await next_event(stream) == ("rings", {"ended": "expired"})
    assert await stream.content.read() == b""  # and the stream ends


# --- what ends a pass -----------------------------------------------------------------------


async def test_turning_rings_off_ends_the_stream_and_the_cookie(client, owner):
    _, token = await allow_rings(client, owner)
    stream = await opened(client)
    response = await client.delete("/api/rings/pass")
    assert response.status == 200 and await response.json() == {"on": False}
    cookie = SimpleCookie(response.headers["Set-Cookie"])[ring_passes.COOKIE]
    assert cookie.value == "" and cookie["path"] == "/api/rings" and cookie["max-age"] == "0"
    assert await next_event(stream) == ("rings", {"ended": "turned off"})
    assert await stream.content.read() == b""
    gone = await client.get("/api/rings", headers=ring_cookie(token))
    assert gone.status == 401 and NO_PASS in await gone.text()


async def test_turning_rings_off_works_locked(client, owner):
    token, ring_token = await allow_rings(client, owner)
    await client.post("/api/lock", headers=csrf(token))
    assert (await client.delete("/api/rings/pass")).status == 200
    assert client.app[RING_PASSES].get(ring_token) is None


async def test_sign_out_everywhere_ends_the_owner_s_passes(aiohttp_client, client, owner):
    phone = await aiohttp_client(client.server)  # the hall table's phone
    await allow_rings(phone, owner)
    bob = pair_owner(client.app[test_web.CONTEXT].data_dir, name="Bob")
    bobs = await aiohttp_client(client.server)
    await allow_rings(bobs, bob)
    stream = await opened(phone)
    token = await sign_in(client, owner)
    response = await client.post("/api/sign-out-everywhere", headers=csrf(token))
    assert (await response.json())["ring_passes_ended"] == 1
    assert await next_event(stream) == ("rings", {"ended": "signed out everywhere"})
    assert (await phone.get("/api/rings")).status == 401
    assert (await bobs.get("/api/rings/pass")).status == 200  # Bob's is his own


async def test_removing_an_owner_ends_their_passes(aiohttp_client, client, owner):
    bob = pair_owner(client.app[test_web.CONTEXT].data_dir, name="Bob")
    bobs = await aiohttp_client(client.server)
    await allow_rings(bobs, bob)
    stream = await opened(bobs)
    token = await sign_in(client, owner)
    assert (await client.delete(f"/api/owners/{bob.id}", headers=csrf(token))).status == 200
    assert await next_event(stream) == ("rings", {"ended": "removed"})
    assert (await bobs.get("/api/rings")).status == 401


async def test_an_owner_whose_keys_vanished_has_no_pass(aiohttp_client, client, owner):
    """The owner's entry gone from keys/owners.json behind the app's back (edited by
    hand): the next use of their pass finds it out and ends it."""
    bob = pair_owner(client.app[test_web.CONTEXT].data_dir, name="Bob")
    bobs = await aiohttp_client(client.server)
    _, token = await allow_rings(bobs, bob)
    ring_pass = client.app[RING_PASSES].get(token)
    Owners(Keyring.in_data_dir(client.app[test_web.CONTEXT].data_dir)).remove(bob.id)
    response = await bobs.get("/api/rings")
    assert response.status == 401 and NO_PASS in await response.text()
    assert ring_pass.end_reason == "removed"


async def test_shutdown_ends_every_pass(client, owner):
    await allow_rings(client, owner)
    stream = await opened(client)
    await client.app.shutdown()  # what the runner does as the doorbell stops
    assert await next_event(stream) == ("rings", {"ended": "shutdown"})
    assert len(client.app[RING_PASSES]) == 0


# --- slots ----------------------------------------------------------------------------------


async def test_ring_streams_are_capped_per_pass_and_in_all(client, owner):
    """Two streams a pass (a locked browser's tabs), eight in all: the next gets 429."""
    per_pass, in_all = streams.CAPS["rings"]
    assert (per_pass, in_all) == (2, 8)
    passes = [client.app[RING_PASSES].issue(owner.id) for _ in range(in_all // per_pass + 1)]
    held = []
    for ring_pass in passes[:-1]:
        for _ in range(per_pass):
            held.append(await opened(client, headers=ring_cookie(ring_pass.token)))
        refused = await client.get("/api/rings", headers=ring_cookie(ring_pass.token))
        assert refused.status == 429 and refused.headers["Retry-After"] == "10"
    full = await client.get("/api/rings", headers=ring_cookie(passes[-1].token))
    assert full.status == 429 and "too many rings streams" in await full.text()
    held.pop().close()
    slots = client.app[streams.STREAM_SLOTS]
    async with asyncio.timeout(5):
        while slots.open[("rings", "")] >= in_all:
            await asyncio.sleep(0)  # the server notices the closed stream
    last = await opened(client, headers=ring_cookie(passes[-1].token))
    for response in (*held, last):
        response.close()
