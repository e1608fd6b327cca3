"""What the codec decides, as pure functions of numbers and names: how many threads the
encoder and decoder take, when a keyframe is due, whether a decoded picture is in full
range, whether PyAV can wrap a buffer in place. No ``av`` here (``doorbell.codec`` is
the one module that imports it): these are tested and read without the video stack.
"""

FULL_RANGE = 2  # FFmpeg's AVCOL_RANGE_JPEG: luma 0-255 (video range, 16-235, is 1)


# libx264 on one thread up to this many pixels a second (1920x1080 at 15 fps), its own
# choice of threads above. One thread costs less: 720p at 10 fps, 3.3 ms CPU a frame
# against 4.5 with libx264's sliced threads, and on a still scene in real time 2.3
# CPU-s a minute against 2.9; 1080p takes 7.7 ms a frame on one x86 thread.
ONE_THREAD_PIXELS = 1920 * 1080 * 15


def encoder_threads(width: int, height: int, fps: float) -> int:
    """Threads for libx264 (or FFmpeg's decoder) at ``width`` x ``height`` pixels and
    ``fps`` frames a second: 1 up to :data:`ONE_THREAD_PIXELS` a second, else 0 (it
    chooses, by cores)."""
    return 1 if width * height * fps <= ONE_THREAD_PIXELS else 0


def keyframe_due(at: float, due: float | None, fps: float) -> bool:
    """Whether the frame at ``at`` seconds is to be a keyframe, the next being ``due`` at
    that time (None: the first frame). Half a frame early counts (a camera's times jitter):
    at 10 fps, due at 1.0, a frame at 0.96 is the keyframe."""
    return due is None or at >= due - 0.5 / fps


def is_full_range(pix_fmt: str, color_range: int) -> bool:
    """Whether a decoded picture in FFmpeg's pixel format ``pix_fmt`` with ``color_range``
    (FFmpeg's AVColorRange: 1 video, 2 full) uses the full 0-255 range: a JPEG's, a
    webcam's MJPEG (``yuvj422p``), an H.264 flagged full range. Passed on as it is, its
    blacks and whites would be stretched past 0 and 255 by a player, which reads the
    clip's H.264 as video range (16-235 luma)."""
    return pix_fmt.startswith("yuvj") or color_range == FULL_RANGE


def wraps_in_place(rows: int) -> bool:
    """Whether PyAV's ``VideoFrame.from_numpy_buffer`` reads a packed YUV 4:2:0 buffer of
    ``rows`` rows (height * 3 / 2) right. It takes the picture's height to be
    ``rows // 6 * 4``, which is the height only when that is a multiple of 4 (checked
    with PyAV 14.1 and 18.1: a 640x362 buffer comes out 640x360); other heights are
    copied with ``from_ndarray``, which reads them right."""
    return rows % 6 == 0
