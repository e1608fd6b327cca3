"""The owner's window: playback decrypted in the browser vs the same MP4 in plaintext.

    .venv/bin/python bench/web_playback_bench.py [--repeat 7] [--reads 20] [--json FILE]

A real clip (porch-visitors.mp4 from $DOORBELL_FOOTAGE, else ../shared/footage;
exit 2 naming it if missing), 120 s of 1280x720 at 15 fps, recorded by doorbell's
own path (bench/playback_clip.py: the file camera, the pipeline's encoder, the
Recorder into a ClipStore, so the clip, its thumbnail and its fragment index are
encrypted as the device writes them). A small aiohttp app (in a thread of its own)
serves, as the device does:

* encrypted: the clip's age file, its ``.idx.age`` and 24 encrypted thumbnails as
  plain ``FileResponse``s with Range, and a page under the pages' CSP and import map
  that decrypts them with static/vault.js and static/player.js (the library from
  node_modules through doorbell.web.vendor);
* plain (the baseline): the SAME MP4, decrypted, and the 24 JPEGs by ``FileResponse``
  into a plain ``<video src>`` and ``<img src>``.

In Debian's chromium (headless, Playwright), each side in a fresh browser context
(cold cache), the owner already unlocked (the keyholder made before the clock
starts): the time to the first frame (a frame presented, requestVideoFrameCallback,
and 'playing'), then a seek to 80% of the duration until a frame within 0.5 s of it
is presented, once after 1 s of playing (the owner looks, then drags) and once at
once after the first frame (while the player is still reading ahead); in another
fresh context, 24 thumbnails fetched, decrypted and decoded (then, for the
record, the whole clip read and decrypted by ClipReader: the page's MiB/s). With them, the bytes
the page received (DevTools Network events) and the requests the server answered.
On the server: bytes a second of a whole-file GET by aiohttp's client, ciphertext
vs plaintext. Each pair interleaved (order alternating each repetition), medians;
the load average is printed (other work on the machine widens the spread).

Goals (issue 12): first frame and seek <= 2x plaintext; bytes/s >= 0.9x; 24
thumbnails <= 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web
from footage import require
from playback_clip import SOURCE, Made, record

from doorbell.web import vendor
from doorbell.web.app import SECURITY_HEADERS, csp
from doorbell.web.files import HEADERS

if TYPE_CHECKING:
    from playwright.async_api import BrowserContext, Page

MiB = 1 << 20
HARNESS = Path(__file__).parent / "playback_harness"
STATIC = Path(vendor.__file__).parent / "static"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [  # as tests/test_browser.py launches it
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]
SIDES = ("plain", "encrypted")
SEEK_TO = 0.8
PLAY_FIRST = 1.0  # seconds the owner watches before dragging to 80%
TIMEOUT = 60.0  # seconds for one measurement in the page


class Counter:
    """Requests each side was served (counted in the server's thread, read between runs)."""

    def __init__(self) -> None:
        self.requests = {side: 0 for side in SIDES}


def app_for(made: Made, node_modules: Path, counter: Counter) -> web.Application:
    """The bench's server: the page, its scripts, the library, both sides' files."""
    served = vendor.Vendor.load(node_modules)
    headers = {**SECURITY_HEADERS, "Content-Security-Policy": csp(served.csp_hash)}
    html = (HARNESS / "page.html").read_text().replace("{{ import_map }}", served.import_map)
    encrypted = {"clip.mp4.age": made.video, "clip.idx.age": made.index}
    encrypted |= {sealed.name: sealed for sealed, _ in made.thumbnails}
    plain = {"clip.mp4": made.plain} | {bare.name: bare for _, bare in made.thumbnails}
    kinds = {".mp4": "video/mp4", ".jpg": "image/jpeg"}

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=html, content_type="text/html", headers=headers)

    def scripts(folder: Path) -> Callable:
        async def serve(request: web.Request) -> web.StreamResponse:
            name = request.match_info["name"]
            if name not in {p.name for p in folder.glob("*.js")}:
                raise web.HTTPNotFound()
            return web.FileResponse(folder / name, headers={"Content-Type": "text/javascript"})

        return serve

    def files(table: dict[str, Path], plain: bool) -> Callable:
        async def serve(request: web.Request) -> web.StreamResponse:
            path = table.get(request.match_info["name"])
            if path is None:
                raise web.HTTPNotFound()
            kind = HEADERS["Content-Type"] if not plain else kinds[path.suffix]
            return web.FileResponse(path, headers={**HEADERS, "Content-Type": kind})

        return serve

    async def count(request: web.Request, response: web.StreamResponse) -> None:
        side = request.path.split("/")[1]
        if side in SIDES:
            counter.requests[side] += 1

    app = web.Application()
    app.on_response_prepare.append(count)
    app.router.add_get("/page", page)
    app.router.add_get("/bench/{name}", scripts(HARNESS))
    app.router.add_get("/static/{name}", scripts(STATIC))
    app.router.add_get("/encrypted/{name}", files(encrypted, plain=False))
    app.router.add_get("/plain/{name}", files(plain, plain=True))
    vendor.add_vendor_routes(app, served)
    return app


