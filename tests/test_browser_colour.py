"""A clip's colours, as the owner's browser shows them (Debian's chromium, Playwright).

Coloured bars from a BGR camera (the synthetic porch's and a webcam's kind of picture,
converted by OpenCV with BT.601's matrix), and from a 720p webcam's MJPEG file, are
recorded, decrypted and played in a ``<video>``; the page draws the frame on a canvas and reads the bars back. Without the
clip's colour description Chromium takes BT.709's matrix: red (230, 0, 0) came back as
(250, 22, 1) and green (0, 200, 0) as (0, 170, 2).
"""

import numpy as np
import pytest

from doorbell import vault
from doorbell.camera.colour import OPENCV_YUV
from doorbell.camera.file import FileCamera
from doorbell.camera.frame import Frame
from doorbell.config import PipelineSettings
from doorbell.pipeline import Pipeline
from doorbell.store import VIDEO, ClipStore
from doorbell.trigger import Policy
from tests import scenes, test_browser

pytestmark = test_browser.pytestmark

WIDTH, HEIGHT, FPS = 1280, 720, 10.0  # HD: where a player's guess is BT.709
BARS_RGB = [(230, 0, 0), (0, 200, 0), (0, 0, 230), (220, 160, 120)]  # red, green, blue, skin

READ_BARS = """([width, count]) => new Promise((resolve, reject) => {
    const video = document.querySelector("video");
    video.onseeked = () => {
        const canvas = document.createElement("canvas");
        canvas.width = video.videoWidth;
        canvas.height = video.videoHeight;
        const context = canvas.getContext("2d");
        context.drawImage(video, 0, 0);
        const bar = width / count;
        resolve([...Array(count).keys()].map((i) => [
            ...context.getImageData(i * bar + bar / 2, canvas.height / 2, 1, 1).data.slice(0, 3),
        ]));
    };
    video.onerror = () => reject(new Error(String(video.error && video.error.message)));
    const seek = () => { video.currentTime = 0.5; };
    if (video.readyState >= 1) seek(); else video.onloadedmetadata = seek;
})"""


def bars() -> np.ndarray:
    picture = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    step = WIDTH // len(BARS_RGB)
    for i, (red, green, blue) in enumerate(BARS_RGB):
        picture[:, i * step : (i + 1) * step] = (blue, green, red)
    return picture


def record(data_dir, identities, frames, colour=OPENCV_YUV) -> bytes:
    """``frames`` through the pipeline, the bell pressed at the first: the clip, decrypted."""
    store = ClipStore.open(data_dir)
    settings = PipelineSettings(policy=Policy(pre_roll=1.0, post_roll=60.0))
    pipeline = Pipeline(
        store, settings, WIDTH, HEIGHT, FPS, wall_time=lambda t: 1e9 + t, colour=colour
    )
    pipeline.press_bell(0.0)
    for frame in frames:
        pipeline.process(frame)
    [recorded] = pipeline.finish()
    with vault.open_file(store.path(recorded.clip.id, VIDEO), identities) as reader:
        mp4 = reader.read()
    store.close()
    return mp4


@pytest.fixture(params=["bgr-camera", "webcam-mjpeg-file"])
def clip_file(request, tmp_path, data_dir, identities):
    """The bars recorded as a clip, decrypted to a file to play: from a BGR camera (the
    synthetic porch's, a webcam's live picture), or from a 720p webcam recording (MJPEG,
    full-range 4:2:2, saying its matrix alone, as ffmpeg writes it)."""
    if request.param == "bgr-camera":
        mp4 = record(data_dir, identities, [Frame(bars(), n / FPS, n) for n in range(10)])
    else:
        source = scenes.write_video(
            tmp_path / "webcam.avi",
            [bars()] * 10,
            FPS,
            codec="mjpeg",
            pix_fmt="yuvj422p",
            colour=(2, 2, 5),
        )
        camera = FileCamera(str(source))
        try:
            frames = [frame for _, frame in zip(range(10), camera.frames(), strict=False)]
            colour = camera.colour
        finally:
            camera.close()
        mp4 = record(data_dir, identities, frames, colour)
    path = tmp_path / "clip.mp4"
    path.write_bytes(mp4)
    (tmp_path / "play.html").write_text('<video src="clip.mp4" muted playsinline></video>')
    return tmp_path / "play.html"


async def test_the_browser_shows_a_clips_colours_as_the_camera_saw_them(clip_file):
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=test_browser.CHROMIUM,
            headless=True,
            args=[*test_browser.CHROMIUM_ARGS, "--allow-file-access-from-files"],
        )
        try:
            page = await browser.new_page()
            await page.goto(clip_file.as_uri())
            shown = await page.evaluate(READ_BARS, [WIDTH, len(BARS_RGB)])
        finally:
            await browser.close()
    for sent, got in zip(BARS_RGB, shown, strict=True):
        assert max(abs(a - b) for a, b in zip(sent, got, strict=True)) <= 6, (sent, got)
