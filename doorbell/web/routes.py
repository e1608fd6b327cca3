"""Every route of the interface, and who may use it: the one table.

``public``: anyone on the network (health, the unlock page and its call, the
static files those pages need). ``setup``: only while there is no owner
identity yet. ``owner``: an unlocked session, and for anything that changes
state, its CSRF token in ``X-CSRF-Token``. A route missing from this table
is refused to everyone but the owner (tests walk the router to prove it).
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from doorbell.web import streams, views

PUBLIC, SETUP, OWNER = "public", "setup", "owner"


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    access: str
    page: bool = False  # an HTML page: a locked visitor is sent to the unlock page


ROUTES = (
    Route("GET", "/health", views.health, PUBLIC),
    Route("GET", "/unlock", views.unlock_page, PUBLIC, page=True),
    Route("POST", "/api/unlock", views.unlock, PUBLIC),
    Route("GET", "/setup", views.setup_page, SETUP, page=True),
    Route("POST", "/api/setup", views.setup, SETUP),
    Route("GET", "/", views.clips_page, OWNER, page=True),
    Route("GET", "/clips/{id}", views.player_page, OWNER, page=True),
    Route("GET", "/clips/{id}/video", views.video, OWNER),
    Route("GET", "/clips/{id}/thumbnail", views.thumbnail, OWNER),
    Route("GET", "/live", views.live_page, OWNER, page=True),
    Route("GET", "/live.mjpeg", streams.live_stream, OWNER),
    Route("GET", "/status", views.status_page, OWNER, page=True),
    Route("POST", "/api/lock", views.lock, OWNER),
    Route("GET", "/api/clips", views.api_clips, OWNER),
    Route("POST", "/api/clips/{id}/keep", views.api_keep, OWNER),
    Route("DELETE", "/api/clips/{id}", views.api_delete, OWNER),
    Route("POST", "/api/bell", views.api_bell, OWNER),
    Route("GET", "/api/events", streams.events, OWNER),
    Route("GET", "/api/status", views.api_status, OWNER),
)

STATIC_PREFIX = "/static/"  # public: the style sheet and script of the unlock page
