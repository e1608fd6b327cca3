"""Connection limits, kept where connections are accepted: the network side can never
take the descriptors the camera, encoder and store need.

    limits = reserve_descriptors()                 # raise RLIMIT_NOFILE; the caps that fit
    guard = ConnectionGuard(limits)
    runner = web.AppRunner(app, **HANDLER_LIMITS)  # header sizes, idle time, read buffer
    site = GuardedSite(runner, guard.listen(host, port), ssl_context=...)
    guard.started(fd) / guard.finished(fd)         # web.app's middleware: in a request

Every connection is counted from the moment it is accepted (before TLS, before a byte of
HTTP), by the accepted socket itself: its ``close`` tells the guard. Beyond
``per_client`` connections from one client (an IPv4 address, an IPv6 /64: the
throttle's :func:`~doorbell.owners.throttle.client_key`) a new one is refused at once
with a reset. When ``max_connections`` are open, a new connection pushes out the one
that has waited longest without a request in progress. Never pushed out: one inside a
request (an event stream, say), one that has carried an owner's signed-in request. A
client an owner has signed in from (:meth:`ConnectionGuard.trust`) may push out any
other; an unknown client only a connection idle for :data:`STRANGER_WAIT` or more and
none whose response ended under :data:`PUSH_GRACE` ago, so a flood of strangers refuses
itself instead of pushing each other out thousands of times a second. If none can go,
the new one is refused. A client that sent a body too big or too slow for its route
(413, 408: never a page's doing) is refused at accept for :data:`PENALTY_SECONDS`, so a
flood of such requests costs a reset each, not a parsed request each. So is a client
whose requests keep being refused (401, 403, 421, 429: more than
:data:`REFUSED_BURST` at once, then more than one every :data:`REFUSED_INTERVAL` s); a
locked page's few stray requests, or a tab too many, stay far below that. Strangers
(clients no owner signed in from) also share one budget (:data:`STRANGERS_REFUSED_BURST`,
then one every :data:`STRANGERS_REFUSED_INTERVAL` s): past it, a stranger refused more
than :data:`STRANGER_GRACE` times lately is penalized too, so many addresses together
cannot make the service parse a thousand refused requests a second.
Refusals cost a counter (:attr:`ConnectionGuard.counts`), never a log line.

Idle and slow-header connections are closed by aiohttp's own keep-alive timer, which
runs from the moment a connection opens until its request's headers are complete
(:data:`IDLE_SECONDS`); a TLS handshake has :data:`HANDSHAKE_SECONDS`.
"""

import asyncio
import contextlib
import resource
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from aiohttp import web

from doorbell.owners.throttle import client_key

