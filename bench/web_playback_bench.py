"""The owner's window, measured: playback through the vault vs plaintext, and bell latency.

    .venv/bin/python bench/web_playback_bench.py [--size-mb 200] [--big-gb 1] [--presses 100]

1. Throughput of a whole-file GET: our decrypting route vs aiohttp's
   FileResponse of the same bytes in plaintext (goal >= 0.5).
2. Time to the first byte of a 64 KiB range at the end vs the start of a
   --big-gb GiB clip through our route (goal about 1).
3. Seeking to 80% of a 120 s 720p clip in headless Chromium (Debian's, via
   Playwright): our route vs FileResponse of the same MP4 (goal <= 2x), with
   how many range requests Chromium made.
4. Bell press → Server-Sent Event in a client, through the real service in
   demo mode (POST /api/bell drives the mock pin): p50 and p99 over --presses.

Every pair runs in the same process, interleaved, medians reported.
"""

import argparse
import asyncio
import dataclasses
import io
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

from doorbell import vault
from doorbell.vault.payload import OpenedPayload
from doorbell.web.playback import PayloadCache, etag_for, send_plaintext

MiB = 1 << 20
ROWS: list[tuple[str, str, str, str, str]] = []


def row(name: str, base: str, ours: str, ratio: str, goal: str) -> None:
    ROWS.append((name, base, ours, ratio, goal))
    print(f"  {name}: baseline {base}, ours {ours}, ratio {ratio} (goal {goal})", flush=True)


def make_files(folder: Path, size: int) -> tuple[Path, Path, object]:
    identity = vault.X25519Identity.generate()
    plain, sealed = folder / "plain.bin", folder / "sealed.age"
    block = os.urandom(MiB)
    with open(plain, "wb") as out, vault.create(sealed, [identity.recipient]) as enc:
        for done in range(0, size, MiB):
            piece = block[: min(MiB, size - done)]
            out.write(piece)
            enc.write(piece)
    return plain, sealed, identity


