"""Every route of the interface, and who may use it: the one table.

``public``: anyone on the network: health, the pairing and unlock pages and
their calls (each guessable secret behind the throttle), the static files and
the browser's age library those pages need. ``owner``: a signed-in session, and
for anything that changes state, its CSRF token in ``X-CSRF-Token``. ``ring pass``:
a browser an owner allowed to hear rings while locked (web.ring_passes: its cookie,
sent only to ``/api/rings``, SameSite=Strict, so no CSRF token); it opens the ring
routes and nothing else, and the ring stream tells only when someone rang. A route
missing from this table is refused to everyone but an owner (tests walk the
router to prove it). No route hands out anything the device could decrypt.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from doorbell.web import auth, files, streams, views

PUBLIC, OWNER, RINGS = "public", "owner", "ring pass"
# A pairing or passphrase change carries a wrapped identity (an age scrypt file of about
# 400 bytes, 2 KiB at most as base64) and a few short fields; every other body is a name,
# an id or a 32-byte answer.
PAIR_BODY = 4096
SMALL_BODY = 512


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    access: str
    page: bool = False  # an HTML page: a locked visitor is sent to the unlock page
    body: int = 64  # bytes of JSON the route reads (413 beyond; 64: an empty object)


ROUTES = (
    Route("GET", "/health", views.health, PUBLIC),
    Route("GET", "/unlock", auth.unlock_page, PUBLIC, page=True),
    Route("GET", "/setup", auth.setup_page, PUBLIC, page=True),
    Route("POST", "/api/pair", auth.pair, PUBLIC, body=PAIR_BODY),
    Route("POST", "/api/owners/find", auth.find_owner, PUBLIC, body=SMALL_BODY),
    Route("POST", "/api/owners/release", auth.release, PUBLIC, body=SMALL_BODY),
    Route("POST", "/api/login/challenge", auth.login_challenge, PUBLIC, body=SMALL_BODY),
    Route("POST", "/api/login", auth.login, PUBLIC, body=SMALL_BODY),
    Route("GET", "/", views.clips_page, OWNER, page=True),
    Route("GET", "/clips/{id}", views.player_page, OWNER, page=True),
    Route("GET", "/clips/{id}/file", files.clip_file, OWNER),
    Route("GET", "/clips/{id}/recording", files.growing_file, OWNER),
    Route("GET", "/clips/{id}/index", files.clip_index, OWNER),
    Route("GET", "/clips/{id}/thumbnail", files.thumbnail, OWNER),
    Route("GET", "/live", views.live_page, OWNER, page=True),
    Route("GET", "/live.mjpeg", streams.live_stream, OWNER),
    Route("GET", "/status", views.status_page, OWNER, page=True),
    Route("GET", "/owners", auth.owners_page, OWNER, page=True),
    Route("POST", "/api/lock", auth.lock, OWNER),
    Route("GET", "/api/owners", auth.api_owners, OWNER),
    Route("POST", "/api/invites", auth.invite, OWNER, body=SMALL_BODY),
    Route("DELETE", "/api/owners/{id}", auth.remove_owner, OWNER),
    Route("POST", "/api/sign-out-everywhere", auth.sign_out_everywhere, OWNER),
    Route("POST", "/api/passphrase", auth.change_passphrase, OWNER, body=PAIR_BODY),
    Route("GET", "/api/clips", views.api_clips, OWNER),
    Route("POST", "/api/clips/{id}/keep", views.api_keep, OWNER, body=SMALL_BODY),
    Route("DELETE", "/api/clips/{id}", views.api_delete, OWNER),
    Route("POST", "/api/bell", views.api_bell, OWNER),
    Route("GET", "/api/events", streams.events, OWNER),
    Route("GET", "/api/status", views.api_status, OWNER),
    Route("POST", "/api/rings/pass", auth.allow_rings, OWNER),
    Route("GET", "/api/rings/pass", auth.ring_pass_state, RINGS),
    Route("DELETE", "/api/rings/pass", auth.stop_rings, RINGS),
    Route("GET", "/api/rings", streams.rings, RINGS),
)

STATIC_PREFIX = "/static/"  # public: the style sheet and scripts of every page
VENDOR_PREFIX = "/vendor/"  # public: the browser's age library, from node_modules (web.vendor)
