"""Privacy masks: what they cost a frame, and what they cost a whole replay.

    python3 bench/mask_bench.py [--rounds 7] [--seconds 60] [--repeat 3] [--json FILE]

(a) Micro, in this process: milliseconds a frame to mask 1280x720, 640x480 and
1920x1080 pictures as BGR, grey, I420 with the stride the width (a flat buffer) and
I420 with rows padded (as picamera2 pads them), with 1 polygon (slanted), the example
polygon of ``doorbell/default.toml`` (the top fifth) and 8 polygons (41 % of the
frame): the boolean index the masks used before issue 15 against
``PrivacyMask`` now, in alternating rounds (medians), their ratio, and the floor:
``cv2.fillPoly`` of the same polygons onto a frame of that shape (for I420, the
luma plane and both chroma planes at half size).

(b) Whole pipeline: ``doorbell replay`` of ``--seconds`` of real 720p footage
(porch-visitors.mp4 scaled to 1280x720, as bench/pipeline_bench.py makes it), each in
a fresh process, with no mask, the example polygon and 8 mask polygons; the order
alternates each repetition; CPU seconds (user + system of the child, from its
rusage) as medians of ``--repeat``, and the ratios 8/0 (goal <= 1.05) and example/0. The
same replays with the example and 8 polygons masked the boolean way ("before", the
``PrivacyMask`` of before issue 15, patched in the child) unless ``--no-before``.

porch-visitors.mp4 is read from $DOORBELL_FOOTAGE if set, else ../shared/footage
beside the repository; if it is missing, the bench says so and exits with 2
(``--micro-only`` measures (a) without it).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # doorbell from this checkout

from doorbell.privacy import PrivacyMask, pixel_polygons

EXAMPLE = [[(0.0, 0.0), (1.0, 0.0), (1.0, 0.2), (0.0, 0.2)]]  # doorbell/default.toml
WINDOW = [[(0.62, 0.18), (0.8, 0.15), (0.82, 0.42), (0.63, 0.44)]]  # across the road
EIGHT = [
    [(0.0, 0.0), (1.0, 0.0), (1.0, 0.12), (0.0, 0.2)],
    [(0.05, 0.3), (0.2, 0.28), (0.22, 0.55), (0.04, 0.6)],
    [(0.8, 0.3), (0.97, 0.35), (0.9, 0.7)],
    [(0.4, 0.25), (0.55, 0.25), (0.6, 0.4), (0.5, 0.45), (0.38, 0.38)],
    [(0.0, 0.8), (0.15, 0.75), (0.3, 1.0), (0.0, 1.0)],
    [(0.7, 0.8), (1.0, 0.78), (1.0, 1.0), (0.65, 1.0)],
    [(0.3, 0.6), (0.35, 0.62), (0.33, 0.7)],
    [(0.6, 0.5), (0.75, 0.55), (0.7, 0.65), (0.62, 0.6)],
]
POLYGON_SETS = {"1 polygon": WINDOW, "example": EXAMPLE, "8 polygons": EIGHT}
SIZES = ((1280, 720), (640, 480), (1920, 1080))
LAYOUTS = ("BGR", "grey", "I420", "I420 padded")


def padded_stride(width: int) -> int:
    """A row padded past the width to the next 64 bytes (1280 -> 1344)."""
    return (width // 64 + 1) * 64


# -- (a) micro ---------------------------------------------------------------------------


def boolean_region(polygons: list, width: int, height: int) -> np.ndarray:
    out = np.zeros((height, width), bool)
    for points in pixel_polygons(polygons, width, height):
        one = np.zeros((height, width), np.uint8)
        cv2.fillPoly(one, [points], (255,))
        out |= one > 0
    return out


def boolean_way(
    polygons: list, width: int, height: int, layout: str, region: np.ndarray | None = None
) -> Callable:
    """The masks before issue 15: a boolean index over every pixel (region cached)."""
    region = boolean_region(polygons, width, height) if region is None else region
    if layout in ("BGR", "grey"):

        def apply(frame: np.ndarray) -> None:
            frame[region] = 0

        return apply
    ch, cw = height // 2, width // 2

    def apply_i420(buffer: np.ndarray, stride: int) -> None:
        flat = buffer.reshape(-1)
        y_size, cstride = stride * height, stride // 2
        flat[:y_size].reshape(height, stride)[:, :width][region] = 0
        # as before issue 15: the 2x2 reduction every frame (most of the cost)
        small = region[: ch * 2, : cw * 2].reshape(ch, 2, cw, 2).any(axis=(1, 3))
        for plane in range(2):
            start = y_size + plane * cstride * ch
            flat[start : start + cstride * ch].reshape(ch, cstride)[:, :cw][small] = 128

    return apply_i420


def floor_way(polygons: list, width: int, height: int, layout: str) -> Callable:
    """Filling the polygons and nothing else: cv2.fillPoly onto each plane."""
    points = pixel_polygons(polygons, width, height)
    half = pixel_polygons(polygons, width // 2, height // 2)
    if layout in ("BGR", "grey"):
        colour = (0, 0, 0) if layout == "BGR" else (0,)

        def fill(frame: np.ndarray) -> None:
            for p in points:
                cv2.fillPoly(frame, [p], colour)

        return fill

    def fill_i420(buffer: np.ndarray, stride: int) -> None:
        flat = buffer.reshape(-1)
        y_size, cstride, ch, cw = stride * height, stride // 2, height // 2, width // 2
        luma = flat[:y_size].reshape(height, stride)[:, :width]
        for p in points:
            cv2.fillPoly(luma, [p], (0,))
        for plane in range(2):
            start = y_size + plane * cstride * ch
            chroma = flat[start : start + cstride * ch].reshape(ch, cstride)[:, :cw]
            for p in half:
                cv2.fillPoly(chroma, [p], (128,))

    return fill_i420


def ours_way(polygons: list, width: int, height: int, layout: str) -> Callable:
    mask = PrivacyMask(polygons)
    if layout in ("BGR", "grey"):
        return mask.apply
    return lambda buffer, stride: mask.apply_i420(buffer, width, height, stride)


def frame_for(width: int, height: int, layout: str, rng: np.random.Generator) -> tuple:
    """``(array, stride or None)`` of random pixels in ``layout``."""
    if layout == "BGR":
        return rng.integers(0, 256, (height, width, 3), dtype=np.uint8), None
    if layout == "grey":
        return rng.integers(0, 256, (height, width), dtype=np.uint8), None
    stride = width if layout == "I420" else padded_stride(width)
    return rng.integers(0, 256, (height * 3 // 2, stride), dtype=np.uint8), stride


def per_frame_ms(apply: Callable, frame: np.ndarray, stride: int | None, budget: float) -> float:
    """Milliseconds a call, over as many calls as fit ``budget`` seconds (at least 3)."""
    args = (frame,) if stride is None else (frame, stride)
    apply(*args)  # the first call makes the selection: not what a frame costs
    start, calls = time.perf_counter(), 0
    while calls < 3 or time.perf_counter() - start < budget:
        apply(*args)
        calls += 1
    return (time.perf_counter() - start) / calls * 1e3


def micro(rounds: int) -> list[dict]:
    rng = np.random.default_rng(15)
    rows = []
    for width, height in SIZES:
        for layout in LAYOUTS:
            for name, polygons in POLYGON_SETS.items():
                frame, stride = frame_for(width, height, layout, rng)
                ways = {
                    "boolean": boolean_way(polygons, width, height, layout),
                    "ours": ours_way(polygons, width, height, layout),
                    "floor": floor_way(polygons, width, height, layout),
                }
                times: dict[str, list[float]] = {way: [] for way in ways}
                for r in range(rounds):  # alternating order each round
                    for way in ways if r % 2 == 0 else reversed(list(ways)):
                        times[way].append(per_frame_ms(ways[way], frame, stride, 0.02))
                cover = boolean_region(polygons, width, height).mean()
                row = {
                    "size": f"{width}x{height}",
                    "layout": layout + (f" ({stride})" if layout == "I420 padded" else ""),
                    "polygons": name,
                    "cover": round(float(cover), 3),
                    **{f"{way}_ms": statistics.median(t) for way, t in times.items()},
                }
                row["speedup"] = row["boolean_ms"] / row["ours_ms"]
                row["ours_over_floor"] = row["ours_ms"] / row["floor_ms"]
                rows.append(row)
    return rows


def print_micro(rows: list[dict]) -> None:
    print("## (a) ms a frame to mask (medians; boolean: before issue 15; floor: fillPoly alone)")
    print(
        "| size | layout | polygons | cover | boolean ms | ours ms | floor ms | boolean/ours | ours/floor |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['size']} | {r['layout']} | {r['polygons']} | {r['cover']:.0%} "
            f"| {r['boolean_ms']:.3f} | {r['ours_ms']:.3f} | {r['floor_ms']:.3f} "
            f"| {r['speedup']:.0f}x | {r['ours_over_floor']:.2f}x |"
        )


# -- (b) whole pipeline ------------------------------------------------------------------


def config_for(polygons: list, path: Path) -> Path:
    """A doorbell.toml with only these masks (TOML arrays of [x, y] points)."""
    masks = json.dumps([[list(p) for p in poly] for poly in polygons])
    path.write_text(f"[privacy]\nmasks = {masks}\n")
    return path


def cpu_of(command: list, log: Path) -> tuple[float, dict]:
    """CPU seconds (user + system) of one child process, from its own rusage, and the
    JSON it printed."""
    with open(log, "w") as out:
        child = subprocess.Popen(command, stdout=out)
        _, status, usage = os.wait4(child.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(map(str, command[:4]))} failed ({log})")
    return usage.ru_utime + usage.ru_stime, json.loads(log.read_text())


# The replay as it ran before issue 15: the same PrivacyMask, painting by boolean index.
BEFORE = """
import sys
sys.path.insert(0, sys.argv.pop(1))
import mask_bench
mask_bench.paint_the_boolean_way()
from doorbell.cli import main
sys.exit(main(sys.argv[1:]))
"""


def paint_the_boolean_way() -> None:
    """Make PrivacyMask paint as it did before issue 15 (its region, cached a size, as
    a boolean index over every pixel), for the replays measured as "before"."""

    def apply(self: PrivacyMask, frame: np.ndarray) -> np.ndarray:
        if self.polygons:
            frame[self.region(frame.shape[1], frame.shape[0])] = self.fill
        return frame

    def apply_i420(
        self: PrivacyMask, buffer: np.ndarray, width: int, height: int, stride: int | None = None
    ) -> np.ndarray:
        if self.polygons:
            paint = boolean_way(self.polygons, width, height, "I420", self.region(width, height))
            paint(buffer, stride or width)
        return buffer

    PrivacyMask.apply = apply  # type: ignore[method-assign]
    PrivacyMask.apply_i420 = apply_i420  # type: ignore[method-assign]


RUNS = {  # name: (polygons, painted the boolean way)
    "0": ([], False),
    "example": (EXAMPLE, False),  # the example polygon of default.toml (part (a)'s "example")
    "8": (EIGHT, False),
    "example before": (EXAMPLE, True),
    "8 before": (EIGHT, True),
}


def pipeline(seconds: float, repeat: int, before: bool) -> dict:
    from pipeline_bench import make_720p  # bench/ is on sys.path

    runs = {name: run for name, run in RUNS.items() if before or not run[1]}
    bench_dir = str(Path(__file__).resolve().parent)
    with tempfile.TemporaryDirectory(dir="/var/tmp", prefix="doorbell-mask-bench-") as tmp:
        work = Path(tmp)
        video = work / "porch-720p.mp4"
        make_720p(video, seconds)
        keyed = work / "keyed"
        (work / "pass").write_text("benchmark passphrase\n")
        init = ["keys", "init", "--data-dir", keyed, "--passphrase-file", work / "pass"]
        subprocess.run(
            [sys.executable, "-m", "doorbell", *init, "--work-factor", "10"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        bells = [a for t in range(10, int(seconds), 20) for a in ("--bell-at", str(t))]
        cpu: dict[str, list[float]] = {n: [] for n in runs}
        work_done: dict[str, set] = {n: set() for n in runs}
        for r in range(repeat):
            for n in runs if r % 2 == 0 else reversed(list(runs)):
                polygons, boolean = runs[n]
                data = work / f"data-{r}"
                shutil.copytree(keyed, data)
                config = config_for(polygons, work / f"masks-{len(polygons)}.toml")
                python = (
                    [sys.executable, "-c", BEFORE, bench_dir]
                    if boolean
                    else [sys.executable, "-m", "doorbell"]
                )
                run = ["replay", video, "--data-dir", data, "--config", config, "--json"]
                seconds_cpu, summary = cpu_of([*python, *run, *bells], work / f"{r}.json")
                cpu[n].append(seconds_cpu)
                work_done[n].add((summary["frames"], len(summary["clips"])))
                shutil.rmtree(data)
    medians = {n: statistics.median(c) for n, c in cpu.items()}
    return {
        "seconds": seconds,
        "repeat": repeat,
        "cpu_s": cpu,
        "median_cpu_s": medians,
        "frames_and_clips": {n: sorted(w) for n, w in work_done.items()},
        "ratio_8_to_0": medians["8"] / medians["0"],
        "ratio_example_to_0": medians["example"] / medians["0"],
    }


def print_pipeline(result: dict) -> None:
    print(
        f"\n## (b) doorbell replay of {result['seconds']:g} s of 1280x720 real footage, "
        f"CPU s, medians of {result['repeat']} (alternating order; before: the boolean way)"
    )
    print("| mask polygons | CPU s (each run) | median | vs 0 | frames, clips |")
    print("| --- | --- | --- | --- | --- |")
    base = result["median_cpu_s"]["0"]
    for n, runs in result["cpu_s"].items():
        median = result["median_cpu_s"][n]
        done = "; ".join(f"{f}, {c}" for f, c in result["frames_and_clips"][n])
        print(
            f"| {n} | {' '.join(f'{c:.2f}' for c in runs)} | {median:.2f} "
            f"| {median / base:.3f}x | {done} |"
        )
    verdict = "met" if result["ratio_8_to_0"] <= 1.05 else "NOT met"
    print(f"8 polygons / 0: {result['ratio_8_to_0']:.3f} (goal <= 1.05: {verdict})")
    print(f"the example polygon / 0: {result['ratio_example_to_0']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="micro: alternating rounds")
    parser.add_argument("--seconds", type=float, default=60.0, help="replay: seconds of video")
    parser.add_argument("--repeat", type=int, default=3, help="replay: runs of each count")
    parser.add_argument("--micro-only", action="store_true", help="skip the replays")
    parser.add_argument(
        "--no-before", action="store_true", help="skip the replays masking the boolean way"
    )
    parser.add_argument("--json", metavar="FILE", help="write every figure here too")
    args = parser.parse_args()
    if args.rounds < 1 or args.repeat < 1 or args.seconds < 1:
        parser.error("--rounds and --repeat must be 1 or more, --seconds at least 1")
    if not args.micro_only:
        from pipeline_bench import check_footage

        check_footage()  # exits 2 naming what is missing, before measuring anything
    print(f"# masks: cv2 {cv2.__version__}, numpy {np.__version__}, {os.cpu_count()} CPUs")
    rows = micro(args.rounds)
    print_micro(rows)
    result = None
    if not args.micro_only:
        result = pipeline(args.seconds, args.repeat, not args.no_before)
        print_pipeline(result)
    if args.json:
        Path(args.json).write_text(json.dumps({"micro": rows, "pipeline": result}, indent=1))


if __name__ == "__main__":
    main()
