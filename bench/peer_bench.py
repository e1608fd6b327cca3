"""Doorbell against its peer, Motion, on the same 720p file in real time; and the
decode+encode floor against ``doorbell replay``.

    .venv/bin/python bench/peer_bench.py [--seconds 120] [--idle 60] [--repeat 3] [--json FILE]
        [--pre-roll-fps FPS] [--only peer|floor]

The scene, made once with PyAV into a temporary folder in /var/tmp: porch-visitors.mp4
(768x432, 10 fps; $DOORBELL_FOOTAGE or ../shared/footage) scaled to 1280x720 (swscale
bilinear, in YUV 4:2:0) and written as 10 fps H.264 (libx264 veryfast). First
``--seconds`` of action: the footage that leads up to its empty stretch (frame 986 on),
looped if longer (people walk up, stand, leave; the porch is empty 15-19 s between
some of them). Then ``--idle`` seconds of an empty scene: that stretch's frames
1000-1159 (under 0.1 % of the pixels change by more than 25 a frame) played forward and
back, so the empty porch keeps a real camera's noise and follows the action with no cut.

Each repetition runs the three sides one after the other, in an order that alternates,
each on a fresh output folder, in real time:

* Motion (Debian's ``motion``; without it the bench exits 2 saying how to install it)
  with the config of :func:`motion_config`: the file as ``netcam_url file://`` read at
  10 fps (``capture_rate=10``: by default Motion reads at framerate + 1, 10 % faster
  than real time), 1280x720 at 10 fps, H.264 in Matroska by libx264 (Motion sets
  ultrafast and zerolatency itself; ``movie_quality 54`` is CRF 23, libx264's default,
  as doorbell's encoder; Motion's GOP is fps / 2), 50 frames of pre-capture and 100 of
  post-capture (doorbell's 5 s pre_roll and 10 s post_roll), Debian's motion.conf
  detection settings (threshold 1500, despeckle EedDl, event_gap 60), no text overlay
  (doorbell draws none), no port open (webcontrol_port 0, stream_port 0); SIGTERM when
  the file has played;
* ``doorbell replay --realtime`` (default settings) into a fresh data dir whose only
  recipient is an X25519 key the bench makes;
* ``doorbell demo --source FILE`` on a free port of 127.0.0.1 with such a data dir
  (nobody connects); SIGTERM when the file has played.

From /proc every 0.25 s: CPU seconds (user + system) of the process tree (children
reaped or not), per minute of wall time in two windows after the launch: recording,
from 5 s (start-up left out) to the end of the action; empty scene, from 25 s after it
(every side's clip has ended by then) to 1.5 s before the file ends, with the
bytes of clips written in that window (0 when nothing records there). Peak RSS: VmHWM
of the launched process itself (not ru_maxrss: Linux carries the parent's high-water
mark into a child's). Output bitrate: bytes of the clips / seconds of video in them
(first to last frame, by demuxing; doorbell's clips decrypted with the bench's key).
Doorbell's clips on disk are age ciphertext: the plaintext plus a header and 16 bytes a
64 KiB chunk (the overhead is printed; about 0.03 %). Medians over the repetitions, with
doorbell's ratios to Motion against the issue's goals.

Not the same work, so read the ratios with this: Motion encodes only the frames it keeps
(motion, pre- and post-capture) and holds its pre-capture as raw pictures (50 of 1.4 MB
at 720p: in its RSS); doorbell encodes every frame, always, and holds the pre-roll
encoded, so on the empty porch Motion only decodes and compares where doorbell also
encodes (hence the issue's 2x goal there). Motion compares the whole 1280x720 picture,
doorbell a small grey one. Motion writes plain Matroska with a keyframe every 5 frames
(more bits at the same CRF); doorbell a fragmented MP4, a fragment a frame, a keyframe
every 10, encrypted. Motion records on for longer once the porch empties (its reference
picture learns slowly), so its clips hold more seconds.

The floor: PyAV decoding the file and handing each decoded frame, unconverted, to
libx264 with doorbell's settings (codec.py H264Encoder: ultrafast, zerolatency, no
B-frames, a keyframe every fps x keyframe_interval frames; the decoder and the encoder
on codec_rules.encoder_threads threads: one at 720p10) into fragmented MP4
(codec.FRAGMENTED_MP4) thrown away, as fast as it goes, in a fresh interpreter;
against ``doorbell replay`` (not real time) of the same file. Whole processes, start-up
included, CPU-s from wait4, alternating, medians. Debian's ``ffmpeg`` doing the same is
printed beside it when present (with Debian's libx264, not the one in PyAV's wheel).
"""