class Server:
    """``app`` on 127.0.0.1 in a thread with its own event loop (as the device serves
    while the browser and the client run elsewhere)."""

    def __init__(self, app: web.Application) -> None:
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(app, access_log=None)
        started = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(started,), daemon=True)
        self.thread.start()
        started.wait()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.runner.setup())
        self.loop.run_until_complete(web.TCPSite(self.runner, "127.0.0.1", 0).start())
        started.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.runner.cleanup())
        self.loop.close()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()


def order(n: int) -> tuple[str, ...]:
    return SIDES if n % 2 == 0 else SIDES[::-1]


async def whole_file_reads(base: str, repeat: int) -> dict[str, list[float]]:
    """Bytes a second of a whole-file GET of the ciphertext vs the plaintext MP4."""
    urls = {"plain": f"{base}/plain/clip.mp4", "encrypted": f"{base}/encrypted/clip.mp4.age"}
    rates: dict[str, list[float]] = {side: [] for side in SIDES}
    async with aiohttp.ClientSession() as session:
        for n in range(-1, repeat):  # -1: one of each unmeasured, the files in the page cache
            for side in order(n):
                start = time.perf_counter()
                async with session.get(urls[side]) as response:
                    size = 0
                    async for block in response.content.iter_chunked(MiB):
                        size += len(block)
                elapsed = time.perf_counter() - start
                if n >= 0:
                    rates[side].append(size / elapsed)
    return rates


class Received:
    """Bytes the page received (Chrome DevTools Protocol's Network.dataReceived)."""

    def __init__(self) -> None:
        self.bytes = 0

    async def watch(self, context: BrowserContext, page: Page) -> None:
        session = await context.new_cdp_session(page)
        await session.send("Network.enable")
        session.on("Network.dataReceived", self._add)

    def _add(self, event: dict) -> None:
        self.bytes += event["encodedDataLength"]