MAX_CONNECTIONS = 64  # all clients: a house's browsers use a few dozen at most (6 a browser)
PER_CLIENT = 24  # one browser opens 6 per host (HTTP/1.1); a grid of thumbnails, a player
# Descriptors kept for everything but connections: camera, encoder, the clip and its
# index, thumbnails, the store's folders, logging, the event loop, threads, systemd.
# The service uses about 30 (measured with /proc/PID/fd while recording).
RESERVED_DESCRIPTORS = 96
IDLE_SECONDS = 15.0  # from accept (or the last response) to a complete request header
HANDSHAKE_SECONDS = 10.0  # a TLS handshake
PUSH_GRACE = 1.0  # s: a connection whose response just ended may still be sending it
STRANGER_WAIT = 1.0  # s idle before a stranger's newcomer may push a connection out
PENALTY_SECONDS = 10.0  # a client that sent a body too big or too slow: refused this long
PENALTY_STATUSES = frozenset({408, 413})
REFUSED_STATUSES = frozenset({401, 403, 421, 429})
REFUSED_BURST = 60  # refused requests a client may have at once (a locked grid: 24)
REFUSED_INTERVAL = 0.2  # then one every 0.2 s (5 a second) before it is refused at accept
# Strangers (clients no owner signed in from) all together: 200 addresses each within its
# own budget were 1,000 parsed refusals a second, half a core, and the bell's p99 past
# 100 ms. Past this shared budget, a stranger refused more than STRANGER_GRACE times
# lately is penalized at once; one that was hardly refused (a new phone's locked page)
# is not.
STRANGERS_REFUSED_BURST = 240  # ten locked grids at once
STRANGERS_REFUSED_INTERVAL = 0.02  # then 50 a second
STRANGER_GRACE = 8
MAX_PENALTIES = 4096  # clients held at once (an IPv6 /64 each, at most)
TRUSTED_CLIENTS = 64  # clients owners signed in from, remembered (the oldest forgotten)
# refused in one go before the event loop gets a turn: asyncio accepts up to its backlog
# (128) at a time, and a refusal ends that (BlockingIOError), so this bounds the turn; at
# 64 a flood stalled the loop 120 ms now and then (bell p99 under 1,000 idle clients)
REFUSALS_PER_ACCEPT = 8
# What aiohttp's request handler may hold for one connection: a request line and header
# lines of 4 KiB at most (the pages' longest URL is under 200 bytes), 64 headers, a
# 16 KiB read buffer (it reads ahead of the handler at most twice that), the idle
# time from accept, or from the last response, to a complete request header, and no
# lingering over an unread body.
HANDLER_LIMITS: dict[str, Any] = {
    "keepalive_timeout": IDLE_SECONDS,
    "max_line_size": 4096,
    "max_field_size": 4096,
    "max_headers": 64,
    "read_bufsize": 16384,
    # a body left unread (refused by its size or the throttle before it was read) is not
    # read to its end: the connection closes (the pages' bodies arrive whole with their
    # headers, so they never meet this)
    "lingering_time": 0.0,
}
# The kernel's receive buffer for a connection (it doubles it): what one read from the
# socket can return, so a flood of big bodies holds 32 KiB a connection, not asyncio's
# 256 KiB a read. The biggest request is a pairing: headers and 4 KiB of body.
RECEIVE_BUFFER = 16384
_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close with a reset, no TIME_WAIT


class Limits(NamedTuple):
    """``max_connections`` in all, ``per_client`` from one client."""

    max_connections: int = MAX_CONNECTIONS
    per_client: int = PER_CLIENT


DEFAULT_LIMITS = Limits()