import argparse
import fractions
import functools
import itertools
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import av
from footage import FOOTAGE, require
from procwatch import Trace, measure, watch

from doorbell import vault
from doorbell.config import Config
from doorbell.store import Keyring

NEEDS = ("porch-visitors.mp4",)
WIDTH, HEIGHT, FPS = 1280, 720, 10
IDLE_FRAMES = (1000, 1160)  # inside porch-visitors' empty stretch, frames 986-1175
START_SKIP = 5.0  # seconds after launch left out of the recording window (start-up)
SETTLE = 25.0  # seconds after the action before the empty-scene window opens
END_MARGIN = 1.5  # seconds before the file ends that the empty-scene window closes
DOORBELL = [sys.executable, "-m", "doorbell"]


# -- the scene ----------------------------------------------------------------------------


def _footage(skip: int, count: int) -> Iterator[av.VideoFrame]:
    """``count`` frames of porch-visitors.mp4 from frame ``skip`` on, looped."""
    while True:
        with av.open(str(FOOTAGE / "porch-visitors.mp4")) as source:
            for frame in source.decode(video=0):
                if skip:
                    skip -= 1
                    continue
                if count == 0:
                    return
                count -= 1
                yield frame


def make_scene(path: Path, action_s: float, idle_s: float) -> None:
    """Write the bench's 1280x720 10 fps H.264 MP4 to ``path`` (see the module's text)."""
    with av.open(str(FOOTAGE / "porch-visitors.mp4")) as source:
        length = source.streams.video[0].frames
    start, end = IDLE_FRAMES
    action = round(action_s * FPS)
    still = list(_footage(start, end - start))
    pingpong = still + still[-2:0:-1]
    idle = (pingpong[i % len(pingpong)] for i in range(round(idle_s * FPS)))
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"preset": "veryfast"}
        frames = itertools.chain(_footage((start - action) % length, action), idle)
        for index, frame in enumerate(frames):
            big = frame.reformat(WIDTH, HEIGHT, "yuv420p", interpolation="BILINEAR")
            big.pts, big.time_base = index, fractions.Fraction(1, FPS)
            out.mux(stream.encode(big))
        out.mux(stream.encode(None))


# -- a process and its children, from /proc -------------------------------------------------


# -- the sides ------------------------------------------------------------------------------


def motion_config(video: Path, out: Path) -> str:
    """Motion's config for the bench (see the module's text); movies go to ``out/movies``."""
    return f"""\
daemon off
setup_mode off
log_level 6
log_file {out}/motion.log
target_dir {out}/movies
netcam_url file://{video}
netcam_params capture_rate={FPS}
width {WIDTH}
height {HEIGHT}
framerate {FPS}
text_left ""
text_right ""
threshold 1500
despeckle_filter EedDl
minimum_motion_frames 1
event_gap 60
pre_capture {5 * FPS}
post_capture {10 * FPS}
picture_output off
movie_output on
movie_max_time 120
movie_quality 54
movie_codec mkv
movie_filename %t-%v-%Y%m%d%H%M%S
webcontrol_port 0
stream_port 0
"""


@dataclass
class Run:
    """One side's figures from one repetition (see the module's text)."""

    side: str
    recording: float  # CPU-s per minute
    idle: float  # CPU-s per minute
    idle_kb: float  # clip bytes written in the empty-scene window
    peak_mb: float
    mbit_s: float = 0.0
    clips: int = 0
    seconds: float = 0.0  # of video in the clips
    disk_bytes: int = 0
    plain_bytes: int | None = None  # decrypted, for doorbell's clips

    def add_clip(self, size: int, media: object, plain: int | None = None) -> None:
        """Count one clip: ``size`` bytes on disk, ``media`` a path or file PyAV opens."""
        with av.open(media) as clip:  # type: ignore[call-overload]
            video = clip.streams.video[0]
            times = [float(p.pts * video.time_base) for p in clip.demux(video) if p.pts is not None]
            rate = float(video.average_rate or FPS)
        if times:
            self.clips += 1
            self.disk_bytes += size
            self.seconds += max(times) - min(times) + 1 / rate
            self.mbit_s = self.disk_bytes * 8 / self.seconds / 1e6
            if plain is not None:
                self.plain_bytes = (self.plain_bytes or 0) + plain


def figures(side: str, trace: Trace, action: float, total: float) -> Run:
    idle_from, idle_to = action + SETTLE, total - END_MARGIN
    return Run(
        side,
        recording=trace.per_minute(START_SKIP, action),
        idle=trace.per_minute(idle_from, idle_to),
        idle_kb=(trace.at(idle_to, 2) - trace.at(idle_from, 2)) / 1024,
        peak_mb=trace.peak_mb,
    )


