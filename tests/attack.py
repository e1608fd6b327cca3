"""The attack harness (issue 13): the real service attacked from the LAN, measured as its
owner sees it. Importable by tests and bench/attack_bench.py.

    camera = camera_source(footage_file, folder)     # the footage, or it at 720p15
    async with Device(folder, camera) as device:     # the service, in a child process
        figures = await scenario(device, "idle", seconds=60)
    print(figures.report())
    assert not figures.failures()

- The camera: porch-visitors.mp4 as it is (768x432, 10 fps: the issue's "153 MB
  without" load is this footage). With DOORBELL_ATTACK_CAMERA=720p15,
  :func:`camera_source` makes it the device's default picture (1280x720, 15 fps) once;
  then decoding and encoding it in software cost about 25 MB more than the footage as
  it is (a Pi camera needs neither), and the RSS limit is not met (the bench says so).
- The device: ``Service(config, demo=True, work_factor=10)`` run by the CLI's own
  ``_serve`` (its logging and signals) in a child process, the opencv/file camera
  playing that file in real time, looping; 127.0.0.1:<free port>, tls off; stdout and
  stderr to ``device.log``; an owner paired into the data dir first; optionally
  RLIMIT_NOFILE soft = hard = ``nofile``. Clips: 2 s pre-roll, 3 s post-roll, at most
  10 s (a bell every 2 s gives a clip every 10 s), motion only extends.
- The probes, this process, all from 127.0.0.1: one signed-in owner's event stream
  open throughout (reopened after 3 s if it ends, as a browser's EventSource does); a
  bell press every 2 s timed from the POST to the ``bell`` event on the stream (a
  request on a kept-alive connection the server had closed is sent once more, as a
  browser does); /api/status after each press (every counter it has, and how far the
  camera is behind real time: :meth:`Figures.note_lag`); a new connection for GET
  /health every second; the child's VmRSS and descriptors every 0.2 s, VmHWM at the
  end; the log's growth and its commonest new lines; the machine's CPU (other work on
  it slows the service too). Afterwards every press must be in a finished clip, and
  each such clip complete (the index's state: the API does not give it) and
  decrypting with the owner's identity to an MP4 whose every frame decodes.
- The attack (:data:`ATTACKS`) runs in a process of its own (``python -m tests.attack
  NAME PORT SECONDS COOKIE``), so its work never delays the probes' clocks; every
  client binds to an address of 127.0.0.2 ... 127.0.3.254 before it connects, so the
  owner at 127.0.0.1 is another client and per-address limits are met. Each client
  waits :data:`PAUSE` before it connects again (the attacker's own load is bounded)
  and its process raises its own RLIMIT_NOFILE soft limit as far as it needs. The
  event streams held open carry the cookie of a second session of the same owner, so
  a cap per session meets them and not the probes' own stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import math
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
PAUSE = 0.1  # seconds an attacking client waits before it connects again
CONNECT_TIMEOUT = 5.0  # seconds
SLOW_STEP = 3.0  # seconds between the bytes of a slow header
BODY_SIZE = 1 << 20  # bytes a body says it has (Content-Length)
SLOW_BODY_STEP = (1.0, 1024)  # a slow body: 1 KiB a second


def sources(count: int) -> list[str]:
    """``count`` loopback addresses from 127.0.0.2 on (at most 1015: to 127.0.3.254)."""
    every = [f"127.0.{c}.{d}" for c in range(4) for d in range(1, 255) if (c, d) != (0, 1)]
    if count > len(every):
        raise ValueError(f"at most {len(every)} source addresses, not {count}")
    return every[:count]


@dataclass(frozen=True)
class Attack:
    """``clients`` concurrent clients spread over ``addresses`` source addresses."""

    clients: int
    addresses: int
    what: str


ATTACKS = {
    "idle": Attack(1000, 250, "1,000 idle TCP connections (nothing sent; reconnect when closed)"),
    "slow-headers": Attack(200, 200, "200 clients sending a request's header a byte every 3 s"),
    "bodies": Attack(
        200,
        200,
        "200 unauthenticated 1 MiB bodies to /api/owners/find and /api/login/challenge "
        "(3 in 4 at 1 KiB/s, 1 in 4 all at once, again and again)",
    ),
    "streams": Attack(
        200, 100, "200 event streams: 100 without a cookie in a loop, 100 with one held open"
    ),
}


# --- the attacker (its own process) -------------------------------------------------------


class Tally:
    """What the attacking clients saw: outcomes counted, how long the server held the
    connections it ended (seconds), and the most open at once."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.held: list[float] = []
        self.open = self.most_open = 0

    @contextlib.contextmanager
    def opened(self):
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        try:
            yield
        finally:
            self.open -= 1

    def as_dict(self) -> dict:
        held = sorted(self.held)
        return {
            "counts": dict(self.counts.most_common()),
            "ended_by_server_after_s": {
                "n": len(held),
                "median": round(statistics.median(held), 2) if held else None,
                "max": round(held[-1], 2) if held else None,
            },
            "most_open": self.most_open,
            "cpu_s": round(sum(resource.getrusage(resource.RUSAGE_SELF)[:2]), 1),
        }