def fitting_limits(descriptors: int, wanted: Limits = DEFAULT_LIMITS) -> Limits:
    """The caps that fit in ``descriptors`` (the soft RLIMIT_NOFILE): each connection may
    hold two (its socket, and a file being sent), :data:`RESERVED_DESCRIPTORS` stay for
    recording. At least 4 connections, so the pages still work under a tiny limit."""
    most = max(4, (descriptors - RESERVED_DESCRIPTORS) // 2)
    total = min(wanted.max_connections, most)
    return Limits(total, min(wanted.per_client, total))


def reserve_descriptors(wanted: Limits = DEFAULT_LIMITS) -> Limits:
    """Raise the soft descriptor limit as far as ``wanted`` needs (never past the hard
    limit) and return the caps that fit in what there is."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = wanted.max_connections * 2 + RESERVED_DESCRIPTORS
    if soft != resource.RLIM_INFINITY and soft < need:
        raised = need if hard == resource.RLIM_INFINITY else min(need, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
        except (ValueError, OSError):
            pass
    return fitting_limits(soft if soft != resource.RLIM_INFINITY else need, wanted)


@dataclass
class Connection:
    """One accepted connection: its client key, and whether it is inside a request."""

    sock: "GuardedSocket"
    client: str
    idle_since: float  # when it was accepted or its last request ended
    busy: int = 0  # requests in progress (one, for HTTP/1.1)
    requests: int = 0
    owner: bool = False  # it carried a signed-in owner's request


class Decision(NamedTuple):
    admit: bool
    evict: int | None = None  # the descriptor of the connection to push out
    reason: str = ""  # "client" or "full" when refused


def decide(
    connections: dict[int, Connection],
    client: str,
    limits: Limits,
    now: float,
    trusted: bool = False,
) -> Decision:
    """Whether a new connection from ``client`` (``trusted``: an owner signed in from
    it) may come in, and whom it pushes out (see the module's docstring)."""
    if sum(1 for c in connections.values() if c.client == client) >= limits.per_client:
        return Decision(False, reason="client")
    if len(connections) < limits.max_connections:
        return Decision(True)
    # an owner's client may push out any stranger's connection not inside a request;
    # a stranger only one idle long enough, and none whose answer may still be going
    wait, grace = (0.0, 0.0) if trusted else (STRANGER_WAIT, PUSH_GRACE)
    idle = [
        (c.idle_since, fd)
        for fd, c in connections.items()
        if not c.busy and not c.owner and now - c.idle_since >= (grace if c.requests else wait)
    ]
    if not idle:
        return Decision(False, reason="full")
    return Decision(True, evict=min(idle)[1])


def spend(bucket: tuple[float, float] | None, now: float, burst: int, interval: float) -> float:
    """A token bucket's tokens after one more refusal at ``now`` (seconds): ``bucket`` is
    (tokens, when they were counted), None for a full one; it holds ``burst`` and refills
    one every ``interval`` s. Below 0: past the budget."""
    tokens, at = bucket if bucket is not None else (burst, now)
    return min(burst, tokens + (now - at) / interval) - 1


@dataclass
class Counts:
    """What the guard did since the service started, for the status page."""

    accepted: int = 0
    refused_per_client: int = 0
    refused_full: int = 0
    refused_penalty: int = 0
    pushed_out: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class ConnectionGuard:
    """The open connections and the caps on them (see the module's docstring)."""

    limits: Limits = DEFAULT_LIMITS
    clock: Callable[[], float] = time.monotonic
    connections: dict[int, Connection] = field(default_factory=dict)
    counts: Counts = field(default_factory=Counts)
    trusted: dict[str, None] = field(default_factory=dict)  # oldest first
    penalties: dict[str, float] = field(default_factory=dict)  # client: refused until
    refusals: dict[str, tuple[float, float]] = field(default_factory=dict)  # (tokens, at)
    strangers_refused: tuple[float, float] | None = None  # all strangers' (tokens, at)

    def listen(self, host: str, port: int, backlog: int = 128) -> "GuardedListener":
        """A listening socket on ``host:port`` (port 0: any) that admits through this guard."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = GuardedListener(family, socket.SOCK_STREAM)
        listener.guard = self
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            listener.bind((host, port))
            listener.listen(backlog)
            listener.setblocking(False)
        except OSError:
            listener.close()
            raise
        return listener

    def admit(
        self, fd: int, family: int, type_: int, proto: int, peer: object
    ) -> "GuardedSocket | None":
        """The socket for a just-accepted descriptor, or None (refused: reset and closed)."""
        client = client_key(peer[0] if isinstance(peer, tuple) and peer else None)
        now = self.clock()
        if self.penalties.get(client, now) > now:
            self.counts.refused_penalty += 1
            _reset(fd, family, type_, proto)
            return None
        self.penalties.pop(client, None)
        trusted = client in self.trusted
        decision = decide(self.connections, client, self.limits, now, trusted)
        if not decision.admit:
            if decision.reason == "client":
                self.counts.refused_per_client += 1
            else:
                self.counts.refused_full += 1
            _reset(fd, family, type_, proto)
            return None
        if decision.evict is not None:
            self._push_out(decision.evict)
        sock = GuardedSocket(family, type_, proto, fileno=fd)
        sock.guard = self
        with contextlib.suppress(OSError):  # requests are small: each read is too
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        self.connections[fd] = Connection(sock, client, self.clock())
        self.counts.accepted += 1
        return sock

    def _push_out(self, fd: int) -> None:
        victim = self.connections.pop(fd)
        self.counts.pushed_out += 1
        # the transport sees the end and closes the socket (which calls closed())
        with contextlib.suppress(OSError):
            victim.sock.shutdown(socket.SHUT_RDWR)

    def closed(self, sock: "GuardedSocket", fd: int) -> None:
        """``sock`` (descriptor ``fd``) was closed."""
        current = self.connections.get(fd)
        if current is not None and current.sock is sock:
            del self.connections[fd]

    def started(self, fd: int) -> None:
        """A request on descriptor ``fd`` began (its headers are complete)."""
        connection = self.connections.get(fd)
        if connection is not None:
            connection.busy += 1
            connection.requests += 1

    def finished(self, fd: int) -> None:
        """The request on ``fd`` has its response (sent, or being sent by a file)."""
        connection = self.connections.get(fd)
        if connection is not None:
            connection.busy = max(0, connection.busy - 1)
            connection.idle_since = self.clock()

    def trust(self, fd: int) -> None:
        """The request on ``fd`` was an owner's, signed in: its connection is never pushed
        out, and its client may push out strangers' connections from now on."""
        connection = self.connections.get(fd)
        if connection is None:
            return
        connection.owner = True
        self.trusted.pop(connection.client, None)
        self.trusted[connection.client] = None
        if len(self.trusted) > TRUSTED_CLIENTS:
            del self.trusted[next(iter(self.trusted))]

    def refused(self, fd: int) -> None:
        """The request on ``fd`` was refused (401, 403, 421, 429): past the client's
        budget (see the module's docstring), it is penalized like a bad body."""
        connection = self.connections.get(fd)
        if connection is None:
            return
        now, client = self.clock(), connection.client
        tokens = spend(self.refusals.get(client), now, REFUSED_BURST, REFUSED_INTERVAL)
        if len(self.refusals) >= MAX_PENALTIES:  # forget the refilled budgets, else all
            full = REFUSED_BURST * REFUSED_INTERVAL
            self.refusals = {c: b for c, b in self.refusals.items() if now - b[1] < full}
            if len(self.refusals) >= MAX_PENALTIES:
                self.refusals.clear()
        self.refusals[client] = (tokens, now)
        flooded = False
        if client not in self.trusted:
            shared = spend(
                self.strangers_refused, now, STRANGERS_REFUSED_BURST, STRANGERS_REFUSED_INTERVAL
            )
            self.strangers_refused = (shared, now)
            flooded = shared < 0 and tokens < REFUSED_BURST - STRANGER_GRACE
        if tokens < 0 or flooded:
            self.penalize(fd, owners_too=True)

    def penalize(self, fd: int, *, owners_too: bool = False) -> None:
        """The request on ``fd`` sent a body too big or too slow: refuse its client's
        connections for :data:`PENALTY_SECONDS` (this one closes as its answer goes)."""
        connection = self.connections.get(fd)
        if connection is None or (connection.owner and not owners_too):
            return
        if len(self.penalties) >= MAX_PENALTIES:
            now = self.clock()
            self.penalties = {c: t for c, t in self.penalties.items() if t > now}
        if len(self.penalties) < MAX_PENALTIES:
            self.penalties[connection.client] = self.clock() + PENALTY_SECONDS

    def summary(self) -> dict[str, int]:
        """Open connections and the counts, for the status page and the bench."""
        return {"open": len(self.connections), **self.counts.as_dict()}


def _reset(fd: int, family: int, type_: int, proto: int) -> None:
    refused = socket.socket(family, type_, proto, fileno=fd)
    with contextlib.suppress(OSError):
        refused.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
    refused.close()


class GuardedSocket(socket.socket):
    """An accepted connection that tells its guard when it is closed."""

    guard: ConnectionGuard | None = None

    def close(self) -> None:
        fd = self.fileno()
        super().close()
        if fd >= 0 and self.guard is not None:
            self.guard.closed(self, fd)


class GuardedListener(socket.socket):
    """A listening socket whose ``accept`` (what asyncio's server calls) admits through
    the guard: refused connections are reset here and never reach the event loop."""

    guard: ConnectionGuard | None = None

    def accept(self) -> tuple[socket.socket, object]:
        assert self.guard is not None
        for _ in range(REFUSALS_PER_ACCEPT):
            fd, peer = self._accept()  # type: ignore[attr-defined]  # BlockingIOError: none
            sock = self.guard.admit(fd, self.family, self.type, self.proto, peer)
            if sock is not None:
                return sock, peer
        raise BlockingIOError("refused enough for one turn of the event loop")


class GuardedSite(web.SockSite):
    """aiohttp's site on a :class:`GuardedListener`, with a bounded TLS handshake."""

    async def start(self) -> None:
        await web.BaseSite.start(self)
        loop = asyncio.get_running_loop()
        handshake = HANDSHAKE_SECONDS if self._ssl_context else None
        self._server = await loop.create_server(
            self._runner.server,  # type: ignore[arg-type]
            sock=self._sock,
            ssl=self._ssl_context,
            backlog=self._backlog,
            ssl_handshake_timeout=handshake,
        )
