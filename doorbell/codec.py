"""H.264 encoding, fragmented-MP4 muxing and video-file decoding, on PyAV (the only module
importing ``av``).

    encoder = H264Encoder(1280, 720, fps=15)
    for packet in encoder.encode_i420(yuv, at=t):    # EncodedPacket, in RAM
        ring.append(packet)                          # (or .encode(bgr), .encode_decoded)
    with Mp4Writer(vault_writer, encoder.stream_info()) as mp4:
        for packet in packets_from_a_keyframe:
            mp4.write(packet)

Off the Pi the encoder is libx264 (ultrafast, no B-frames, one thread up to 1080p15:
:func:`~doorbell.codec_rules.encoder_threads`), with a keyframe every ``keyframe_interval`` seconds of the
frames' own times, SPS/PPS repeated before each, so any clip can start at any keyframe
(the muxer builds the MP4's avcC from them). The Pi's camera backend hands over packets
from its own hardware encoder instead and uses :class:`Mp4Writer` alone. The MP4 is
fragmented, one fragment a frame (``frag_every_frame+empty_moov+default_base_moof``):
written strictly front to back, so it can stream straight into the vault's encrypting
writer, which cannot seek, and each frame reaches the vault as soon as the next one
comes. No byte of it touches the disk in plaintext.

A video file (``doorbell replay``, a file as the camera) is read by :class:`VideoFile`:
only the containers cameras write are opened, each picture comes with its own
presentation time, and a damaged packet is skipped and reported, not the end.

    video = VideoFile("porch.mp4")                  # CameraError if it is not video
    for picture in video.pictures(on_damage=print):
        picture.pts, picture.decoded                # seconds; the decoder's YUV 4:2:0 (or .bgr)

A file's picture moves on its way to the encoder: not at all with nothing to paint
(:meth:`H264Encoder.encode_decoded`); once with privacy masks (:meth:`DecodedPicture.i420`
copies it out: a decoder's frame may be the reference of its next and is never
painted; :meth:`H264Encoder.encode_i420` takes that copy in place). libx264 copies each
picture into its own frame as it takes it.
"""

import contextlib
import errno
import fractions
import io
import stat
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from av.video.codeccontext import VideoCodecContext
from av.video.reformatter import ColorRange

from doorbell.camera import CameraError
from doorbell.camera.colour import OPENCV_YUV, UNSPECIFIED, ColourDescription, completed
from doorbell.camera.frame import EncodedPacket, StreamInfo
from doorbell.codec_rules import encoder_threads, is_full_range, keyframe_due, wraps_in_place

TIME_BASE = fractions.Fraction(1, 90_000)  # the MPEG clock: exact for any frame rate
_KEY, _ANY = av.video.frame.PictureType.I, av.video.frame.PictureType.NONE
_FULL_RANGE, _VIDEO_RANGE = ColorRange.JPEG, ColorRange.MPEG
# One fragment a frame, handed on at once: a crash loses at most the frame in the muxer
# and the vault's unsealed chunk, never a whole group of pictures (law 5). The cost is a
# moof header a frame, about 0.1-0.2 % of the bitrate (bench/sigkill_bench.py).
FRAGMENTED_MP4 = {
    "movflags": "frag_every_frame+empty_moov+default_base_moof",
    "flush_packets": "1",
}


