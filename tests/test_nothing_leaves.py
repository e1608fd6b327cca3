"""Nothing leaves the house, and nothing is left in the clear: a real ``doorbell demo``
watched from inside and outside while an owner uses it, then ``doorbell replay`` of
real footage into the same data dir.

The demo runs as README's ``scripts/demo`` runs it (``.venv/bin/doorbell demo``, with
``--port 0`` and ``--data-dir``), in a working folder and a TMPDIR of its own, for
45-60 s, under strace (the whole process tree) and a Python audit hook installed
before doorbell is imported (tests/net_trace.py). Debian's chromium is the owner
(tests/owner_visit.py): pairs with the printed setup code (the key made in the page),
locks, unlocks, presses the demo bell, lists the clips with their thumbnails, plays one
(its index and its ciphertext by Range requests) and seeks, watches the live view for
15 s while the bell rings again, locks; then Ctrl-C stops the demo in the middle of
that second clip.

Then: no socket call of the tree named anything but loopback or AF_UNIX, in the hook's
records and in strace's, while a control process traced the same way, which talks to
the demo through loopback and then tries 192.0.2.1 (TEST-NET-1, by a UDP connect: no
packet is sent), is seen doing both by both; no file anywhere under the data dir, the
TMPDIR or the working folder holds an MP4 box, a JPEG, a PNG or an age identity
(tests/plaintext_scan.py), while the same scan finds each of them in a control file
made of the run's own clip, thumbnail and owner key, decrypted; and the tree wrote no
file outside those folders.

Needs strace, chromium and the real footage: missing, the tests are skipped saying
which; under CI or DOORBELL_REQUIRE_FOOTAGE=1 they fail instead.
"""

import asyncio
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from doorbell import vault
from tests.conftest import footage
from tests.net_trace import (
    AuditRecord,
    Syscall,
    audit_records,
    programs_run,
    strace_problem,
    strace_records,
    syscalls,
    traced,
    written_paths,
)
from tests.owner_visit import PASSPHRASE, Visit, owner_visit
from tests.plaintext_scan import Scan, find_in, scan_folders, sizes_now

pytestmark = pytest.mark.slow

OWNER_REQUESTS = {
    "GET /", "POST /api/pair", "POST /api/login", "POST /api/bell", "GET /api/clips",
    "GET /clips/ID/index", "GET /clips/ID/thumbnail", "GET /live.mjpeg", "POST /api/lock",
}  # fmt: skip
CONTROL = """
import socket, sys
port = int(sys.argv[1])
with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
    connection.sendall(b"GET /health HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n")
    assert connection.recv(1024).startswith(b"HTTP/1.")
socket.getaddrinfo("192.0.2.1", 9, flags=socket.AI_NUMERICHOST)
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
    try:
        udp.connect(("192.0.2.1", 9))  # a UDP connect sends nothing; no route is fine too
    except OSError:
        pass
"""


def required() -> bool:
    return any(os.environ.get(v, "") not in ("", "0") for v in ("CI", "DOORBELL_REQUIRE_FOOTAGE"))


def missing(reason: str):
    if required():
        pytest.fail(f"{reason}; CI or DOORBELL_REQUIRE_FOOTAGE is set, so it must be there")
    pytest.skip(reason)


def doorbell_command() -> list[str]:
    """The venv's ``doorbell`` script, as scripts/demo runs it (else ``python -m doorbell``)."""
    script = Path(sys.executable).with_name("doorbell")
    return [str(script)] if script.exists() else [sys.executable, "-m", "doorbell"]


