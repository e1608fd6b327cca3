"""Ring passes: a browser an owner allowed to hear rings while it is locked.

    passes = RingPasses(LIFETIME_SECONDS, clock=time.monotonic)
    ring_pass = passes.issue(owner_id)           # the owner, signed in, allows this browser
    response.set_cookie(COOKIE, ring_pass.token, path=PATH, max_age=LIFETIME_SECONDS, ...)
    ring_pass = passes.get(token)                # None: ended, past its lifetime or unknown
    passes.end_owner(owner_id, "removed")        # removal, "sign out everywhere"

A phone left on the hall table locks after its idle time, and an owner still wants it
to chime when someone rings. A pass lets its browser open one stream, ``GET
/api/rings``, which carries the time of each ring and nothing else: no clip, no
picture, no motion, no clip id. That is all a pass can ever reveal, so it may live long:
:data:`LIFETIME_SECONDS` (30 days), where a session lasts hours. It does not end when
the session locks (idle, the Lock button, the session's lifetime): that is its point.
It ends when its browser turns it off, when the owner signs out everywhere or is
removed, when a newer pass takes its place (the same browser again, or past
:data:`CAP` passes in all), at its lifetime, and when the doorbell stops.

Passes are kept in memory only: the device keeps no new secret on disk, so a restart
ends them all and each browser must be allowed again by an unlocked owner (the page
says so). An ended pass's ``ended`` event is set with its reason, as a session's is, so
its open stream tells the page at once.
"""

import asyncio
import secrets
import threading
from collections.abc import Callable

COOKIE = "doorbell_rings"
PATH = "/api/rings"  # the cookie goes only to the ring routes, never with pages or clips
LIFETIME_SECONDS = 30 * 24 * 3600  # a phone on a hall table; a pass tells only "someone rang"
CAP = 8  # passes in all (a household's phones and tablets); the oldest gives way

# Why a pass ended, as the page words it.
TURNED_OFF, REPLACED, EXPIRED, REMOVED, EVERYWHERE, SHUTDOWN = (
    "turned off",
    "replaced",
    "expired",
    "removed",
    "signed out everywhere",
    "shutdown",
)


class RingPass:
    """One browser's leave to hear rings: its random token (the cookie), whose, since
    when (the clock's seconds); ``ended`` is set, with ``end_reason``, when it ends."""

    def __init__(self, owner_id: str, now: float) -> None:
        self.token = secrets.token_urlsafe(32)
        self.owner_id = owner_id
        self.created = now
        self.end_reason: str | None = None
        self.ended = asyncio.Event()

    def end(self, reason: str) -> None:
        if self.end_reason is None:
            self.end_reason = reason
        self.ended.set()


class RingPasses:
    """Every live pass, oldest first. Thread-safe; the clock (monotonic seconds) is
    injected. ``lifetime_seconds`` past its issue a pass ends (reason ``expired``);
    issuing one more than ``cap`` ends the oldest (reason ``replaced``)."""

    def __init__(self, lifetime_seconds: float, clock: Callable[[], float], cap: int = CAP) -> None:
        if cap < 1:
            raise ValueError(f"a cap of ring passes must be at least 1, not {cap}")
        self.lifetime_seconds = lifetime_seconds
        self.cap = cap
        self._clock = clock
        self._passes: dict[str, RingPass] = {}  # insertion order: oldest first
        self._lock = threading.Lock()  # guards _passes; the loop and test threads share it

    def issue(self, owner_id: str) -> RingPass:
        """A new pass for ``owner_id``; at the cap, the oldest pass ends (``replaced``)."""
        ring_pass = RingPass(owner_id, self._clock())
        with self._lock:
            pushed_out = []
            while len(self._passes) >= self.cap:
                pushed_out.append(self._passes.pop(next(iter(self._passes))))
            self._passes[ring_pass.token] = ring_pass
        for old in pushed_out:
            old.end(REPLACED)
        return ring_pass

    def get(self, token: str | None) -> RingPass | None:
        """The live pass for ``token``; one past its lifetime is ended on the way."""
        if not token:
            return None
        now = self._clock()
        with self._lock:
            ring_pass = self._passes.get(token)
            if ring_pass is None:
                return None
            over = now - ring_pass.created > self.lifetime_seconds
            if over:
                del self._passes[token]
        if over:
            ring_pass.end(EXPIRED)
            return None
        return ring_pass

    def end(self, token: str | None, reason: str = TURNED_OFF) -> bool:
        """End the pass for ``token``; whether there was one."""
        with self._lock:
            ring_pass = self._passes.pop(token or "", None)
        if ring_pass is None:
            return False
        ring_pass.end(reason)
        return True

    def end_owner(self, owner_id: str, reason: str) -> int:
        """End every pass of ``owner_id``; how many."""
        return self._end_where(lambda p: p.owner_id == owner_id, reason)

    def end_all(self, reason: str = SHUTDOWN) -> int:
        """End every pass (the doorbell stops); how many."""
        return self._end_where(lambda p: True, reason)

    def _end_where(self, match: Callable[[RingPass], bool], reason: str) -> int:
        with self._lock:
            tokens = [t for t, p in self._passes.items() if match(p)]
            dropped = [self._passes.pop(t) for t in tokens]
        for ring_pass in dropped:
            ring_pass.end(reason)
        return len(dropped)

    def __len__(self) -> int:
        with self._lock:
            return len(self._passes)
