"""What the interface works with, and the keys it keeps on the app and the request."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from aiohttp import web

from doorbell.config import WebSettings
from doorbell.events import EventBus
from doorbell.owners import Challenges, Owners, SetupCode, Throttle
from doorbell.store import ClipStore, Keyring
from doorbell.web.guard import ConnectionGuard
from doorbell.web.ring_passes import RingPass, RingPasses
from doorbell.web.sessions import Session, Sessions

BROWSER_WORK_FACTOR = 16  # scrypt log2 N for an owner's passphrase, in their browser: 64 MiB


class LiveSource(Protocol):
    """The camera's latest masked picture, for the live view."""

    def latest_jpeg(self) -> tuple[int, bytes] | None: ...  # (frame number, JPEG)
    def watching(self, delta: int) -> None: ...  # a viewer came (+1) or left (-1)


@dataclass
class WebContext:
    store: ClipStore
    keyring: Keyring
    settings: WebSettings = field(default_factory=WebSettings)
    bus: EventBus | None = None
    live: LiveSource | None = None
    status: Callable[[], dict] = dict
    press_bell: Callable[[], None] | None = None  # the demo's mock button; None: no such route
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], float] = time.time  # throttle and invite times, kept on disk
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep  # the app's background task waits
    work_factor: int = BROWSER_WORK_FACTOR  # what owners' browsers wrap identities with
    tls_fingerprint: str | None = None
    secure_cookies: bool = False
    node_modules: Path | None = None  # the browser's age library (web.vendor); None: found
    guard: ConnectionGuard | None = None  # the listener's connection limits (web.guard)

    @property
    def data_dir(self) -> Path:
        return self.keyring.folder.parent


CONTEXT = web.AppKey("context", WebContext)
SESSIONS = web.AppKey("sessions", Sessions)
RING_PASSES = web.AppKey("ring_passes", RingPasses)
OWNERS = web.AppKey("owners", Owners)
SETUP_CODE = web.AppKey("setup_code", SetupCode)
CHALLENGES = web.AppKey("challenges", Challenges)
THROTTLE = web.AppKey("throttle", Throttle)
ACCESS = web.AppKey("access", dict)
SESSION = web.RequestKey("session", Session)  # the caller's signed-in Session
RING_PASS = web.RequestKey("ring_pass", RingPass)  # the caller's ring pass (RINGS routes)
BODY_LIMIT = web.RequestKey("body_limit", int)  # bytes the route's JSON body may have


def session_of(request: web.Request) -> Session:
    return request[SESSION]