@dataclass
class House:
    """The folders of one run and what was seen in it."""

    root: Path
    visit: Visit = field(default_factory=Visit)  # the owner's, in chromium
    demo_exit: int | None = None
    demo_seconds: float = 0.0
    demo_stderr: str = ""
    replay: subprocess.CompletedProcess | None = None
    after_demo: Scan | None = None
    after_replay: Scan | None = None
    control_offsets: dict[str, int] = field(default_factory=dict)

    def folder(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(exist_ok=True)
        return path

    @property
    def at_rest(self) -> list[Path]:
        """Where the doorbell could leave files: its data dir, TMPDIR and working folder."""
        return [self.folder("data"), self.folder("tmp"), self.folder("cwd")]

    @property
    def trace(self) -> Path:
        return self.folder("trace")

    def audit(self, name: str) -> list[AuditRecord]:
        return audit_records(self.trace / f"{name}.audit")

    def calls(self, name: str) -> list[Syscall]:
        return strace_records(self.trace / f"{name}.strace")

    def environment(self) -> dict[str, str]:
        return dict(os.environ, TMPDIR=str(self.folder("tmp")))


async def run_demo(house: House) -> None:
    """The traced demo, the owner's visit and the traced control; then Ctrl-C."""
    data = house.folder("data")
    argv = [*doorbell_command(), "demo", "--port", "0", "--data-dir", str(data)]
    command, env = traced(argv, house.trace, "demo", house.environment())
    started = time.monotonic()
    with open(house.trace / "demo.stderr", "wb") as stderr:
        child = await asyncio.create_subprocess_exec(
            *command,
            env=env,
            cwd=house.folder("cwd"),
            stdout=subprocess.PIPE,
            stderr=stderr,
            start_new_session=True,  # a group of its own, to stop as Ctrl-C does
        )
    assert child.stdout is not None
    printed = b""
    try:
        while b"setup code" not in printed:
            line = await asyncio.wait_for(child.stdout.readline(), 60)
            assert line, f"the demo ended before it was ready: {printed.decode()}"
            printed += line
        found = re.search(rb"open (http://\S+?/)setup and type the setup code (\S+)", printed)
        assert found, printed.decode()
        url, code = found.group(1).decode(), found.group(2).decode()
        drain = asyncio.ensure_future(child.stdout.read())
        control, env = traced(
            [sys.executable, "-c", CONTROL, str(urlsplit(url).port)],
            house.trace,
            "control",
            house.environment(),
        )
        done = await asyncio.create_subprocess_exec(*control, env=env, cwd=house.folder("owner"))
        assert await asyncio.wait_for(done.wait(), 30) == 0, "the control process failed"
        house.visit = await owner_visit(url, code, house.folder("owner") / "identity.age")
    finally:
        # Ctrl-C as a terminal sends it: to the whole group (strace lets it through to
        # the demo, which stops; then strace ends too)
        os.killpg(child.pid, signal.SIGINT)
        try:
            house.demo_exit = await asyncio.wait_for(child.wait(), 30)
        except TimeoutError:
            os.killpg(child.pid, signal.SIGKILL)
            await child.wait()
            raise
        house.demo_seconds = time.monotonic() - started
    await drain
    house.demo_stderr = (house.trace / "demo.stderr").read_text(errors="replace")


def control_plaintext(house: House) -> Path:
    """A file holding, deep among random bytes, the run's first clip, its thumbnail and
    the owner's key, decrypted, and a PNG: what the scan must find if it were at rest."""
    import cv2
    import numpy as np

    wrapped = (house.folder("owner") / "identity.age").read_bytes()
    key_text = vault.decrypt_bytes(wrapped, [vault.ScryptIdentity(PASSPHRASE, 20)])
    secret = re.search(rb"AGE-SECRET-KEY-1[0-9A-Z]+", key_text)
    assert secret, "the downloaded key holds no identity"
    identity = vault.X25519Identity.parse(secret.group(0).decode())
    clip = sorted((house.folder("data") / "clips").glob("*.mp4.age"))[0]
    thumbnail = clip.with_name(clip.name.replace(".mp4.age", ".jpg.age"))
    picture = np.random.default_rng(13).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    pieces = {
        "clip": vault.decrypt_bytes(clip.read_bytes(), [identity]),
        "thumbnail": vault.decrypt_bytes(thumbnail.read_bytes(), [identity]),
        "key": key_text,
        "png": cv2.imencode(".png", picture)[1].tobytes(),
    }
    content = bytearray()
    for name, piece in pieces.items():
        content += os.urandom(1 << 20)
        house.control_offsets[name] = len(content)
        content += piece
    content += os.urandom(1 << 20)
    path = house.folder("control") / "plaintext.bin"
    path.write_bytes(content)
    return path


@pytest.fixture(scope="module")
def house(tmp_path_factory) -> House:
    problem = strace_problem()
    if problem:
        missing(problem)
    if shutil.which("chromium") is None:
        missing("Debian's chromium is not installed (scripts/setup)")
    video = footage("porch-visitors.mp4")
    house = House(tmp_path_factory.mktemp("house"))
    asyncio.run(run_demo(house))
    house.after_demo = scan_folders(house.at_rest)
    argv = [*doorbell_command(), "replay", str(video), "--data-dir", str(house.folder("data"))]
    command, env = traced(argv, house.trace, "replay", house.environment())
    house.replay = subprocess.run(
        command, env=env, cwd=house.folder("cwd"), capture_output=True, text=True, timeout=120
    )
    assert house.replay.returncode == 0, house.replay.stderr
    control = control_plaintext(house)
    house.after_replay = scan_folders([*house.at_rest, control.parent])
    return house


def test_the_demo_ran_and_the_owner_used_every_part(house):
    """The run was real: the demo printed its code and URL and stopped with 0 on Ctrl-C,
    without a traceback; the browser paired, rang, listed, fetched the clip's index,
    thumbnail and ciphertext by Range, watched live and locked; no answer was a 5xx."""
    assert house.demo_exit == 0, house.demo_stderr
    assert "Traceback" not in house.demo_stderr
    assert house.visit.server_errors == []
    asked = {
        (f"{method} {re.sub(r'/clips/[0-9a-f]+/', '/clips/ID/', path)}", ranged)
        for method, path, ranged in house.visit.requests
    }
    assert OWNER_REQUESTS - {request for request, _ in asked} == set()
    assert ("GET /clips/ID/file", True) in asked  # the ciphertext, by Range
    assert house.visit.clips_listed >= 1
    assert house.visit.live_seconds >= 15
    print(
        f"the demo ran {house.demo_seconds:.0f} s, the live view open {house.visit.live_seconds:.0f} s;"
        f" {len(house.visit.requests)} requests"
    )


def test_nothing_but_loopback_and_unix_seen_by_the_audit_hook_and_strace(house):
    """Zero connections, sends, binds or lookups to anything but loopback and AF_UNIX,
    by the demo's and the replay's process trees, in both records; and both records
    see the control's loopback talk and flag its one try beyond."""
    for name in ("demo", "replay"):
        audit = house.audit(name)
        installed = [r for r in audit if r.event == "installed"]
        assert installed and installed[0].address == "False", "hook after doorbell's import"
        calls = [c for c in house.calls(name) if c.is_network]
        leaks = {
            "audit hook": [str(r) for r in audit if not r.allowed],
            "strace": [c.line for c in calls if not c.allowed],
        }
        assert leaks == {"audit hook": [], "strace": []}, name
        unix = sorted({n for c in calls if c.is_unix for n in c.unix_names()})
        print(f"{name}: {len(calls)} socket calls, AF_UNIX ones naming {unix or 'no path'}")
        print(f"{name}: programs run: {programs_run(house.calls(name))}")
    # the hook and strace saw the demo at work: its bind, its answers over loopback
    assert any(r.event == "socket.bind" and "127.0.0.1" in r.address for r in house.audit("demo"))
    answers = [
        c for c in house.calls("demo") if c.name.startswith("send") and "TCP:[127.0.0.1:" in c.line
    ]
    assert answers, "strace saw no answer of the demo's"

    audit = house.audit("control")
    assert [r.event for r in audit if not r.allowed] == ["socket.getaddrinfo", "socket.connect"]
    assert all("192.0.2.1" in r.address for r in audit if not r.allowed)
    assert any(r.event == "socket.connect" and "127.0.0.1" in r.address for r in audit)
    calls = [c for c in house.calls("control") if c.is_network]
    flagged = [c for c in calls if not c.allowed]
    assert len(flagged) == 1 and flagged[0].name == "connect", [c.line for c in flagged]
    assert 'inet_addr("192.0.2.1")' in flagged[0].line
    assert any(c.name == "connect" and c.allowed and not c.is_unix for c in calls)
    assert any(c.name.startswith("send") and c.hosts() and c.allowed for c in calls)


def test_no_plaintext_at_rest_after_the_demo(house):
    """After the demo: every byte of every file in its data dir, TMPDIR and working
    folder read; no MP4 box, JPEG, PNG or age identity in any."""
    scan = house.after_demo
    assert scan.hits == []
    assert scan.skipped == {}
    clips = [path for path in scan.files if path.endswith(".mp4.age")]
    assert len(clips) >= 2, "the first ring's clip and the one Ctrl-C finished"
    print(f"after the demo: {len(scan.files)} files, {scan.bytes_read} bytes")


def test_no_plaintext_at_rest_after_replay_and_the_control_is_found(house):
    """After ``doorbell replay`` of porch-visitors.mp4 into the same data dir: the same,
    in one scan with the control file, where each kind is found where it was put."""
    scan = house.after_replay
    control = str(house.folder("control") / "plaintext.bin")
    assert [hit for hit in scan.hits if hit[0] != control] == []
    assert scan.files == sizes_now([*house.at_rest, house.folder("control")])
    assert scan.skipped == {}
    assert len(scan.files) > len(house.after_demo.files)  # the replay's clips are there too
    found = {(offset, kind) for path, offset, kind in scan.hits}
    offsets = house.control_offsets
    assert (offsets["clip"], "MP4 box ftyp") in found
    assert {"MP4 box moov", "MP4 box moof", "MP4 box mdat"} <= {kind for _, kind in found}
    assert (offsets["thumbnail"], "JPEG") in found
    assert (offsets["png"], "PNG") in found
    assert any(kind == "age identity" and offset > offsets["key"] for offset, kind in found)
    print(f"after the replay: {len(scan.files)} files, {scan.bytes_read} bytes")


def test_files_are_written_only_in_the_data_dir_tmpdir_and_working_folder(house):
    """Every file the demo's and the replay's trees opened for writing, created or
    renamed into lies in the folders scanned above (or is /dev/null, a bytecode cache,
    or the audit hook's own log)."""
    for name in ("demo", "replay"):
        elsewhere = sorted(
            path
            for path in written_paths(house.calls(name), house.folder("cwd"))
            if path not in ("/dev/null", str(house.trace / f"{name}.audit"))
            and not re.search(r"/__pycache__/[^/]+\.pyc(\.\d+)?$", path)
            and not any(Path(path).is_relative_to(root) for root in house.at_rest)
        )
        assert elsewhere == [], name


def test_the_scanner_reads_past_the_header_and_ignores_random_bytes():
    """Random bytes (what age ciphertext looks like) hold none of the signatures; one
    JPEG header put 5 MB into them is found there."""
    noise = random.Random(13).randbytes(16 << 20)
    assert find_in(noise) == []
    jpeg = bytes.fromhex("ffd8ffe000104a46494600010100000100010000ffdb0043") + bytes(65)
    jpeg += bytes.fromhex("ffc0001108001000100301220002110103110100ffda000c")
    hidden = noise[: 5 << 20] + jpeg + noise[5 << 20 :]
    assert find_in(hidden) == [(5 << 20, "JPEG")]


STRACE_LINES = {  # strace 6.1's own lines (-f -yy), and whether each is allowed
    "7 connect(3<UDPv6:[1]>, {sa_family=AF_INET6, sin6_port=htons(9), sin6_flowinfo=htonl(0),"
    ' inet_pton(AF_INET6, "::1", &sin6_addr), sin6_scope_id=0}, 28) = 0': True,
    '7 sendto(3<UDPv6:[[::1]:45357->[::1]:9]>, "x", 1, 0, NULL, 0) = 1': True,
    '7 sendto(3<UDPv6:[[::ffff:127.0.0.1]:4->[::ffff:127.0.0.1]:9]>, "x", 1, 0, NULL, 0) = 1': True,
    '7 sendto(4<UDPv6:[[fd00::2]:33617->[2001:db8::1]:9]>, "x", 1, 0, NULL, 0) = 1': False,
    '7 connect(4<UNIX:[1]>, {sa_family=AF_UNIX, sun_path="/run/systemd/notify"}, 22) = 0': True,
    '7 sendto(4<UNIX:[1]>, "R", 1, 0, {sa_family=AF_UNIX, sun_path=@"abstract"}, 11) = 1': True,
    "7 sendto(5<NETLINK:[1]>, {nlmsg_len=0}, 16, 0, {sa_family=AF_NETLINK, nl_pid=0}, 12) = 16": False,
    '7 bind(11<TCP:[1]>, {sa_family=AF_INET, sin_port=htons(0), sin_addr=inet_addr("0.0.0.0")}, 16)'
    " = 0": False,
    '7 sendto(12<TCP:[1]>, "H", 1, 0, NULL, 0) = -1 EPIPE (Broken pipe)': False,
}


@pytest.mark.parametrize(("line", "allowed"), STRACE_LINES.items())
def test_the_strace_reader_on_each_kind_of_line(line, allowed):
    """IPv6 loopback and IPv4 loopback inside IPv6 pass, AF_UNIX (paths, the abstract
    space) passes; a documentation address, netlink, a bind to every address, and a
    socket whose address strace could not name do not."""
    (call,) = syscalls(line)
    assert call.is_network and call.allowed is allowed