async def _connect(src: str, port: int, tally: Tally):
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(HOST, port, local_addr=(src, 0)), CONNECT_TIMEOUT
        )
    except TimeoutError:
        tally.counts["connect timed out"] += 1
        return None
    except OSError as err:
        tally.counts[f"connect failed: {errno.errorcode.get(err.errno or 0, err)}"] += 1
        return None
    tally.counts["connected"] += 1
    return reader, writer


async def _ended(reader: asyncio.StreamReader, timeout: float, stream: bool = False) -> str | None:
    """How the server ended the exchange within ``timeout`` s (None: it did not; with
    ``stream``, data that is no response's head is a stream's and read past too)."""
    try:
        data = await asyncio.wait_for(reader.read(65536), max(timeout, 0.0))
    except TimeoutError:
        return None
    except ConnectionError:
        return "reset by the server"
    if not data:
        return "closed by the server"
    if stream and data[:7] != b"HTTP/1.":
        return None
    return f"answered {data[9:12].decode(errors='replace')}" if data[:7] == b"HTTP/1." else "odd"


async def _hold(
    reader, writer, tally: Tally, deadline: float, step: float, trickle, stream=False
) -> str:
    """Keep a connection until the server ends it or ``deadline``, sending ``trickle()``
    (bytes, or b"" for nothing) every ``step`` s. Returns the outcome."""
    opened = time.monotonic()
    with tally.opened():
        while (left := deadline - time.monotonic()) > 0:
            outcome = await _ended(reader, min(step, left), stream)
            if outcome is not None:
                tally.held.append(time.monotonic() - opened)
                return outcome
            if chunk := trickle():
                try:
                    writer.write(chunk)
                    await asyncio.wait_for(writer.drain(), CONNECT_TIMEOUT)
                except (ConnectionError, TimeoutError):
                    return "reset while sending"
    return "held to the end"


