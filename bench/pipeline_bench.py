"""The whole pipeline: CPU seconds and peak memory to replay one minute of 720p.

    python3 bench/pipeline_bench.py [--seconds 60]

porch-visitors.mp4 is read from $DOORBELL_FOOTAGE if set, else ../shared/footage
beside the repository; if it is missing, the bench says so and exits with 2.

Makes a 1280x720 H.264 file from porch-visitors.mp4 (upscaled, looped to
``--seconds``), then, each in a fresh process so peak RSS is its own:

* baseline: decode the file to BGR pictures and nothing else (the file
  camera, PyAV, as the replay does);
* ours: ``doorbell replay`` with a bell press every 20 s (decode, mask,
  motion, H.264 encode, fragmented MP4, encrypt, write).

Prints CPU seconds (user + system), seconds of video per CPU second, peak RSS
(each child's own VmHWM from /proc/PID/status, sampled until it exits: never
ru_maxrss, which Linux carries over from this bench into its children), and ratios to
the baseline. Zero 2 W budget: RSS under 100 MB.
"""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import av
import cv2
from footage import FOOTAGE, require
from procwatch import measure

NEEDS = ("porch-visitors.mp4",)


def check_footage() -> None:
    """Exit with status 2, saying what is missing, if the footage is not there."""
    require(Path(__file__).name, *NEEDS)


DECODE_ONLY = """
import sys
from doorbell.camera.file import FileCamera
camera = FileCamera(sys.argv[1])
for frame in camera.frames():
    pass
camera.close()
"""


def make_720p(path: Path, seconds: float) -> float:
    source = cv2.VideoCapture(str(FOOTAGE / "porch-visitors.mp4"))
    fps = source.get(cv2.CAP_PROP_FPS) or 10.0
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=round(fps))
        stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
        stream.options = {"preset": "veryfast"}
        for _ in range(round(seconds * fps)):
            ok, frame = source.read()
            if not ok:
                source.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, frame = source.read()
            big = cv2.resize(frame, (1280, 720), interpolation=cv2.INTER_LINEAR)
            for packet in stream.encode(av.VideoFrame.from_ndarray(big, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return fps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    check_footage()
    with tempfile.TemporaryDirectory(dir="/var/tmp", prefix="doorbell-bench-") as tmp:
        work = Path(tmp)
        video = work / "porch-720p.mp4"
        make_720p(video, args.seconds)
        data = work / "data"
        passphrase = work / "pass"
        passphrase.write_text("benchmark passphrase\n")
        doorbell = [sys.executable, "-m", "doorbell"]
        subprocess.run(
            [
                *doorbell,
                "keys",
                "init",
                "--data-dir",
                data,
                "--passphrase-file",
                passphrase,
                "--work-factor",
                "10",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        base_cpu, base_rss = measure([sys.executable, "-c", DECODE_ONLY, str(video)])
        bells = [a for t in range(10, int(args.seconds), 20) for a in ("--bell-at", str(t))]
        ours_cpu, ours_rss = measure(
            [*doorbell, "replay", str(video), "--data-dir", str(data), *bells]
        )
        clips = len(list((data / "clips").glob("*.mp4.age")))
    print(f"# {args.seconds:g} s of 1280x720 video; {clips} encrypted clips written")
    print("| run | CPU s | video s per CPU s | peak RSS MB |")
    print("| --- | --- | --- | --- |")
    print(
        f"| decode only (baseline) | {base_cpu:.2f} | {args.seconds / base_cpu:.1f} | {base_rss:.0f} |"
    )
    print(
        f"| doorbell replay, end to end | {ours_cpu:.2f} | {args.seconds / ours_cpu:.1f} | {ours_rss:.0f} |"
    )
    print(f"| ratio ours/baseline | {ours_cpu / base_cpu:.2f}x | | {ours_rss / base_rss:.2f}x |")


if __name__ == "__main__":
    main()
