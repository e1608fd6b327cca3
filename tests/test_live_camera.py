"""Live sources (camera/opencv.py): a failed read does not end the camera; a source that
gives nothing ends it with the true reason, in seconds, naming it without its secrets.

The network cases run against a real HTTP server on 127.0.0.1 serving an MJPEG stream
(multipart JPEGs, as many IP cameras do) that stalls or is cut; OpenCV's own FFmpeg
reads it. The retry logic runs against a small capture with OpenCV's API and a fake
clock, so no test sleeps.
"""

import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import cv2
import numpy as np
import pytest

from doorbell.camera import CameraError, open_camera
from doorbell.camera.opencv import OpenCVCamera, source_name

FRAMES = 12


def jpegs() -> list[bytes]:
    pictures = []
    for n in range(FRAMES):
        image = np.full((90, 160, 3), 20 * n, np.uint8)
        pictures.append(cv2.imencode(".jpg", image)[1].tobytes())
    return pictures


class MjpegStream(BaseHTTPRequestHandler):
    """``/stall``: FRAMES pictures, then the connection stays open and silent (a camera
    that hung, a Wi-Fi link gone quiet). ``/cut``: FRAMES pictures, then closed."""

    pictures = jpegs()
    release = threading.Event()

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        for picture in self.pictures:
            head = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(picture)}\r\n\r\n"
            self.wfile.write(head.encode() + picture + b"\r\n")
        self.wfile.flush()
        if self.path.startswith("/stall"):
            self.release.wait(30)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    """The MJPEG server's base URL, ``http://127.0.0.1:PORT``."""
    httpd = socketserver.ThreadingTCPServer(("127.0.0.1", 0), MjpegStream)
    httpd.daemon_threads = True
    MjpegStream.release.clear()
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    MjpegStream.release.set()
    httpd.shutdown()
    httpd.server_close()


def test_a_stalled_stream_ends_with_the_true_reason_in_seconds(server):
    """Every picture sent arrives; then nothing: a CameraError saying so after the stall
    limit (here 1 s, with a 0.5 s read timeout), never "the video ended", and with no
    password or query string of the URL in it."""
    url = f"{server.replace('http://', 'http://owner:hunter2@')}/stall?token=s3cret"
    camera = OpenCVCamera(url, stall_after=1.0, read_timeout=0.5)
    seen = []
    started = time.monotonic()
    with pytest.raises(CameraError) as info:
        for frame in camera.frames():
            seen.append(int(frame.image.mean()))
    took = time.monotonic() - started
    camera.close()
    assert seen == pytest.approx([20 * n for n in range(FRAMES)], abs=2)
    message = str(info.value)
    assert message == f"no frame from {server.replace('http://', 'http://owner@')}/stall for 1 s"
    assert "hunter2" not in message and "s3cret" not in message
    assert took < 5.0  # OpenCV's default would wait 30 s


def test_a_cut_stream_ends_the_same_way(server):
    camera = OpenCVCamera(f"{server}/cut", stall_after=0.5, read_timeout=0.5)
    with pytest.raises(CameraError, match=r"^no frame from http://127\.0\.0\.1:\d+/cut for 1 s$"):
        assert sum(1 for _ in camera.frames()) == FRAMES
    camera.close()


def test_nothing_listening_is_said_at_once():
    """A URL to a closed port: a CameraError naming it, without waiting for a timeout."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free, and nothing listens once it closes
    started = time.monotonic()
    with pytest.raises(CameraError) as info:
        open_camera("opencv", source=f"rtsp://admin:pw@127.0.0.1:{port}/stream1", loop=True)
    assert time.monotonic() - started < 3.0
    assert str(info.value) == (
        f"rtsp://admin@127.0.0.1:{port}/stream1: cannot open it "
        "(nothing answered in 5 s, or it is not a video stream)"
    )


class FlakyCapture:
    """``cv2.VideoCapture``'s API over a script: a picture, or None for a failed read.
    Each read takes ``read_seconds`` on the shared fake clock."""

    def __init__(self, script: list[int | None], now: list[float], read_seconds: float) -> None:
        self.script, self.now, self.read_seconds = list(script), now, read_seconds
        self.released = False

    def read(self) -> tuple[bool, np.ndarray | None]:
        self.now[0] += self.read_seconds
        shade = self.script.pop(0) if self.script else None
        if shade is None:
            return False, None
        return True, np.full((48, 64, 3), shade, np.uint8)

    def get(self, prop: int) -> float:
        return 25.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def isOpened(self) -> bool:
        return True

    def release(self) -> None:
        self.released = True


def flaky(script: list[int | None], read_seconds: float = 0.04) -> tuple[OpenCVCamera, list]:
    now = [0.0]
    pauses: list[float] = []

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        now[0] += seconds

    capture = FlakyCapture(script, now, read_seconds)
    camera = OpenCVCamera("0", clock=lambda: now[0], sleep=sleep, capture=capture)
    return camera, pauses


def test_a_failed_read_does_not_end_the_camera():
    """A corrupt packet makes one read fail: the frames after it still come, timed by the
    clock, and the session goes on."""
    camera, pauses = flaky([10, 20, None, 30, None, None, 40])
    frames = camera.frames()
    got = [next(frames) for _ in range(4)]
    assert [int(f.image.mean()) for f in got] == [10, 20, 30, 40]
    assert [f.index for f in got] == [0, 1, 2, 3]
    # 40 ms a read and a 0.1 s pause after each failed one: 0.04 + 0.04 + 0.1 + 0.04 = 0.22
    assert [f.at for f in got] == pytest.approx([0.0, 0.04, 0.22, 0.54])
    assert pauses == [0.1, 0.1, 0.1]
    assert (camera.width, camera.height, camera.fps) == (64, 48, 25.0)


def test_a_source_that_gives_nothing_ends_after_the_stall_limit():
    """Reads that fail at once (a webcam pulled out) are retried for 5 s, then a
    CameraError with the reason; the camera loop reopens it."""
    camera, pauses = flaky([10, 20])
    frames = camera.frames()
    assert [f.index for f in (next(frames), next(frames))] == [0, 1]
    with pytest.raises(CameraError, match=r"^no frame from webcam 0 for 5 s$"):
        next(frames)
    assert 30 < len(pauses) < 50  # retried every 0.1 s, not given up at the first failure
    camera.close()


def test_a_source_with_no_first_frame_is_refused_when_opened():
    with pytest.raises(CameraError, match=r"^no frame from webcam 0 for 5 s$"):
        flaky([])


def test_sources_are_named_without_secrets():
    assert source_name("0") == "webcam 0"
    assert source_name(2) == "webcam 2"
    assert (
        source_name("rtsp://admin:pw@[fd00::5]:554/s1?token=x") == "rtsp://admin@[fd00::5]:554/s1"
    )
    assert source_name("http://cam.local/video.mjpg") == "http://cam.local/video.mjpg"
    assert source_name("/dev/video0") == "/dev/video0"


def test_opencv_has_the_timeouts_we_set():
    """OpenCV 4.11 has the open and read timeouts for FFmpeg sources (since 4.5.3)."""
    assert isinstance(cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int)
    assert isinstance(cv2.CAP_PROP_READ_TIMEOUT_MSEC, int)