def _request(method: str, path: str, port: int, *headers: str) -> bytes:
    return "\r\n".join(
        [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{port}", *headers, "", ""]
    ).encode()


def _body() -> bytes:
    head = b'{"owner": "'
    return head + b"x" * (BODY_SIZE - len(head) - 2) + b'"}'


async def _client(
    name: str, i: int, src: str, port: int, deadline: float, cookie: str, tally: Tally
):
    body = _body() if name == "bodies" else b""
    while deadline - time.monotonic() > 0:
        conn = await _connect(src, port, tally)
        if conn is not None:
            reader, writer = conn
            outcome = await _one(name, i, reader, writer, port, deadline, cookie, body, tally)
            tally.counts[outcome] += 1
            writer.close()
        await asyncio.sleep(PAUSE)


async def _one(name, i, reader, writer, port, deadline, cookie, body, tally) -> str:
    """One connection of client ``i`` of attack ``name``; its outcome."""
    if name == "idle":
        return await _hold(reader, writer, tally, deadline, math.inf, lambda: b"")
    if name == "slow-headers":
        writer.write(_request("GET", "/", port)[:-2] + b"X-Slow: ")
        return await _hold(reader, writer, tally, deadline, SLOW_STEP, lambda: b"a")
    if name == "bodies":
        path = ("/api/owners/find", "/api/login/challenge")[i % 2]
        json_head = ("Content-Type: application/json", f"Content-Length: {len(body)}")
        writer.write(_request("POST", path, port, *json_head))
        if i % 4 == 0:  # all at once
            writer.write(body)
            return await _hold(reader, writer, tally, deadline, math.inf, lambda: b"")
        sent = [0]
        step, size = SLOW_BODY_STEP

        def piece() -> bytes:
            start, sent[0] = sent[0], min(sent[0] + size, len(body))
            return body[start : sent[0]]

        return await _hold(reader, writer, tally, deadline, step, piece)
    # streams: even clients without a cookie, again and again; odd ones hold one open
    headers = ["Accept: text/event-stream"] + ([f"Cookie: {cookie}"] if i % 2 else [])
    writer.write(_request("GET", "/api/events", port, *headers))
    first = await _ended(reader, CONNECT_TIMEOUT)
    if first != "answered 200" or i % 2 == 0:
        return first or "no answer"
    return "stream: " + await _hold(reader, writer, tally, deadline, 1.0, lambda: b"", True)


async def attack(name: str, port: int, seconds: float, cookie: str = "") -> dict:
    """Run attack ``name`` against 127.0.0.1:``port`` for ``seconds``; what it saw."""
    spec = ATTACKS[name]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = spec.clients + 256
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    addresses, tally = sources(spec.addresses), Tally()
    deadline = time.monotonic() + seconds
    async with asyncio.TaskGroup() as group:
        for i in range(spec.clients):
            src = addresses[i % len(addresses)]
            group.create_task(_client(name, i, src, port, deadline, cookie, tally))
    return {"attack": name, "clients": spec.clients, "addresses": spec.addresses, **tally.as_dict()}


async def run_attacker(name: str, port: int, seconds: float, cookie: str) -> dict:
    """:func:`attack` in a child process (``python -m tests.attack``); what it saw."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.attack",
        name,
        str(port),
        str(seconds),
        cookie,
        cwd=Path(__file__).resolve().parents[1],
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(child.communicate(), seconds + 60)
    lines = out.decode().strip().splitlines()
    if child.returncode != 0 or not lines:
        return {"attack": name, "error": f"the attacker exited with {child.returncode}"}
    return json.loads(lines[-1])


# --- the device -----------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]
CAMERA = os.environ.get("DOORBELL_ATTACK_CAMERA", "footage")  # or "720p15"
# the camera picture: porch-visitors.mp4's own (10 fps), or the device's default
SIZE, FPS = ((1280, 720), 15) if CAMERA == "720p15" else (None, 10)
POLICY = "pre_roll=2.0, post_roll=3.0, max_clip=10.0, motion_starts=False"
SERVE = f"""
import dataclasses, sys
from doorbell.cli.serve import _serve
from doorbell.config import (
    CameraSettings, Config, PipelineSettings, Policy, StorageSettings, WebSettings)
from doorbell.service import Service

data, source = sys.argv[1:3]
config = dataclasses.replace(
    Config(),
    pipeline=PipelineSettings(policy=Policy({POLICY})),
    storage=StorageSettings(data_dir=data, min_free_mb=0),
    camera=CameraSettings(backend="opencv", source=source, loop=True),
    web=WebSettings(listen="127.0.0.1:0", tls="off"),
)
sys.exit(_serve(Service(config, demo=True, work_factor=10)))
"""


def camera_source(footage: Path, folder: Path) -> Path:
    """``footage`` itself, or with DOORBELL_ATTACK_CAMERA=720p15 as the device's default
    camera: every frame scaled to 1280x720 and timed at 15 fps (each a real frame; 10
    fps footage runs 1.5x fast), H.264 in MP4, made once into ``folder`` (about 10 s
    for porch-visitors.mp4)."""
    import fractions

    import av

    if SIZE is None:
        return footage
    made = folder / f"{footage.stem}-720p15.mp4"
    if made.exists():
        return made
    part = folder / f"{made.name}.part"
    with av.open(str(footage)) as src, av.open(str(part), "w", format="mp4") as dst:
        stream = dst.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = *SIZE, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "23"}
        for n, frame in enumerate(src.decode(video=0)):
            scaled = frame.reformat(width=SIZE[0], height=SIZE[1], format="yuv420p")
            scaled.pts, scaled.time_base = n, fractions.Fraction(1, FPS)
            dst.mux(stream.encode(scaled))
        dst.mux(stream.encode(None))
    part.rename(made)
    return made


class Device:
    """The service in a child process (see the module), from the code in ``root``
    (default: this repository). ``nofile``: its RLIMIT_NOFILE, soft and hard."""

    def __init__(self, folder: Path, source: Path, *, nofile: int | None = None, root: Path = REPO):
        self.folder, self.source, self.nofile, self.root = folder, source, nofile, root
        self.data, self.log = folder / "data", folder / "device.log"
        self.process: subprocess.Popen | None = None
        self.port = 0
        self.owner = None  # tests.owners.PairedOwner

    async def __aenter__(self) -> Device:
        from tests.owners import pair_owner

        self.owner = pair_owner(self.data)
        nofile = self.nofile

        def limit() -> None:
            if nofile is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        with self.log.open("wb") as log:
            argv = [sys.executable, "-c", SERVE, str(self.data), str(self.source)]
            self.process = subprocess.Popen(
                argv, cwd=self.root, stdout=log, stderr=subprocess.STDOUT, preexec_fn=limit
            )
        deadline = time.monotonic() + 60
        while not (found := re.search(rb"open http://[^/]*:(\d+)/", self.log.read_bytes())):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the service did not start; its log ends: {self.tail()}")
            await asyncio.sleep(0.1)
        self.port = int(found.group(1))
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.to_thread(self.process.wait), 30)
            except TimeoutError:
                self.process.kill()
                self.process.wait()

    def exited(self) -> str:
        """'' while the service runs, else how it ended and its log's last lines."""
        assert self.process is not None
        code = self.process.poll()
        return "" if code is None else f"exit code {code}; its log ends: {self.tail()}"

    def tail(self, lines: int = 5) -> str:
        return " | ".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def _proc(self, name: str) -> str:
        assert self.process is not None
        return Path(f"/proc/{self.process.pid}/{name}").read_text()

    def memory(self) -> tuple[int, int]:
        """(VmRSS, VmHWM) in bytes."""
        fields = dict(line.split(":", 1) for line in self._proc("status").splitlines())
        return tuple(int(fields[k].split()[0]) * 1024 for k in ("VmRSS", "VmHWM"))  # type: ignore[return-value]

    def descriptors(self) -> int:
        assert self.process is not None
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))

    def cpu_seconds(self) -> float:
        fields = self._proc("stat").rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log_size(self) -> int:
        return self.log.stat().st_size


