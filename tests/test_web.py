"""The web interface's handlers and guards, through aiohttp's test client.

A real store with real encrypted clips, a real owner (paired as their browser
would, tests/owners.py), the real event bus; the clock is injected, so idle
locking is tested without waiting. Pairing, login and the throttle are
tests/test_auth.py's.
"""

import asyncio
import dataclasses
import datetime
import json
import re

import cv2
import numpy as np
import pytest
from aiohttp import web

from doorbell import vault
from doorbell.config import WebSettings
from doorbell.events import BellPressed, ClipFinished, EventBus, MotionChanged
from doorbell.store import ClipStore, Keyring
from doorbell.web import routes
from doorbell.web.app import SECURITY_HEADERS_KEY, make_app
from doorbell.web.context import CONTEXT, WebContext
from doorbell.web.sessions import COOKIE
from tests.owners import login_response, pair_owner, sign_in

JPEG = cv2.imencode(".jpg", np.full((90, 160, 3), 128, np.uint8))[1].tobytes()
VIDEO_BYTES = bytes(range(256)) * 1000  # 256 kB: five chunks of the vault


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def add_clip(store: ClipStore, trigger: str, start: float, body: bytes = VIDEO_BYTES) -> str:
    recording = store.new_clip(trigger, start=start)
    recording.write_thumbnail(JPEG)
    recording.video.write(body)
    return recording.finish(end=start + 12).id


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def store(data_dir):
    store = ClipStore.open(data_dir)
    yield store
    store.close()


@pytest.fixture
def context(store, data_dir, clock):
    return WebContext(
        store=store,
        keyring=Keyring.in_data_dir(data_dir),
        clock=clock,
        press_bell=lambda: None,
        work_factor=10,
        wall_clock=clock,
    )


@pytest.fixture
def owner(data_dir):
    return pair_owner(data_dir)


@pytest.fixture
async def client(aiohttp_client, context, owner):
    context.bus = EventBus(asyncio.get_running_loop())
    return await aiohttp_client(make_app(context))


async def unlock(client) -> str:
    """Sign the data dir's owner in (login by challenge); the CSRF token."""
    from doorbell.owners import Owners

    data_dir = client.app[CONTEXT].data_dir
    owner = OWNERS_BY_DIR.get(data_dir) or pair_owner(data_dir, name=f"Owner {len(OWNERS_BY_DIR)}")
    OWNERS_BY_DIR[data_dir] = owner
    assert Owners(client.app[CONTEXT].keyring).get(owner.id)
    return await sign_in(client, owner)


OWNERS_BY_DIR: dict = {}


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "0123456789abcdef", path)


# --- the guards -----------------------------------------------------------------------------


async def test_every_route_but_the_public_ones_needs_an_unlocked_session(client):
    """Walks the router itself, so a route added later cannot be left open."""
    public = {
        ("GET", "/health"),
        ("GET", "/unlock"),
        ("GET", "/setup"),
        ("POST", "/api/pair"),
        ("POST", "/api/owners/find"),
        ("POST", "/api/owners/release"),
        ("POST", "/api/login/challenge"),
        ("POST", "/api/login"),
    }
    seen = set()
    for route in client.app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter") or info.get("prefix")
        if route.method == "HEAD" or path is None:
            continue
        if "prefix" in info:  # the static files: public, and nothing but files
            assert path == "/static"
            continue
        if path.startswith("/vendor/"):  # the browser's age library: public files
            continue
        seen.add((route.method, path))
        if (route.method, path) in public:
            continue
        response = await client.request(route.method, concrete(path), allow_redirects=False)
        if response.status == 303:
            assert response.headers["Location"] == "/unlock", (route.method, path)
        else:
            assert response.status == 401, (route.method, path, response.status)
    assert public <= seen
    table = {(r.method, r.path) for r in routes.ROUTES if r.access == routes.PUBLIC}
    assert table == public


