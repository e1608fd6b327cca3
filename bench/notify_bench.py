"""Bell press to phone notification through a local ntfy-compatible server; Apprise's cost.

    .venv/bin/python bench/notify_bench.py [--rings 100] [--imports 5] [--json FILE]

1. Ring latency: ``bus.publish(BellPressed)`` on an ``EventBus`` (as the service does
   for a press) until the ntfy-compatible server (``tests/ntfy_server.py``, on loopback,
   in the same event loop) has the request: the notifier's bus subscription, its queue,
   its send thread, Apprise's ntfy service and ``requests``. One ring
   at a time (the next after the last was answered), ``--rings`` of them. Baseline in
   the same run: the same JSON message, with the same headers, POSTed to the same
   server by aiohttp's client from the loop. Ours and the baseline alternate, the
   order reversed every other ring; p50 and p99 of each.
2. What Apprise costs: ``import apprise``, the first notifier (Apprise loads the ntfy
   service's module then) and ``url_problems`` (which asks Apprise for every service it
   knows, loading them all: ``doorbell config check`` only), each in a fresh process, in
   milliseconds and in resident memory (``/proc/self/statm``) over the process before
   it; against ``import doorbell.notify`` alone. Medians of ``--imports`` processes.
"""

import argparse
import asyncio
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from doorbell.events import BellPressed, EventBus  # noqa: E402
from doorbell.notify import Notifier, NotifySettings  # noqa: E402
from tests.ntfy_server import NtfyServer  # noqa: E402


def quantile(values: list[float], q: float) -> float:
    """The ``q`` quantile, nearest rank (p99 of 100 values is the 99th smallest)."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))]


async def ring_latency(rings: int) -> dict:
    server = NtfyServer()
    await server.start()
    notifier = Notifier(
        NotifySettings(enabled=True), [server.url()], clock=time.time, sleep=asyncio.sleep
    )
    bus = EventBus(asyncio.get_running_loop())
    task = asyncio.create_task(notifier.run())
    follower = asyncio.create_task(notifier.follow(bus.subscribe()))
    at = time.time()

    async def ours(i: int) -> float:
        count = len(server.requests)
        started = time.perf_counter()
        bus.publish(BellPressed(at=at + 120 * i))
        await server.wait_for(count + 1)
        arrived = server.requests[count].at
        while notifier.waiting:  # answered, and the send thread free again
            await asyncio.sleep(0.001)
        return arrived - started

    async with aiohttp.ClientSession() as session:
        template: dict = {}

        async def baseline(i: int) -> float:
            count = len(server.requests)
            started = time.perf_counter()
            async with session.post(
                f"http://127.0.0.1:{server.port}/",
                data=json.dumps(template["fields"]),
                headers=template["headers"],
            ) as answer:
                await answer.read()
            return server.requests[count].at - started

        await ours(-1)  # the first send opens Apprise's session; not counted
        first = server.requests[-1]
        keep = ("Content-Type", "X-Priority", "X-Tags", "User-Agent")
        template["fields"] = first.fields
        template["headers"] = {k: v for k, v in first.headers.items() if k in keep}
        await baseline(-1)
        times: dict[str, list[float]] = {"ours": [], "baseline": []}
        for i in range(rings):
            order = [("ours", ours), ("baseline", baseline)]
            for name, run in order if i % 2 == 0 else order[::-1]:
                times[name].append(await run(i))
    task.cancel()
    follower.cancel()
    await asyncio.gather(task, follower, return_exceptions=True)
    await server.stop()
    delivered = [r for r in server.requests if r.title == "Doorbell: ring"]
    assert len(delivered) == 2 * (rings + 1), len(delivered)
    assert not any(r.attachment for r in server.requests)
    return {
        name: {
            "p50_ms": 1000 * statistics.median(values),
            "p99_ms": 1000 * quantile(values, 0.99),
            "max_ms": 1000 * max(values),
            "n": len(values),
        }
        for name, values in times.items()
    }


PROBE = r"""
import json, os, sys, time
page = os.sysconf("SC_PAGE_SIZE")
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * page
out = {}
r, t = rss(), time.perf_counter()
import doorbell.notify
out["import doorbell.notify"] = (time.perf_counter() - t, rss() - r)
assert "apprise" not in sys.modules
r, t = rss(), time.perf_counter()
import apprise
out["import apprise"] = (time.perf_counter() - t, rss() - r)
r, t = rss(), time.perf_counter()
n = doorbell.notify.Notifier(doorbell.notify.NotifySettings(enabled=True),
    ["ntfy://127.0.0.1:9/doorbell"], clock=time.time, sleep=None)
out["first Notifier (ntfy)"] = (time.perf_counter() - t, rss() - r)
r, t = rss(), time.perf_counter()
doorbell.notify_apprise.url_problems(["ntfy://127.0.0.1:9/doorbell"])
out["first url_problems (every service)"] = (time.perf_counter() - t, rss() - r)
out["process total"] = (0.0, rss())
print(json.dumps(out))
"""


def import_cost(repeat: int) -> dict:
    runs = []
    for _ in range(repeat):
        done = subprocess.run(
            [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT,
        )  # fmt: skip
        runs.append(json.loads(done.stdout))
    return {
        step: {
            "ms": 1000 * statistics.median(r[step][0] for r in runs),
            "rss_mib": statistics.median(r[step][1] for r in runs) / (1 << 20),
        }
        for step in runs[0]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rings", type=int, default=100)
    parser.add_argument("--imports", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    import apprise

    latency = asyncio.run(ring_latency(args.rings))
    cost = import_cost(args.imports)
    print(
        f"Python {platform.python_version()}, Apprise {apprise.__version__}, {platform.machine()}"
    )
    print(f"\nbell press -> ntfy server, {args.rings} rings, one at a time")
    print(f"{'':24} {'p50':>9} {'p99':>9} {'max':>9}")
    for name, label in (("baseline", "aiohttp POST (baseline)"), ("ours", "Notifier via Apprise")):
        row = latency[name]
        print(f"{label:24} {row['p50_ms']:7.2f}ms {row['p99_ms']:7.2f}ms {row['max_ms']:7.2f}ms")
    ratio = latency["ours"]["p50_ms"] / latency["baseline"]["p50_ms"]
    print(f"p50 ratio ours/baseline: {ratio:.1f}")
    print(f"\ncost in a fresh process, median of {args.imports}")
    for step, row in cost.items():
        if step == "process total":
            print(f"{step:36} {'':>9} {row['rss_mib']:7.1f} MiB")
        else:
            print(f"{step:36} {row['ms']:7.1f}ms {row['rss_mib']:+7.1f} MiB")
    if args.json:
        args.json.write_text(json.dumps({"latency": latency, "import": cost}, indent=2))


if __name__ == "__main__":
    main()
