"""The connection guard (doorbell.web.guard): caps where connections are accepted.

The decisions are pure functions, tested as such; then a real listener with aiohttp's
server behind it, and real clients from several loopback addresses (127.0.0.2 ...), so
the per-client cap meets different clients as it would on a home network.
"""

import asyncio
import contextlib
import subprocess
import sys

import pytest
from aiohttp import web

from doorbell.web import guard
from doorbell.web.app import in_request
from doorbell.web.context import CONTEXT
from doorbell.web.guard import Connection, ConnectionGuard, Limits, decide, fitting_limits


def conns(*specs: tuple[str, float, int, int]) -> dict[int, Connection]:
    """{fd: Connection} from (client, idle_since, busy, requests)."""
    return {
        fd: Connection(None, client, idle, busy, requests)  # type: ignore[arg-type]
        for fd, (client, idle, busy, requests) in enumerate(specs, start=10)
    }


def test_a_client_past_its_share_is_refused_others_come_in():
    open_ = conns(("a", 0, 0, 0), ("a", 0, 0, 0))
    assert decide(open_, "a", Limits(10, 2), now=5) == (False, None, "client")
    assert decide(open_, "b", Limits(10, 2), now=5).admit


def test_when_full_the_longest_idle_goes_never_one_in_a_request():
    open_ = conns(
        ("a", 1.0, 1, 1),  # fd 10: inside a request (an event stream): stays
        ("b", 2.0, 0, 0),  # fd 11: never sent a request, waiting since 2.0
        ("c", 3.0, 0, 0),  # fd 12
        ("d", 0.5, 0, 3),  # fd 13: idle since 0.5 after 3 requests: the longest idle
    )
    assert decide(open_, "e", Limits(4, 4), now=10) == (True, 13, "")
    # a response that ended under the grace may still be going out: not pushed out
    open_[13].idle_since = 9.5
    assert decide(open_, "e", Limits(4, 4), now=10) == (True, 11, "")
    # all busy: the newcomer is refused
    for c in open_.values():
        c.busy = 1
    assert decide(open_, "e", Limits(4, 4), now=10) == (False, None, "full")


def test_an_owners_connections_stay_and_their_client_may_push_out_strangers():
    open_ = conns(
        ("owner", 0.0, 0, 2),  # fd 10: carried an owner's request, idle the longest
        ("x", 9.5, 0, 0),  # fd 11: a stranger's, idle half a second
        ("y", 9.8, 0, 0),  # fd 12
    )
    open_[10].owner = True
    full = Limits(3, 3)
    # a stranger may push out only a connection idle STRANGER_WAIT or more: none here
    assert decide(open_, "z", full, now=10) == (False, None, "full")
    # a client an owner signed in from may push out the longest idle stranger at once,
    # even one just answered (a stranger looping refused requests never idles for long)
    assert decide(open_, "owner", full, now=10, trusted=True) == (True, 11, "")
    # later, strangers push out strangers, never the owner's connection
    assert decide(open_, "z", full, now=10 + guard.STRANGER_WAIT) == (True, 11, "")
    open_[11].requests, open_[11].idle_since = 5, 9.99
    open_[12].busy = 1
    assert decide(open_, "z", full, now=10) == (False, None, "full")
    assert decide(open_, "owner", full, now=10, trusted=True) == (True, 11, "")


def test_limits_fit_the_descriptors_there_are():
    assert fitting_limits(4096) == Limits(64, 24)
    small = fitting_limits(200)  # the limit: 200 descriptors
    assert small.max_connections * 2 + guard.RESERVED_DESCRIPTORS <= 200
    assert fitting_limits(10) == Limits(4, 4)  # never none: the pages must still work


