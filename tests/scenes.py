"""Footage made at run time, with known content: the generated twins of the real footage (docs/FOOTAGE.md).

Each scene says what is in it and when, as the README of the real footage
does, so a test asserts the same behaviour on both:

* :func:`waving_tree`: a textured tree swaying in the wind, nobody, then a
  person walking in at a known frame (the twin of ``waving-tree.mp4``);
* :func:`porch`: the project's synthetic porch camera with visitors at known
  times and empty stretches between them (the twin of ``porch-visitors.mp4``).

* :func:`uneven_porch`: the porch at a rate that changes (a variable-frame-rate
  file), each frame with its own presentation time.

:func:`write_video` puts frames in an H.264 MP4 with PyAV, for ``doorbell replay``
(any size, at a steady rate or at given times); :func:`damage` overwrites part of
its media data, as a failing card does.
"""

import fractions
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np
from av.video.reformatter import Colorspace

from doorbell.camera import open_camera
from doorbell.camera.synthetic import WALK_SECONDS, SyntheticCamera

# What docs/FOOTAGE.md says is in the real clips, in frames, for their twins.
REAL_TREE_PERSON = 242  # waving-tree.mp4 (15 fps): the tree alone, then a person at 242
REAL_PORCH_VISITS = ((0, 275), (430, 986), (1176, 1394))  # porch-visitors.mp4 (10 fps)
REAL_PORCH_EMPTY = ((280, 430), (990, 1176))


@dataclass(frozen=True)
class TreeScene:
    """Grey frames; only a tree moves before frame ``person``, a person enters at it."""

    frames: list[np.ndarray]
    person: int
    fps: float


@dataclass(frozen=True)
class PorchScene:
    """Frames (BGR from the camera, or grey); an event should start in each of
    ``visits`` (first and last frame of a visitor, walking in to gone) and in none
    of ``empty`` (frames with nobody, well clear of a visit)."""

    frames: list[np.ndarray]
    fps: float
    visits: tuple[tuple[int, int], ...]
    empty: tuple[tuple[int, int], ...]


