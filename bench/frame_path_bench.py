"""The frame path against its floor: CPU seconds to decode and encode 720p, and what
doorbell adds; and what a still scene costs.

    .venv/bin/python bench/frame_path_bench.py [--seconds 120] [--repeat 3] [--idle 60]
                          [--pre-roll-fps 0,5] [--only floor,demo,idle] [--json FILE]

About six minutes with the defaults (the demo and the empty porch run in real time).

porch-visitors.mp4 (768x432, 10 fps) is read from $DOORBELL_FOOTAGE if set, else
../shared/footage beside the repository; if it is missing, the bench says so and exits
with status 2. Two files are made from it once, into a temporary folder in /var/tmp, with
PyAV (swscale bilinear in YUV 4:2:0, libx264 veryfast): its first ``--seconds`` scaled to
1280x720 at 10 fps, and ``--idle`` seconds of an empty porch (its frames 1000-1159,
where nobody is, played forward and back).

* **floor**: a fresh interpreter decodes the file with PyAV (one thread, as doorbell's
  file camera does) and hands each decoded frame, unconverted, to doorbell's own
  :class:`~doorbell.codec.H264Encoder` (libx264 ultrafast, zerolatency, no B-frames, a
  keyframe a second, its thread rule), muxed by :class:`~doorbell.codec.Mp4Writer` into
  fragmented MP4 thrown away (/dev/null), as fast as it goes;
* **replay**: ``doorbell replay FILE`` (not real time, default settings) into a data dir
  whose only recipient is a key the bench makes: decode, motion, trigger, encode, MP4,
  encryption, writes. Floor and replay alternate ``--repeat`` times; CPU-s (user +
  system) of each child from ``wait4``, start-up included; medians, and their ratio
  (the issue's goal: replay at most 1.3x the floor);
* **demo**: ``doorbell demo --source FILE`` on a free port of 127.0.0.1 (nobody
  connects) for the file's length in real time: CPU-s from /proc after 5 s of start-up,
  scaled to ``--seconds``, and its peak RSS (VmHWM);
* **idle**: the pipeline alone (the file camera in real time, default settings) over the
  empty porch, in a fresh interpreter each, with each ``--pre-roll-fps`` (0: every frame
  encoded; 5: the pre-roll ring at 5 frames a second while nothing is recorded): CPU-s
  a minute, from 5 s in, and the motion events it saw (0 expected).
"""

import argparse
import contextlib
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
from collections.abc import Iterator
from pathlib import Path

import av
from footage import FOOTAGE, require

NEEDS = ("porch-visitors.mp4",)
SIZE, FPS = (1280, 720), 10
EMPTY_FRAMES = (1000, 1160)  # porch-visitors' frames where nobody is
START_UP = 5.0  # seconds of a real-time run left out of its CPU figure
TICK = os.sysconf("SC_CLK_TCK")

FLOOR = """
import sys, av
from doorbell.codec import DecodedPicture, H264Encoder, Mp4Writer
from doorbell.codec_rules import encoder_threads
container = av.open(sys.argv[1])
stream = container.streams.video[0]
context = stream.codec_context
fps = float(stream.average_rate)
context.thread_count = encoder_threads(context.width, context.height, fps)
encoder = H264Encoder(context.width, context.height, fps)
with open("/dev/null", "wb") as sink:
    mp4 = Mp4Writer(sink, encoder.stream_info())
    for frame in container.decode(stream):
        for packet in encoder.encode_decoded(DecodedPicture(frame), float(frame.time)):
            mp4.write(packet)
    for packet in encoder.flush():
        mp4.write(packet)
    mp4.close()
"""

