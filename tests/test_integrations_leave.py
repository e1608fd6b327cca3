"""With an integration turned on, the demo talks to exactly what was configured.

``doorbell demo --mqtt 127.0.0.1:P --notify ntfy://127.0.0.1:Q/doorbell`` runs under the
audit hook of tests/net_trace.py (before doorbell is imported) until Home Assistant's
side (a subscriber at a real mosquitto) sees it online; then SIGINT. Every connection
it made went to the broker's port, and every name it looked up was that numeric
address: nothing else, and with both off nothing at all (tests/test_nothing_leaves.py).
"""

import ast
import asyncio
import os
import signal
import socket
import sys

from tests.mosquitto import Mosquitto, free_port
from tests.net_trace import audit_records, traced


async def test_the_demo_connects_to_the_configured_broker_and_nowhere_else(tmp_path):
    import aiomqtt

    broker = Mosquitto(tmp_path, {}, anonymous=True)
    broker.start()
    ntfy_port = free_port()  # nothing listens: a ring would be retried, never sent elsewhere
    argv = [sys.executable, "-m", "doorbell", "demo", "--port", "0"]
    argv += ["--data-dir", str(tmp_path / "data"), "--mqtt", broker.address]
    argv += ["--notify", f"ntfy://127.0.0.1:{ntfy_port}/doorbell"]
    # the audit hook alone (no strace): its sitecustomize is what traced() sets up
    _, env = traced(argv, tmp_path / "trace", "demo", os.environ)
    try:
        async with aiomqtt.Client(broker.host, broker.port, identifier="ha") as ha:
            await ha.subscribe("doorbell/demo/availability", qos=1)
            demo = await asyncio.create_subprocess_exec(
                *argv,
                env=env,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            try:
                async with asyncio.timeout(60):
                    async for message in ha.messages:
                        if bytes(message.payload) == b"online":
                            break
            finally:
                demo.send_signal(signal.SIGINT)
                assert await asyncio.wait_for(demo.wait(), 30) == 0
    finally:
        broker.stop()
    records = audit_records(tmp_path / "trace" / "demo.audit")
    assert any(r.event == "installed" and r.address == "False" for r in records)
    network = [r for r in records if r.family not in (socket.AF_UNIX, 0, -1)]
    connects = {ast.literal_eval(r.address)[:2] for r in network if r.event == "socket.connect"}
    assert connects == {("127.0.0.1", broker.port)}, connects
    lookups = {ast.literal_eval(r.address) for r in records if r.event == "socket.getaddrinfo"}
    assert lookups <= {"127.0.0.1"}, lookups  # a name (even localhost) may ask a DNS server
    assert not [r for r in network if r.event == "socket.sendto"]