async def in_chromium(base: str, made: Made, repeat: int, counter: Counter) -> dict:
    """Per side and repetition, each in a fresh context: first frame, then a seek to 80%
    after 1 s of playing; first frame, then a seek at once; 24 thumbnails. Returns
    {measure: {side: [values]}}."""
    from playwright.async_api import async_playwright

    identity = f"# public key: {made.identity.recipient}\n{made.identity.secret()}\n"
    urls = {"file": "/encrypted/clip.mp4.age", "index": "/encrypted/clip.idx.age"}
    urls |= {"plain": "/plain/clip.mp4", "duration": f"{made.seconds:.3f}"}  # as the page has it
    thumbs = {
        "encrypted": [f"/encrypted/{sealed.name}" for sealed, _ in made.thumbnails],
        "plain": [f"/plain/{bare.name}" for _, bare in made.thumbnails],
    }
    got: dict[str, dict[str, list]] = {}

    def note(measure: str, side: str, value: float) -> None:
        got.setdefault(measure, {s: [] for s in SIDES})[side].append(value)

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )

        async def fresh_page(received: Received) -> tuple[BrowserContext, Page]:
            context = await browser.new_context()
            page = await context.new_page()
            await received.watch(context, page)
            await page.goto(f"{base}/page")
            await page.wait_for_function("window.benchReady === true")
            await page.evaluate("(text) => window.bench.unlock(text)", identity)
            return context, page

        async def run(page: Page, script: str, *args: object) -> Any:
            return await asyncio.wait_for(page.evaluate(script, list(args)), TIMEOUT)

        async def playback(side: str, play_first: float) -> None:
            received = Received()
            context, page = await fresh_page(received)
            received.bytes, requests = 0, counter.requests[side]
            first = await run(page, "([s, u]) => window.bench.firstFrame(s, u)", side, urls)
            check(first["readyState"] >= 2 and first["blob"] == (side == "encrypted"), first)
            note("first", side, first["ms"])
            note("first_bytes", side, received.bytes)
            note("first_requests", side, counter.requests[side] - requests)
            kind = f"seek after {play_first:g} s" if play_first else "seek at once"
            if play_first:
                await run(page, "([t]) => window.bench.playTo(t)", play_first)
            received.bytes, requests = 0, counter.requests[side]
            seek = await run(page, "([f]) => window.bench.seek(f)", SEEK_TO)
            check(abs(seek["mediaTime"] - seek["target"]) <= 0.5, seek)
            note(kind, side, seek["ms"])
            note(f"{kind}: seeked", side, seek["seekedMs"])
            note(f"{kind}: bytes", side, received.bytes)
            note(f"{kind}: requests", side, counter.requests[side] - requests)
            await run(page, "() => window.bench.stop()")
            await no_violations(page, side)
            await context.close()

        async def thumbnails(side: str) -> None:
            context, page = await fresh_page(Received())
            shown = await run(page, "([s, u]) => window.bench.thumbnails(s, u)", side, thumbs[side])
            check(all(width > 0 for width in shown["widths"]), shown)
            if side == "encrypted":
                read = await run(page, "([u]) => window.bench.decryptAll(u)", urls["file"])
                check(read["bytes"] == made.plain.stat().st_size, read)
                got.setdefault("decrypt", {"encrypted": []})["encrypted"].append(
                    read["bytes"] / read["ms"] * 1000
                )
            await no_violations(page, side)
            await context.close()
            note("thumbnails", side, shown["ms"])

        for n in range(repeat):
            for side in order(n):
                await playback(side, PLAY_FIRST)
            for side in order(n + 1):
                await playback(side, 0.0)
            for side in order(n):
                await thumbnails(side)
        await browser.close()
    return got


def check(ok: bool, what: object) -> None:
    if not ok:
        raise SystemExit(f"web_playback_bench: the page did not do what was measured: {what}")


async def no_violations(page: Page, side: str) -> None:
    violations = await page.evaluate("window.cspViolations")
    check(not violations, f"{side}: CSP violations {violations}")


def median(values: list[float]) -> float:
    return statistics.median(values)


def table(got: dict, rates: dict, made: Made) -> list[dict]:
    """The rows, medians: plain, encrypted, ratio (encrypted / plain), goal, met."""
    rows = []

    def row(name: str, measure: str, unit: str = "ms", goal: str = "", scale: float = 1) -> None:
        plain, ours = (median(got[measure][side]) / scale for side in SIDES)
        ratio = ours / plain if plain else None
        met = {"<= 2x": ours <= 2 * plain, "<= 1 s": ours <= 1000}.get(goal)
        if goal == ">= 0.9x":
            met = ratio is not None and ratio >= 0.9
        rows.append(
            {
                "measure": name,
                "plain": plain,
                "encrypted": ours,
                "unit": unit,
                "ratio": ratio,
                "goal": goal,
                "met": met,
            }
        )

    row("time to the first frame", "first", goal="<= 2x")
    row("  MiB the page received by then", "first_bytes", "MiB", scale=MiB)
    row("  requests by then", "first_requests", "")
    later = f"seek after {PLAY_FIRST:g} s"
    row(f"seek to {SEEK_TO:.0%} after {PLAY_FIRST:g} s of playing", later, goal="<= 2x")
    row("  of which to 'seeked'", f"{later}: seeked")
    row("  MiB the page received for it", f"{later}: bytes", "MiB", scale=MiB)
    row("  requests for it", f"{later}: requests", "")
    row(f"seek to {SEEK_TO:.0%} at once after the first frame", "seek at once", goal="<= 2x")
    row("  of which to 'seeked'", "seek at once: seeked")
    row("  MiB the page received for it", "seek at once: bytes", "MiB", scale=MiB)
    got["bytes_per_second"] = rates
    row("whole-file GET from the server", "bytes_per_second", "MiB/s", ">= 0.9x", MiB)
    row(f"{len(made.thumbnails)} thumbnails shown after unlock", "thumbnails", goal="<= 1 s")
    return rows


