"""Push notifications through Apprise to services the owner runs: opt-in, text only.

    settings = NotifySettings(enabled=True, urls_file="/etc/doorbell/notify.urls")
    notifier = Notifier(settings, read_urls(settings.urls_file), clock=time.time,
                        sleep=asyncio.sleep, base_url="https://doorbell.local:8443/")
    group.create_task(notifier.run())               # sends, in order, retries
    group.create_task(notifier.follow(bus.subscribe()))   # or notifier.offer(event)
    notifier.describe()     # "sent 3, last at 14:02; 0 waiting"

The owner writes Apprise URLs (``ntfy://nas.lan/doorbell``, ``gotify://…``,
``matrix://…``, ``mailtos://…``, ``hassio://…``), one a line, in a file of their own
(:func:`doorbell.notify_text.read_urls`); the config names the file, never a secret.
A ring says "Someone rang at 14:02", motion (off by default) "Motion at the door at
14:05": never an image, a thumbnail or a clip id, and the doorbell's page address only
if the owner turns ``link`` on.

A failing service never delays or drops a ring anywhere else: :meth:`Notifier.offer`
only puts a notice on each URL's bounded queue (32; when full the oldest motion notice
goes, a ring is kept over motion; counted) and returns. Each URL has a task of its own
that sends in order from a daemon thread (Apprise's services use blocking ``requests``)
and retries a failed send after 2, 4, 8 … 300 s, :data:`~doorbell.notify_text.TRIES`
times, then gives that notice up. One slow service does not hold up another.

Apprise itself (imported only when a notifier is made or URLs are checked, its log kept
apart, the checks of a URL by its own parsing: :func:`check_urls_file`,
:func:`url_problems`) is :mod:`doorbell.notify_apprise`;
``import doorbell.notify`` stays cheap. Apprise's own log lines can carry a URL's token:
the notifier logs its own line instead (service and reason, never the URL).
"""

import asyncio
import contextlib
import logging
import math
import threading
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any

from doorbell import notify_apprise
from doorbell import notify_text as text
from doorbell.notify_text import (
    MOTION,
    RING,
    Kind,
    Notice,
    NotifySettings,
    NotifyUrlsError,
    read_url_lines,
    read_urls,
)

if TYPE_CHECKING:
    from doorbell.events import Event

__all__ = ["Notifier", "NotifySettings", "NotifyUrlsError", "read_url_lines", "read_urls"]
__all__ += ["settings_problem"]
settings_problem = text.settings_problem

log = logging.getLogger(__name__)
QUEUE_BOUND = 32  # notices waiting for one URL


