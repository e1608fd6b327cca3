"""The running service's memory at 1280x720 with one owner watching, over a soak, and its
start-up to the first HTTP response, each against its imports alone, in one run.

    .venv/bin/python bench/memory_bench.py [--minutes 15] [--camera 720p-file|synthetic]
        [--bell-every 180] [--env NAME=VALUE ...] [--preload FILE] [--json FILE]

The service is the real demo in a child process, on a free port and a fresh data dir:
``720p-file`` is ``doorbell demo --source`` looping porch-visitors.mp4 made 1280x720 at
15 fps (every frame scaled, so the 10 fps footage runs 1.5x fast; made once into
/var/tmp/doorbell-bench, about 10 s); ``synthetic`` is the demo's service with its
synthetic camera at 1280x720, 15 fps (``doorbell demo`` has no size option, so the child
builds the demo's config itself).

An owner pairs over the HTTP API (``POST /api/pair`` signs in) and keeps watching: the
live view (``GET /live.mjpeg``, read as it comes), the event stream (``GET /api/events``)
and a bell press every ``--bell-every`` seconds, so bell clips are recorded besides the
motion clips of the footage. Every second the bench reads the service's VmRSS, RssAnon,
RssFile and VmHWM from ``/proc/PID/status`` (never ``ru_maxrss``, which a child inherits
from its parent) and its CPU from ``/proc/PID/stat``; at the end ``/proc/PID/smaps`` says
which mappings hold the memory.

It prints steady RSS (median over the last half), peak (VmHWM), the anonymous/file split
and growth a minute over the last half (a leak shows there) against the goals (150 MB
steady, 180 MB peak). The baselines are fresh interpreters, with the service's flags,
that import and wait: ``import doorbell.service``, and every module the soaked service
had loaded when it stopped (its ``sys.modules``, written at exit by the child's
wrapper). Start-up is launch to the first 200 from ``GET /health`` against launch to
imports done, medians of 3 alternating runs. Memory barely moves with other load on the
machine; CPU and start-up times do (the load average is printed).

``--env`` sets a variable for the service and the baselines (``MALLOC_ARENA_MAX=2``);
``--preload FILE`` runs a Python file in the service before the demo starts, to try a
change without editing the module. Without the footage it exits with status 2.
"""

import argparse
import asyncio
import fractions
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import aiohttp
from footage import FOOTAGE, require
from procwatch import tree_cpu

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from doorbell import vault  # noqa: E402
from doorbell.owners import SetupCode  # noqa: E402
from tests.owners import pairing_fields  # noqa: E402

GOAL_STEADY_MB, GOAL_PEAK_MB = 150.0, 180.0  # issue 15: 1280x720, one owner watching
CACHE = Path("/var/tmp/doorbell-bench")
FIELDS = ("VmRSS", "RssAnon", "RssFile", "VmHWM", "Threads")  # of /proc/PID/status
RUNS = 3  # start-up and baselines: medians of this many

# The child: the demo as `python -m doorbell demo` runs it; writes sys.modules at exit.
WRAPPER = """
import atexit, dataclasses, runpy, sys
out, preload, camera, port, data, source = sys.argv[1:7]
def dump():
    with open(out, "w") as f:
        f.write("\\n".join(sorted(sys.modules)))
atexit.register(dump)
if preload:
    exec(compile(open(preload).read(), preload, "exec"), {"__name__": "preload"})
if camera == "720p-file":
    sys.argv = ["doorbell", "demo", "--port", port, "--data-dir", data, "--source", source]
    runpy.run_module("doorbell", run_name="__main__", alter_sys=True)
from doorbell.cli.serve import _serve
from doorbell.config import CameraSettings, Config, StorageSettings, WebSettings
from doorbell.service import Service
config = dataclasses.replace(
    Config(),
    storage=StorageSettings(data_dir=data, min_free_mb=0),
    camera=CameraSettings(backend="synthetic", width=1280, height=720, fps=15.0),
    web=WebSettings(listen="127.0.0.1:" + port, tls="off"),
)
sys.exit(_serve(Service(config, demo=True)))
"""

# A baseline: import a module, or every module named in a file; say so; wait for stdin.
# Cython's shared runtime entries (_cython_3_*) are in sys.modules but not importable.
IMPORTS = """
import importlib, os, sys
names = open(sys.argv[1]).read().split() if os.path.isfile(sys.argv[1]) else [sys.argv[1]]
for name in names:
    if name not in sys.modules and name not in ("__main__", "__mp_main__"):
        try:
            importlib.import_module(name)
        except ImportError:
            pass
print(len(names), flush=True)
sys.stdin.read()
"""