IDLE = """
import resource, sys
from doorbell.camera.file import FileCamera
from doorbell.config import PipelineSettings, Policy
from doorbell.pipeline import Pipeline
from doorbell.store import ClipStore
video, data, pre_roll_fps, skip = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
store = ClipStore.open(data)
camera = FileCamera(video, realtime=True)
settings = PipelineSettings(policy=Policy(pre_roll_fps=pre_roll_fps))
pipeline = Pipeline(store, settings, camera.width, camera.height, camera.fps,
                    wall_time=lambda t: 1e9 + t)
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
first = None
for frame in camera.frames():
    pipeline.process(frame)
    if first is None and frame.at >= skip:
        first = (frame.at, cpu())
last = (frame.at, cpu())
pipeline.finish()
camera.close()
store.close()
print((last[1] - first[1]) * 60 / (last[0] - first[0]), len(pipeline.events))
"""


def check_footage() -> None:
    """Exit with status 2, saying what is missing, if the footage is not there."""
    require(Path(__file__).name, *NEEDS)


def _footage_frames() -> Iterator[av.VideoFrame]:
    with av.open(str(FOOTAGE / "porch-visitors.mp4")) as container:
        yield from container.decode(video=0)


def write_720p(path: Path, frames: Iterator[av.VideoFrame], count: int) -> None:
    """``count`` of ``frames`` scaled to 1280x720, H.264 at 10 fps, as a camera's file."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height = SIZE
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "veryfast"}
        for n, frame in zip(range(count), frames, strict=False):
            big = frame.reformat(*SIZE, format="yuv420p", interpolation="BILINEAR")
            big.pts, big.time_base = n, fractions.Fraction(1, FPS)
            for packet in stream.encode(big):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def make_scenes(folder: Path, seconds: float, idle: float) -> tuple[Path, Path]:
    """The action file (the footage from its start, looped if need be) and the empty one."""
    action, empty = folder / "porch-720p.mp4", folder / "empty-720p.mp4"

    def looped() -> Iterator[av.VideoFrame]:
        while True:
            yield from _footage_frames()

    write_720p(action, looped(), round(seconds * FPS))
    first, end = EMPTY_FRAMES
    still = [f for n, f in enumerate(_footage_frames()) if first <= n < end]
    forth_and_back = still + still[-2:0:-1]

    def bounced() -> Iterator[av.VideoFrame]:
        while True:
            yield from forth_and_back

    write_720p(empty, bounced(), round(idle * FPS))
    return action, empty


def child_cpu(command: list[str]) -> float:
    """CPU seconds (user + system) of one child process, from its own rusage."""
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(map(str, command[:5]))} failed")
    return usage.ru_utime + usage.ru_stime


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a running process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def vm_hwm_mb(pid: int) -> float:
    """The process's own peak RSS (VmHWM, not a parent's carried into ru_maxrss), MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fresh_data(folder: Path, name: str) -> Path:
    """A data dir whose only recipient is a key made here (work factor 10: quick)."""
    data = folder / name
    passphrase = folder / "passphrase"
    passphrase.write_text("frame path bench\n")
    keys = [sys.executable, "-m", "doorbell", "keys", "init", "--data-dir", str(data)]
    subprocess.run(
        [*keys, "--passphrase-file", str(passphrase), "--work-factor", "10"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return data


def floor_and_replay(folder: Path, video: Path, repeat: int) -> dict:
    floors, replays = [], []
    for n in range(repeat):
        data = fresh_data(folder, f"replay-{n}")
        floor = [sys.executable, "-c", FLOOR, str(video)]
        replay = [sys.executable, "-m", "doorbell", "replay", str(video), "--data-dir", str(data)]
        for kind in ("floor", "replay") if n % 2 == 0 else ("replay", "floor"):
            if kind == "floor":
                floors.append(child_cpu(floor))
            else:
                replays.append(child_cpu(replay))
    floor, replay = statistics.median(floors), statistics.median(replays)
    return {"floor": floors, "replay": replays, "ratio": replay / floor}


def demo(folder: Path, video: Path, seconds: float) -> dict:
    data = fresh_data(folder, "demo")
    command = [sys.executable, "-m", "doorbell", "demo", "--source", str(video)]
    command += ["--port", str(free_port()), "--data-dir", str(data)]
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(START_UP)
        start, begun = proc_cpu(child.pid), time.monotonic()
        time.sleep(seconds - START_UP)
        cpu, wall = proc_cpu(child.pid) - start, time.monotonic() - begun
        peak = vm_hwm_mb(child.pid)
    finally:
        child.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(30)
        if child.poll() is None:
            child.kill()
    return {"cpu_per_run": cpu * seconds / wall, "peak_rss_mb": peak}


def idle(folder: Path, video: Path, rates: list[float]) -> dict:
    figures = {}
    for pre_roll_fps in rates:
        data = fresh_data(folder, f"idle-{pre_roll_fps:g}")
        out = subprocess.run(
            [sys.executable, "-c", IDLE, str(video), str(data), str(pre_roll_fps), str(START_UP)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        figures[f"{pre_roll_fps:g}"] = {"cpu_per_min": float(out[0]), "events": int(out[1])}
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="of 720p action (120)")
    parser.add_argument("--idle", type=float, default=60.0, help="seconds of empty porch (60)")
    parser.add_argument("--repeat", type=int, default=3, help="floor and replay runs each (3)")
    parser.add_argument(
        "--pre-roll-fps", default="0,5", help="pre_roll_fps values for the empty porch (0,5)"
    )
    parser.add_argument(
        "--only",
        default="floor,demo,idle",
        help="the parts to run, by name: floor (and replay), demo, idle (all three)",
    )
    parser.add_argument("--json", metavar="FILE", help="write the figures here too")
    args = parser.parse_args()
    parts = set(args.only.split(","))
    if unknown := parts - {"floor", "demo", "idle"}:
        parser.error(f"--only: no part called {', '.join(sorted(unknown))} (floor, demo, idle)")
    check_footage()
    figures: dict = {"seconds": args.seconds, "idle_seconds": args.idle}
    with tempfile.TemporaryDirectory(dir="/var/tmp", prefix="doorbell-frame-path-") as tmp:
        folder = Path(tmp)
        action, empty = make_scenes(folder, args.seconds, args.idle)
        if "floor" in parts:
            figures["floor_replay"] = floor_and_replay(folder, action, args.repeat)
        if "demo" in parts:
            figures["demo"] = demo(folder, action, args.seconds)
        if "idle" in parts:
            rates = [float(rate) for rate in args.pre_roll_fps.split(",")]
            figures["idle"] = idle(folder, empty, rates)
    print(f"# {args.seconds:g} s of 1280x720 at 10 fps (porch-visitors); CPU-s = user + system")
    if "floor_replay" in figures:
        got = figures["floor_replay"]
        floor, replay = statistics.median(got["floor"]), statistics.median(got["replay"])
        runs = len(got["floor"])
        print(f"| run (median of {runs}) | CPU-s | x floor |")
        print("| --- | --- | --- |")
        print(f"| floor: PyAV decode + H264Encoder + Mp4Writer | {floor:.2f} | 1.00 |")
        print(f"| doorbell replay (as fast as it goes) | {replay:.2f} | {replay / floor:.2f} |")
        if "demo" in figures:
            ran = figures["demo"]["cpu_per_run"]
            print(f"| doorbell demo --source (real time, once) | {ran:.2f} | {ran / floor:.2f} |")
    elif "demo" in figures:
        print(f"| doorbell demo --source (real time) | {figures['demo']['cpu_per_run']:.2f} | |")
    if "demo" in figures:
        print(f"demo peak RSS: {figures['demo']['peak_rss_mb']:.0f} MB")
    if "idle" in figures:
        got = figures["idle"]
        print(f"\n# empty porch, 1280x720 at 10 fps in real time ({args.idle:g} s, from 5 s)")
        print("| pre-roll ring while nothing is recorded | CPU-s a minute | motion events |")
        print("| --- | --- | --- |")
        for key, seen in got.items():
            words = "every frame (pre_roll_fps 0)" if key == "0" else f"pre_roll_fps {key}"
            print(f"| {words} | {seen['cpu_per_min']:.2f} | {seen['events']} |")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
