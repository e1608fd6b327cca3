"""Unlocked sessions: the owner's identities in memory, for as long as they are used.

    sessions = Sessions(idle_seconds=900, clock=time.monotonic)
    session = sessions.open(identities)          # after the passphrase was right
    response.set_cookie(COOKIE, session.token, ...)
    session = sessions.get(token)                 # None: locked, expired or unknown

A session holds the identities (law 2: the recorder never does), a CSRF
token and a cache of opened clips. It ends after ``idle_seconds`` without a
request, or when the owner locks it; then its identities and opened clips are
dropped. Failed unlocks are slowed down by :class:`Throttle`: growing waits,
the same for every client (there is one owner, and one passphrase to guess).
"""

import hmac
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from doorbell import vault

if TYPE_CHECKING:
    from doorbell.vault.payload import OpenedPayload

COOKIE = "doorbell_session"
FREE_FAILURES = 3  # wrong passphrases allowed before any wait
MAX_DELAY = 300.0  # seconds


class ClipCache(Protocol):
    """A session's opened clips (``web.playback.PayloadCache``), closed on lock."""

    def get(self, clip_id: str, opener: "Callable[[], OpenedPayload]") -> "OpenedPayload": ...
    def evict(self, clip_id: str) -> None: ...
    def close(self) -> None: ...


class Session:
    def __init__(
        self, identities: Sequence[vault.Identity], now: float, cache: ClipCache | None
    ) -> None:
        self.token = secrets.token_urlsafe(32)
        self.csrf = secrets.token_urlsafe(32)
        self.identities = list(identities)
        self.last_used = now
        self.cache = cache  # per-session opened clips (closed on lock)

    def csrf_ok(self, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(token.encode(), self.csrf.encode())

    def drop(self) -> None:
        self.identities = []
        if self.cache is not None:
            self.cache.close()


class Sessions:
    """Every unlocked session. Thread-safe; the clock is injected."""

    def __init__(
        self,
        idle_seconds: float,
        clock: Callable[[], float],
        cache_factory: Callable[[], ClipCache | None] = lambda: None,
    ) -> None:
        self.idle_seconds = idle_seconds
        self._clock = clock
        self._cache_factory = cache_factory
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def open(self, identities: Sequence[vault.Identity]) -> Session:
        session = Session(identities, self._clock(), self._cache_factory())
        with self._lock:
            self._sessions[session.token] = session
        return session

    def get(self, token: str | None, *, touch: bool = True) -> Session | None:
        """The live session for ``token``; an idle one is locked on the way."""
        if not token:
            return None
        now = self._clock()
        with self._lock:
            session = self._sessions.get(token)
            if session is None:
                return None
            if now - session.last_used > self.idle_seconds:
                del self._sessions[token]
                session.drop()
                return None
            if touch:
                session.last_used = now
            return session

    def lock(self, token: str | None) -> bool:
        with self._lock:
            session = self._sessions.pop(token or "", None)
        if session is None:
            return False
        session.drop()
        return True

    def lock_all(self) -> None:
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            session.drop()

    def expire(self) -> int:
        """Lock every idle session now; how many."""
        now = self._clock()
        with self._lock:
            idle = [t for t, s in self._sessions.items() if now - s.last_used > self.idle_seconds]
            dropped = [self._sessions.pop(t) for t in idle]
        for session in dropped:
            session.drop()
        return len(dropped)

    def __len__(self) -> int:
        return len(self._sessions)


def unlock_delay(failures: int) -> float:
    """Seconds to wait after ``failures`` wrong passphrases in a row before trying again.

    The first few are free (typos); then 1, 2, 4 … seconds, at most five minutes.
    """
    if failures < FREE_FAILURES:
        return 0.0
    return min(MAX_DELAY, 2.0 ** (failures - FREE_FAILURES))


@dataclass
class Throttle:
    """Growing waits after failed unlocks. ``wait()`` is how long until the next try."""

    clock: Callable[[], float]
    failures: int = 0
    last_failure: float = field(default=float("-inf"))

    def wait(self) -> float:
        ready_at = self.last_failure + unlock_delay(self.failures)
        return max(0.0, ready_at - self.clock())

    def failed(self) -> None:
        self.failures += 1
        self.last_failure = self.clock()

    def succeeded(self) -> None:
        self.failures = 0
        self.last_failure = float("-inf")