async def serve(routes: dict[str, object]) -> tuple[web.AppRunner, str]:
    app = web.Application()
    for path, handler in routes.items():
        app.router.add_get(path, handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


def handlers(plain: Path, sealed: Path, identity: object, counter: dict) -> dict:
    cache = PayloadCache()

    async def plain_route(request: web.Request) -> web.StreamResponse:
        counter["plain"] = counter.get("plain", 0) + 1
        return web.FileResponse(plain, headers={"Content-Type": "video/mp4"})

    async def ours(request: web.Request) -> web.StreamResponse:
        counter["ours"] = counter.get("ours", 0) + 1
        payload = await asyncio.get_running_loop().run_in_executor(
            None, cache.get, "clip", lambda: OpenedPayload(sealed, [identity])
        )
        return await send_plaintext(request, payload, etag=etag_for("clip", payload))

    return {"/plain": plain_route, "/ours": ours}


async def timed_get(session: aiohttp.ClientSession, url: str, headers: dict | None = None):
    start = time.perf_counter()
    async with session.get(url, headers=headers or {}) as response:
        first = None
        total = 0
        async for chunk in response.content.iter_chunked(1 << 20):
            if first is None:
                first = time.perf_counter() - start
            total += len(chunk)
    return time.perf_counter() - start, first, total


async def throughput(folder: Path, size: int, repeat: int) -> None:
    plain, sealed, identity = make_files(folder, size)
    runner, base = await serve(handlers(plain, sealed, identity, {}))
    times: dict[str, list[float]] = {"plain": [], "ours": []}
    async with aiohttp.ClientSession() as session:
        for n in range(repeat):
            for name in ("plain", "ours") if n % 2 == 0 else ("ours", "plain"):
                elapsed, _, total = await timed_get(session, f"{base}/{name}")
                assert total == size
                times[name].append(elapsed)
    await runner.cleanup()
    p, o = statistics.median(times["plain"]), statistics.median(times["ours"])
    mbs = size / MiB
    row(
        f"whole {mbs:.0f} MiB GET, MiB/s",
        f"{mbs / p:.0f}",
        f"{mbs / o:.0f}",
        f"{p / o:.2f}",
        ">= 0.5",
    )
    plain.unlink()
    sealed.unlink()


async def end_vs_start(folder: Path, size: int, repeat: int) -> None:
    _, sealed, identity = make_files(folder, size)
    (folder / "plain.bin").unlink()
    runner, base = await serve(handlers(folder / "none", sealed, identity, {}))
    got: dict[str, list[float]] = {"start": [], "end": []}
    spans = {"start": "bytes=0-65535", "end": f"bytes={size - 65536}-{size - 1}"}
    async with aiohttp.ClientSession() as session:
        await timed_get(session, f"{base}/ours", {"Range": "bytes=0-0"})  # open once
        for n in range(repeat * 10):
            for name in ("start", "end") if n % 2 == 0 else ("end", "start"):
                _, first, _ = await timed_get(session, f"{base}/ours", {"Range": spans[name]})
                got[name].append(first)
    await runner.cleanup()
    s, e = statistics.median(got["start"]), statistics.median(got["end"])
    row(
        f"first byte of 64 KiB, end vs start of {size / (1 << 30):.0f} GiB",
        f"{s * 1e3:.2f} ms",
        f"{e * 1e3:.2f} ms",
        f"{e / s:.2f}",
        "about 1",
    )
    sealed.unlink()


def make_clip(folder: Path, seconds: float) -> tuple[Path, Path, object]:
    from doorbell.camera.synthetic import SyntheticCamera
    from doorbell.codec import H264Encoder, Mp4Writer

    camera = SyntheticCamera(width=1280, height=720, fps=15.0, duration=seconds)
    encoder = H264Encoder(1280, 720, 15.0)
    buffer = io.BytesIO()
    with Mp4Writer(buffer, encoder.stream_info()) as mp4:
        for frame in camera.frames():
            for packet in encoder.encode(frame.image, frame.at):
                mp4.write(packet)
        for packet in encoder.flush():
            mp4.write(packet)
    data = buffer.getvalue()
    identity = vault.X25519Identity.generate()
    plain, sealed = folder / "clip.mp4", folder / "clip.mp4.age"
    plain.write_bytes(data)
    sealed.write_bytes(vault.encrypt_bytes(data, [identity.recipient]))
    return plain, sealed, identity


PAGE = """<!doctype html><video id=v src="{src}" preload=metadata muted></video>"""
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SEEK = """() => new Promise((resolve, reject) => {
    const v = document.getElementById('v');
    const go = () => {
        const start = performance.now();
        v.addEventListener('seeked', () => resolve(performance.now() - start), {once: true});
        v.currentTime = v.duration * 0.8;
    };
    if (v.readyState >= 1) go(); else v.addEventListener('loadedmetadata', go, {once: true});
    v.addEventListener('error', () => reject(new Error('video error')));
})"""


async def chromium_seek(folder: Path, repeat: int) -> None:
    from playwright.async_api import async_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        print("  chromium seek: skipped, Debian's chromium is not installed")
        return
    plain, sealed, identity = make_clip(folder, 120.0)
    counter: dict[str, int] = {}
    routes = handlers(plain, sealed, identity, counter)

    def page_for(name: str):
        async def page(request: web.Request) -> web.Response:
            return web.Response(text=PAGE.format(src=f"/{name}"), content_type="text/html")

        return page

    routes |= {"/page/plain": page_for("plain"), "/page/ours": page_for("ours")}
    runner, base = await serve(routes)
    times: dict[str, list[float]] = {"plain": [], "ours": []}
    requests: dict[str, list[int]] = {"plain": [], "ours": []}
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        for n in range(repeat):
            for name in ("plain", "ours") if n % 2 == 0 else ("ours", "plain"):
                context = await browser.new_context()  # a cold cache each time
                page = await context.new_page()
                await page.goto(f"{base}/page/{name}")
                before = counter.get(name, 0)
                times[name].append(await page.evaluate(SEEK) / 1e3)
                requests[name].append(counter.get(name, 0) - before)
                await context.close()
        await browser.close()
    await runner.cleanup()
    p, o = statistics.median(times["plain"]), statistics.median(times["ours"])
    row(
        f"Chromium seek to 80% of a 120 s 720p clip ({len(plain.read_bytes()) / MiB:.0f} MiB), "
        f"range requests during the seek {statistics.median(requests['plain']):.0f} / "
        f"{statistics.median(requests['ours']):.0f}",
        f"{p * 1e3:.0f} ms",
        f"{o * 1e3:.0f} ms",
        f"{o / p:.2f}x",
        "<= 2x",
    )


async def bell_latency(folder: Path, presses: int) -> None:
    from doorbell.config import CameraSettings, Config, StorageSettings, WebSettings
    from doorbell.gpio import GpioSettings
    from doorbell.service import Service
    from doorbell.store import Keyring

    data = folder / "data"
    Keyring.in_data_dir(data).init("bench passphrase words", work_factor=10)
    config = dataclasses.replace(
        Config(),
        storage=StorageSettings(data_dir=str(data), min_free_mb=0),
        camera=CameraSettings(backend="synthetic", width=640, height=360),
        web=WebSettings(listen="127.0.0.1:0", tls="off"),
        gpio=GpioSettings(bounce=0.001),
    )
    service = Service(config, demo=True)
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(service.run(stop, ready=lambda s: ready.set()))
    await ready.wait()
    latencies = []
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{service.url}api/unlock", json={"passphrase": "bench passphrase words"}
        ) as response:
            csrf = (await response.json())["csrf_token"]
        async with session.get(f"{service.url}api/events") as events:
            await events.content.readuntil(b"\n\n")
            for _ in range(presses):
                start = time.perf_counter()
                async with session.post(
                    f"{service.url}api/bell", headers={"X-CSRF-Token": csrf}
                ) as response:
                    assert response.status == 202
                while True:
                    block = await events.content.readuntil(b"\n\n")
                    if block.startswith(b"event: bell"):
                        break
                latencies.append(time.perf_counter() - start)
                await asyncio.sleep(0.01)  # presses a little apart, as fingers are
    stop.set()
    await task
    latencies.sort()
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    row(
        f"bell press → SSE event, {presses} presses (HTTP press included)",
        f"p50 {p50 * 1e3:.1f} ms",
        f"p99 {p99 * 1e3:.1f} ms",
        "",
        "p99 <= 100 ms",
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--big-gb", type=float, default=1.0)
    parser.add_argument("--presses", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dir", default="/var/tmp")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="doorbell-web-bench-", dir=args.dir))
    try:
        print(f"# Python {sys.version.split()[0]}, aiohttp {aiohttp.__version__}", flush=True)
        await throughput(folder, args.size_mb * MiB, args.repeat)
        await end_vs_start(folder, int(args.big_gb * (1 << 30)), args.repeat)
        await chromium_seek(folder, args.repeat)
        await bell_latency(folder, args.presses)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print("\n| benchmark | baseline | ours | ratio | goal |\n| --- | --- | --- | --- | --- |")
    for name, base, ours, ratio, goal in ROWS:
        print(f"| {name} | {base} | {ours} | {ratio} | {goal} |")


if __name__ == "__main__":
    asyncio.run(main())