def run_motion(video: Path, work: Path, action: float, total: float, _: object) -> Run:
    movies = work / "movies"
    movies.mkdir()
    config = work / "motion.conf"
    config.write_text(motion_config(video, work))
    trace = watch(["motion", "-n", "-c", str(config)], movies, work / "stdout.log", total)
    run = figures("Motion", trace, action, total)
    for movie in sorted(movies.rglob("*.mkv")):
        run.add_clip(movie.stat().st_size, str(movie))
    return run


def _doorbell(
    side: str,
    command: list[str],
    work: Path,
    identity: vault.X25519Identity,
    action: float,
    total: float,
) -> Run:
    data = work / "data"
    Keyring.in_data_dir(data).add_recipient(identity.recipient, "peer bench")
    stop = total if command[0] == "demo" else None
    trace = watch([*DOORBELL, *command, "--data-dir", str(data)], data, work / "log", stop)
    if stop is None and trace.status != 0:
        raise SystemExit(f"doorbell {command[0]} failed ({trace.status}): see {work / 'log'}")
    run = figures(side, trace, action, total)
    for path in sorted((data / "clips").rglob("*.mp4.age")):
        with vault.open_file(path, [identity]) as clip:
            plain = clip.seek(0, os.SEEK_END)
            clip.seek(0)
            run.add_clip(path.stat().st_size, clip, plain)
    return run


def run_replay(
    video: Path, work: Path, action: float, total: float, key: object, config: Path | None = None
) -> Run:
    command = ["replay", str(video), "--realtime", "--json"]
    command += ["--config", str(config)] if config else []
    return _doorbell("doorbell replay", command, work, key, action, total)  # type: ignore[arg-type]


def run_demo(
    video: Path, work: Path, action: float, total: float, key: object, config: Path | None = None
) -> Run:
    with socket.socket() as probe:  # a free port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = ["demo", "--source", str(video), "--port", str(port)]
    command += ["--config", str(config)] if config else []
    return _doorbell("doorbell demo", command, work, key, action, total)  # type: ignore[arg-type]


SIDES: dict[str, Callable[[Path, Path, float, float, object], Run]] = {
    "Motion": run_motion,
    "doorbell replay": run_replay,
    "doorbell demo": run_demo,
}


# -- the decode+encode floor ----------------------------------------------------------------

FLOOR = """
import fractions, json, sys
import av
from av.video.frame import PictureType
video, gop, threads, options, muxing = *sys.argv[1:4], *map(json.loads, sys.argv[4:])
with av.open(video) as source, av.open("/dev/null", "w", format="mp4", options=muxing) as out:
    decoded = source.streams.video[0]
    decoded.codec_context.thread_count = int(threads)
    stream = out.add_stream("libx264", rate=decoded.average_rate)
    stream.width, stream.height, stream.pix_fmt = decoded.width, decoded.height, "yuv420p"
    stream.codec_context.gop_size = int(gop)
    stream.options = {**options, "threads": threads}
    base = fractions.Fraction(1, 90_000)
    for frame in source.decode(decoded):
        frame.pts, frame.time_base = round(frame.time / base), base
        frame.pict_type = PictureType.NONE  # the encoder's keyframes, not the source's
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))
"""
ENCODER_OPTIONS = {"preset": "ultrafast", "tune": "zerolatency", "bf": "0"}  # as codec.py's


def floor_commands(video: Path) -> dict[str, list[str]]:
    """The floor's commands by name: PyAV, and Debian's ffmpeg CLI when it is there; the
    decoder and libx264 on as many threads as doorbell's (codec_rules.encoder_threads)."""
    from doorbell.codec import FRAGMENTED_MP4
    from doorbell.codec_rules import encoder_threads

    gop = str(max(1, round(FPS * Config().pipeline.keyframe_interval)))
    threads = str(encoder_threads(WIDTH, HEIGHT, FPS))
    options = [json.dumps(ENCODER_OPTIONS), json.dumps(FRAGMENTED_MP4)]
    commands = {"PyAV": [sys.executable, "-c", FLOOR, str(video), gop, threads, *options]}
    if shutil.which("ffmpeg"):
        flags = [f"-{key}" for key in {**ENCODER_OPTIONS, **FRAGMENTED_MP4}]
        values = [*ENCODER_OPTIONS.values(), *FRAGMENTED_MP4.values()]
        commands["ffmpeg"] = [
            *("ffmpeg", "-v", "error", "-nostdin", "-threads", threads, "-i", str(video)),
            *("-c:v", "libx264", "-g", gop, "-threads", threads),
            *(arg for pair in zip(flags, values, strict=True) for arg in pair),
            *("-f", "mp4", "-y", "/dev/null"),
        ]
    return commands