def test_the_service_raises_its_descriptor_limit_for_the_connections():
    """Under systemd the soft limit is 1024 and the hard one far above it: raised."""
    code = (
        "import resource; from doorbell.web import guard\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (100, 4096))\n"
        "print(tuple(guard.reserve_descriptors()), resource.getrlimit(resource.RLIMIT_NOFILE)[0])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["(64,", "24)", str(64 * 2 + guard.RESERVED_DESCRIPTORS)]
    capped = code.replace("(100, 4096)", "(200, 200)")
    out = subprocess.run([sys.executable, "-c", capped], capture_output=True, text=True, check=True)
    assert out.stdout.split()[-1] == "200"  # the hard limit stands; the caps shrink to fit


# --- a real listener ----------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Served:
    def __init__(self, connections: ConnectionGuard, port: int, held: asyncio.Event):
        self.guard, self.port = connections, port
        self.held, self.release = held, asyncio.Event()


@pytest.fixture
async def served():
    """An aiohttp server behind a guard of 4 connections, 2 a client; /hold stays inside
    its request until ``release`` is set; idle connections close after 0.3 s."""
    clock = FakeClock()
    connections = ConnectionGuard(Limits(4, 2), clock=clock)
    held = asyncio.Event()

    async def hold(request: web.Request) -> web.Response:
        held.set()
        await served.release.wait()
        return web.Response(text="held\n")

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    app = web.Application(middlewares=[in_request])
    app[CONTEXT] = type("Ctx", (), {"guard": connections})()  # type: ignore[assignment]
    app.router.add_get("/hold", hold)

    async def big(request: web.Request) -> web.Response:
        raise web.HTTPRequestEntityTooLarge(64, 1 << 20)

    app.router.add_get("/ok", ok)
    app.router.add_get("/big", big)

    async def locked(request: web.Request) -> web.Response:
        raise web.HTTPUnauthorized(text="locked\n")

    app.router.add_get("/locked", locked)
    runner = web.AppRunner(app, **{**guard.HANDLER_LIMITS, "keepalive_timeout": 0.3})
    await runner.setup()
    listener = connections.listen("127.0.0.1", 0)
    site = guard.GuardedSite(runner, listener)
    await site.start()
    served = Served(connections, listener.getsockname()[1], held)
    served.clock = clock
    yield served
    served.release.set()
    await runner.cleanup()


async def connect(port: int, source: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    """True once the server ends the connection (EOF or reset), within 5 s."""
    try:
        async with asyncio.timeout(5):
            return await reader.read(1000) == b""
    except ConnectionResetError:
        return True


async def get(reader, writer, path: str) -> bytes:
    writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    return await reader.readuntil(b"\r\n\r\n") + await reader.read(100)


async def test_a_client_past_its_share_is_reset_at_once(served):
    a1 = await connect(served.port, "127.0.0.2")
    a2 = await connect(served.port, "127.0.0.2")
    try:  # the reset may come before the connect call returns
        a3 = await connect(served.port, "127.0.0.2")
        assert await closed_by_server(a3[0])
        a3[1].close()
    except ConnectionResetError:
        pass
    assert b"ok" in await get(*a1, "/ok")  # the first two are served
    assert served.guard.counts.refused_per_client == 1
    b = await connect(served.port, "127.0.0.3")
    assert b"ok" in await get(*b, "/ok")
    for _, writer in (a1, a2, b):
        writer.close()


async def test_when_full_a_newcomer_pushes_out_an_idle_connection_not_a_busy_one(served):
    busy = await connect(served.port, "127.0.0.2")
    busy[1].write(b"GET /hold HTTP/1.1\r\nHost: localhost\r\n\r\n")
    idle = [await connect(served.port, f"127.0.0.{n}") for n in (3, 4, 5)]
    async with asyncio.timeout(5):
        await served.held.wait()  # the server is inside the /hold request
    served.clock.now += guard.STRANGER_WAIT  # the idle ones waited long enough
    newcomer = await connect(served.port, "127.0.0.6")
    assert await closed_by_server(idle[0][0])  # the longest idle: pushed out
    assert b"ok" in await get(*newcomer, "/ok")
    served.release.set()
    assert b"held" in await busy[0].readuntil(b"held")  # the busy one was never touched
    assert served.guard.counts.pushed_out == 1
    for _, writer in (busy, *idle, newcomer):
        writer.close()


async def test_idle_and_slow_header_connections_are_closed_by_the_server(served):
    idle = await connect(served.port, "127.0.0.2")
    slow = await connect(served.port, "127.0.0.3")
    slow[1].write(b"GET /ok HTTP/1.1\r\nHo")  # and never the rest
    assert await closed_by_server(idle[0])
    assert await closed_by_server(slow[0])
    assert not served.guard.connections  # the server closed them: the guard heard
    for _, writer in (idle, slow):
        writer.close()


async def test_a_flood_of_connections_never_takes_more_descriptors_than_the_cap(served):
    """500 connections from 50 clients: at most 4 are ever open on the server's side."""
    opened = []
    for n in range(500):
        with contextlib.suppress(OSError):
            opened.append(await connect(served.port, f"127.0.1.{n % 50 + 1}"))
        assert len(served.guard.connections) <= 4
    counts = served.guard.counts
    assert counts.accepted + counts.refused_per_client + counts.refused_full >= 500
    for _, writer in opened:
        writer.close()


async def test_a_client_that_sent_a_body_no_page_sends_is_refused_for_a_while(served):
    """A 413 (or 408) puts its client in the penalty box: its connections are reset at
    accept for PENALTY_SECONDS, costing a counter each instead of a parsed request."""
    abuser = await connect(served.port, "127.0.0.2")
    assert b"413" in await get(*abuser, "/big")
    abuser[1].close()
    try:
        again = await connect(served.port, "127.0.0.2")
        assert await closed_by_server(again[0])
        again[1].close()
    except ConnectionResetError:
        pass
    assert served.guard.counts.refused_penalty == 1
    other = await connect(served.port, "127.0.0.3")  # another client is not affected
    assert b"ok" in await get(*other, "/ok")
    served.clock.now += guard.PENALTY_SECONDS  # and the abuser gets in again later
    back = await connect(served.port, "127.0.0.2")
    assert b"ok" in await get(*back, "/ok")
    for _, writer in (other, back):
        writer.close()


async def test_a_client_refused_again_and_again_is_refused_at_accept(served):
    """60 refused requests at once pass (a locked page's grid is 24); one more in the same
    instant puts the client in the penalty box; time refills its budget."""
    reader, writer = await connect(served.port, "127.0.0.2")
    for _ in range(guard.REFUSED_BURST):
        assert b" 401 " in await get(reader, writer, "/locked")
    assert not served.guard.penalties
    assert b" 401 " in await get(reader, writer, "/locked")
    assert "client:127.0.0.2" in served.guard.penalties
    writer.close()


def test_a_refusal_budget_holds_a_burst_and_refills_with_time():
    assert guard.spend(None, 5.0, 60, 0.2) == 59  # a full bucket, one spent
    assert guard.spend((0.0, 5.0), 5.0, 60, 0.2) == -1  # empty: past the budget
    assert guard.spend((0.0, 5.0), 6.0, 60, 0.2) == 4  # 1 s refills 5
    assert guard.spend((10.0, 0.0), 100.0, 60, 0.2) == 59  # never past the burst


def refusing(clients: list[str], trusted: tuple[str, ...] = ()) -> tuple[ConnectionGuard, dict]:
    """A guard with one connection for each of ``clients`` (their descriptors by name)."""
    at = ConnectionGuard(clock=lambda: 100.0)
    for name in trusted:
        at.trusted[name] = None
    fds = {}
    for fd, name in enumerate(clients, start=10):
        at.connections[fd] = Connection(None, name, 100.0)  # type: ignore[arg-type]
        fds[name] = fd
    return at, fds


def test_strangers_past_their_shared_budget_are_penalized_once_refused_a_few_times():
    """Many addresses, each within its own budget, share one: past it, the ones refused
    more than STRANGER_GRACE times are penalized; a newcomer's first refusals are not."""
    names = [f"client:10.0.0.{n}" for n in range(40)]
    at, fds = refusing([*names, "client:10.0.1.1"])
    for _ in range(guard.STRANGER_GRACE):  # 40 x 8 = 320 refusals: past the shared 240
        for name in names:
            at.refused(fds[name])
    assert not at.penalties  # none is past its own grace yet
    at.refused(fds[names[0]])  # a ninth refusal while the shared budget is spent
    assert list(at.penalties) == [names[0]]
    for _ in range(guard.STRANGER_GRACE):  # someone new is refused: not for the others' sake
        at.refused(fds["client:10.0.1.1"])
    assert "client:10.0.1.1" not in at.penalties


def test_a_client_an_owner_signed_in_from_is_not_held_to_the_strangers_budget():
    names = [f"client:10.0.0.{n}" for n in range(40)]
    owner = "client:10.0.1.1"
    at, fds = refusing([*names, owner], trusted=(owner,))
    for _ in range(guard.STRANGER_GRACE):
        for name in names:
            at.refused(fds[name])
    for _ in range(guard.REFUSED_BURST):  # its own budget only
        at.refused(fds[owner])
    assert owner not in at.penalties
    at.refused(fds[owner])
    assert owner in at.penalties


def test_the_strangers_budget_refills_with_time():
    names = [f"client:10.0.0.{n}" for n in range(40)]
    now = [100.0]
    at, fds = refusing(names)
    at.clock = lambda: now[0]
    for _ in range(guard.STRANGER_GRACE):
        for name in names:
            at.refused(fds[name])
    now[0] += guard.STRANGERS_REFUSED_BURST * guard.STRANGERS_REFUSED_INTERVAL
    at.refused(fds[names[0]])  # a ninth, but the shared budget has refilled
    assert not at.penalties
