"""Signed-in sessions: which owner a browser is, for how long. No key is ever in one.

    sessions = Sessions(idle_seconds=900, lifetime_seconds=12 * 3600, clock=time.monotonic)
    session = sessions.open(owner_id)            # after the owner answered a login challenge
    response.set_cookie(COOKIE, session.token, ...)
    session = sessions.get(token)                # None: ended, expired or unknown
    sessions.end_owner(owner_id, "removed")      # removal, "sign out everywhere"

A session belongs to one owner and ends when it is idle for ``idle_seconds``, when it
is ``lifetime_seconds`` old however busy (so a session cannot outlive the owner's
intent), when the owner locks it, signs out everywhere or is removed. The clips stay
encrypted on the device whatever a session is: it only lets a browser fetch ciphertext
and metadata, and the owner's browser decrypts. An ended session's ``ended`` event is
set with its reason, so an open tab's event stream tells the page at once.
"""

import asyncio
import hmac
import secrets
import threading
from collections.abc import Callable

COOKIE = "doorbell_session"

# Why a session ended, as the page words it.
IDLE, LOCKED, EXPIRED, REMOVED, EVERYWHERE, SHUTDOWN = (
    "idle",
    "locked",
    "expired",
    "removed",
    "signed out everywhere",
    "shutdown",
)


class Session:
    def __init__(self, owner_id: str, now: float) -> None:
        self.token = secrets.token_urlsafe(32)
        self.csrf = secrets.token_urlsafe(32)
        self.owner_id = owner_id
        self.created = now
        self.last_used = now
        self.end_reason: str | None = None
        self.ended = asyncio.Event()

    def csrf_ok(self, token: str | None) -> bool:
        """Whether ``token`` (a header's text: bytes that are not UTF-8 come as lone
        surrogates) is this session's CSRF token."""
        if token is None:
            return False
        return hmac.compare_digest(token.encode("utf-8", "surrogatepass"), self.csrf.encode())

    def end(self, reason: str) -> None:
        if self.end_reason is None:
            self.end_reason = reason
        self.ended.set()


class Sessions:
    """Every live session. Thread-safe; the clock (monotonic seconds) is injected."""

    def __init__(
        self, idle_seconds: float, lifetime_seconds: float, clock: Callable[[], float]
    ) -> None:
        self.idle_seconds = idle_seconds
        self.lifetime_seconds = lifetime_seconds
        self._clock = clock
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def open(self, owner_id: str) -> Session:
        session = Session(owner_id, self._clock())
        with self._lock:
            self._sessions[session.token] = session
        return session

    def _over(self, session: Session, now: float) -> str | None:
        if now - session.created > self.lifetime_seconds:
            return EXPIRED
        if now - session.last_used > self.idle_seconds:
            return IDLE
        return None

    def get(self, token: str | None, *, touch: bool = True) -> Session | None:
        """The live session for ``token``; one past its time is ended on the way."""
        if not token:
            return None
        now = self._clock()
        with self._lock:
            session = self._sessions.get(token)
            if session is None:
                return None
            reason = self._over(session, now)
            if reason is not None:
                del self._sessions[token]
            elif touch:
                session.last_used = now
        if reason is not None:
            session.end(reason)
            return None
        return session

    def end(self, token: str | None, reason: str = LOCKED) -> bool:
        with self._lock:
            session = self._sessions.pop(token or "", None)
        if session is None:
            return False
        session.end(reason)
        return True

    def end_owner(self, owner_id: str, reason: str) -> int:
        """End every session of ``owner_id``; how many."""
        return self._end_where(lambda s: s.owner_id == owner_id, reason)

    def end_all(self, reason: str = SHUTDOWN) -> int:
        return self._end_where(lambda s: True, reason)

    def expire(self) -> int:
        """End every session past its idle time or lifetime now; how many."""
        now = self._clock()
        ended = 0
        with self._lock:
            over = [(t, r) for t, s in self._sessions.items() if (r := self._over(s, now))]
            dropped = [(self._sessions.pop(t), r) for t, r in over]
        for session, reason in dropped:
            session.end(reason)
            ended += 1
        return ended

    def _end_where(self, match: Callable[[Session], bool], reason: str) -> int:
        with self._lock:
            tokens = [t for t, s in self._sessions.items() if match(s)]
            dropped = [self._sessions.pop(t) for t in tokens]
        for session in dropped:
            session.end(reason)
        return len(dropped)

    def owners_signed_in(self) -> set[str]:
        with self._lock:
            return {s.owner_id for s in self._sessions.values()}

    def __len__(self) -> int:
        return len(self._sessions)
