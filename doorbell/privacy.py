"""Privacy masks: polygons painted over every frame before anything else sees it.

Law 7: the street, the neighbour's door, a window across the road never exist
in any recording, thumbnail, live view or motion analysis. A mask is any
number of polygons in coordinates relative to the frame (0.0-1.0, x right,
y down), so the same config fits every resolution and stream:

    mask = PrivacyMask([[(0.0, 0.0), (0.4, 0.0), (0.4, 0.3), (0.0, 0.3)]])
    mask.apply(frame)          # in place: BGR, grey, any HxW or HxWxC array
    mask.apply_i420(buf, w, h) # in place: a YUV 4:2:0 buffer, as the Pi's encoder takes

Masked pixels are set to a constant (black by default); nothing of what was
there survives. A pixel is masked when it lies in any of the polygons, overlaps
included: each polygon is filled on its own (one ``cv2.fillPoly`` call for all of
them would fill by the even-odd rule and leave where two overlap unmasked).

What a mask costs: the selection is worked out once per frame size and applied
as the cheapest exact operation, never a boolean index over every pixel:

* a picture (BGR, grey, the luma plane): ``cv2.fillPoly`` of the polygons' pixel
  points, which touches only the masked pixels (the same call that defines
  :meth:`PrivacyMask.region`, so the same pixels);
* the chroma planes: ``(plane & keep) | paint`` over the box that holds the masked
  samples, with two planes made once, where a chroma sample is neutral (128) if any
  of its 2x2 luma pixels is masked (:func:`chroma_selection`).

Measured by ``bench/mask_bench.py`` (x86, 2 shared cores; medians): at 1280x720
with 8 polygons over 41 % of the frame, BGR 0.19 ms a frame (the boolean index it
replaced: 20 ms; ``cv2.fillPoly`` alone: 0.19 ms), I420 with rows padded to 1344
bytes 0.24 ms (was 16 ms, most of it the 2x2 chroma reduction redone every frame);
the example polygon of ``default.toml`` 0.05 ms in BGR (was 7.7 ms), 0.04 ms in I420
(was 9.4 ms). Replaying 60 s of real 720p footage costs 0.96x the CPU of no mask
with those 8 polygons (a black area is cheaper to encode) and 1.02x with the
example one; masked the boolean way, 1.99x and 2.11x.
"""

from collections.abc import Callable, Sequence
from typing import NamedTuple, TypeVar

import cv2
import numpy as np

from doorbell.config import check_polygons

Point = tuple[float, float]
Polygon = Sequence[Point]
T = TypeVar("T")

CHROMA_NEUTRAL = 128  # U and V of a colourless sample
_MAX_SIZES = 8  # frame sizes kept in a mask's cache (a camera has two or three)


def pixel_polygons(polygons: Sequence[Polygon], width: int, height: int) -> list[np.ndarray]:
    """Each polygon in pixels: an int32 Nx2 array of (x, y), rounded to the nearest pixel.

    A relative coordinate of 1.0 lands on ``width`` (or ``height``), one past the
    last pixel, so a polygon reaching the edge covers the last row or column.
    """
    return [
        np.array([(round(x * width), round(y * height)) for x, y in poly], np.int32)
        for poly in polygons
    ]


def polygon_mask(polygons: Sequence[Polygon], width: int, height: int) -> np.ndarray:
    """A uint8 HxW array, 255 inside any polygon (relative coordinates), else 0.

    Inside means what ``cv2.fillPoly`` fills for that one polygon (its outline
    included, so a polygon thinner than a pixel still covers a line); the result is
    the union over the polygons.
    """
    out = np.zeros((height, width), np.uint8)
    for points in pixel_polygons(polygons, width, height):
        cv2.fillPoly(out, [points], (255,))  # a Scalar: OpenCV < 4.12 types it as a sequence
    return out


def chroma_cover(region: np.ndarray) -> np.ndarray:
    """Boolean (H//2)x(W//2) from a boolean HxW ``region``: True where any of the
    2x2 pixels a 4:2:0 chroma sample stands for is True (an odd last row or column
    has no chroma sample of its own and is left out, as in an I420 buffer of
    ``width // 2`` chroma columns)."""
    height, width = region.shape
    ch, cw = height // 2, width // 2
    return region[: ch * 2, : cw * 2].reshape(ch, 2, cw, 2).any(axis=(1, 3))


class ChromaSelection(NamedTuple):
    """The masked chroma samples of one plane, as two uint8 planes over the box that
    holds them all: ``plane[rows, columns] = (plane[rows, columns] & keep) | paint``.
    ``keep`` is 0 where a sample is masked, else 255; ``paint`` 128 there, else 0."""

    rows: slice
    columns: slice
    keep: np.ndarray
    paint: np.ndarray


def chroma_selection(cover: np.ndarray) -> ChromaSelection | None:
    """The selection of a boolean chroma ``cover`` (see :func:`chroma_cover`), cropped
    to the rows and columns where it has a masked sample; None if it has none."""
    rows, columns = np.flatnonzero(cover.any(axis=1)), np.flatnonzero(cover.any(axis=0))
    if not rows.size:
        return None
    box = (slice(int(rows[0]), int(rows[-1]) + 1), slice(int(columns[0]), int(columns[-1]) + 1))
    inside = cover[box]
    return ChromaSelection(
        *box,
        keep=np.where(inside, 0, 255).astype(np.uint8),
        paint=np.where(inside, CHROMA_NEUTRAL, 0).astype(np.uint8),
    )


