"""Motion detection: our detector vs OpenCV's MOG2, on the shared footage.

    python3 bench/motion_bench.py [--repeat 3]

The footage is read from $DOORBELL_FOOTAGE if set, else ../shared/footage beside
the repository; if any of it is missing, the bench says which and exits with 2.

Cost: milliseconds per frame on the same 320x240 grey frames (the low-res
stream), for the whole decision (pixels, then blobs) and for the per-pixel
stage alone. Accuracy: pixel F1 against highway/groundtruth (CDnet 2014:
255 moving; 0 and 50 (shadow) not; 85 and 170 not scored), over every
labelled frame, and the motion events each gives on the waving tree.
"""

import argparse
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
from footage import FOOTAGE, require

from doorbell.motion import MotionDetector

NEEDS = ("highway/highway.avi", "highway/groundtruth", "porch-visitors.mp4", "waving-tree.mp4")


def check_footage() -> None:
    """Exit with status 2, saying what is missing, if the footage is not there."""
    require(Path(__file__).name, *NEEDS)


def load(name: str, size: tuple[int, int] | None = None) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(FOOTAGE / name))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            return frames
        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        frames.append(cv2.resize(grey, size, interpolation=cv2.INTER_AREA) if size else grey)


def ours(frames: list[np.ndarray]) -> tuple[float, float, list, list]:
    height, width = frames[0].shape
    detector = MotionDetector(width, height)
    masks = []
    start = time.perf_counter()
    for frame in frames:
        detector.update(frame)
        masks.append(detector.mask.copy())
    whole = (time.perf_counter() - start) / len(frames)
    pixels_only = MotionDetector(width, height)
    start = time.perf_counter()
    foreground = [pixels_only.foreground(frame) for frame in frames]
    return whole, (time.perf_counter() - start) / len(frames), masks, foreground


def mog2(frames: list[np.ndarray]) -> tuple[float, float, list, list]:
    subtractor = cv2.createBackgroundSubtractorMOG2(detectShadows=False)
    masks = []
    start = time.perf_counter()
    for frame in frames:
        mask = subtractor.apply(frame)
        cv2.connectedComponentsWithStats(mask, connectivity=8)  # the same blob stage as ours
        masks.append(mask)
    whole = (time.perf_counter() - start) / len(frames)
    pixels_only = cv2.createBackgroundSubtractorMOG2(detectShadows=False)
    start = time.perf_counter()
    foreground = [pixels_only.apply(frame) for frame in frames]
    return whole, (time.perf_counter() - start) / len(frames), masks, foreground


def pixel_f1(masks: list[np.ndarray]) -> float:
    tp = fp = fn = 0
    for i, mask in enumerate(masks):
        path = FOOTAGE / "highway" / "groundtruth" / f"gt{i + 1:06d}.png"
        if not path.exists():
            continue
        truth = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        scored = (truth == 0) | (truth == 50) | (truth == 255)
        moving, said = truth == 255, mask > 0
        tp += np.count_nonzero(said & moving & scored)
        fp += np.count_nonzero(said & ~moving & scored)
        fn += np.count_nonzero(~said & moving & scored)
    return 2 * tp / (2 * tp + fp + fn)


def events(masks: list[np.ndarray], min_area: float = 0.005, min_frames: int = 2) -> list[int]:
    """Frames where a blob of min_area first lasts min_frames (the same rule for both)."""
    starts, run = [], 0
    for i, mask in enumerate(masks):
        if i < 30:  # the same warm-up our detector takes
            continue
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        big = count > 1 and stats[1:, cv2.CC_STAT_AREA].max() >= min_area * mask.size
        run = run + 1 if big else 0
        if run == min_frames:
            starts.append(i)
    return starts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    check_footage()
    footage = {
        "highway": load("highway/highway.avi"),
        "porch-visitors": load("porch-visitors.mp4", (320, 240)),
        "waving-tree": load("waving-tree.mp4", (320, 240)),
    }
    print(f"# OpenCV {cv2.__version__}; frames at 320x240 grey; medians of {args.repeat} runs")
    print(
        "| footage | MOG2 ms/frame | ours ms/frame | MOG2/ours | pixel stage MOG2/ours "
        "| pixel F1 MOG2 | pixel F1 ours | F1 ours after the nuisance map |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, frames in footage.items():
        theirs = [mog2(frames) for _ in range(args.repeat)]
        mine = [ours(frames) for _ in range(args.repeat)]
        t_whole = statistics.median(r[0] for r in theirs) * 1e3
        o_whole = statistics.median(r[0] for r in mine) * 1e3
        pixels = statistics.median(r[1] for r in theirs) / statistics.median(r[1] for r in mine)
        f1 = ["", "", ""]
        if name == "highway":
            f1 = [f"{pixel_f1(m):.3f}" for m in (theirs[0][3], mine[0][3], mine[0][2])]
        print(
            f"| {name} | {t_whole:.3f} | {o_whole:.3f} | {t_whole / o_whole:.1f}x "
            f"| {pixels:.1f}x | {' | '.join(f1)} |"
        )
        if name == "waving-tree":
            print(
                f"\nwaving tree (a person enters at frame 242), motion event starts: "
                f"MOG2 {events(theirs[0][2])}, ours {events(mine[0][2])}"
            )


if __name__ == "__main__":
    main()
