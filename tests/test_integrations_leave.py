"""With the integrations turned on, the demo talks to exactly what was configured.

``doorbell demo --mqtt HOST:P --notify ntfy://HOST:Q/doorbell`` runs under strace (the
whole process tree) and the audit hook of tests/net_trace.py (installed before doorbell
is imported). HOST is 127.0.0.1, and in a second run an address of this machine's own
that is not loopback, as a broker and an ntfy server on the LAN would have. Once Home
Assistant's side (a subscriber at a real mosquitto) sees the doorbell online, an owner
pairs over the HTTP API and presses the demo's bell, and the ring reaches both the broker
and the ntfy server; then SIGINT. Every connection the tree made went to those two ports
at HOST, every name it looked up was HOST itself (numeric), and nothing was sent to any
other address. With both off, nothing at all (tests/test_nothing_leaves.py).
"""

import ast
import asyncio
import ipaddress
import os
import re
import signal
import socket
import sys

import aiohttp
import pytest

from doorbell import vault
from tests.mosquitto import Mosquitto
from tests.net_trace import audit_records, is_loopback, strace_problem, strace_records, traced
from tests.ntfy_server import NtfyServer
from tests.owners import pairing_fields
from tests.test_nothing_leaves import missing

# strace's sockaddr (of a connect, a sendto, a bind): {sa_family=AF_INET, sin_port=
# htons(1883), sin_addr=inet_addr("192.0.2.2")}, or AF_INET6's sin6_port ... inet_pton(...
CONNECT_V4 = re.compile(r'sin_port=htons\((\d+)\), sin_addr=inet_addr\("([^"]+)"\)')
CONNECT_V6 = re.compile(r'sin6_port=htons\((\d+)\).*?inet_pton\(AF_INET6, "([^"]+)"')


def lan_address() -> str | None:
    """An IPv4 address of this machine that is not loopback (the one its route towards a
    documentation address would use), or None. Connecting a UDP socket sends nothing."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1 (RFC 5737): only a route is looked up
        except OSError:
            return None
        host = probe.getsockname()[0]
    return None if ipaddress.ip_address(host).is_loopback else host


def sockaddrs(line: str) -> set[tuple[str, int]]:
    """The (address, port) pairs an strace line's sockaddr arguments name (a descriptor's
    own endpoints, in ``<TCP:[...]>``, are not arguments: a connected socket's sendto
    names no address, and goes where its connect went)."""
    found = CONNECT_V4.findall(line) + CONNECT_V6.findall(line)
    return {(host, int(port)) for port, host in found}


def test_the_connect_reader_reads_both_families():
    v4 = '7  connect(9<TCP:[5]>, {sa_family=AF_INET, sin_port=htons(1883), sin_addr=inet_addr("192.0.2.2")}, 16) = 0'
    v6 = '7  connect(9<TCPv6:[5]>, {sa_family=AF_INET6, sin6_port=htons(80), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "::1", &sin6_addr), sin6_scope_id=0}, 28) = 0'
    sent = '7  sendto(9<TCP:[0.0.0.0:4>127.0.0.1:1883]>, "x", 1, 0, NULL, 0) = 1'
    assert sockaddrs(v4) == {("192.0.2.2", 1883)}
    assert sockaddrs(v6) == {("::1", 80)}
    assert sockaddrs(sent) == set()
    assert sockaddrs("7  bind(9<UNIX:[5]>, {sa_family=AF_UNIX}, 2) = 0") == set()


def sockaddr_hosts(line: str) -> set[str]:
    return {host for host, _ in sockaddrs(line)}


async def ring_as_an_owner(origin: str, code: str) -> None:
    """Pair over the HTTP API (which signs in) and press the demo's bell."""
    identity = vault.X25519Identity.generate()
    body = {"code": code, "name": "Sam", **pairing_fields(identity)}
    jar = aiohttp.CookieJar(unsafe=True)  # the default jar drops cookies of IP hosts
    async with aiohttp.ClientSession(origin, cookie_jar=jar) as owner:
        async with owner.post("/api/pair", json=body) as paired:
            assert paired.status == 200, await paired.text()
            csrf = (await paired.json())["csrf_token"]
        async with owner.post("/api/bell", headers={"X-CSRF-Token": csrf}) as pressed:
            assert pressed.status < 300, await pressed.text()