# --- the owner: a session, its event stream, its probes --------------------------------------

PRESS_EVERY = 2.0  # seconds between bell presses
PRESS_TIMEOUT = 10.0  # seconds a press may take to reach the event stream (then: missed)
RANGE = 1 << 20  # bytes a player's range request asks for


@dataclass
class Press:
    at: float  # wall seconds: the bell event's own time, else when it was pressed
    ms: float | None  # POST -> the bell event on the stream; None: missed
    problem: str = ""


def _session(port: int, cookie: str = ""):
    import aiohttp

    return aiohttp.ClientSession(
        base_url=f"http://{HOST}:{port}",
        connector=aiohttp.TCPConnector(local_addr=(HOST, 0)),
        cookie_jar=aiohttp.CookieJar(unsafe=True),  # cookies for an IP address
        headers={"Cookie": cookie} if cookie else None,
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT, sock_read=30),
    )


class Owner:
    """The owner at 127.0.0.1: signed in by challenge (tests/owners.py), the event stream
    open (bell times to :attr:`bells`, finished clips to :attr:`clips`)."""

    def __init__(self, device: Device) -> None:
        self.device = device
        self.bells: asyncio.Queue[tuple[float, float]] = asyncio.Queue()  # (at, monotonic)
        self.clips: list[dict] = []
        self.stream_open = asyncio.Event()
        self.stream_ends = self.retries = 0

    async def __aenter__(self) -> Owner:
        from tests.owners import sign_in

        self.session = _session(self.device.port)
        self.csrf = await sign_in(self.session, self.device.owner)
        self._listener = asyncio.create_task(self._listen())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._listener.cancel()
        await self.session.close()

    def cookie(self) -> str:
        from yarl import URL

        jar = self.session.cookie_jar.filter_cookies(URL(f"http://{HOST}:{self.device.port}/"))
        return f"doorbell_session={jar['doorbell_session'].value}"

    async def another_session(self) -> str:
        """The cookie of a second session of the same owner (a second login)."""
        async with Owner(self.device) as other:
            return other.cookie()

    async def _listen(self) -> None:
        import aiohttp

        while True:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError, ValueError):
                async with self.session.get("/api/events") as response:
                    if response.status == 200:
                        self.stream_open.set()
                        event = ""
                        async for raw in response.content:
                            line = raw.decode().rstrip("\r\n")
                            if line.startswith("event: "):
                                event = line[7:]
                            elif line.startswith("data: ") and event == "bell":
                                self.bells.put_nowait(
                                    (json.loads(line[6:])["at"], time.monotonic())
                                )
                            elif line.startswith("data: ") and event == "clip":
                                self.clips.append(json.loads(line[6:]))
            self.stream_ends += 1
            await asyncio.sleep(3.0)  # as a browser's EventSource

    async def request(self, method: str, path: str, **kwargs) -> tuple[int, bytes]:
        """(status, body). Sent again, at most twice, if the connection was closed before
        an answer: a browser does so when a kept-alive connection the server had closed
        fails, and the pool may hold more than one such. Raises aiohttp.ClientError,
        TimeoutError."""
        import aiohttp

        for attempt in range(3):
            try:
                async with asyncio.timeout(PRESS_TIMEOUT):
                    async with self.session.request(method, path, **kwargs) as response:
                        return response.status, await response.read()
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
                if attempt == 2:
                    raise
                self.retries += 1
        raise AssertionError("unreachable")

    async def press(self) -> Press:
        import aiohttp

        while not self.bells.empty():
            self.bells.get_nowait()
        wall, start = time.time(), time.monotonic()
        waiting = "no answer to POST /api/bell"
        try:
            async with asyncio.timeout(PRESS_TIMEOUT):
                status, _ = await self.request(
                    "POST", "/api/bell", headers={"X-CSRF-Token": self.csrf}
                )
                if status != 202:
                    return Press(wall, None, f"POST /api/bell answered {status}")
                waiting = "no bell event"
                at, seen = await self.bells.get()
        except TimeoutError:
            return Press(wall, None, f"{waiting} within {PRESS_TIMEOUT:g} s")
        except aiohttp.ClientError as err:
            return Press(wall, None, f"POST /api/bell: {type(err).__name__}")
        return Press(at, (seen - start) * 1000)

    async def status(self) -> dict | None:
        import aiohttp

        try:
            code, body = await self.request("GET", "/api/status")
        except (aiohttp.ClientError, TimeoutError):
            return None
        return json.loads(body) if code == 200 else None

    async def ready(self) -> None:
        """The stream open, the camera running (2 s of frames), two presses to warm up."""
        await asyncio.wait_for(self.stream_open.wait(), 30)
        async with asyncio.timeout(60):
            while ((await self.status()) or {}).get("frames", {}).get("received", 0) < 2 * FPS:
                await asyncio.sleep(0.5)
        for _ in range(2):
            await self.press()
            await asyncio.sleep(PRESS_EVERY)

    async def seed(self, count: int) -> list[str]:
        """Press the bell until ``count`` more clips finished; their ids."""
        had = len(self.clips)
        async with asyncio.timeout(30 + count * 15):
            while len(self.clips) < had + count:
                await self.press()
                await asyncio.sleep(PRESS_EVERY)
        return [clip["id"] for clip in self.clips[had : had + count]]

    async def clip_covering(self, at: float) -> None:
        """Until a finished clip ends at or after ``at`` (wall seconds), at most 30 s."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(30):
                while not any((c["end"] or 0) >= at - 0.5 for c in self.clips):
                    await asyncio.sleep(0.2)


async def health(port: int) -> float | str:
    """GET /health on a new connection from 127.0.0.1: milliseconds, or what went wrong."""
    start = time.monotonic()
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            reader, writer = await asyncio.open_connection(HOST, port, local_addr=(HOST, 0))
            writer.write(_request("GET", "/health", port, "Connection: close"))
            answer = await reader.read()
            writer.close()
    except TimeoutError:
        return f"no answer in {CONNECT_TIMEOUT:g} s"
    except OSError as err:
        return errno.errorcode.get(err.errno or 0, type(err).__name__)
    if not answer.startswith(b"HTTP/1.1 200"):
        return f"answered {answer[:12]!r}"
    return (time.monotonic() - start) * 1000


async def _range_reader(port: int, cookie: str, clip: str, until: float, tally: Counter) -> None:
    """The player's way: 1 MiB ranges of one clip's ciphertext, from the start again at the end."""
    import aiohttp

    offset = 0
    async with _session(port, cookie) as session:
        while time.monotonic() < until:
            try:
                headers = {"Range": f"bytes={offset}-{offset + RANGE - 1}"}
                async with session.get(f"/clips/{clip}/file", headers=headers) as response:
                    body = await response.read()
                    total = int(response.headers.get("Content-Range", "/0").rsplit("/", 1)[1])
                    if response.status != 206:
                        tally[f"range answered {response.status}"] += 1
                        await asyncio.sleep(1)
                        continue
            except (aiohttp.ClientError, TimeoutError) as err:
                tally[f"range failed: {type(err).__name__}"] += 1
                await asyncio.sleep(1)
                continue
            tally["range bytes"] += len(body)
            offset = 0 if offset + len(body) >= total else offset + len(body)


async def _live_viewer(port: int, cookie: str, until: float, tally: Counter) -> None:
    import aiohttp

    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(until - time.monotonic()), _session(port, cookie) as session:
            while True:
                try:
                    async with session.get("/live.mjpeg") as response:
                        async for chunk in response.content.iter_any():
                            tally["live frames"] += chunk.count(b"--frame")
                except aiohttp.ClientError as err:
                    tally[f"live failed: {type(err).__name__}"] += 1
                await asyncio.sleep(1)


# --- a scenario and its figures ------------------------------------------------------------

BELL_P99_MS = 100.0
RSS_PEAK = 150e6  # bytes (VmHWM)
LOG_BYTES = 64 * 1024  # log growth one scenario may cause
LAG_FRAMES = 2  # frames the camera may be behind real time: the jitter at each end
COUNTERS = re.compile(r"^frames\.(received|dropped)|missed|refused|evicted|rejected|connections")


def numbers(tree: dict, prefix: str = "") -> dict[str, float]:
    """Every number in a JSON object, by dotted path (``frames.dropped``)."""
    found: dict[str, float] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            found.update(numbers(value, f"{prefix}{key}."))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            found[prefix + key] = value
    return found


@dataclass
class Figures:
    """What one scenario measured; :meth:`failures` holds it to the issue's limits."""

    name: str
    seconds: float
    presses: list[Press] = field(default_factory=list)
    rss: list[int] = field(default_factory=list)  # VmRSS bytes, every 0.2 s
    rss_peak: int = 0  # VmHWM bytes at the end: the process's peak
    fds: list[int] = field(default_factory=list)
    counters: dict[str, float] = field(default_factory=dict)  # /api/status, after - before
    lag: list[float] = field(default_factory=list)  # frames behind real time, each press
    log_bytes: int = 0
    log_top: list[tuple[str, int]] = field(default_factory=list)  # commonest new lines
    health_ms: list[float | str] = field(default_factory=list)  # str: what went wrong
    health_after: bool = False
    clips: list[dict] = field(default_factory=list)  # the clips of the presses, checked
    uncovered: list[float] = field(default_factory=list)  # presses no clip holds
    started: float = 0.0  # wall seconds when the scenario's measuring began
    machine: dict = field(default_factory=dict)  # the machine's CPU, others' work included
    attack: dict = field(default_factory=dict)
    load: dict = field(default_factory=dict)
    cpu_s: float = 0.0
    exited: str = ""
    stream_ends: int = 0
    retries: int = 0

    def note_lag(self, before: dict, status: dict | None) -> None:
        """How many frames the camera is behind real time since ``before`` (both
        /api/status): the wall time between their last frames against the frames between."""
        first, now = before.get("frames", {}), (status or {}).get("frames", {})
        if first.get("last_at") and now.get("last_at"):
            span = (now["last_at"] - first["last_at"]) * FPS
            self.lag.append(span - (now["received"] - first["received"]))

    def bell(self, percent: float) -> float:
        """Bell -> event milliseconds at ``percent`` (nearest rank; a missed press is inf)."""
        ms = sorted(math.inf if p.ms is None else p.ms for p in self.presses)
        return ms[max(0, math.ceil(percent / 100 * len(ms)) - 1)] if ms else math.inf

    def failures(self) -> list[str]:
        """Each limit broken, with the figure and the limit."""
        found = [f"the service exited: {self.exited}"] if self.exited else []
        missed = [p.problem for p in self.presses if p.ms is None]
        if missed:
            found.append(f"{len(missed)} of {len(self.presses)} presses missed: {Counter(missed)}")
        if self.bell(99) > BELL_P99_MS:
            found.append(f"bell -> event p99 {self.bell(99):.0f} ms > {BELL_P99_MS:.0f} ms")
        if self.rss_peak > RSS_PEAK:
            found.append(f"peak RSS {self.rss_peak / 1e6:.0f} MB > {RSS_PEAK / 1e6:.0f} MB")
        for key, grew in self.counters.items():
            if ("dropped" in key or "missed" in key) and grew > 0:
                found.append(f"status {key} grew by {grew:g}")
        if self.lag and max(self.lag) > LAG_FRAMES:
            found.append(
                f"the camera fell {max(self.lag):.0f} frames ({max(self.lag) / FPS:.1f} s) "
                f"behind real time (> {LAG_FRAMES}); at the end {self.lag[-1]:.0f}"
            )
        if self.log_bytes > LOG_BYTES:
            found.append(f"the log grew {self.log_bytes} bytes > {LOG_BYTES}: {self.log_top}")
        failed = Counter(h for h in self.health_ms if isinstance(h, str))
        if failed:
            found.append(
                f"GET /health on a new connection failed {failed.total()} of "
                f"{len(self.health_ms)} times: {dict(failed)}"
            )
        if not self.health_after:
            found.append("GET /health failed after the scenario")
        if self.uncovered:
            found.append(
                f"{len(self.uncovered)} presses are in no finished clip: at "
                f"{[round(at - self.started, 1) for at in self.uncovered]} s into the scenario"
            )
        found += [f"clip {c['id']}: {c['problem']}" for c in self.clips if c["problem"]]
        if not self.clips:
            found.append("no clip to check")
        if self.attack and not self.attack.get("counts", {}).get("connected"):
            found.append(f"the attack did not run: {self.attack}")
        if self.load and not (self.load.get("range bytes") and self.load.get("live frames")):
            found.append(f"the owner's load did not run: {self.load}")
        return found

    def report(self) -> str:
        ms = [p.ms for p in self.presses if p.ms is not None]
        lag = (
            f"most {max(self.lag) / FPS:.2f} s, at the end {self.lag[-1] / FPS:.2f} s"
            if self.lag
            else "?"
        )
        health = [h for h in self.health_ms if not isinstance(h, str)]
        lines = [
            f"{self.name} ({self.seconds:g} s)",
            f"  bell -> event: p50 {self.bell(50):.1f} ms, p99 {self.bell(99):.1f} ms, "
            f"max {max(ms, default=0):.1f} ms; {len(self.presses)} presses, "
            f"{len(self.presses) - len(ms)} missed; stream ended {self.stream_ends}x, "
            f"requests retried {self.retries}x",
            f"  RSS: peak {self.rss_peak / 1e6:.1f} MB, sampled {min(self.rss, default=0) / 1e6:.1f}"
            f"-{max(self.rss, default=0) / 1e6:.1f} MB; descriptors {min(self.fds, default=0)}"
            f"-{max(self.fds, default=0)}; CPU {self.cpu_s:.1f} s ({self.cpu_s / self.seconds:.0%} of a core)",
            f"  status: {', '.join(f'{k} +{v:g}' for k, v in self.counters.items())}; behind real time: {lag}",
            f"  log: +{self.log_bytes} bytes; commonest new lines: {self.log_top}",
            f"  GET /health, new connections: {len(health)}/{len(self.health_ms)} ok, "
            f"slowest {max(health, default=0):.0f} ms; after: {'ok' if self.health_after else 'FAILED'}",
            "  clips: "
            + "; ".join(
                f"{c['id'][:8]} {c['state']} {c['seconds']} s {c.get('frames')}/{c.get('packets')} frames"
                for c in self.clips
            ),
        ]
        if self.attack:
            what = ATTACKS[self.attack["attack"]].what
            lines.append(f"  attack: {what}; it saw: {json.dumps(self.attack)}")
        if self.load:
            lines.append(f"  owner load: {dict(self.load)}")
        if self.machine:
            lines.append(f"  machine: {self.machine} (other work on it slows the service too)")
        return "\n".join(lines + [f"  FAIL {failure}" for failure in self.failures()])


