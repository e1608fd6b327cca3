"""What the interface works with, and the keys it keeps on the app and the request."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from aiohttp import web

from doorbell.config import WebSettings
from doorbell.events import EventBus
from doorbell.store import ClipStore, Keyring
from doorbell.web.sessions import Session, Sessions, Throttle


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
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep  # the app's background task waits
    work_factor: int | None = None  # scrypt work factor at setup (None: measured)
    tls_fingerprint: str | None = None
    secure_cookies: bool = False
    on_unlock: Callable[[list], object] = lambda identities: None  # e.g. repair cut-off clips


CONTEXT = web.AppKey("context", WebContext)
SESSIONS = web.AppKey("sessions", Sessions)
THROTTLE = web.AppKey("throttle", Throttle)
ACCESS = web.AppKey("access", dict)
SESSION = web.RequestKey("session", Session)  # the caller's unlocked Session


def session_of(request: web.Request) -> Session:
    return request[SESSION]