def show(
    rows: list[dict], decrypt: list[float], made: Made, repeat: int, reads: int, load: str
) -> None:
    size = made.video.stat().st_size / MiB
    print(
        f"\n{made.seconds:.0f} s 1280x720 clip from {SOURCE}: {size:.1f} MiB encrypted; "
        f"medians of {repeat} in chromium (first frame: {2 * repeat}), {reads} whole-file GETs; "
        f"index from {made.index_from}; load average {load}\n"
    )
    print("| measure | plain | encrypted | ratio | goal | met |")
    print("| --- | ---: | ---: | ---: | --- | --- |")
    for r in rows:
        digits = 1 if r["unit"] in ("MiB", "MiB/s") else 0
        ratio = f"{r['ratio']:.2f}x" if r["ratio"] is not None else ""
        met = {True: "yes", False: "NO", None: ""}[r["met"]]
        unit = f" {r['unit']}" if r["unit"] else ""
        print(
            f"| {r['measure']} | {r['plain']:.{digits}f}{unit} | {r['encrypted']:.{digits}f}{unit} "
            f"| {ratio} | {r['goal']} | {met} |"
        )
    print(
        f"\nthe page reads and decrypts the whole clip (ClipReader, 16 chunks a request) at "
        f"{median(decrypt) / MiB:.0f} MiB/s: {MiB / median(decrypt) * 1000:.0f} ms a 1 MiB piece"
    )
    missed = [r["measure"] for r in rows if r["met"] is False]
    print("\nevery goal met" if not missed else f"\ngoals missed: {', '.join(missed)}")


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7, help="browser runs of each side (>= 3)")
    parser.add_argument("--reads", type=int, default=20, help="whole-file GETs of each side")
    parser.add_argument("--seconds", type=float, default=120.0, help="length of the clip")
    parser.add_argument("--dir", default="/var/tmp", help="where the clip is made (removed)")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    args = parser.parse_args()
    if args.repeat < 3:
        parser.error("--repeat must be at least 3 (medians)")
    require(Path(__file__).name, SOURCE)
    node_modules = vendor.find_node_modules()
    if node_modules is None or not Path(CHROMIUM).exists():
        what = "node_modules (npm ci)" if node_modules is None else CHROMIUM
        print(f"web_playback_bench: {what} is not installed; run scripts/setup", file=sys.stderr)
        return 2
    folder = Path(tempfile.mkdtemp(prefix="doorbell-playback-bench-", dir=args.dir))
    try:
        print(f"# recording {args.seconds:.0f} s of {SOURCE} at 1280x720 ...", flush=True)
        made = record(folder, args.seconds)
        before = os.getloadavg()[0]
        counter = Counter()
        server = Server(app_for(made, node_modules, counter))
        try:
            print("# whole-file GETs ...", flush=True)
            rates = await whole_file_reads(server.url, args.reads)
            print("# chromium ...", flush=True)
            got = await in_chromium(server.url, made, args.repeat, counter)
        finally:
            server.close()
        rows = table(got, rates, made)
        show(
            rows,
            got["decrypt"]["encrypted"],
            made,
            args.repeat,
            args.reads,
            f"{before:.1f} -> {os.getloadavg()[0]:.1f}",
        )
        if args.json:
            args.json.write_text(json.dumps({"rows": rows, "runs": got}, indent=1) + "\n")
        return 0
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