class H264Encoder:
    """Pictures in, H.264 packets out (libx264, or another encoder by name).

    Three ways in, by what the source has: :meth:`encode_i420` (packed YUV 4:2:0, taken
    as it is), :meth:`encode_decoded` (a decoder's own frame, taken as it is) and
    :meth:`encode` (BGR: one colour conversion, OpenCV's). Thread ownership: one
    thread calls them; packets come back in order.
    """

    def __init__(
        self,
        width: int,
        height: int,
        fps: float,
        *,
        keyframe_interval: float = 1.0,
        codec: str = "libx264",
        bitrate: int | None = None,
        colour: ColourDescription = OPENCV_YUV,
    ) -> None:
        self.width, self.height, self.fps = width, height, fps
        ctx = av.CodecContext.create(codec, "w")
        assert isinstance(ctx, VideoCodecContext), f"{codec} is not a video codec"
        ctx.width, ctx.height = width, height
        ctx.pix_fmt = "yuv420p"
        # said in the stream (H.264's VUI): video range, and the colour as far as known
        ctx.color_range = int(_VIDEO_RANGE)
        if colour.primaries != UNSPECIFIED:
            ctx.color_primaries = colour.primaries
        if colour.transfer != UNSPECIFIED:
            ctx.color_trc = colour.transfer
        if colour.matrix != UNSPECIFIED:
            ctx.colorspace = colour.matrix
        ctx.time_base = TIME_BASE
        ctx.framerate = fractions.Fraction(fps).limit_denominator(1001)
        # Keyframes are asked for by time (_encode); the encoder's own, only past twice
        # that many frames, never comes at a steady rate.
        ctx.gop_size = 2 * max(1, round(fps * keyframe_interval))
        self.keyframe_interval = keyframe_interval
        self._key_due: float | None = None  # the time from which the next keyframe is due
        if bitrate:
            ctx.bit_rate = bitrate
        if codec == "libx264":
            ctx.options = {
                "preset": "ultrafast",
                "tune": "zerolatency",
                "bf": "0",
                "threads": str(encoder_threads(width, height, fps)),
                "a53cc": "0",  # closed captions a source file carries are not copied
            }
        self._ctx = ctx
        ctx.open()

    def stream_info(self) -> StreamInfo:
        return StreamInfo(self.width, self.height, self.fps)

    def encode(self, frame: np.ndarray, at: float) -> list[EncodedPacket]:
        """Encode one BGR frame (HxWx3 uint8) shown at ``at`` seconds; the packets ready so
        far. One conversion to YUV 4:2:0 (``cv2.cvtColor``: 0.7 ms a 720p frame here,
        against 2.7-7 ms for swscale through PyAV's ``reformat``). OpenCV is imported
        here, not with the module: the recorder muxes without it."""
        import cv2

        return self.encode_i420(cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420), at)

    def encode_i420(self, buffer: np.ndarray, at: float) -> list[EncodedPacket]:
        """Encode one planar YUV 4:2:0 frame (height * 3 / 2 x width uint8, as a file's
        decoder or a Pi camera gives it) shown at ``at`` seconds: no colour conversion,
        and no copy (the encoder reads ``buffer`` where it lies) when it is packed and
        :func:`wraps_in_place` says PyAV takes it so. ``buffer`` must not change until the
        call returns."""
        if buffer.flags.c_contiguous and wraps_in_place(buffer.shape[0]):
            video = av.VideoFrame.from_numpy_buffer(buffer, format="yuv420p")
        else:
            video = av.VideoFrame.from_ndarray(buffer, format="yuv420p")
        return self._encode(video, at)

    def encode_decoded(self, picture: "DecodedPicture", at: float) -> list[EncodedPacket]:
        """Encode a decoder's own frame (:class:`DecodedPicture`, at the encoder's size)
        shown at ``at`` seconds, as it is: no copy, no conversion. The frame's picture
        type from the file is not kept: keyframes fall where this encoder puts them."""
        return self._encode(picture.video, at)

    def _encode(self, video: av.VideoFrame, at: float) -> list[EncodedPacket]:
        video.pts = round(at / TIME_BASE)
        video.time_base = TIME_BASE
        if keyframe_due(at, self._key_due, self.fps):
            video.pict_type = _KEY  # an IDR: a clip can start here
            self._key_due = at + self.keyframe_interval
        else:
            video.pict_type = _ANY
        return self._packets(self._ctx.encode(video))

    def flush(self) -> list[EncodedPacket]:
        return self._packets(self._ctx.encode(None))

    @staticmethod
    def _packets(packets: list) -> list[EncodedPacket]:
        return [EncodedPacket(float(p.pts * TIME_BASE), p.is_keyframe, bytes(p)) for p in packets]


class Mp4Writer:
    """Muxes H.264 packets into fragmented MP4 written to any ``write()``-able object.

    The clip starts at its first keyframe; times are shifted so that is 0.
    """

    def __init__(self, out: io.RawIOBase, info: StreamInfo) -> None:
        self._container = av.open(out, mode="w", format="mp4", options=FRAGMENTED_MP4)
        # A stream for muxing only: add_stream("h264") would open a libx264 encoder that
        # never encodes a frame (5 MB and 4 threads a clip; bench/memory_bench.py), and put
        # its High-profile SPS/PPS in the avcC. Both encoders send SPS/PPS in-band before
        # each keyframe, and the muxer takes them from the first packet (a keyframe).
        rate = fractions.Fraction(info.fps).limit_denominator(1001)
        stream = self._container.add_mux_stream(
            "h264", rate=rate, width=info.width, height=info.height
        )
        stream.time_base = TIME_BASE
        self._stream = stream
        self._origin: float | None = None
        self.first_at: float | None = None
        self.last_at: float | None = None

    def write(self, packet: EncodedPacket) -> None:
        """Mux one packet. Packets before the first keyframe cannot be decoded: dropped."""
        if self._origin is None:
            if not packet.keyframe:
                return
            self._origin = packet.at
            self.first_at = packet.at
        pts = round((packet.at - self._origin) / TIME_BASE)
        out = av.Packet(packet.data)
        out.pts = out.dts = pts
        out.time_base = TIME_BASE
        out.stream = self._stream
        out.is_keyframe = packet.keyframe
        self._container.mux(out)
        self.last_at = packet.at

    def close(self) -> None:
        self._container.close()

    def abandon(self) -> None:
        """Drop the muxer after its output failed (a full disk): write nothing more."""
        with contextlib.suppress(Exception):
            self._container.close()

    def __enter__(self) -> "Mp4Writer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- decoding a video file ------------------------------------------------------------------