def waving_tree(
    *, seed: int = 3, width: int = 160, height: int = 120, fps: float = 15.0, person: int = 120
) -> TreeScene:
    """A tree in the wind, nobody, for ``person`` frames; then a person walks in from the
    right and stops, for two more seconds. Grey, like the Wallflower clip.

    The tree is a leaf texture (dark and bright needles) cut to a ragged canopy over
    a bright sky, beside a dark textured building. Each of six bands of branches
    swings a few pixels with its own phase, in gusts, with a random flutter: its
    pixels change in most frames, motion a detector must learn to ignore
    (``test_motion`` checks that a detector without its nuisance map fires on it).
    The person is a dark body and a head, 16x48 px, clear of the canopy.
    """
    rng = np.random.default_rng(seed)
    sky = np.linspace(200, 170, height, dtype=np.float32)[:, None].repeat(width, axis=1)
    building = cv2.resize(
        rng.normal(70, 25, (height // 6, width // 10)).clip(0, 255).astype(np.float32),
        (width // 4, height),
        interpolation=cv2.INTER_NEAREST,
    )
    sky[:, : width // 4] = building
    # The canopy: a wide leaf texture, cut by an irregular outline, drawn shifted per band.
    canopy_w, canopy_h = width // 2 + 16, int(height * 0.7)
    leaves = rng.normal(90, 45, (canopy_h, canopy_w)).clip(0, 255).astype(np.float32)
    leaves = cv2.GaussianBlur(leaves, (3, 3), 0)
    outline = np.zeros((canopy_h, canopy_w), np.uint8)
    for _ in range(40):
        centre = (int(rng.integers(8, canopy_w - 8)), int(rng.integers(6, canopy_h - 6)))
        cv2.circle(outline, centre, int(rng.integers(5, 12)), 255, -1)
    left, top = width // 4 - 8, 2
    bands = 6
    phases = rng.uniform(0, 2 * math.pi, bands)
    frames = []
    total = person + round(2 * fps)
    for i in range(total):
        frame = sky.copy()
        t = i / fps
        gust = 1.0 + 0.5 * math.sin(2 * math.pi * 0.13 * t)
        for band in range(bands):
            rows = slice(band * canopy_h // bands, (band + 1) * canopy_h // bands)
            swing = gust * 3.0 * math.sin(2 * math.pi * 0.9 * t + phases[band])
            dx = round(swing + rng.normal(0, 0.7))
            part_leaves = np.roll(leaves[rows], dx, axis=1)
            part_outline = np.roll(outline[rows], dx, axis=1) > 0
            target = frame[top + rows.start : top + rows.stop, left : left + canopy_w]
            target[part_outline] = part_leaves[part_outline]
        trunk = left + canopy_w // 2
        cv2.line(frame, (trunk, top + canopy_h // 2), (trunk, height), 60, 3)
        if i >= person:  # walks in from the right edge, 2 px a frame, stops 30 px in
            body_w, body_h = width // 10, int(height * 0.4)
            x = width - min(2 * (i - person + 1), 30)
            y = height - body_h - 4
            cv2.rectangle(frame, (x, y), (x + body_w, y + body_h), 45, -1)
            cv2.circle(frame, (x + body_w // 2, y - body_w // 2), body_w // 2, 120, -1)
        noise = rng.normal(0, 2.0, frame.shape)
        frames.append((frame + noise).clip(0, 255).astype(np.uint8))
    return TreeScene(frames, person, fps)


def porch(
    *,
    seed: int = 5,
    width: int = 320,
    height: int = 180,
    fps: float = 10.0,
    visitors: tuple[tuple[float, float], ...] = ((3.0, 2.0), (27.0, 3.0), (42.0, 2.0)),
    duration: float = 52.0,
) -> PorchScene:
    """The synthetic porch camera (``open_camera("synthetic")``), visitors once each.

    A visitor arriving at ``a`` who waits ``w`` walks in for WALK_SECONDS, stands
    ``w`` and walks out for WALK_SECONDS: in view from ``a`` to ``a + 2*WALK + w``.
    An empty stretch starts half a second after one leaves and ends when the next
    arrives (the clip's start is empty too, warm-up included).
    """
    camera = open_camera(
        "synthetic",
        seed=seed,
        width=width,
        height=height,
        fps=fps,
        visitors=visitors,
        every=None,
        duration=duration,
    )
    frames = [frame.image for frame in camera.frames()]
    camera.close()
    visits = tuple((round(a * fps), round((a + 2 * WALK_SECONDS + w) * fps)) for a, w in visitors)
    ends = [0] + [last + round(0.5 * fps) for _, last in visits]
    starts = [first for first, _ in visits] + [len(frames) - 1]
    empty = tuple((e, s) for e, s in zip(ends, starts, strict=True) if e < s)
    return PorchScene(frames, fps, visits, empty)


@dataclass(frozen=True)
class UnevenScene:
    """BGR frames, each shown at ``times[i]`` seconds (not i / a rate); a visitor walks
    in at ``arrival`` seconds."""

    frames: list[np.ndarray]
    times: list[float]
    arrival: float


def uneven_porch(
    *,
    seed: int = 5,
    width: int = 320,
    height: int = 180,
    stretches: tuple[tuple[float, float], ...] = ((10.0, 4.0), (20.0, 15.0)),
    arrival: float = 14.0,
) -> UnevenScene:
    """The synthetic porch recorded at a rate that changes, as a phone or a network camera
    does when the light or its load changes: each of ``stretches`` is (seconds, frames a
    second), by default 10 s at 4 fps then 20 s at 15 fps. Times are whole milliseconds,
    so a file keeps them exactly. One visitor arrives at ``arrival`` and waits 2 s."""
    camera = SyntheticCamera(
        seed=seed, width=width, height=height, visitors=[(arrival, 2.0)], every=None
    )
    times: list[float] = []
    start = 0.0
    for seconds, fps in stretches:
        count = round(seconds * fps)
        times += [round(start + i / fps, 3) for i in range(count)]
        start += seconds
    frames = [camera.render(at) for at in times]
    return UnevenScene(frames, times, arrival)


def write_video(
    path: Path,
    frames: list[np.ndarray],
    fps: float,
    *,
    times: Sequence[float] | None = None,
    codec: str = "libx264",
    pix_fmt: str | None = None,
    colour: tuple[int, int, int] | None = None,
) -> Path:
    """``frames`` (grey or BGR) as an H.264 MP4 at ``fps``, the way a camera file comes
    (the container by ``path``'s suffix).

    ``times`` (seconds, whole milliseconds, increasing) gives each frame its own
    presentation time: a variable-frame-rate file. A picture with an odd side is written
    in 4:4:4 (H.264 in 4:2:0 has no odd side), as some cameras' files are. ``codec`` and
    ``pix_fmt`` (FFmpeg's names) write another kind: ``"mjpeg"``, ``"yuvj422p"`` as a USB
    webcam records, ``"yuvj420p"`` for H.264 in full range. ``colour`` (primaries,
    transfer, matrix: H.273 codes) is said in the stream, and a BGR picture made YUV by
    that matrix (BT.709's when it is 1, else BT.601's); None: BT.601, nothing said."""
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=round(fps))
        odd = width % 2 or height % 2
        stream.width, stream.height = width, height
        stream.pix_fmt = pix_fmt or ("yuv444p" if odd else "yuv420p")
        if codec == "libx264":
            stream.options = {"preset": "ultrafast"}
        if colour is not None:
            context = stream.codec_context
            context.color_primaries, context.color_trc, context.colorspace = colour
        if times is not None:
            stream.codec_context.time_base = fractions.Fraction(1, 1000)
        for n, image in enumerate(frames):
            kind = "gray" if image.ndim == 2 else "bgr24"
            frame = av.VideoFrame.from_ndarray(image, format=kind)
            if colour is not None and colour[2] == 1:
                frame = frame.reformat(format=stream.pix_fmt, dst_colorspace=Colorspace.ITU709)
            if times is not None:
                frame.pts, frame.time_base = round(times[n] * 1000), fractions.Fraction(1, 1000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def damage(path: Path, *, at: float = 0.5, length: int = 20_000, seed: int = 7) -> Path:
    """Overwrite ``length`` bytes of an MP4's media data (its ``mdat`` box: never the
    header or the index) with seeded noise, ``at`` (0-1) of the way through it, as a
    failing card or a bad copy does. Returns ``path``."""
    data = bytearray(path.read_bytes())
    box = data.index(b"mdat") - 4
    size = int.from_bytes(data[box : box + 4], "big")
    payload = box + 8
    if size == 1:  # a 64-bit size follows the type
        size, payload = int.from_bytes(data[box + 8 : box + 16], "big"), box + 16
    end = box + size if size else len(data)
    assert end - payload > 2 * length, "too little media data to damage in the middle"
    first = payload + round((end - payload - length) * at)
    data[first : first + length] = np.random.default_rng(seed).bytes(length)
    path.write_bytes(bytes(data))
    return path