async def scenario(
    device: Device, attack: str | None = None, *, seconds: float = 60.0, load: bool = False
) -> Figures:
    """Measure ``device`` for ``seconds`` under ``attack`` (a key of :data:`ATTACKS`, or
    None), and with ``load``: 4 clients reading 4 seeded clips by 1 MiB ranges and 2 live
    viewers, all the owner's. Then check the clips of the presses and the health."""
    figures = Figures(attack or ("owner load" if load else "baseline"), seconds)
    load_tally: Counter[str] = Counter()
    async with Owner(device) as owner:
        await owner.ready()
        seeded = await owner.seed(4) if load else []
        cookie = await owner.another_session() if attack == "streams" else ""
        before = await owner.status() or {}
        log_from, cpu_from = device.log_size(), device.cpu_seconds()
        busy_from, own_from = _busy(), _own_cpu()
        until, figures.started = time.monotonic() + seconds, time.time()
        tasks = [
            asyncio.create_task(_sample(device, figures, until)),
            asyncio.create_task(_press(owner, figures, before, until)),
            asyncio.create_task(_health(device.port, figures, until)),
        ]
        loads = [_range_reader(device.port, owner.cookie(), c, until, load_tally) for c in seeded]
        loads += [_live_viewer(device.port, owner.cookie(), until, load_tally) for _ in seeded[:2]]
        tasks += [asyncio.create_task(coroutine) for coroutine in loads]
        if attack is not None:
            figures.attack = await run_attacker(attack, device.port, seconds, cookie)
        await asyncio.gather(*tasks)
        busy, total = (b - a for a, b in zip(busy_from, _busy(), strict=True))
        figures.machine = {
            "busy cores": round(busy / total * (os.cpu_count() or 1), 2),
            "of": os.cpu_count(),
            "this process CPU s": round(_own_cpu() - own_from, 1),
            "load average": round(os.getloadavg()[0], 2),
        }
        figures.load = dict(load_tally)
        if figures.presses:
            await owner.clip_covering(max(p.at for p in figures.presses))
        after = await owner.status()
        figures.note_lag(before, after)
        old = numbers(before)
        figures.counters = {
            k: v - old.get(k, 0) for k, v in numbers(after or {}).items() if COUNTERS.search(k)
        }
        await _check_clips(owner, figures)
        figures.health_after = not isinstance(await health(device.port), str)
        figures.stream_ends, figures.retries = owner.stream_ends, owner.retries
    figures.exited = device.exited()
    if not figures.exited:
        figures.rss_peak = device.memory()[1]
        figures.cpu_s = device.cpu_seconds() - cpu_from
    with device.log.open("rb") as log:
        log.seek(log_from)
        grown = log.read()
    figures.log_bytes = len(grown)
    shapes = Counter(
        re.sub(r"\d+", "N", line)[:160] for line in grown.decode(errors="replace").splitlines()
    )
    figures.log_top = shapes.most_common(3)
    return figures