# The containers cameras, phones and recorders write, by FFmpeg's demuxer names; nothing
# else is even probed. Left to itself FFmpeg "decodes" a text file as ANSI art (its tty
# demuxer), a photo as a one-frame video (jpeg_pipe, png_pipe), and follows a playlist
# (hls, concat) to other files and to hosts: so only these formats and the file protocol.
FILE_FORMATS = "mov,mp4,matroska,webm,avi,mpegts,mpeg,flv,asf"
FILE_KINDS = "MP4, MOV, MKV, WebM, AVI, MPEG-TS, MPEG-PS, FLV or WMV"
RAW_STREAMS = (".h264", ".264", ".h265", ".265", ".hevc")  # no frame times of their own
DEMUX_RETRIES = 100  # damaged container data read past in a row before giving up

FFmpegError = av.FFmpegError  # what PyAV raises: for callers that do not import av


class DecodedPicture:
    """A decoded YUV 4:2:0 frame left where the decoder put it: a
    :class:`~doorbell.camera.frame.Planes` (``width`` x ``height`` pixels, both even).
    ``video`` is the PyAV frame; its pixels are only ever read here: the decoder may
    predict its next frames from them."""

    __slots__ = ("height", "video", "width")

    def __init__(self, video: av.VideoFrame) -> None:
        self.video = video
        self.width, self.height = video.width, video.height

    def luma(self) -> np.ndarray:
        """The Y plane, height x width uint8: a read-only view of the decoder's memory
        (rows padded to the decoder's line size)."""
        plane = self.video.planes[0]
        rows = np.frombuffer(memoryview(plane), np.uint8).reshape(self.height, plane.line_size)
        rows.flags.writeable = False
        return rows[:, : self.width]

    def i420(self) -> np.ndarray:
        """A packed copy, (height * 3 / 2) x width uint8, Y then U then V, to paint on."""
        return self.video.to_ndarray(format="yuv420p")


@dataclass(frozen=True)
class Picture:
    """One decoded picture: ``pts``, its presentation time in seconds as the file gives it
    (pts x time base; None if the file gives none), and the picture, as ``decoded`` (the
    decoder's own YUV 4:2:0 frame, :class:`DecodedPicture`) when both sides are even,
    else as ``bgr`` (H x W x 3)."""

    pts: float | None
    decoded: DecodedPicture | None = None
    bgr: np.ndarray | None = None


