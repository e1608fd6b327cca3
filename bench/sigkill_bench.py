"""What a crash loses: `doorbell replay --realtime` killed with SIGKILL mid-clip, 20 times.

    .venv/bin/python bench/sigkill_bench.py [--runs 20] [--seed 1]

porch-visitors.mp4 is read from $DOORBELL_FOOTAGE if set, else ../shared/footage
beside the repository; without it the bench makes a generated porch (the
tests' twin, tests/scenes.py) and says so.

Each run replays the footage in real time into a fresh data folder, presses
the bell at 6 s (a clip from 1 s, its pre-roll, to 16 s), and kills the
process with SIGKILL at a random moment while the clip is being written. The
next start keeps the `.part` as it is (the device holds no key), the owner's
identity recovers its intact prefix, cut to its last whole fragment (as the
browser's player and `doorbell decrypt --recover` do), and the recovered clip is compared with the same clip from a
replay left to finish (the reference; the recovered one must be a byte prefix
of it). Per run:

- loss in seconds of video: the kill's moment on the clip's own clock (kill
  time less the clip's start in the index, both Unix seconds) less the end of
  the recovered clip's last frame. The replay takes a few milliseconds to
  process a frame after its moment, so this is an upper bound;
- loss in bytes and frames: what the reference clip holds up to that moment
  that the recovered one does not (so the lag is in these too);
- trimmed: authenticated bytes on the disk that recovery dropped to end the
  clip at its last whole fragment (under one frame).

The replay runs at a raised priority (nice -10) so other work on the machine
adds as little lag as it can. Prints the worst and the median of each. Law 5
says a process crash loses at most the writer's unsealed chunk (under 64 KiB)
and the frame in the muxer.
"""

import argparse
import io
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import av

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from footage import FOOTAGE  # noqa: E402

from doorbell.store import ClipStore, Keyring  # noqa: E402
from doorbell.vault.header import parse_header  # noqa: E402
from doorbell.vault.stream import CHUNK_SIZE, NONCE_SIZE, SEALED_CHUNK_SIZE  # noqa: E402

PASSPHRASE = "sigkill bench passphrase"
BELL_AT = 6.0
POST_ROLL = 10.0
CONFIG = """
[trigger]
pre_roll = 5.0
post_roll = 10.0
motion_starts = false
"""


@dataclass(frozen=True)
class Run:
    loss_seconds: float
    loss_bytes: int
    loss_frames: int
    trimmed: int  # authenticated bytes dropped to end at a whole fragment
    on_disk: int  # bytes of the .part when it was killed
    prefix: bool  # the recovered clip is a byte prefix of the reference


def footage(folder: Path) -> tuple[Path, str]:
    real = FOOTAGE / "porch-visitors.mp4"
    if real.exists():
        return real, f"real footage ({real})"
    from tests.scenes import porch, write_video

    scene = porch(width=768, height=432, duration=30.0)
    path = write_video(folder / "porch.mp4", scene.frames, scene.fps)
    return path, f"generated porch (no {real}; set DOORBELL_FOOTAGE)"


def replay(video: Path, data: Path, config: Path, *, realtime: bool) -> subprocess.Popen:
    argv = [sys.executable, "-m", "doorbell", "replay", str(video), "--data-dir", str(data)]
    argv += ["--config", str(config), "--bell-at", str(BELL_AT), "--json"]
    if realtime:
        argv.append("--realtime")
    return subprocess.Popen(
        argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=(lambda: os.nice(-10)) if realtime else None,
    )