def _fills_in_place(frame: np.ndarray) -> bool:
    """Whether OpenCV paints ``frame`` itself (not a copy): uint8, writable, at most
    four channels, pixels and channels packed, rows in order (any row padding)."""
    if frame.dtype != np.uint8 or not frame.flags.writeable or frame.ndim not in (2, 3):
        return False
    channels = frame.shape[2] if frame.ndim == 3 else 1
    if channels > 4:
        return False
    item = frame.strides[1]
    if frame.ndim == 3 and frame.strides[2] != 1 and channels > 1:
        return False
    return item == channels and frame.strides[0] >= frame.shape[1] * channels


class PrivacyMask:
    """The masked regions of one camera. Selections are cached per frame size.

    ``fill`` is the value masked pixels (every channel, and luma) take: 0 to 255.
    Raises ValueError naming the problem for bad polygons or a bad ``fill``.
    """

    def __init__(self, polygons: Sequence[Polygon] = (), fill: int = 0) -> None:
        problem = check_polygons(polygons)
        if problem:
            raise ValueError(problem)
        if isinstance(fill, bool) or not isinstance(fill, int) or not 0 <= fill <= 255:
            raise ValueError(f"mask fill must be an integer 0 to 255, not {fill!r}")
        self.polygons = [tuple((float(x), float(y)) for x, y in p) for p in polygons]
        self.fill = fill
        self._points: dict[tuple[int, int], list[np.ndarray]] = {}
        self._regions: dict[tuple[int, int], np.ndarray] = {}
        self._chroma: dict[tuple[int, int], ChromaSelection | None] = {}

    def __bool__(self) -> bool:
        return bool(self.polygons)

    def region(self, width: int, height: int) -> np.ndarray:
        """Boolean HxW: True where the mask hides the picture."""
        return _cached(
            self._regions, (width, height), lambda: polygon_mask(self.polygons, width, height) > 0
        )

    def _pixel_points(self, width: int, height: int) -> list[np.ndarray]:
        return _cached(
            self._points, (width, height), lambda: pixel_polygons(self.polygons, width, height)
        )

    def _chroma_selection(self, width: int, height: int) -> ChromaSelection | None:
        """Where a chroma plane of a ``width`` x ``height`` picture is masked, or None."""
        return _cached(
            self._chroma,
            (width, height),
            lambda: chroma_selection(chroma_cover(self.region(width, height))),
        )

    def _paint(self, picture: np.ndarray) -> None:
        """Fill the masked pixels of an HxW or HxWxC ``picture`` view in place."""
        height, width = picture.shape[:2]
        if _fills_in_place(picture):
            channels = picture.shape[2] if picture.ndim == 3 else 1
            colour = (self.fill,) * channels
            for points in self._pixel_points(width, height):
                cv2.fillPoly(picture, [points], colour)
        else:  # a layout OpenCV would copy (flipped, strided, not uint8): numpy, slower
            picture[self.region(width, height)] = self.fill

    def apply(self, frame: np.ndarray) -> np.ndarray:
        """Paint the masked regions of ``frame`` (HxW or HxWxC) in place; returns it.

        An 8-bit frame of up to 4 channels with its pixels packed (rows may be padded)
        costs what filling the polygons costs; any other array (flipped, strided, not
        8-bit) is painted by a boolean index, the same pixels, several times slower.
        """
        if self.polygons:
            self._paint(frame)
        return frame

    def apply_i420(
        self, buffer: np.ndarray, width: int, height: int, stride: int | None = None
    ) -> np.ndarray:
        """Paint a planar YUV 4:2:0 buffer (Y, then U, then V at half size) in place.

        ``buffer`` is any contiguous uint8 array of at least
        ``stride * height + 2 * (stride // 2) * (height // 2)`` bytes (the Pi's
        ``(height * 3 // 2, stride)`` array, a flat one). ``stride`` is the bytes per
        luma row (a camera pads rows; chroma rows take half). Luma takes ``fill``;
        chroma takes 128 (no colour) wherever a chroma sample touches a masked pixel,
        so not even a tint of a masked area survives. Raises ValueError if the buffer
        is not 8-bit, too small or not one block of memory (painting a copy would leave
        the picture unmasked).
        """
        if not self.polygons:
            return buffer
        if buffer.dtype != np.uint8:
            raise ValueError(f"I420 buffer must be 8-bit (uint8), not {buffer.dtype}")
        stride = stride or width
        cw, ch, cstride = width // 2, height // 2, stride // 2
        y_size = stride * height
        needed = y_size + 2 * cstride * ch
        flat = buffer.view()
        try:
            flat.shape = (-1,)  # raises rather than copy
        except AttributeError:
            raise ValueError(
                "I420 buffer is not contiguous: it cannot be masked in place"
            ) from None
        if flat.size < needed:
            raise ValueError(
                f"I420 buffer of {flat.size} bytes is too small for {width}x{height} "
                f"with stride {stride} ({needed} bytes)"
            )
        self._paint(flat[:y_size].reshape(height, stride)[:, :width])
        chroma = self._chroma_selection(width, height) if ch and cw else None
        if chroma is not None:
            planes = flat[y_size:needed].reshape(2, ch, cstride)
            for plane in planes[:, chroma.rows, chroma.columns]:
                cv2.bitwise_and(plane, chroma.keep, dst=plane)
                cv2.bitwise_or(plane, chroma.paint, dst=plane)
        return buffer


def _cached(cache: dict[tuple[int, int], T], size: tuple[int, int], make: Callable[[], T]) -> T:
    """``cache[size]``, made by ``make()`` the first time; every size is forgotten once
    the cache holds ``_MAX_SIZES`` (a camera changing size). Safe for a mask shared by
    threads: at worst two make the same value."""
    try:
        return cache[size]
    except KeyError:
        pass
    value = make()
    if len(cache) >= _MAX_SIZES:
        cache.clear()
    cache[size] = value
    return value
