"""Privacy masks: what they cover is gone from the frame, in every format."""

import cv2
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


# -- exactly the pixels of today's boolean way, at a fraction of its cost -----------------


def boolean_region(polygons, width, height):
    """The oracle's region: each polygon filled on its own by cv2.fillPoly, united."""
    out = np.zeros((height, width), bool)
    for poly in polygons:
        one = np.zeros((height, width), np.uint8)
        points = np.array([(round(x * width), round(y * height)) for x, y in poly], np.int32)
        cv2.fillPoly(one, [points], (255,))
        out |= one > 0
    return out


def boolean_apply(frame, polygons, fill):
    """What PrivacyMask.apply did before issue 15: a boolean index over every pixel."""
    frame[boolean_region(polygons, frame.shape[1], frame.shape[0])] = fill
    return frame


def boolean_apply_i420(buffer, polygons, fill, width, height, stride):
    """What PrivacyMask.apply_i420 did before issue 15 (luma, then 2x2-any chroma)."""
    flat = buffer.reshape(-1)
    y_size = stride * height
    region = boolean_region(polygons, width, height)
    flat[:y_size].reshape(height, stride)[:, :width][region] = fill
    cw, ch, cstride = width // 2, height // 2, stride // 2
    small = region[: ch * 2, : cw * 2].reshape(ch, 2, cw, 2).any(axis=(1, 3))
    for plane in range(2):
        start = y_size + plane * cstride * ch
        flat[start : start + cstride * ch].reshape(ch, cstride)[:, :cw][small] = 128
    return buffer


def random_polygons(rng, count):
    """``count`` polygons of 3 to 8 points, some snapped to the frame's edges."""
    polygons = []
    for _ in range(count):
        points = rng.random((int(rng.integers(3, 9)), 2))
        points[rng.random(points.shape) < 0.15] = 0.0
        points[rng.random(points.shape) < 0.15] = 1.0
        polygons.append([(float(x), float(y)) for x, y in points])
    return polygons