def footage_720p() -> Path:
    """porch-visitors.mp4 at 1280x720, 15 fps (each frame a real one), made once."""
    import av

    made = CACHE / "porch-visitors-720p15.mp4"
    if made.exists():
        return made
    CACHE.mkdir(parents=True, exist_ok=True)
    part = made.with_suffix(".part")
    with av.open(str(FOOTAGE / "porch-visitors.mp4")) as src, av.open(str(part), "w", "mp4") as dst:
        stream = dst.add_stream("libx264", rate=15)
        stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "23"}
        for n, frame in enumerate(src.decode(video=0)):
            scaled = frame.reformat(width=1280, height=720, format="yuv420p")
            scaled.pts, scaled.time_base = n, fractions.Fraction(1, 15)
            dst.mux(stream.encode(scaled))
        dst.mux(stream.encode(None))
    part.rename(made)
    return made


# --- what /proc says ------------------------------------------------------------------------


def proc(pid: int) -> dict[str, float]:
    """:data:`FIELDS` of ``/proc/PID/status`` (kB; Threads a count) and ``cpu``, user +
    system seconds of all its threads (:func:`procwatch.tree_cpu`: the demo has no child)."""
    found: dict[str, float] = {"cpu": tree_cpu(pid)}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in FIELDS:
                found[name] = int(value.split()[0])
    return found


def where_it_goes(pid: int, top: int = 14) -> list[dict]:
    """``/proc/PID/smaps`` summed by what is mapped: a file (a library, by name), [heap],
    [stack], or [anon] (anonymous mappings: glibc's thread arenas and big blocks, Python's
    1 MiB object arenas, thread stacks). The ``top`` largest by RSS: kB of rss and of
    anonymous pages, and how many mappings."""
    totals: dict[str, dict] = defaultdict(lambda: {"rss": 0, "anon": 0, "mappings": 0})
    name = ""
    with open(f"/proc/{pid}/smaps") as smaps:
        for line in smaps:
            head = line.split()
            if not head[0].endswith(":"):  # a mapping: address perms offset dev inode [path]
                path = " ".join(head[5:])
                name = path if path.startswith("[") else Path(path).name or "[anon]"
                totals[name]["mappings"] += 1
            elif head[0] in ("Rss:", "Anonymous:"):
                totals[name]["rss" if head[0] == "Rss:" else "anon"] += int(head[1])
    ranked = sorted(totals.items(), key=lambda kv: -kv[1]["rss"])
    return [{"name": n, **v} for n, v in ranked[:top]]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def child_env(args: argparse.Namespace) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.update(item.split("=", 1) for item in args.env)
    return env


# --- the service ----------------------------------------------------------------------------