def _busy() -> tuple[int, int]:
    """The machine's (busy, all) CPU time so far, in clock ticks (/proc/stat)."""
    ticks = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(ticks) - ticks[3] - ticks[4], sum(ticks)  # idle and iowait are not busy


def _own_cpu() -> float:
    return sum(resource.getrusage(resource.RUSAGE_SELF)[:2])


async def _sample(device: Device, figures: Figures, until: float) -> None:
    while time.monotonic() < until:
        try:
            figures.rss.append(device.memory()[0])
            figures.fds.append(device.descriptors())
        except OSError:  # the service is gone: failures() says so
            return
        await asyncio.sleep(0.2)


async def _press(owner: Owner, figures: Figures, before: dict, until: float) -> None:
    """A press every 2 s; after each, how far the camera is behind real time."""
    while time.monotonic() < until:
        started = time.monotonic()
        figures.presses.append(await owner.press())
        figures.note_lag(before, await owner.status())
        await asyncio.sleep(max(0.0, PRESS_EVERY - (time.monotonic() - started)))


async def _health(port: int, figures: Figures, until: float) -> None:
    while time.monotonic() < until:
        started = time.monotonic()
        figures.health_ms.append(await health(port))
        await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - started)))


async def _check_clips(owner: Owner, figures: Figures) -> None:
    """Each press in a finished clip; each such clip complete, decrypting with the owner's
    identity to an MP4 whose every frame decodes."""
    code, body = await owner.request("GET", "/api/clips")
    clips = json.loads(body)["clips"] if code == 200 else []
    holding: dict[str, dict] = {}
    for press in figures.presses:
        clip = next(
            (c for c in clips if c["end"] and c["start"] - 1 <= press.at <= c["end"] + 1), None
        )
        if clip is None:
            figures.uncovered.append(press.at)
        else:
            holding[clip["id"]] = clip
    for clip in holding.values():
        figures.clips.append(await _check_clip(owner, clip))


