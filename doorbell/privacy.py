"""Privacy masks: polygons painted over every frame before anything else sees it.

Law 7: the street, the neighbour's door, a window across the road never exist
in any recording, thumbnail, live view or motion analysis. A mask is any
number of polygons in coordinates relative to the frame (0.0-1.0, x right,
y down), so the same config fits every resolution and stream:

    mask = PrivacyMask([[(0.0, 0.0), (0.4, 0.0), (0.4, 0.3), (0.0, 0.3)]])
    mask.apply(frame)          # in place: BGR, grey, any HxW or HxWxC array
    mask.apply_i420(buf, w, h) # in place: a YUV 4:2:0 buffer, as the Pi's encoder takes

Masked pixels are set to a constant (black by default); nothing of what was
there survives.
"""

from collections.abc import Sequence

import cv2
import numpy as np

from doorbell.config import check_polygons

Point = tuple[float, float]
Polygon = Sequence[Point]


def polygon_mask(polygons: Sequence[Polygon], width: int, height: int) -> np.ndarray:
    """A uint8 HxW array, 255 inside any polygon (relative coordinates), else 0."""
    out = np.zeros((height, width), np.uint8)
    if polygons:
        scaled = [
            np.array([(round(x * width), round(y * height)) for x, y in poly], np.int32)
            for poly in polygons
        ]
        cv2.fillPoly(out, scaled, (255,))  # a Scalar: OpenCV < 4.12 types it as a sequence
    return out


class PrivacyMask:
    """The masked regions of one camera. Masks are cached per frame size."""

    def __init__(self, polygons: Sequence[Polygon] = (), fill: int = 0) -> None:
        problem = check_polygons(polygons)
        if problem:
            raise ValueError(problem)
        self.polygons = [tuple((float(x), float(y)) for x, y in p) for p in polygons]
        self.fill = fill
        self._cache: dict[tuple[int, int], np.ndarray] = {}

    def __bool__(self) -> bool:
        return bool(self.polygons)

    def region(self, width: int, height: int) -> np.ndarray:
        """Boolean HxW: True where the mask hides the picture."""
        key = (width, height)
        if key not in self._cache:
            self._cache[key] = polygon_mask(self.polygons, width, height) > 0
        return self._cache[key]

    def apply(self, frame: np.ndarray) -> np.ndarray:
        """Paint the masked regions of ``frame`` (HxW or HxWxC) in place; returns it."""
        if self.polygons:
            frame[self.region(frame.shape[1], frame.shape[0])] = self.fill
        return frame

    def apply_i420(
        self, buffer: np.ndarray, width: int, height: int, stride: int | None = None
    ) -> np.ndarray:
        """Paint a planar YUV 4:2:0 buffer (Y, then U, then V at half size) in place.

        ``stride`` is the bytes per luma row (a camera pads rows; chroma rows
        take half). Luma takes ``fill``; chroma takes 128 (no colour) wherever
        a chroma sample touches a masked pixel, so not even a tint of a masked
        area survives.
        """
        if not self.polygons:
            return buffer
        stride = stride or width
        flat = buffer.reshape(-1)
        y_size = stride * height
        region = self.region(width, height)
        flat[:y_size].reshape(height, stride)[:, :width][region] = self.fill
        cw, ch, cstride = width // 2, height // 2, stride // 2
        # A chroma sample covers 2x2 pixels: mask it if any of them is masked.
        small = region[: ch * 2, : cw * 2].reshape(ch, 2, cw, 2).any(axis=(1, 3))
        for plane in range(2):
            start = y_size + plane * cstride * ch
            flat[start : start + cstride * ch].reshape(ch, cstride)[:, :cw][small] = 128
        return buffer
