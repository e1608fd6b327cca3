"""A clip's colours, as the owner's browser shows them (Debian's chromium, Playwright).

Coloured bars from a BGR camera (the synthetic porch's and a webcam's kind of picture,
converted by OpenCV with BT.601's matrix), and from a 720p webcam's MJPEG file, are
recorded, decrypted and played in a ``<video>``; the page draws the frame on a canvas
and reads the bars back. Without the clip's colour description Chromium takes BT.709's
matrix: red (230, 0, 0) came back as (250, 22, 1) and green (0, 200, 0) as (0, 170, 2).
"""

import pytest

from doorbell.camera.colour import OPENCV_YUV
from doorbell.camera.frame import Frame
from tests import scenes, test_browser
from tests.test_frame_path import (
    BARS_BGR,
    FPS,
    bell_pipeline,
    colour_bars,
    decrypted_clip,
    file_frames,
)

pytestmark = test_browser.pytestmark

WIDTH, HEIGHT = 1280, 720  # HD: where a player's guess is BT.709
BARS_RGB = [bgr[::-1] for bgr in BARS_BGR]  # red, green, blue, skin, as the canvas reads them

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


def record(data_dir, identities, frames, colour=OPENCV_YUV) -> bytes:
    """``frames`` through the pipeline, the bell pressed at the first: the clip, decrypted."""
    pipeline, store = bell_pipeline(data_dir, WIDTH, HEIGHT, colour=colour)
    for frame in frames:
        pipeline.process(frame)
    return decrypted_clip(pipeline, store, identities)[1]


@pytest.fixture(params=["bgr-camera", "webcam-mjpeg-file"])
def clip_file(request, tmp_path, data_dir, identities):
    """The bars recorded as a clip, decrypted to a file to play: from a BGR camera (the
    synthetic porch's, a webcam's live picture), or from a 720p webcam recording (MJPEG,
    full-range 4:2:2, saying its matrix alone, as ffmpeg writes it)."""
    bars = colour_bars(WIDTH, HEIGHT)
    if request.param == "bgr-camera":
        mp4 = record(data_dir, identities, [Frame(bars.copy(), n / FPS, n) for n in range(10)])
    else:
        source = scenes.write_video(
            tmp_path / "webcam.avi",
            [bars] * 10,
            FPS,
            codec="mjpeg",
            pix_fmt="yuvj422p",
            colour=(2, 2, 5),
        )
        frames, camera = file_frames(source, 10)
        mp4 = record(data_dir, identities, frames, camera.colour)
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
