"""The service attacked from the LAN (issue 13), against itself unattacked, in one run.

    .venv/bin/python bench/attack_bench.py [--seconds 60] [--only idle,bodies] [--root DIR]

Every scenario runs on a fresh service through tests/attack.py's harness: the real
service in a child process, porch-visitors.mp4 as the camera (768x432, 10 fps; DOORBELL_ATTACK_CAMERA=720p15 scales it to 1280x720, 15 fps) in real
time, the owner's probes from 127.0.0.1 (event stream, a bell press every 2 s, status,
/health on new connections, RSS and descriptors), the attacks from 127.0.0.2 ...
127.0.3.254 in a process of their own. The scenarios: the baseline (the probes
alone), the four attacks (idle, slow-headers, bodies, streams), the owner's own load
(4 players reading clips by 1 MiB ranges, 2 live viewers) and ``idle`` against a
service limited to 200 descriptors (``idle@200fd``). About 75 s a scenario at 60 s.

It prints one table (scenario, bell -> event p50 and p99 ms, peak RSS MB, service CPU
seconds, frames the status counts as dropped or missed, the most the camera was behind
real time, log bytes, connections the status counts as refused or pushed out, and the
issue's limits broken, and the machine's busy cores while it ran: another process's
work slows the service too), ratios against the baseline of the same run, then each
scenario's full figures. ``--root`` runs the service from another checkout (e.g.
``git archive`` of an older commit), the harness from this one. Without the footage
it exits with status 2, naming the file.
"""

import argparse
import asyncio
import math
import sys
import tempfile
from pathlib import Path

from footage import FOOTAGE, require

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.attack import ATTACKS, FPS, Device, Figures, camera_source, scenario  # noqa: E402

BASELINE = "baseline"
SCENARIOS = (BASELINE, *ATTACKS, "owner-load", "idle@200fd")


async def measure(name: str, camera: Path, seconds: float, root: Path) -> Figures:
    attack = {BASELINE: None, "owner-load": None, "idle@200fd": "idle"}.get(name, name)
    with tempfile.TemporaryDirectory(prefix="attack-bench-") as folder:
        nofile = 200 if name == "idle@200fd" else None
        async with Device(Path(folder), camera, nofile=nofile, root=root) as device:
            figures = await scenario(device, attack, seconds=seconds, load=name == "owner-load")
    figures.name = name
    return figures


def ratio(value: float, base: float) -> str:
    if math.isinf(value) or base <= 0:
        return "inf" if math.isinf(value) else "-"
    return f"{value / base:.2f}x"


def row(figures: Figures, base: Figures) -> list[str]:
    counters = figures.counters
    lost = sum(v for k, v in counters.items() if "dropped" in k or "missed" in k)
    refused = [v for k, v in counters.items() if "refused" in k or "pushed_out" in k]
    return [
        figures.name,
        f"{figures.bell(50):.1f}",
        f"{figures.bell(99):.1f}",
        ratio(figures.bell(99), base.bell(99)),
        f"{figures.rss_peak / 1e6:.0f}",
        ratio(figures.rss_peak, base.rss_peak),
        f"{figures.cpu_s:.1f}",
        ratio(figures.cpu_s, base.cpu_s),
        f"{lost:g}",
        f"{max(figures.lag, default=0) / FPS:.2f}",
        str(figures.log_bytes),
        f"{sum(refused):g}" if refused else "-",
        f"{figures.machine.get('busy cores', 0):.2f}",
        str(len(figures.failures())),
    ]


HEAD = [
    "scenario",
    "bell p50 ms",
    "bell p99 ms",
    "p99 vs base",
    "peak RSS MB",
    "RSS vs base",
    "CPU s",
    "CPU vs base",
    "frames dropped+missed",
    "behind s",
    "log bytes",
    "refused or pushed out",
    "machine busy cores",
    "limits broken",
]


def table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(HEAD) + " |", "|" + " --- |" * len(HEAD)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="each scenario (default 60)")
    parser.add_argument("--only", default="", help=f"comma-separated, of {','.join(SCENARIOS)}")
    parser.add_argument("--root", type=Path, default=ROOT, help="the service's code")
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n] or list(SCENARIOS)
    unknown = set(names) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario {', '.join(sorted(unknown))}")
    require("attack_bench", "porch-visitors.mp4")
    names = [BASELINE] + [n for n in names if n != BASELINE]  # ratios need it
    with tempfile.TemporaryDirectory(prefix="attack-bench-camera-") as made:
        camera = camera_source(FOOTAGE / "porch-visitors.mp4", Path(made))
        results = []
        for name in names:
            print(f"{name} ...", file=sys.stderr, flush=True)
            results.append(await measure(name, camera, args.seconds, args.root))
    print(f"{args.seconds:g} s a scenario; service from {args.root}")
    print(table([row(f, results[0]) for f in results]))
    for figures in results:
        print()
        print(figures.report())


if __name__ == "__main__":
    asyncio.run(main())