async def test_a_route_left_out_of_the_table_needs_the_owner(aiohttp_client, context):
    app = make_app(context)

    async def forgotten(request: web.Request) -> web.Response:
        return web.Response(text="secret")

    app.router.add_get("/forgotten", forgotten)
    client = await aiohttp_client(app)
    assert (await client.get("/forgotten")).status == 401
    await unlock(client)
    assert await (await client.get("/forgotten")).text() == "secret"


async def test_security_headers_on_every_response_errors_too(client):
    headers = client.app[SECURITY_HEADERS_KEY]
    for path in ("/health", "/unlock", "/nowhere", "/api/clips"):
        response = await client.get(path, allow_redirects=False)
        for name, value in headers.items():
            assert response.headers.get(name) == value, (path, name)
    csp = headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    # the one inline script a page may run is its import map, allowed by its hash
    page = await (await client.get("/unlock")).text()
    import_map = re.search(r'<script type="importmap">(.*?)</script>', page, re.S)
    from doorbell.web.vendor import csp_hash

    assert import_map and f"script-src 'self' {csp_hash(import_map.group(1))}" in csp


async def test_health_says_nothing(client, store):
    add_clip(store, "bell", 1_700_000_000)
    response = await client.get("/health")
    assert response.status == 200 and await response.json() == {"ok": True}


# --- unlock, lock, CSRF, idle ---------------------------------------------------------------