@pytest.mark.parametrize("where", ["loopback", "lan"])
async def test_the_demo_talks_to_the_configured_hosts_and_nowhere_else(tmp_path, where):
    import aiomqtt

    problem = strace_problem()
    if problem:
        missing(problem)
    host = "127.0.0.1" if where == "loopback" else lan_address()
    if host is None:
        pytest.skip("this machine has no IPv4 address but loopback to put a 'LAN' broker on")
    broker = Mosquitto(tmp_path, {}, anonymous=True, host=host)
    broker.start()
    ntfy = NtfyServer(host=host)
    await ntfy.start()
    argv = [sys.executable, "-m", "doorbell", "demo", "--port", "0"]
    argv += ["--data-dir", str(tmp_path / "data"), "--mqtt", broker.address]
    argv += ["--notify", ntfy.url("doorbell")]
    command, env = traced(argv, tmp_path / "trace", "demo", os.environ)
    try:
        async with aiomqtt.Client(broker.host, broker.port, identifier="ha") as ha:
            await ha.subscribe("doorbell/demo/#", qos=1)
            demo = await asyncio.create_subprocess_exec(
                *command,
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=(tmp_path / "demo.stderr").open("wb"),
                start_new_session=True,
            )
            try:
                async with asyncio.timeout(60):
                    printed = b""
                    while b"setup code" not in printed:
                        line = await demo.stdout.readline()  # type: ignore[union-attr]
                        assert line, f"the demo ended before it was ready: {printed.decode()}"
                        printed += line
                    found = re.search(
                        rb"open (http://\S+?)/setup and type the setup code (\S+)", printed
                    )
                    assert found, printed.decode()
                    async for message in ha.messages:
                        if (
                            str(message.topic).endswith("/availability")
                            and bytes(message.payload) == b"online"
                        ):
                            break
                    await ring_as_an_owner(found.group(1).decode(), found.group(2).decode())
                    async for message in ha.messages:
                        if str(message.topic).endswith("/ring"):
                            break
                    await ntfy.wait_for(1, timeout=30)
            finally:
                os.killpg(demo.pid, signal.SIGINT)  # Ctrl-C: strace lets it through
                stopped = await asyncio.wait_for(demo.wait(), 30)
                assert stopped == 0, (tmp_path / "demo.stderr").read_text(errors="replace")
    finally:
        broker.stop()
        await ntfy.stop()
    allowed = {(host, broker.port), (host, ntfy.port)}

    records = audit_records(tmp_path / "trace" / "demo.audit")
    assert any(r.event == "installed" and r.address == "False" for r in records)
    network = [r for r in records if r.family not in (socket.AF_UNIX, 0, -1)]
    connects = {ast.literal_eval(r.address)[:2] for r in network if r.event == "socket.connect"}
    assert connects == allowed, connects
    lookups = {ast.literal_eval(r.address) for r in records if r.event == "socket.getaddrinfo"}
    assert lookups <= {host}, lookups  # a name (even localhost) may ask a DNS server
    assert not [r for r in network if r.event == "socket.sendto"]

    calls = [c for c in strace_records(tmp_path / "trace" / "demo.strace") if c.is_network]
    told = set().union(*(sockaddrs(c.line) for c in calls if c.name != "bind"))
    assert told == allowed, told  # every connect and addressed send
    local = {host, "0.0.0.0", "::"}  # a bind names this machine's side: any address, port 0
    binds = [c.line for c in calls if c.name == "bind" and not c.is_unix]
    assert [
        b for b in binds if not all(h in local or is_loopback(h) for h in sockaddr_hosts(b))
    ] == []
    kinds = set().union(*(c.kinds() for c in calls))
    assert {
        k for k in kinds if not k.startswith(("TCP", "UDP", "UNIX", "AF_INET", "AF_UNIX"))
    } == set()