def frames(mp4: bytes) -> list[tuple[float, int]]:
    """Each frame's (end time in seconds, end byte of its fragment), decoded strictly."""
    out = []
    with av.open(io.BytesIO(mp4)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            packet.decode()  # raises on a damaged packet, as `ffmpeg -xerror` would
            end = (packet.pts + (packet.duration or 0)) * packet.time_base
            out.append((float(end), packet.pos + packet.size))
    return out


def one_clip(data: Path, identities: list) -> tuple[float, bytes]:
    """The data folder's one bell clip, recovered to its last whole fragment if a crash
    cut it: its start and its MP4."""
    from doorbell import vault
    from doorbell.store import VIDEO
    from doorbell.store.fragments import Trimmed, trim

    store = ClipStore.open(data)
    try:
        [clip] = [c for c in store.list() if c.trigger == "bell"]
        with open(store.path(clip.id, VIDEO), "rb") as file:
            pieces = vault.recover(file, identities, vault.Recovery())
            return clip.start, b"".join(trim(pieces, Trimmed()))
    finally:
        store.close()


def one_run(
    video: Path, template: Path, config: Path, folder: Path, reference: list, rng: random.Random
) -> Run:
    data = folder / "data"
    shutil.copytree(template, data)
    process = replay(video, data, config, realtime=True)
    try:
        while not list((data / "clips").glob("*.mp4.age.part")):
            if process.poll() is not None:
                raise SystemExit("the replay ended before its clip began")
            time.sleep(0.005)
        time.sleep(rng.uniform(0.3, POST_ROLL - 0.5))
        killed_at = time.time()
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    [part] = (data / "clips").glob("*.mp4.age.part")
    on_disk = part.stat().st_size
    with open(part, "rb") as file:
        payload = on_disk - parse_header(file.readline).size - NONCE_SIZE
    sealed = payload // SEALED_CHUNK_SIZE * CHUNK_SIZE  # plaintext bytes whole on the disk
    identities = Keyring.in_data_dir(data).unlock(PASSPHRASE)
    start, mp4 = one_clip(data, identities)
    got = frames(mp4)
    moment = killed_at - start  # the kill on the clip's clock: seconds after its first frame
    ended = got[-1][0] if got else 0.0
    due = [f for f in reference if f[0] <= moment + 1e-6]
    kept_end = got[-1][1] if got else 0
    shutil.rmtree(data)
    return Run(
        loss_seconds=moment - ended,
        loss_bytes=(due[-1][1] if due else 0) - kept_end,
        loss_frames=len(due) - len(got),
        trimmed=sealed - len(mp4),
        on_disk=on_disk,
        prefix=mp4 == REFERENCE_MP4[: len(mp4)],
    )


REFERENCE_MP4 = b""


def main() -> None:
    global REFERENCE_MP4
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        folder = Path(tmp)
        video, what = footage(folder)
        template = folder / "template"
        Keyring.in_data_dir(template).init(PASSPHRASE, work_factor=10)
        config = folder / "doorbell.toml"
        config.write_text(CONFIG)

        done = folder / "reference"
        shutil.copytree(template, done)
        assert replay(video, done, config, realtime=False).wait() == 0
        _, REFERENCE_MP4 = one_clip(done, Keyring.in_data_dir(done).unlock(PASSPHRASE))
        reference = frames(REFERENCE_MP4)
        fps = len(reference) / reference[-1][0]
        print(f"{what}; reference clip {reference[-1][0]:.1f} s, {len(REFERENCE_MP4)} bytes")

        runs = []
        for n in range(args.runs):
            run = one_run(video, template, config, folder, reference, rng)
            runs.append(run)
            print(
                f"run {n + 1:2}: lost {run.loss_seconds * 1000:4.0f} ms, {run.loss_frames} "
                f"frame(s), {run.loss_bytes:6} bytes; trimmed {run.trimmed:5} bytes; .part "
                f"{run.on_disk} bytes; prefix of the reference: {'yes' if run.prefix else 'NO'}"
            )
    for name, unit, values in (
        ("seconds of video", "ms", [r.loss_seconds * 1000 for r in runs]),
        ("frames", "", [float(r.loss_frames) for r in runs]),
        ("bytes of MP4", "", [float(r.loss_bytes) for r in runs]),
        ("bytes trimmed to a whole fragment", "", [float(r.trimmed) for r in runs]),
    ):
        print(
            f"loss in {name}: worst {max(values):.0f}{unit}, median "
            f"{statistics.median(values):.0f}{unit} over {len(runs)} SIGKILLs"
        )
    print(f"({fps:.0f} frames a second; a 64 KiB chunk is the most a crash may lose, plus a frame)")
    if not all(r.prefix for r in runs):
        raise SystemExit("a recovered clip is not a prefix of the reference")


if __name__ == "__main__":
    main()