async def test_login_gives_a_strict_httponly_cookie_and_a_csrf_token(client, owner):
    response = await login_response(client, owner)
    assert response.status == 200
    body = await response.json()
    assert set(body) == {"csrf_token", "owner", "name"} and len(body["csrf_token"]) >= 32
    cookie = response.cookies[COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/"


async def test_changes_need_the_csrf_token(client, store):
    clip = add_clip(store, "bell", 1_700_000_000)
    csrf = await unlock(client)
    assert (await client.post("/api/lock")).status == 403
    assert (await client.delete(f"/api/clips/{clip}")).status == 403
    bad = {"X-CSRF-Token": "x" * len(csrf)}
    assert (await client.delete(f"/api/clips/{clip}", headers=bad)).status == 403
    assert store.get(clip)  # nothing happened
    response = await client.delete(f"/api/clips/{clip}", headers={"X-CSRF-Token": csrf})
    assert response.status == 200 and store.list() == []


async def test_lock_now_and_idle_lock(client, store, clock):
    clip = add_clip(store, "bell", 1_700_000_000)
    csrf = await unlock(client)
    assert (await client.get(f"/clips/{clip}/thumbnail")).status == 200
    response = await client.post("/api/lock", headers={"X-CSRF-Token": csrf})
    assert response.status == 200
    assert (await client.get(f"/clips/{clip}/thumbnail")).status == 401
    await unlock(client)
    clock.now += 14 * 60  # in use: each request restarts the idle time
    assert (await client.get("/api/clips")).status == 200
    clock.now += 14 * 60
    assert (await client.get("/api/clips")).status == 200
    clock.now += 15 * 60 + 1
    assert (await client.get("/api/clips")).status == 401
    await unlock(client)
    signed_in = clock.now
    while (await client.get("/api/clips")).status == 200 and clock.now - signed_in < 24 * 3600:
        clock.now += 14 * 60  # busy all along, yet a session ends after its lifetime (12 h)
    assert 12 * 3600 < clock.now - signed_in <= 12 * 3600 + 14 * 60
    response = await client.get("/", allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/unlock"


async def test_idle_sessions_are_locked_by_the_apps_own_task(aiohttp_client, context, clock):
    """Nobody uses the session: the app's background task locks it (its keys dropped) once
    it is idle past the limit, without a request arriving. The task's wait is injected."""
    from doorbell.web.app import EXPIRE_SECONDS
    from doorbell.web.context import SESSIONS

    rounds: asyncio.Queue[float] = asyncio.Queue()
    go: asyncio.Queue[None] = asyncio.Queue()

    async def sleep(seconds: float) -> None:
        await rounds.put(seconds)
        await go.get()

    context.sleep = sleep
    app = make_app(context)
    client = await aiohttp_client(app)
    assert await asyncio.wait_for(rounds.get(), 30) == EXPIRE_SECONDS  # the task runs
    await unlock(client)
    clock.now += 14 * 60
    await go.put(None)  # one round: not idle long enough yet
    await rounds.get()
    assert len(app[SESSIONS]) == 1
    clock.now += 60 + 1
    await go.put(None)
    await rounds.get()
    assert len(app[SESSIONS]) == 0


# --- clips ----------------------------------------------------------------------------------


async def test_clip_list_newest_first(client, store):
    old = add_clip(store, "motion", 1_700_000_000)
    new = add_clip(store, "bell", 1_700_000_100)
    await unlock(client)
    body = await (await client.get("/api/clips")).json()
    assert [c["id"] for c in body["clips"]] == [new, old]
    first = body["clips"][0]
    assert set(first) == {"id", "start", "end", "trigger", "bytes", "keep", "time_uncertain"}
    assert first["trigger"] == "bell" and first["end"] == 1_700_000_112 and not first["keep"]
    only = await (await client.get("/api/clips?trigger=motion")).json()
    assert [c["id"] for c in only["clips"]] == [old]
    assert (await client.get("/api/clips?trigger=cat")).status == 400
    page = await (await client.get("/")).text()
    assert new in page and old in page and page.index(new) < page.index(old)


async def test_keep_and_delete(client, store):
    clip = add_clip(store, "bell", 1_700_000_000)
    csrf = {"X-CSRF-Token": await unlock(client)}
    response = await client.post(f"/api/clips/{clip}/keep", json={"keep": True}, headers=csrf)
    assert response.status == 200 and (await response.json())["keep"] is True
    assert store.get(clip).keep
    response = await client.post(f"/api/clips/{clip}/keep", json={"keep": "yes"}, headers=csrf)
    assert response.status == 400
    assert (await client.delete(f"/api/clips/{clip}", headers=csrf)).status == 200
    assert (await client.get(f"/clips/{clip}/thumbnail")).status == 404
    assert (await client.delete(f"/api/clips/{clip}", headers=csrf)).status == 404


async def test_clip_ids_are_looked_up_never_used_as_paths(client, store):
    add_clip(store, "bell", 1_700_000_000)
    await unlock(client)
    for bad in ("..%2Fkeys%2Fidentity.age", "0123456789abcdef", "%2E%2E", "ABCDEF0123456789"):
        response = await client.get(f"/clips/{bad}/thumbnail")
        assert response.status == 404, bad
        assert "Traceback" not in await response.text()


async def test_the_thumbnail_is_served_as_it_is_stored_encrypted(client, store, owner):
    """The device holds no key: it serves the thumbnail's age file, and the owner's
    identity (here, in the test; in the browser, static/player.js) opens it."""
    clip = add_clip(store, "bell", 1_700_000_000)
    await unlock(client)
    response = await client.get(f"/clips/{clip}/thumbnail")
    body = await response.read()
    assert response.status == 200 and response.content_type == "application/octet-stream"
    assert body == store.path(clip, ".jpg.age").read_bytes() and JPEG not in body
    assert vault.decrypt_bytes(body, [owner.identity]) == JPEG


async def test_the_clip_file_is_served_by_range_as_ciphertext(client, store, owner):
    clip = add_clip(store, "bell", 1_700_000_000)
    await unlock(client)
    stored = store.path(clip, ".mp4.age").read_bytes()
    whole = await client.get(f"/clips/{clip}/file")
    assert whole.status == 200 and await whole.read() == stored
    assert vault.decrypt_bytes(stored, [owner.identity]) == VIDEO_BYTES
    part = await client.get(f"/clips/{clip}/file", headers={"Range": "bytes=200000-"})
    assert part.status == 206 and await part.read() == stored[200000:]
    assert part.headers["Content-Range"] == f"bytes 200000-{len(stored) - 1}/{len(stored)}"
    etag = part.headers["ETag"]
    same = await client.get(f"/clips/{clip}/file", headers={"Range": "bytes=0-9", "If-Range": etag})
    assert same.status == 206 and await same.read() == stored[:10]
    assert (await client.get(f"/clips/{clip}/index")).status in (200, 404)


# --- the demo's bell, events, status --------------------------------------------------------


async def test_events_reach_an_unlocked_tab(client, context, store):
    await unlock(client)
    response = await client.get("/api/events")
    assert response.headers["Content-Type"] == "text/event-stream"
    await response.content.readuntil(b"\n\n")  # connected
    context.bus.publish(BellPressed(at=1.5))
    context.bus.publish(MotionChanged(at=2.0, active=True))
    clip = store.get(add_clip(store, "bell", 1_700_000_000))
    context.bus.publish(ClipFinished(clip))
    messages = []
    while len(messages) < 3:
        block = (await response.content.readuntil(b"\n\n")).decode()
        if not block.startswith(":") and not block.startswith("retry"):
            messages.append(block)
    assert messages[0] == 'event: bell\ndata: {"at": 1.5}\n\n'
    assert messages[1].startswith("event: motion\n") and '"active": true' in messages[1]
    assert messages[2].startswith("event: clip\n") and clip.id in messages[2]
    response.close()


async def test_event_streams_and_live_views_are_capped_per_session(client, context):
    """Each stream holds a connection: 4 event streams a session (its tabs), 2 live
    views; the next gets 429 and a Retry-After, and a closed one frees its place."""
    from doorbell.web.streams import CAPS, STREAM_SLOTS

    context.live = type(
        "Live", (), {"latest_jpeg": lambda self: None, "watching": lambda self, d: None}
    )()
    await unlock(client)
    for path, kind in (("/api/events", "events"), ("/live.mjpeg", "live")):
        held = [await client.get(path) for _ in range(CAPS[kind][0])]
        assert all(r.status == 200 for r in held)
        refused = await client.get(path)
        assert refused.status == 429 and refused.headers["Retry-After"] == "10"
        held.pop().close()
        async with asyncio.timeout(5):
            while client.app[STREAM_SLOTS].open[(kind, "")] >= CAPS[kind][0]:
                await asyncio.sleep(0)  # the server notices the closed stream
        again = await client.get(path)
        assert again.status == 200
        for response in (*held, again):
            response.close()


async def test_the_demo_bell(aiohttp_client, context):
    pressed = []
    context.press_bell = lambda: pressed.append(1)
    client = await aiohttp_client(make_app(context))
    csrf = await unlock(client)
    response = await client.post("/api/bell", headers={"X-CSRF-Token": csrf})
    assert response.status == 202 and pressed == [1]


async def test_no_bell_route_outside_the_demo(aiohttp_client, context):
    context.press_bell = None
    client = await aiohttp_client(make_app(context))
    csrf = await unlock(client)
    assert (await client.post("/api/bell", headers={"X-CSRF-Token": csrf})).status == 404


async def test_status(client, store, context):
    add_clip(store, "bell", 1_700_000_000)
    context.tls_fingerprint = "AB:CD"
    warning = "kept clips alone use 9.0 GB, more than the 8.0 GB quota"
    context.status = lambda: {"camera": "running", "recording": False, "warnings": [warning]}
    await unlock(client)
    body = await (await client.get("/api/status")).json()
    assert body["clips"] == 1 and body["camera"] == "running" and body["tls_fingerprint"] == "AB:CD"
    assert body["recipients"][0].startswith("age1") and body["disk_free"] > 0
    page = await (await client.get("/status")).text()
    assert "AB:CD" in page and "running" in page
    assert f'<p class="warning" role="alert">{warning}</p>' in page  # the owner sees it


def mark_time(store: ClipStore, clip_id: str, uncertain: bool) -> None:
    """Set a row's time_uncertain (how a store comes to set it is tests/test_clock.py's)."""
    store.index.put(dataclasses.replace(store.get(clip_id), time_uncertain=uncertain))


UNCERTAIN_TITLE = 'title="time uncertain: recorded before the clock was set"'


async def test_a_time_uncertain_clip_says_so_in_the_api_and_on_its_card(client, store):
    """A clip stamped 1970 by a Pi that booted without the time: the API says
    time_uncertain, its card and player page show the marker with its explanation;
    it sorts by its stamp (last) and its day still filters to it."""
    certain = add_clip(store, "bell", 1_700_000_000)
    stamped_1970 = add_clip(store, "motion", 100_000.0)  # 1970-01-02
    mark_time(store, certain, False)
    mark_time(store, stamped_1970, True)
    await unlock(client)
    body = await (await client.get("/api/clips")).json()
    assert [(c["id"], c["time_uncertain"]) for c in body["clips"]] == [
        (certain, False),
        (stamped_1970, True),
    ]
    page = await (await client.get("/")).text()
    assert page.count(UNCERTAIN_TITLE) == 1
    assert page.index(certain) < page.index(stamped_1970) < page.index(UNCERTAIN_TITLE)
    day = datetime.datetime.fromtimestamp(100_000.0).astimezone().date().isoformat()
    page = await (await client.get(f"/?day={day}")).text()
    assert stamped_1970 in page and certain not in page and UNCERTAIN_TITLE in page
    player = await (await client.get(f"/clips/{stamped_1970}")).text()
    assert UNCERTAIN_TITLE in player
    assert UNCERTAIN_TITLE not in await (await client.get(f"/clips/{certain}")).text()


async def test_the_status_page_shows_the_clock_and_the_frames(client, context):
    """The clock's line and the frame counts as the service's status() gives them; the
    clock's warning among the warnings; the API passes both on."""
    text = "clock not synchronised: clip times may be wrong until it is; see README, Time"
    last_at = 1_750_000_000.5
    context.status = lambda: {
        "camera": "running",
        "recording": True,
        "clock": {"synchronised": False, "text": text},
        "frames": {"received": 1234, "dropped": 5, "missed": 7, "last_at": last_at},
        "connections": {
            "open": 3,
            "refused_per_client": 30,
            "refused_full": 2,
            "refused_penalty": 10,
            "pushed_out": 9,
        },
        "warnings": [text],
    }
    await unlock(client)
    body = await (await client.get("/api/status")).json()
    assert body["clock"] == {"synchronised": False, "text": text}
    assert body["frames"] == {"received": 1234, "dropped": 5, "missed": 7, "last_at": last_at}
    page = await (await client.get("/status")).text()
    when = datetime.datetime.fromtimestamp(last_at).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    missed = "7 missed (the device fell behind the camera)"
    assert f'<dd id="frames">1234 received, 5 dropped, {missed}; last frame at {when}</dd>' in page
    closed = "9 idle ones closed to make room"
    refused = "42 refused (10 from clients held off for 10 s)"
    assert f'<dd id="connections">3 open; since start {refused}, {closed}</dd>' in page
    assert f'<dd id="clock-state" class="uncertain">{text}</dd>' in page
    assert '<dd id="mqtt">off</dd>' in page and '<dd id="notify">off</dd>' in page
    assert f'<p class="warning" role="alert">{text}</p>' in page


async def test_the_status_page_before_the_first_frame_and_without_clock_facts(client, context):
    context.status = lambda: {
        "camera": "starting",
        "clock": {"synchronised": True, "text": "clock synchronised"},
        "frames": {"received": 0, "dropped": 0, "last_at": None},
    }
    await unlock(client)
    page = await (await client.get("/status")).text()
    assert '<dd id="frames">0 received, 0 dropped; no frame yet</dd>' in page
    assert '<dd id="clock-state">clock synchronised</dd>' in page
    context.status = lambda: {"camera": "starting"}
    page = await (await client.get("/status")).text()
    assert '<dd id="frames">unknown</dd>' in page
    assert '<dd id="clock-state" class="uncertain">unknown</dd>' in page


async def test_an_internal_error_is_a_plain_500(aiohttp_client, context):
    app = make_app(context)

    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("secret detail /var/lib/doorbell/keys")

    app.router.add_get("/broken", broken)
    client = await aiohttp_client(app)
    await unlock(client)
    response = await client.get("/broken")
    text = await response.text()
    assert response.status == 500 and "secret detail" not in text and "Traceback" not in text


async def test_the_status_page_with_a_folder_where_the_recipients_file_was(client, context):
    """keys/recipients.txt replaced by a folder (not text, not a key): the status page and
    the API still answer, with no recipients of their own to show, never a 500."""
    await unlock(client)
    path = context.keyring.recipients_file
    path.unlink()
    path.mkdir()
    response = await client.get("/api/status")
    assert response.status == 200 and (await response.json())["recipients"] == []
    assert (await client.get("/status")).status == 200


# --- DNS rebinding: the device's own name and origin only -----------------------------------


@pytest.mark.parametrize("path", ["/health", "/unlock", "/setup", "/api/status"])
async def test_a_foreign_host_name_is_refused_on_every_route(client, path):
    """A page on evil.example that points its name at the doorbell (DNS rebinding) sends
    Host: evil.example: every route answers 421, before any session or setup check."""
    response = await client.get(path, headers={"Host": "evil.example:8443"})
    assert response.status == 421
    assert "[web] server_names" in await response.text()
    response = await client.post(
        "/api/owners/find", json={"name": "Alice"}, headers={"Host": "evil.example"}
    )
    assert response.status == 421


async def test_the_device_s_own_names_and_addresses_are_answered(aiohttp_client, context):
    """IP addresses (v4, v6), localhost, the hostname, hostname.local and the configured
    server_names all reach the pages."""
    import socket

    context.settings = WebSettings(server_names=["doorbell.lan"])
    client = await aiohttp_client(make_app(context))
    host = socket.gethostname()
    names = ("127.0.0.1:9", "[::1]:8443", "192.168.1.20", "localhost", host, f"{host}.local")
    for name in (*names, "Doorbell.LAN.:8443"):
        response = await client.get("/health", headers={"Host": name})
        assert response.status == 200, name


async def test_a_request_from_another_site_s_page_is_refused(client):
    """A form or fetch from another origin (Origin: https://evil.example) is refused with
    403 even with the right Host; the device's own pages (same origin) and requests with
    no Origin (curl) pass."""
    host = client.server.host + ":" + str(client.server.port)
    own = f"http://{host}"
    for origin, status in (("https://evil.example", 403), ("null", 403), (own, 200), (None, 200)):
        headers = {"Origin": origin} if origin else {}
        response = await client.post("/api/owners/find", json={"name": "A"}, headers=headers)
        assert response.status == status, origin


@pytest.mark.parametrize("chunked", [False, True])
async def test_a_json_body_past_its_routes_size_is_refused_unread(client, chunked):
    """Each route reads at most its own body size (routes.ROUTES: 512 bytes before
    sign-in, 4 KiB for a pairing): one byte more gets 413, with a Content-Length or
    without one (chunked); a body of exactly the size is read."""
    limits = {
        r.path: r.body for r in routes.ROUTES if r.method == "POST" and r.access == routes.PUBLIC
    }
    assert limits["/api/owners/find"] == 512 and limits["/api/pair"] == 4096
    for path in ("/api/owners/find", "/api/login/challenge", "/api/pair"):
        limit = limits[path]
        padding = limit - len(json.dumps({"name": ""}))
        exact = json.dumps({"name": "x" * padding}).encode()
        assert len(exact) == limit
        for body, refused in ((exact + b" ", True), (exact, False)):

            async def pieces(body=body):
                for start in range(0, len(body), 100):
                    yield body[start : start + 100]

            response = await client.post(
                path,
                data=pieces() if chunked else body,
                headers={"Content-Type": "application/json"},
            )
            assert (response.status == 413) == refused, (path, len(body), response.status)
            assert response.status < 500


async def test_head_answers_wherever_get_does(client, store):
    """HEAD is GET without the body, on every GET route, and behind the same guard."""
    assert (await client.head("/health")).status == 200
    clip_id = add_clip(store, "bell", 1_700_000_000)
    assert (await client.head(f"/clips/{clip_id}/file")).status == 401
    await unlock(client)
    response = await client.head(f"/clips/{clip_id}/file")
    assert response.status == 200 and int(response.headers["Content-Length"]) > 0
    assert await response.read() == b""