class VideoFile:
    """A video file, checked to be camera video, decoded with PyAV.

        video = VideoFile("porch.mp4")  # CameraError naming the file if it is not video
        video.width, video.height       # pixels: every picture comes at this size
        video.fps                       # the file's average rate (1-240), else 15
        video.duration                  # seconds, None if the file does not say
        for picture in video.pictures(on_damage=print):
            picture.pts, picture.decoded (or picture.bgr)

    Refused, each with a CameraError naming the file and why: a missing, unreadable or
    empty file; a container not in :data:`FILE_FORMATS` (text, photos, playlists, raw
    H.264 without frame times); a file with no video stream but cover art or sound.
    A packet that does not decode (damaged data) is skipped and its time (seconds, None
    if unknown) told to ``on_damage``; decoding goes on with the next packet.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._container = _open_video(path)
        try:
            self._stream = _video_stream(self._container, path)
        except BaseException:
            self._container.close()
            raise
        context = self._stream.codec_context
        self.width, self.height = context.width, context.height
        self.fps = 15.0
        for rate in (self._stream.average_rate, self._stream.guessed_rate):
            if rate and 1.0 <= float(rate) <= 240.0:
                self.fps = float(rate)
                break
        self.duration: float | None = None
        if self._container.duration:
            self.duration = self._container.duration / av.time_base
        elif self._stream.duration and self._stream.time_base:
            self.duration = float(self._stream.duration * self._stream.time_base)
        # The colour of the YUV handed over (see camera.colour_of): the file's own, what
        # it leaves unsaid filled in; OpenCV's when its pictures come as BGR (odd sides)
        said = ColourDescription(
            int(context.color_primaries), int(context.color_trc), int(context.colorspace)
        )
        odd = self.width % 2 or self.height % 2
        self.colour = OPENCV_YUV if odd else completed(said, self.width, self.height)
        # One decoding thread up to 1080p15 (FFmpeg's slice threads otherwise: 720p,
        # 2.0 ms CPU a frame on one against 2.4 on three), as for the encoder.
        context.thread_count = encoder_threads(self.width, self.height, self.fps)

    def pictures(self, on_damage: Callable[[float | None], None]) -> Generator[Picture, None, None]:
        """Every picture, in presentation order; damaged packets skipped (see the class).

        Raises CameraError if the file cannot be read any more (an I/O error)."""
        stream, base = self._stream, self._stream.time_base
        failures = 0
        while True:
            try:
                for packet in self._container.demux(stream):
                    failures = 0
                    try:
                        frames = packet.decode()
                    except av.FFmpegError:  # damaged data: skip the packet, go on
                        pts = packet.pts
                        on_damage(float(pts * base) if pts is not None and base else None)
                        continue
                    for frame in frames:
                        yield self._picture(frame, base)
                return
            except av.error.InvalidDataError:  # the container is damaged here: read past it
                on_damage(None)
                failures += 1
                if failures > DEMUX_RETRIES:
                    return
            except av.FFmpegError as err:
                raise CameraError(f"{self.path}: cannot read it ({_reason(err)})") from None

    def _picture(self, frame: av.VideoFrame, base: fractions.Fraction | None) -> Picture:
        pts = float(frame.pts * base) if frame.pts is not None and base else None
        if (frame.width, frame.height) != (self.width, self.height):  # the size changed
            frame = frame.reformat(width=self.width, height=self.height)
        if self.width % 2 or self.height % 2:
            return Picture(pts, bgr=frame.to_ndarray(format="bgr24"))
        full = is_full_range(frame.format.name, int(frame.color_range))
        if full:  # the encoder's H.264 says video range: 0-255 becomes 16-235, once
            frame = frame.reformat(
                format="yuv420p", src_color_range=_FULL_RANGE, dst_color_range=_VIDEO_RANGE
            )
        elif frame.format.name != "yuv420p":  # 4:2:2, 4:4:4, 10 bits: converted once
            frame = frame.reformat(format="yuv420p")
        return Picture(pts, decoded=DecodedPicture(frame))

    def close(self) -> None:
        self._container.close()


def _reason(err: Exception) -> str:
    return getattr(err, "strerror", None) or str(err)


def _open_video(path: str) -> av.container.InputContainer:
    """The container of ``path``, opened as one of :data:`FILE_FORMATS` only."""
    try:
        found = Path(path).stat()
    except FileNotFoundError:
        raise CameraError(f"{path}: no such video file") from None
    except OSError as err:
        raise CameraError(f"{path}: cannot read it ({err.strerror})") from None
    if stat.S_ISDIR(found.st_mode):
        raise CameraError(f"{path}: a folder, not a video file")
    if found.st_size == 0:
        raise CameraError(f"{path}: the file is empty, not a video")
    options = {"format_whitelist": FILE_FORMATS, "protocol_whitelist": "file"}
    try:
        return av.open(f"file:{path}", options=options)
    except av.error.InvalidDataError:
        raise CameraError(
            f"{path}: not a video file, or its header is damaged (doorbell reads {FILE_KINDS})"
        ) from None
    except av.FFmpegError as err:
        if err.errno != errno.EINVAL:
            raise CameraError(f"{path}: cannot read it ({_reason(err)})") from None
    # EINVAL (ArgumentError; ValueError before PyAV 15): FFmpeg took it for a format not in
    # FILE_FORMATS
    if path.lower().endswith(RAW_STREAMS):
        raise CameraError(
            f"{path}: a raw H.264/H.265 stream has no frame times; put it in an MP4 "
            "first (ffmpeg -r 30 -i clip.h264 -c copy clip.mp4, at its true rate)"
        )
    raise CameraError(f"{path}: not a video file (doorbell reads {FILE_KINDS})")


def _video_stream(container: av.container.InputContainer, path: str) -> av.VideoStream:
    """The file's video: its first video stream that is not a still picture (cover art)."""
    still = av.stream.Disposition.attached_pic
    for stream in container.streams.video:
        if not stream.disposition & still:
            if stream.codec_context is None:
                raise CameraError(f"{path}: its video cannot be decoded here (no decoder)")
            if not stream.codec_context.width or not stream.codec_context.height:
                raise CameraError(f"{path}: its video has no picture size")
            return stream
    found: list[str] = sorted({s.type for s in container.streams if s.type != "video"})
    if container.streams.video:
        found.append("a still picture")
    only = f", only {' and '.join(found)}" if found else ""
    raise CameraError(f"{path}: no video in it{only}")