class Service:
    """The demo in a child (see the module), launched on a fresh data dir in ``folder``."""

    def __init__(self, args: argparse.Namespace, source: Path | None, folder: Path) -> None:
        self.data, self.modules = folder / "data", folder / "modules.txt"
        self.origin = f"http://127.0.0.1:{free_port()}"
        argv = [sys.executable, "-c", WRAPPER, str(self.modules), args.preload or ""]
        argv += [args.camera, self.origin.rpartition(":")[2], str(self.data), str(source or "")]
        self.launched = time.perf_counter()
        self.child = subprocess.Popen(
            argv,
            env=child_env(args),
            stdin=subprocess.DEVNULL,
            stdout=(folder / "service.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    async def first_response(self, timeout: float = 120.0) -> float:
        """Seconds from launch to the first 200 from ``GET /health`` (tried every 5 ms)."""
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(self.origin, connector=connector) as probe:
            while time.perf_counter() - self.launched < timeout:
                if self.child.poll() is not None:
                    raise SystemExit(f"the service ended with {self.child.returncode}")
                try:
                    async with probe.get("/health") as answer:
                        if answer.status == 200:
                            return time.perf_counter() - self.launched
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.005)
        raise SystemExit(f"the service did not answer /health in {timeout:g} s")

    def stop(self) -> list[str]:
        """SIGINT (the demo finishes its clip); the modules it had loaded."""
        if self.child.poll() is None:
            self.child.send_signal(signal.SIGINT)
        try:
            self.child.wait(60)
        except subprocess.TimeoutExpired:
            self.child.kill()
            self.child.wait()
        return self.modules.read_text().split() if self.modules.exists() else []


async def pair(owner: aiohttp.ClientSession, data: Path) -> str:
    """Pair an owner with the data dir's setup code (which signs in); the CSRF token."""
    code = SetupCode(data).read()
    body = {"code": code, "name": "Bench", **pairing_fields(vault.X25519Identity.generate())}
    async with owner.post("/api/pair", json=body) as paired:
        if paired.status != 200:
            raise SystemExit(f"pairing failed: {paired.status} {await paired.text()}")
        return (await paired.json())["csrf_token"]


async def watch_live(owner: aiohttp.ClientSession, seen: dict) -> None:
    async with owner.get("/live.mjpeg", timeout=aiohttp.ClientTimeout(total=None)) as live:
        async for chunk in live.content.iter_chunked(1 << 16):
            seen["live frames"] += chunk.count(b"--frame")


async def watch_events(owner: aiohttp.ClientSession, seen: dict) -> None:
    async with owner.get("/api/events", timeout=aiohttp.ClientTimeout(total=None)) as events:
        async for line in events.content:
            seen["events"] += line.startswith(b"event:")


async def press_bell(owner: aiohttp.ClientSession, csrf: str, every: float, seen: dict) -> None:
    await asyncio.sleep(min(30.0, every))
    while True:
        async with owner.post("/api/bell", headers={"X-CSRF-Token": csrf}) as pressed:
            seen["bells"] += pressed.status < 300
        await asyncio.sleep(every)


async def sample(pid: int, samples: list[dict], started: float) -> None:
    while True:
        samples.append({"t": time.monotonic() - started, **proc(pid)})
        await asyncio.sleep(1.0)


async def soak(args: argparse.Namespace, source: Path | None, folder: Path) -> dict:
    """The service watched by one owner for ``args.minutes``: samples, smaps, modules."""
    service = Service(args, source, folder)
    await service.first_response()
    samples: list[dict] = []
    seen: dict = defaultdict(int)
    jar = aiohttp.CookieJar(unsafe=True)  # the default jar drops an IP host's cookies
    try:
        async with aiohttp.ClientSession(service.origin, cookie_jar=jar) as owner:
            csrf = await pair(owner, service.data)
            tasks = [
                asyncio.create_task(watch_live(owner, seen)),
                asyncio.create_task(watch_events(owner, seen)),
                asyncio.create_task(press_bell(owner, csrf, args.bell_every, seen)),
                asyncio.create_task(sample(service.child.pid, samples, time.monotonic())),
            ]
            await asyncio.sleep(args.minutes * 60)
            mappings = where_it_goes(service.child.pid)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        modules = service.stop()
    seen["clips"] = len(list((service.data / "clips").glob("*.mp4.age")))
    return {"samples": samples, "mappings": mappings, "modules": modules, "seen": dict(seen)}


def summarise(samples: list[dict]) -> dict:
    """MB: steady (median VmRSS over the last half), peak (VmHWM), anonymous and file
    (medians over the last half), growth (MB a minute, least squares over the last
    half); CPU-s a minute over the whole soak; threads."""
    half = [s for s in samples if s["t"] >= samples[-1]["t"] / 2]
    minutes = [s["t"] / 60 for s in half]
    rss = [s["VmRSS"] / 1024 for s in half]
    whole = (samples[-1]["t"] - samples[0]["t"]) / 60
    return {
        "steady_mb": statistics.median(rss),
        "peak_mb": max(s["VmHWM"] for s in samples) / 1024,
        "anon_mb": statistics.median(s["RssAnon"] for s in half) / 1024,
        "file_mb": statistics.median(s["RssFile"] for s in half) / 1024,
        "growth_mb_per_min": statistics.linear_regression(minutes, rss).slope,
        "cpu_s_per_min": (samples[-1]["cpu"] - samples[0]["cpu"]) / whole,
        "threads": statistics.median(s["Threads"] for s in half),
    }


# --- the baselines --------------------------------------------------------------------------


def imports_alone(what: str, args: argparse.Namespace) -> dict:
    """A fresh interpreter importing ``what`` (a module, or a file of module names):
    seconds from launch to imports done, its VmHWM in MB, how many modules."""
    launched = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-c", IMPORTS, what],
        env=child_env(args),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert child.stdout is not None and child.stdin is not None
    modules = int(child.stdout.readline())
    seconds = time.perf_counter() - launched
    hwm = proc(child.pid)["VmHWM"] / 1024
    child.stdin.close()
    child.wait()
    return {"seconds": seconds, "hwm_mb": hwm, "modules": modules}


async def startups(args, source: Path | None, modules: Path, folder: Path) -> dict:
    """Medians of :data:`RUNS` runs, the order turning each run: the service to its first
    HTTP response, the service's modules alone, ``import doorbell.service`` alone."""
    runs: dict[str, list[dict]] = defaultdict(list)
    kinds = ["service", "modules", "doorbell.service"]
    for run in range(RUNS):
        for kind in kinds[run % 3 :] + kinds[: run % 3]:
            if kind == "service":
                service = Service(args, source, Path(tempfile.mkdtemp(dir=folder)))
                runs[kind].append({"seconds": await service.first_response()})
                service.stop()
            else:
                runs[kind].append(imports_alone(str(modules) if kind == "modules" else kind, args))
    return {k: {f: statistics.median(r[f] for r in rs) for f in rs[0]} for k, rs in runs.items()}


# --- the report -----------------------------------------------------------------------------


def code_measured() -> str:
    """The code the service runs: its commit, and whether doorbell/ has changes not
    committed. Read as the bench starts (a commit made during a soak is not measured)."""
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run([*git, "status", "--porcelain", "--", "doorbell"], capture_output=True)
    changes = " with local changes" if dirty.stdout.strip() else ""
    return f"doorbell at {head.stdout.strip() or '?'}{changes}"


def machine(code: str) -> str:
    """Cores, load average, transparent huge pages, and ``code`` (:func:`code_measured`)."""
    thp = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    mode = thp.read_text().split("[")[1].split("]")[0] if thp.exists() else "absent"
    load = os.getloadavg()[0]
    return f"{os.cpu_count()} cores, load average {load:.2f}, transparent huge pages {mode}; {code}"


def report(args: argparse.Namespace, figures: dict, base: dict, soaked: dict) -> None:
    modules, alone, start = base["modules"], base["doorbell.service"], base["service"]["seconds"]
    seen = soaked["seen"]
    print(
        f"\n{args.camera}, {args.minutes:g} min, one owner watching (live view "
        f"{seen.get('live frames', 0)} frames, {seen.get('events', 0)} events, "
        f"{seen.get('bells', 0)} bells, {seen['clips']} clips); {machine(args.code)}; "
        f"env {' '.join(args.env) or '-'}; preload {args.preload or '-'}"
    )
    print(f"{'':34}{'MB':>8}{'goal':>7}{'x modules alone':>17}")
    for label, value, goal in (
        ("steady RSS (median, last half)", figures["steady_mb"], GOAL_STEADY_MB),
        ("peak (VmHWM)", figures["peak_mb"], GOAL_PEAK_MB),
    ):
        verdict = "ok" if value <= goal else "OVER"
        print(f"{label:34}{value:8.1f}{goal:7.0f}{value / modules['hwm_mb']:17.2f}  {verdict}")
    print(f"{'  anonymous / file-backed':34}{figures['anon_mb']:8.1f} / {figures['file_mb']:.1f}")
    print(f"{'growth, last half (MB a minute)':34}{figures['growth_mb_per_min']:8.2f}")
    print(
        f"{'CPU-s a minute (cores shared)':34}{figures['cpu_s_per_min']:8.2f}"
        f"   threads {figures['threads']:g}"
    )
    print(f"\nimports alone, a fresh interpreter (medians of {RUNS}):")
    print(
        f"  the service's {modules['modules']:.0f} modules: VmHWM {modules['hwm_mb']:.1f} MB, "
        f"{modules['seconds'] * 1000:.0f} ms\n  import doorbell.service: VmHWM "
        f"{alone['hwm_mb']:.1f} MB, {alone['seconds'] * 1000:.0f} ms"
    )
    print(
        f"start-up, launch to the first 200 from /health: {start * 1000:.0f} ms, "
        f"{start / modules['seconds']:.2f}x the service's modules alone, "
        f"{start / alone['seconds']:.2f}x import doorbell.service"
    )
    print("\nwhere the memory is at the end (smaps; kB of RSS, of it anonymous; mappings):")
    for row in soaked["mappings"]:
        print(f"  {row['name'][:44]:44}{row['rss']:9}{row['anon']:9}{row['mappings']:6}")


async def run(args: argparse.Namespace) -> dict:
    source = None
    if args.camera == "720p-file":
        require(Path(__file__).name, "porch-visitors.mp4")
        source = footage_720p()
    with tempfile.TemporaryDirectory(prefix="memory-bench-", dir="/var/tmp") as tmp:
        soaked = await soak(args, source, Path(tmp))
        base = await startups(args, source, Path(tmp) / "modules.txt", Path(tmp))
    figures = summarise(soaked["samples"])
    report(args, figures, base, soaked)
    return {
        "args": vars(args),
        "machine": machine(args.code),
        **figures,
        "baselines": base,
        **soaked,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--camera", choices=("720p-file", "synthetic"), default="720p-file")
    parser.add_argument("--bell-every", type=float, default=180.0, metavar="SECONDS")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--preload", metavar="FILE", help="Python run in the service first")
    parser.add_argument("--json", metavar="FILE", help="every figure and sample, as JSON")
    args = parser.parse_args()
    args.code = code_measured()
    if args.preload:
        args.preload = str(Path(args.preload).resolve())
    result = asyncio.run(run(args))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