async def _check_clip(owner: Owner, clip: dict) -> dict:
    import aiohttp
    import av

    from doorbell import vault
    from doorbell.errors import DoorbellError
    from tests.conftest import decodable_frames

    state = clip.get("state") or _index_state(owner.device.data, clip["id"])
    found = {"id": clip["id"], "state": state, "seconds": round(clip["end"] - clip["start"], 1)}
    problem = "" if state == "complete" else f"state {state}"
    try:
        code, data = await owner.request("GET", f"/clips/{clip['id']}/file")
    except (aiohttp.ClientError, TimeoutError) as err:
        return {**found, "problem": problem or f"GET its file failed: {type(err).__name__}"}
    try:
        mp4 = vault.decrypt_bytes(data, [owner.device.owner.identity])
        found["frames"], found["packets"] = decodable_frames(mp4), _packets(mp4)
    except (DoorbellError, av.error.FFmpegError) as err:
        problem = problem or f"GET its file answered {code}; it does not decrypt and play: {err}"
    else:
        if not 0 < found["packets"] - 1 <= found["frames"]:
            problem = problem or f"{found['frames']} of its {found['packets']} frames decode"
    return {**found, "problem": problem}


def _packets(mp4: bytes) -> int:
    import io

    import av

    with av.open(io.BytesIO(mp4)) as container:
        return sum(1 for packet in container.demux(video=0) if packet.size)


def _index_state(data: Path, clip: str) -> str:
    """A clip's state from the index (the API does not give it)."""
    import sqlite3

    with contextlib.closing(
        sqlite3.connect(f"file:{data / 'index.sqlite3'}?mode=ro", uri=True)
    ) as db:
        row = db.execute("SELECT state FROM clips WHERE id = ?", (clip,)).fetchone()
    return row[0] if row else "missing from the index"


if __name__ == "__main__":
    print(
        json.dumps(
            asyncio.run(attack(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), *sys.argv[4:]))
        )
    )