def padded(width):
    return -(-width // 64) * 64 + 64 * (width % 64 == 0)  # as picamera2 pads, plus a spare 64


@pytest.mark.parametrize("seed", range(40))
def test_apply_is_bit_identical_to_the_boolean_way(seed):
    rng = np.random.default_rng(seed)
    width, height = int(rng.integers(1, 200)), int(rng.integers(1, 150))
    polygons = random_polygons(rng, int(rng.integers(1, 9)))
    fill = int(rng.integers(0, 256))
    mask = PrivacyMask(polygons, fill=fill)
    for shape in ((height, width, 3), (height, width), (height, width, 4), (height, width, 1)):
        frame = rng.integers(0, 256, shape, dtype=np.uint8)
        expected = boolean_apply(frame.copy(), polygons, fill)
        assert mask.apply(frame) is frame
        assert np.array_equal(frame, expected), (seed, shape)


@pytest.mark.parametrize("seed", range(40))
def test_apply_i420_is_bit_identical_to_the_boolean_way(seed):
    rng = np.random.default_rng(1000 + seed)
    width, height = int(rng.integers(2, 200)), int(rng.integers(2, 150))
    polygons = random_polygons(rng, int(rng.integers(1, 9)))
    fill = int(rng.integers(0, 256))
    mask = PrivacyMask(polygons, fill=fill)
    for stride in (width, padded(width)):
        rows = height + 2 * (height // 2) * (stride // 2) // stride + 2  # room for the chroma
        buffer = rng.integers(0, 256, (rows, stride), dtype=np.uint8)
        expected = boolean_apply_i420(buffer.copy(), polygons, fill, width, height, stride)
        assert mask.apply_i420(buffer, width, height, stride) is buffer
        assert np.array_equal(buffer, expected), (seed, width, height, stride)


@pytest.mark.parametrize(("width", "height"), [(1280, 720), (640, 480), (1920, 1080), (321, 241)])
def test_the_pi_layouts_at_camera_sizes(width, height):
    """Main streams of the Pi (rows padded to 64 bytes) and a flat buffer, 8 polygons."""
    rng = np.random.default_rng(width)
    polygons = random_polygons(rng, 8)
    mask = PrivacyMask(polygons)
    for stride in (width, padded(width)):
        buffer = rng.integers(0, 256, (height * 3 // 2 + 1, stride), dtype=np.uint8)
        expected = boolean_apply_i420(buffer.copy(), polygons, 0, width, height, stride)
        mask.apply_i420(buffer, width, height, stride)
        assert np.array_equal(buffer, expected)
    flat = rng.integers(0, 256, width * height * 3 // 2, dtype=np.uint8)
    expected = boolean_apply_i420(flat.copy(), polygons, 0, width, height, width)
    assert np.array_equal(mask.apply_i420(flat, width, height), expected)


EDGE_CASES = {
    "the whole frame": [[(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]],
    "each edge": [
        [(0.0, 0.0), (1.0, 0.0), (1.0, 0.01), (0.0, 0.01)],
        [(0.0, 0.99), (1.0, 0.99), (1.0, 1.0), (0.0, 1.0)],
        [(0.0, 0.0), (0.01, 0.0), (0.01, 1.0), (0.0, 1.0)],
        [(0.99, 0.0), (1.0, 0.0), (1.0, 1.0), (0.99, 1.0)],
    ],
    "thinner than a pixel": [[(0.5, 0.1), (0.5001, 0.1), (0.5, 0.9)]],
    "a single point": [[(0.3, 0.3), (0.3, 0.3), (0.3, 0.3)]],
    "a corner": [[(1.0, 1.0), (0.9, 1.0), (1.0, 0.9)]],
}


@pytest.mark.parametrize("name", EDGE_CASES)
def test_edge_cases_match_the_boolean_way(name):
    polygons = EDGE_CASES[name]
    mask = PrivacyMask(polygons, fill=17)
    for width, height in ((64, 48), (65, 49), (2, 2), (1280, 720)):
        frame = np.full((height, width, 3), 200, np.uint8)
        expected = boolean_apply(frame.copy(), polygons, 17)
        assert np.array_equal(mask.apply(frame), expected)
        if width > 2:  # every one of them hides something, even a line (not at 2x2: the
            assert (frame == 17).any()  # corner's points round to (2, 2), past the frame)
        buffer = np.full(width * height * 3 // 2 + 7, 200, np.uint8)
        expected = boolean_apply_i420(buffer.copy(), polygons, 17, width, height, width)
        assert np.array_equal(mask.apply_i420(buffer, width, height), expected)
    if name == "the whole frame":
        assert (frame == 17).all()


def test_where_two_polygons_overlap_is_masked():
    """One fillPoly call for both would fill by the even-odd rule: the overlap would
    be left as it was, a hole in the mask."""
    left = [(0.0, 0.0), (0.6, 0.0), (0.6, 1.0), (0.0, 1.0)]
    right = [(0.4, 0.0), (1.0, 0.0), (1.0, 1.0), (0.4, 1.0)]
    frame = np.full((40, 100, 3), 200, np.uint8)
    PrivacyMask([left, right]).apply(frame)
    assert (frame == 0).all()
    assert polygon_mask([left, right], 100, 40).all()
    buffer = np.full(100 * 40 * 3 // 2, 200, np.uint8)
    PrivacyMask([left, right]).apply_i420(buffer, 100, 40)
    assert (buffer[: 100 * 40] == 0).all() and (buffer[100 * 40 :] == 128).all()


def test_layouts_opencv_cannot_paint_in_place_are_masked_too():
    """A flipped or column-strided view, and a frame that is not 8-bit."""
    polygons = [[(0.1, 0.1), (0.9, 0.3), (0.4, 0.8)]]
    mask = PrivacyMask(polygons, fill=3)
    base = np.random.default_rng(5).integers(0, 256, (50, 120, 3), dtype=np.uint8)
    for view in (base[::-1], base[:, ::-1], base[:, ::2], base[..., 1], base[..., ::-1]):
        expected = boolean_apply(view.copy(), polygons, 3)
        assert np.array_equal(mask.apply(view), expected)
    deep = np.full((50, 60), 1000, np.uint16)
    assert np.array_equal(mask.apply(deep), boolean_apply(deep.copy(), polygons, 3))


def test_an_i420_buffer_that_cannot_be_masked_in_place_is_refused():
    mask = PrivacyMask([DOOR])
    scattered = np.zeros((48 * 3 // 2, 128), np.uint8)[:, :64]
    with pytest.raises(ValueError, match="not contiguous"):
        mask.apply_i420(scattered, 64, 48)
    with pytest.raises(ValueError, match="too small for 64x48 with stride 64"):
        mask.apply_i420(np.zeros(64 * 48, np.uint8), 64, 48)
    with pytest.raises(ValueError, match="must be 8-bit"):
        mask.apply_i420(np.zeros(64 * 72, np.uint16), 64, 48)


@pytest.mark.parametrize("fill", [-1, 256, 1.5, True, "0"])
def test_a_fill_that_is_not_a_byte_is_refused(fill):
    with pytest.raises(ValueError, match="mask fill must be an integer 0 to 255"):
        PrivacyMask([DOOR], fill=fill)


def test_the_selection_is_made_once_a_size_and_a_camera_changing_size_is_bounded():
    mask = PrivacyMask([STREET, DOOR])
    frame = np.zeros((72, 96, 3), np.uint8)
    mask.apply(frame)
    points = mask._points[(96, 72)]
    mask.apply(frame)
    assert mask._points[(96, 72)] is points
    assert mask.region(96, 72) is mask.region(96, 72)
    for width in range(10, 40):
        mask.apply_i420(np.zeros(width * 30, np.uint8), width, 20)
        assert len(mask._points) <= 8 and len(mask._regions) <= 8 and len(mask._chroma) <= 8