def floor(video: Path, work: Path, repeat: int) -> dict[str, dict[str, float]]:
    """Median CPU-s and peak RSS (MB) of each floor command and of ``doorbell replay``."""
    commands = floor_commands(video)
    identity = vault.X25519Identity.generate()
    spent: dict[str, list[tuple[float, float]]] = {name: [] for name in [*commands, "replay"]}
    for rep in range(repeat):
        for name in list(spent) if rep % 2 == 0 else list(spent)[::-1]:
            command = commands.get(name)
            if command is None:
                data = work / f"floor-{rep}"
                Keyring.in_data_dir(data).add_recipient(identity.recipient, "peer bench")
                command = [*DOORBELL, "replay", str(video), "--data-dir", str(data), "--json"]
            spent[name].append(measure(command, work / f"floor-{name}-{rep}.log"))
            print(
                f"floor {rep + 1}/{repeat}: {name} {spent[name][-1][0]:.2f} CPU-s", file=sys.stderr
            )
    return {
        name: {
            "cpu_s": statistics.median(c for c, _ in runs),
            "peak_mb": statistics.median(m for _, m in runs),
        }
        for name, runs in spent.items()
    }


# -- the report -----------------------------------------------------------------------------


def measured_code() -> str:
    """Where the doorbell measured here comes from: its folder, and its git commit (with
    "+ changes" if doorbell/ differs from it) when that is a checkout."""
    import doorbell

    root = Path(doorbell.__file__).resolve().parents[1]
    git = ["git", "-C", str(root)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        return str(root)
    changed = subprocess.run([*git, "status", "--porcelain", "--", "doorbell"], capture_output=True)
    return f"{root} at {head.stdout.strip()}{' + changes' if changed.stdout else ''}"


def require_motion() -> str:
    """Motion's version; exits with status 2, saying how to get it, if it is missing."""
    if shutil.which("motion") is None:
        print(
            "peer_bench.py: Motion is not installed; this bench compares against Debian's "
            "package: sudo apt-get install motion (then 'sudo systemctl disable --now motion': "
            "Debian starts it at boot, on ports 8080 and 8081 of localhost)",
            file=sys.stderr,
        )
        raise SystemExit(2)
    words = subprocess.run(["motion", "-h"], capture_output=True, text=True).stdout.split()
    return words[words.index("Version") + 1].rstrip(",") if "Version" in words else "?"


ROWS = (  # label, Run field, format, goal (the largest ratio to Motion), or None
    ("CPU-s per minute while recording", "recording", "{:.2f}", 1.0),
    ("CPU-s per minute, empty scene", "idle", "{:.2f}", 2.0),
    ("peak RSS, MB (VmHWM)", "peak_mb", "{:.0f}", 1.0),
    ("output bitrate, Mbit/s", "mbit_s", "{:.2f}", None),
    ("clips; seconds of video in them", "clips", "{:.0f}", None),
    ("KB of clips written in the empty-scene window", "idle_kb", "{:.0f}", None),
)


def medians(runs: list[Run]) -> dict[str, dict[str, float]]:
    by_side = {}
    for side in SIDES:
        mine = [asdict(run) for run in runs if run.side == side]
        keys = [k for k in mine[0] if k != "side" and all(r[k] is not None for r in mine)]
        by_side[side] = {key: statistics.median(run[key] for run in mine) for key in keys}
    return by_side


def print_peer(
    by_side: dict[str, dict[str, float]], version: str, args: argparse.Namespace
) -> None:
    ours = [side for side in by_side if side != "Motion"]
    scene = f"{args.seconds:g} s of porch footage then {args.idle:g} s of an empty porch"
    print(f"# {scene}, {WIDTH}x{HEIGHT} at {FPS} fps, in real time; medians of {args.repeat}")
    print(f"# doorbell: {measured_code()}")
    if args.pre_roll_fps is not None:
        print(f"# doorbell replay and demo with pre_roll_fps = {args.pre_roll_fps:g}")
    print(
        f"| | Motion {version} | {' | '.join(ours)} | {' | '.join(f'{s} / Motion' for s in ours)} | goal |"
    )
    print("| --- " * (2 * len(ours) + 3) + "|")
    for label, key, form, goal in ROWS:
        cells = [form.format(by_side[side][key]) for side in by_side]
        if key == "clips":
            cells = [
                f"{c}; {by_side[s]['seconds']:.1f} s" for c, s in zip(cells, by_side, strict=True)
            ]
        base = by_side["Motion"][key]
        ratios = [f"{by_side[s][key] / base:.2f}x" if goal and base else "" for s in ours]
        aim = f"<= {goal:g}x" if goal else ""
        print(f"| {label} | {' | '.join(cells)} | {' | '.join(ratios)} | {aim} |")
    for side in ours:
        overhead = by_side[side]["disk_bytes"] / by_side[side]["plain_bytes"] - 1
        print(f"\n{side}: the clips on disk (age) are {overhead * 100:.3f} % over their plaintext")


def print_floor(spent: dict[str, dict[str, float]], seconds: float) -> None:
    base = spent["PyAV"]["cpu_s"]
    print(f"\n# the decode+encode floor: {seconds:g} s of the same file, as fast as it goes")
    print(
        "| process | CPU-s | peak RSS, MB | / PyAV floor | goal |\n| --- | --- | --- | --- | --- |"
    )
    labels = {
        "PyAV": "floor: PyAV decode, libx264 at doorbell's settings, fragmented MP4",
        "ffmpeg": "floor: Debian's ffmpeg, the same settings (Debian's libx264)",
        "replay": "doorbell replay, not real time",
    }
    for name, row in spent.items():
        goal = "<= 1.3x" if name == "replay" else ""
        print(
            f"| {labels[name]} | {row['cpu_s']:.2f} | {row['peak_mb']:.0f} | {row['cpu_s'] / base:.2f}x | {goal} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    least_idle, least_action = SETTLE + END_MARGIN + 5, START_SKIP + 10
    parser.add_argument(
        "--seconds",
        type=float,
        default=120.0,
        help=f"of action (default 120, at least {least_action:g})",
    )
    parser.add_argument(
        "--idle",
        type=float,
        default=60.0,
        help=f"of an empty porch (default 60, at least {least_idle:g})",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side (default 3)")
    parser.add_argument(
        "--pre-roll-fps",
        type=float,
        metavar="FPS",
        help="doorbell with [trigger] pre_roll_fps = FPS (replay and demo, by --config)",
    )
    parser.add_argument("--only", choices=("peer", "floor"), help="one part of the bench only")
    parser.add_argument("--json", metavar="FILE", help="also write every figure here")
    args = parser.parse_args()
    if args.idle < least_idle:
        parser.error(f"--idle must be {least_idle:g} s or more (got {args.idle:g})")
    if args.seconds < least_action:
        parser.error(f"--seconds must be {least_action:g} s or more (got {args.seconds:g})")
    require(Path(__file__).name, *NEEDS)
    version = require_motion() if args.only != "floor" else ""
    total = args.seconds + args.idle
    report: dict = {"args": vars(args), "motion": version}
    with tempfile.TemporaryDirectory(dir="/var/tmp", prefix="doorbell-peer-") as tmp:
        work = Path(tmp)
        video = work / "scene.mp4"
        make_scene(video, args.seconds, args.idle)
        sides = dict(SIDES)
        if args.pre_roll_fps is not None:
            config = work / "doorbell.toml"
            config.write_text(f"[trigger]\npre_roll_fps = {args.pre_roll_fps:g}\n")
            sides["doorbell replay"] = functools.partial(run_replay, config=config)
            sides["doorbell demo"] = functools.partial(run_demo, config=config)
        if args.only != "floor":
            identity, runs = vault.X25519Identity.generate(), []
            for rep in range(args.repeat):
                for side in list(SIDES) if rep % 2 == 0 else list(SIDES)[::-1]:
                    folder = work / f"{rep}-{side.replace(' ', '-')}"
                    folder.mkdir()
                    runs.append(sides[side](video, folder, args.seconds, total, identity))
                    run = runs[-1]
                    print(
                        f"run {rep + 1}/{args.repeat}, {side}: {run.recording:.2f} CPU-s a minute"
                        f" recording, {run.idle:.2f} idle, peak {run.peak_mb:.0f} MB, "
                        f"{run.mbit_s:.2f} Mbit/s",
                        file=sys.stderr,
                    )
            report["runs"], report["medians"] = [asdict(r) for r in runs], medians(runs)
            print_peer(report["medians"], version, args)
        if args.only != "peer":
            report["floor"] = floor(video, work, args.repeat)
            print_floor(report["floor"], total)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
