"""Colour: how a camera's YUV relates to the colours it saw, and its BGR made by that.

A clip's H.264 says its source's :class:`ColourDescription` (the encoder writes it into
the stream), so a player turns the YUV back into the same colours; the live view's and
the thumbnails' BGR is made by the same matrix (:func:`to_bgr`). Importing this module
loads no NumPy or OpenCV: the camera types and the codec read the descriptions.

    colour = camera.colour_of(camera)       # a file's own, the Pi's Rec. 709, OpenCV's
    bgr = to_bgr(i420, colour.matrix)       # H*3/2 x W uint8 in, H x W x 3 out
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

UNSPECIFIED = 2  # H.273's code for "not said"


@dataclass(frozen=True)
class ColourDescription:
    """How a picture's YUV relates to colour, as H.264's VUI says it: ``primaries``,
    ``transfer`` and ``matrix``, each an ITU-T H.273 code (FFmpeg's AVColorPrimaries,
    AVColorTransferCharacteristic, AVColorSpace; 2: not said). A clip says its
    source's, so a player turns the YUV back into the colours the camera saw. Chromium
    took BT.709's matrix for a clip that said nothing or only its matrix: a BT.601 clip's
    red (230, 0, 0) came out (250, 22, 1), and (230, 0, 1) with all three said (Debian's
    chromium, measured 2026-11)."""

    primaries: int
    transfer: int
    matrix: int


# A BGR picture converted by OpenCV (BT.601's matrix) from a webcam's or the synthetic
# porch's sRGB (BT.709's primaries and transfer).
OPENCV_YUV = ColourDescription(primaries=1, transfer=1, matrix=6)
REC709 = ColourDescription(primaries=1, transfer=1, matrix=1)  # HD video
SMPTE170M = ColourDescription(primaries=6, transfer=1, matrix=6)  # SD video (libcamera's)
BT709, BT601 = REC709.matrix, OPENCV_YUV.matrix  # the two matrices cameras use


def completed(said: ColourDescription, width: int, height: int) -> ColourDescription:
    """``said`` (a file's description, parts of it 2: not said) with every part given, so
    that a player uses it (Chromium ignores a description short of any part): a matrix
    not said is BT.709's from 1280x720 up and BT.601's below, as players guess it (mpv,
    Chromium); primaries and transfer not said are BT.709's, which sRGB shares. The live
    view and thumbnails read the YUV by the same matrix, so they and the clip agree."""
    hd = width >= 1280 or height >= 720
    return ColourDescription(
        said.primaries if said.primaries != UNSPECIFIED else REC709.primaries,
        said.transfer if said.transfer != UNSPECIFIED else REC709.transfer,
        said.matrix if said.matrix != UNSPECIFIED else (BT709 if hd else BT601),
    )


def ycbcr_to_bgr(red: float, blue: float) -> list[list[float]]:
    """The 3x4 matrix (rows B, G, R; columns Y, Cb, Cr, offset) that turns video-range
    YCbCr (luma 16-235, chroma 16-240 about 128) into BGR 0-255, for a matrix with the
    luma weights ``red`` and ``blue`` (Rec. 709: 0.2126, 0.0722; BT.601: 0.299, 0.114;
    H.273 table 4)."""
    green = 1 - red - blue
    luma, chroma = 255 / 219, 255 / 224
    rows = (  # B, G, R: the weights of (Cb - 128, Cr - 128)
        (2 * (1 - blue) * chroma, 0.0),
        (-2 * (1 - blue) * blue / green * chroma, -2 * (1 - red) * red / green * chroma),
        (0.0, 2 * (1 - red) * chroma),
    )
    return [[luma, cb, cr, -16 * luma - 128 * (cb + cr)] for cb, cr in rows]


def to_bgr(i420: np.ndarray, matrix: int) -> np.ndarray:
    """The BGR picture (H x W x 3 uint8) of a packed YUV 4:2:0 buffer (H*3/2 x W uint8,
    video range) whose YUV was made by ``matrix`` (H.273). BT.601 (and any matrix not
    Rec. 709's) in one OpenCV conversion (0.6 ms at 720p on x86); Rec. 709 by its own
    matrix (chroma upsampled, then one ``cv2.transform``: about 2 ms), where OpenCV's
    BT.601 would dull and shift its reds and greens ((230, 0, 0) read as (209, 0, 0))."""
    import cv2
    import numpy as np

    if matrix != BT709:
        return cv2.cvtColor(i420, cv2.COLOR_YUV2BGR_I420)
    height, width = i420.shape[0] * 2 // 3, i420.shape[1]
    flat, luma, chroma = (
        np.ascontiguousarray(i420).reshape(-1),
        height * width,
        (height // 2, width // 2),
    )
    size = chroma[0] * chroma[1]  # a plane need not fill whole rows of the buffer (height 362)
    planes = [
        cv2.resize(
            flat[start : start + size].reshape(chroma),
            (width, height),
            interpolation=cv2.INTER_LINEAR,
        )
        for start in (luma, luma + size)
    ]
    ycbcr = cv2.merge([i420[:height], *planes])
    return cv2.transform(ycbcr, np.array(ycbcr_to_bgr(0.2126, 0.0722), np.float32))
