"""systemd's notify protocol over a real AF_UNIX datagram socket, in-process and from
`doorbell run` as systemd would start it (NOTIFY_SOCKET, WATCHDOG_USEC, SIGTERM)."""

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from doorbell.systemd import Notifier, socket_address, watchdog_seconds


@pytest.fixture
def notify_socket():
    """A bound datagram socket, as systemd's; a short path (sun_path is 108 bytes)."""
    folder = Path(tempfile.mkdtemp(prefix="nfy", dir="/tmp"))
    path = folder / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(30)
    yield sock, str(path)
    sock.close()
    path.unlink(missing_ok=True)
    folder.rmdir()


def receive(sock, until: str, limit: int = 200) -> list[dict]:
    """Messages as dicts, up to and including the first holding ``until`` (KEY=value; a
    value ending in ``*`` matches any value it begins)."""
    key, value = until.split("=", 1)
    messages = []
    for _ in range(limit):
        text = sock.recv(4096).decode()
        message = dict(line.split("=", 1) for line in text.splitlines())
        messages.append(message)
        got = message.get(key)
        if got == value or (got and value.endswith("*") and got.startswith(value[:-1])):
            return messages
    raise AssertionError(f"no {until} in {messages}")


def test_messages_arrive_as_key_value_lines(notify_socket):
    """READY with STATUS, STATUS changes only, WATCHDOG, STOPPING: one datagram each."""
    sock, path = notify_socket
    notifier = Notifier.from_environment({"NOTIFY_SOCKET": path})
    assert notifier.enabled and notifier.watchdog_interval is None
    assert notifier.ready("camera running")
    assert not notifier.status("camera running")  # unchanged: not sent again
    assert notifier.status("camera reconnecting in 1 s")
    assert notifier.watchdog()
    assert notifier.stopping()
    assert [sock.recv(4096) for _ in range(4)] == [
        b"READY=1\nSTATUS=camera running",
        b"STATUS=camera reconnecting in 1 s",
        b"WATCHDOG=1",
        b"STOPPING=1\nSTATUS=stopping: finishing the clip being recorded",
    ]


def test_an_abstract_socket_name_works_too():
    """NOTIFY_SOCKET=@name is a socket in the abstract namespace."""
    name = f"doorbell-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(10)
        assert Notifier.from_environment({"NOTIFY_SOCKET": "@" + name}).watchdog()
        assert sock.recv(100) == b"WATCHDOG=1"


def test_outside_systemd_everything_is_a_quiet_no_op():
    """No NOTIFY_SOCKET: nothing is sent and nothing fails."""
    notifier = Notifier.from_environment({})
    assert not notifier.enabled
    assert not notifier.ready("x") and not notifier.watchdog() and not notifier.stopping()


def test_a_vanished_socket_is_logged_once_and_never_raises(tmp_path, caplog):
    """systemd gone (the socket path no longer exists): warn once, go on."""
    notifier = Notifier(str(tmp_path / "gone"))
    assert not notifier.watchdog() and not notifier.watchdog()
    assert len([r for r in caplog.records if "notify socket" in r.message]) == 1


def test_the_watchdog_settings():
    """WATCHDOG_USEC in seconds, pinged at half; WATCHDOG_PID for another process means none."""
    assert watchdog_seconds({"WATCHDOG_USEC": "30000000"}, 42) == 30.0
    assert watchdog_seconds({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "42"}, 42) == 30.0
    assert watchdog_seconds({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "7"}, 42) is None
    assert watchdog_seconds({"WATCHDOG_USEC": "0"}, 42) is None
    assert watchdog_seconds({}, 42) is None
    assert Notifier("/x", watchdog=30.0).watchdog_interval == 15.0
    assert socket_address("@abc") == b"\0abc" and socket_address("/run/x") == "/run/x"
    assert socket_address("vsock:2:1") is None


@pytest.mark.cli
def test_doorbell_run_under_systemd(notify_socket, tmp_path):
    """`doorbell run` as systemd starts it: READY=1 once it serves, WATCHDOG=1 while the camera
    runs, STOPPING=1 on SIGTERM, and exit 0 within 5 s."""
    sock, path = notify_socket
    config = tmp_path / "doorbell.toml"
    config.write_text(
        f'[storage]\ndata_dir = "{tmp_path / "data"}"\nmin_free_mb = 0\n'
        '[camera]\nbackend = "synthetic"\nwidth = 320\nheight = 180\n'
        '[web]\nlisten = "127.0.0.1:0"\n'
    )
    env = dict(
        os.environ,
        NOTIFY_SOCKET=path,
        WATCHDOG_USEC="400000",  # ping every 0.2 s
        GPIOZERO_PIN_FACTORY="mock",  # gpiozero's own mock pins: no GPIO off a Pi
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "doorbell", "run", "--config", str(config)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready = receive(sock, "READY=1")[-1]
        assert ready["STATUS"].startswith("camera ")
        receive(sock, "WATCHDOG=1")
        receive(sock, "STATUS=camera running*")  # "; clock not synchronised" on some machines
        receive(sock, "WATCHDOG=1")  # still fed while the camera runs
        limits = Path(f"/proc/{process.pid}/limits").read_text()
        assert re.search(r"Max core file size\s+0\s+0", limits)  # law 1: no core dumps
        process.send_signal(signal.SIGTERM)
        receive(sock, "STOPPING=1")
        assert process.wait(timeout=5) == 0  # systemd's TimeoutStopSec is longer
    finally:
        process.kill()
        process.wait()
    err = process.stderr.read()
    assert "Traceback" not in err