async def _in_thread(fn: Callable[[], Any], name: str) -> Any:
    """``fn()`` on a daemon thread of its own, awaited. A daemon, so that a send stuck in
    a slow service (Apprise's timeouts: 4 s to connect, 4 s to read, unless the URL says
    ``cto=``/``rto=``) never holds up the process's exit, nor the loop's executor."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def main() -> None:
        try:
            result = (True, fn())
        except Exception as err:  # handed to the awaiting side, which reports it
            result = (False, err)
        with contextlib.suppress(RuntimeError):  # the loop closed while we sent
            loop.call_soon_threadsafe(_settle, future, result)

    threading.Thread(target=main, name=name, daemon=True).start()
    return await future


def _settle(future: asyncio.Future[Any], result: tuple[bool, Any]) -> None:
    if not future.done():
        ok, value = result
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


class _Target:
    """One owner URL: its queue, its send thread, its state for the status page."""

    def __init__(self, number: int, url: str, asset: Any, tries: int) -> None:
        self.scheme = text.scheme_of(url)
        self.number = number
        self.plugins: dict[Kind, Any] = {}
        for kind in (RING, MOTION):
            plugin, _ = notify_apprise.service(text.kind_url(url, kind), asset)
            if plugin is None:
                raise NotifyUrlsError(f"notify URL {number}: {self.scheme}: Apprise cannot use it")
            if self.scheme in text.UNPACED:
                plugin.request_rate_per_sec = 0
            self.plugins[kind] = plugin
        self.tries = tries
        self.waiting: deque[Notice] = deque()
        self.current: Notice | None = None
        self.wake = asyncio.Event()
        self.sent = 0
        self.last_at: float | None = None
        self.dropped = 0
        self.given_up = 0
        self.failing = ""  # the last failure's reason while not sent since
        self.retry_at: float | None = None

    def put(self, notice: Notice, bound: int) -> None:
        drop = text.to_drop([n.kind for n in self.waiting], notice.kind, bound)
        if drop is not None:
            self.dropped += 1
            if drop == -1:
                return
            del self.waiting[drop]
        self.waiting.append(notice)
        self.wake.set()

    async def send(self, notice: Notice) -> tuple[bool, str]:
        try:
            name = f"notify-{self.number}-{self.scheme}"
            plugin = self.plugins[notice.kind]
            result: tuple[bool, str] = await _in_thread(
                lambda: notify_apprise.send(plugin, title=notice.title, body=notice.body), name
            )
        except Exception as err:  # a bug or a surprise in the service's module: reported
            return False, f"error in Apprise ({type(err).__name__})"
        return result

    async def run(
        self, clock: Callable[[], float], sleep: Callable[[float], Awaitable[object]]
    ) -> None:
        while True:
            while not self.waiting:
                self.wake.clear()
                await self.wake.wait()
            self.current = notice = self.waiting.popleft()
            for attempt in range(1, self.tries + 1):
                ok, reason = await self.send(notice)
                if ok:
                    self.sent, self.last_at, self.failing = self.sent + 1, clock(), ""
                    break
                self.failing = reason
                if attempt == self.tries:
                    self.given_up += 1
                    log.warning(
                        "notify: %s (URL %d): %s; gave up on a %s notice after %d tries",
                        self.scheme, self.number, reason, notice.kind, attempt,
                    )  # fmt: skip
                    break
                delay = text.backoff(attempt)
                log.warning(
                    "notify: %s (URL %d): %s; retry in %.0f s",
                    self.scheme, self.number, reason, delay,
                )  # fmt: skip
                self.retry_at = clock() + delay
                try:
                    await sleep(delay)
                finally:
                    self.retry_at = None
            self.current = None

    def describe(self, now: float, tz: tzinfo | None, named: bool) -> str:
        waiting = len(self.waiting) + (self.current is not None)
        if self.failing:
            parts = [f"failing: {self.scheme}: {self.failing}"]
            if self.retry_at is not None:
                parts.append(f"retry in {max(0, math.ceil(self.retry_at - now))} s")
        else:
            head = f"{self.scheme}: " if named else ""
            last = (
                f", last at {datetime.fromtimestamp(self.last_at, tz):%H:%M}"
                if self.last_at is not None
                else ""
            )
            parts = [f"{head}sent {self.sent}{last}"]
        parts.append(f"{waiting} waiting")
        if self.dropped:
            parts.append(f"{self.dropped} dropped")
        if self.given_up:
            parts.append(f"{self.given_up} given up")
        return "; ".join(parts)


class Notifier:
    """Pushes ring (and, if wanted, motion) notices to the owner's Apprise URLs.

    ``clock``: wall-clock seconds (``time.time``), for "last at" and "retry in";
    ``sleep``: ``asyncio.sleep`` (tests pass one that returns at once); ``base_url``: the
    doorbell's page, added to the text only if ``settings.link``; ``tz``: the zone of the
    times in the text (None: the system's); ``synchronised``: whether the system clock is
    set (``lambda: clock.read().synchronised``): while it says False, the text has no
    time (a Pi without a battery clock may think it is 1970).

    Raises:
        NotifyUrlsError: a URL Apprise cannot use (message: its number and service).
    """

    def __init__(
        self,
        settings: NotifySettings,
        urls: Sequence[str],
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[object]],
        base_url: str = "",
        tz: tzinfo | None = None,
        synchronised: Callable[[], bool | None] = lambda: None,
        bound: int = QUEUE_BOUND,
        tries: int = text.TRIES,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._sleep = sleep
        self._link = base_url if settings.link else ""
        self._tz = tz
        self._synchronised = synchronised
        self._bound = bound
        self._last_ring: float | None = None
        self._last_motion: float | None = None
        asset = notify_apprise.asset() if urls else None
        self._targets = [_Target(n, url, asset, tries) for n, url in enumerate(urls, 1)]

    def offer(self, event: "Event") -> None:
        """From the event loop: queue a notice for ``event`` if it deserves one. Never waits."""
        kind = text.wants_notice(
            event,
            bell=self.settings.bell,
            motion=self.settings.motion,
            last_ring=self._last_ring,
            last_motion=self._last_motion,
        )
        if kind is None:
            return
        at: float = event.at  # type: ignore[union-attr]  # a ring or motion: it has a time
        if kind == RING:
            self._last_ring = at
        else:
            self._last_motion = at
        shown = at if self._synchronised() is not False else None
        title, body = text.notice_text(kind, shown, tz=self._tz, link=self._link)
        notice = Notice(kind, at, title, body)
        for target in self._targets:
            target.put(notice, self._bound)

    async def follow(self, events: "AsyncIterator[Event]") -> None:
        """Offer every event of ``events`` (a bus subscription) until cancelled."""
        async for event in events:
            self.offer(event)

    async def run(self) -> None:
        """Send until cancelled, each URL in order on its own; never raises otherwise.
        A send under way when cancelled finishes on its daemon thread, unheard."""
        async with asyncio.TaskGroup() as group:
            for target in self._targets:
                group.create_task(target.run(self._clock, self._sleep))

    @property
    def failing(self) -> bool:
        """True while a URL's last send failed (for systemd's STATUS= and warnings)."""
        return any(t.failing for t in self._targets)

    @property
    def waiting(self) -> int:
        """Notices not yet sent, over every URL."""
        return sum(len(t.waiting) + (t.current is not None) for t in self._targets)

    def counts(self) -> dict[str, int]:
        """Sent, dropped and given-up notices, over every URL."""
        return {
            "sent": sum(t.sent for t in self._targets),
            "dropped": sum(t.dropped for t in self._targets),
            "given_up": sum(t.given_up for t in self._targets),
            "waiting": self.waiting,
        }

    def describe(self) -> str:
        """One line for the status page: "sent 3, last at 14:02; 0 waiting", or
        "failing: ntfy: HTTP 500; retry in 8 s; 2 waiting"; URLs joined by " | ".
        Names services by scheme, never a URL."""
        if not self._targets:
            return "no URLs"
        now, named = self._clock(), len(self._targets) > 1
        return " | ".join(t.describe(now, self._tz, named) for t in self._targets)
