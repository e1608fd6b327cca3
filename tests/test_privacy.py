"""Privacy masks: what they cover is gone from the frame, in every format."""

import numpy as np
import pytest

from doorbell.privacy import PrivacyMask, polygon_mask

STREET = [(0.0, 0.0), (1.0, 0.0), (1.0, 0.25), (0.0, 0.25)]  # the top quarter
DOOR = [(0.75, 0.5), (1.0, 0.5), (1.0, 1.0), (0.75, 1.0)]


def test_polygons_cover_their_area_at_any_resolution():
    for width, height in ((320, 240), (1280, 720), (160, 120)):
        region = polygon_mask([STREET, DOOR], width, height) > 0
        assert region[: height // 4 - 1].all()
        assert not region[height // 4 + 1 : height // 2 - 1, : width * 3 // 4 - 1].any()
        assert region[height // 2 + 1 :, width * 3 // 4 + 1 :].all()


def test_apply_paints_bgr_and_grey_in_place():
    mask = PrivacyMask([STREET, DOOR])
    frame = np.random.default_rng(1).integers(1, 255, (240, 320, 3), dtype=np.uint8)
    out = mask.apply(frame)
    assert out is frame
    assert (frame[:59] == 0).all() and (frame[121:, 241:] == 0).all()
    assert (frame[61:119, :239] != 0).any()
    grey = np.full((240, 320), 200, np.uint8)
    mask.apply(grey)
    assert (grey[:59] == 0).all() and (grey[100, 100] == 200)


def test_apply_i420_masks_luma_and_chroma():
    width, height = 64, 48
    buffer = np.full(width * height * 3 // 2, 200, np.uint8)
    PrivacyMask([DOOR]).apply_i420(buffer, width, height)
    luma = buffer[: width * height].reshape(height, width)
    u = buffer[width * height : width * height * 5 // 4].reshape(height // 2, width // 2)
    v = buffer[width * height * 5 // 4 :].reshape(height // 2, width // 2)
    assert (luma[24:, 48:] == 0).all() and (luma[:24] == 200).all()
    assert (u[12:, 24:] == 128).all() and (v[12:, 24:] == 128).all()
    assert (u[:11] == 200).all()


def test_no_mask_changes_nothing():
    frame = np.full((10, 10), 7, np.uint8)
    assert not PrivacyMask()
    assert (PrivacyMask().apply(frame) == 7).all()


@pytest.mark.parametrize(
    ("polygons", "message"),
    [([[(0, 0), (1, 1)]], "at least 3"), ([[(0, 0), (1.5, 0), (1, 1)]], "outside 0.0 to 1.0")],
)
def test_bad_polygons_are_refused(polygons, message):
    with pytest.raises(ValueError, match=message):
        PrivacyMask(polygons)
