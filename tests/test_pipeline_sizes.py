"""Any picture size a camera gives is recorded: the pipeline fits it to what the H.264
encoder takes (even sides, at most 4096 a side), after the privacy mask, and motion and
the thumbnail see the same picture. A pipeline that cannot be built says why."""

import io

import av
import cv2
import numpy as np
import pytest

from doorbell import vault
from doorbell.camera import Frame
from doorbell.config import PipelineSettings
from doorbell.errors import DoorbellError
from doorbell.pipeline import Pipeline, PipelineError, encodable_size, fit_picture
from doorbell.store import THUMBNAIL, VIDEO, ClipStore


def test_encodable_sizes():
    """Odd sides lose a pixel; too small grows to 2; too big shrinks, its aspect kept."""
    assert encodable_size(1280, 720) == (1280, 720)
    assert encodable_size(641, 481) == (640, 480)
    assert encodable_size(1279, 719) == (1278, 718)
    assert encodable_size(2, 2) == (2, 2)
    assert encodable_size(1, 1) == (2, 2)
    assert encodable_size(3, 1) == (2, 2)
    assert encodable_size(10000, 10) == (4096, 4)
    assert encodable_size(8192, 4320) == (4096, 2160)
    assert encodable_size(4096, 4096) == (3072, 3072)  # at most 4096x2304's pixels
    with pytest.raises(PipelineError, match="0x480"):
        encodable_size(0, 480)


def test_fitting_crops_when_it_can_and_scales_otherwise():
    picture = np.arange(481 * 641 * 3, dtype=np.uint32).astype(np.uint8).reshape(481, 641, 3)
    cropped = fit_picture(picture, (640, 480))
    assert cropped.shape == (480, 640, 3) and np.array_equal(cropped, picture[:480, :640])
    assert fit_picture(picture[:480, :640], (640, 480)) is not None
    assert fit_picture(np.zeros((1, 1, 3), np.uint8), (2, 2)).shape == (2, 2, 3)
    assert fit_picture(np.zeros((360, 640, 3), np.uint8), (320, 180)).shape == (180, 320, 3)


def record(data_dir, identities, pictures: list[np.ndarray], width: int, height: int):
    """Run ``pictures`` through a pipeline made for ``width`` x ``height`` with the bell
    pressed at the first frame; the clip's frames (grey) and its thumbnail (grey)."""
    store = ClipStore.open(data_dir)
    masks = (((0.0, 0.0), (1.0, 0.0), (1.0, 0.5), (0.0, 0.5)),)  # the top half
    pipeline = Pipeline(
        store, PipelineSettings(masks=masks), width, height, 10.0, wall_time=lambda t: 1e9 + t
    )
    pipeline.press_bell(0.0)
    for n, picture in enumerate(pictures):
        pipeline.process(Frame(picture, n / 10, n))
    [recorded] = pipeline.finish()
    with vault.open_file(store.path(recorded.clip.id, VIDEO), identities) as reader:
        mp4 = reader.read()
    thumbnail = vault.decrypt_bytes(
        store.path(recorded.clip.id, THUMBNAIL).read_bytes(), identities
    )
    store.close()
    with av.open(io.BytesIO(mp4)) as container:
        frames = [frame.to_ndarray(format="gray") for frame in container.decode(video=0)]
    assert thumbnail is not None
    return frames, cv2.imdecode(np.frombuffer(thumbnail, np.uint8), cv2.IMREAD_GRAYSCALE)


@pytest.mark.parametrize(
    ("size", "recorded"),
    [
        ((2, 2), (2, 2)),
        ((3, 3), (2, 2)),
        ((1, 1), (2, 2)),
        ((5000, 6), (4096, 4)),
        ((7, 4001), (6, 4000)),
    ],
)
def test_tiny_and_very_wide_pictures_are_recorded(data_dir, identities, size, recorded):
    """2x2, 3x3, 1x1, 5000x6 (scaled to 4096x4), 7x4001: every frame recorded at the fitted
    size, the masked top half black, the thumbnail at the same size."""
    width, height = size
    pictures = [np.full((height, width, 3), 200, np.uint8) for _ in range(5)]
    frames, thumbnail = record(data_dir, identities, pictures, width, height)
    assert len(frames) == 5
    assert {f.shape for f in frames} == {recorded[::-1]}
    assert thumbnail.shape == recorded[::-1]
    if recorded[1] >= 4:  # rows enough for a masked half apart from codec blur
        assert frames[-1][: recorded[1] // 2 - 1].max() <= 24
        assert frames[-1][recorded[1] // 2 + 1 :].min() >= 150


def test_a_camera_that_changes_size_is_recorded_at_its_first(data_dir, identities):
    """A stream that switches from 640x360 to 320x180 mid-session (a camera reconfigured
    from its own web page): the later frames are scaled, not a dead encoder."""
    pictures = [np.full((360, 640, 3), 200, np.uint8)] * 3
    pictures += [np.full((180, 320, 3), 200, np.uint8)] * 3
    frames, _ = record(data_dir, identities, pictures, 640, 360)
    assert len(frames) == 6 and {f.shape for f in frames} == {(360, 640)}


def test_a_pipeline_that_cannot_be_built_says_why(data_dir):
    """A rate of 0 (a camera that reports none) is a PipelineError, a DoorbellError with
    one line, not a dead camera thread."""
    store = ClipStore.open(data_dir)
    try:
        with pytest.raises(PipelineError) as info:
            Pipeline(store, PipelineSettings(), 640, 480, 0.0, wall_time=lambda t: t)
    finally:
        store.close()
    assert isinstance(info.value, DoorbellError)
    assert str(info.value) == "a camera rate of 0.0 frames a second cannot be recorded"
