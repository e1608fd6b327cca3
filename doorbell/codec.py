"""H.264 encoding, fragmented-MP4 muxing and video-file decoding, on PyAV (the only module
importing ``av``).

    encoder = H264Encoder(1280, 720, fps=15)
    for packet in encoder.encode(bgr_frame, at=t):   # EncodedPacket, in RAM
        ring.append(packet)
    with Mp4Writer(vault_writer, encoder.stream_info()) as mp4:
        for packet in packets_from_a_keyframe:
            mp4.write(packet)

Off the Pi the encoder is libx264 (ultrafast, no B-frames, a keyframe every
``keyframe_interval`` seconds, SPS/PPS repeated before each keyframe, so any
clip can start at any keyframe; the muxer builds the MP4's avcC from them). The Pi's
camera backend hands over packets from its own hardware encoder instead and
uses :class:`Mp4Writer` alone. The MP4 is fragmented, one
fragment a frame (``frag_every_frame+empty_moov+default_base_moof``): written
strictly front to back, so it can stream straight into the vault's encrypting
writer, which cannot seek, and each frame reaches the vault as soon as the next
one comes. No byte of it touches the disk in plaintext.
"""

import contextlib
import fractions
import io

import av
import numpy as np
from av.video.codeccontext import VideoCodecContext

from doorbell.camera.frame import EncodedPacket, StreamInfo

TIME_BASE = fractions.Fraction(1, 90_000)  # the MPEG clock: exact for any frame rate
# One fragment a frame, handed on at once: a crash loses at most the frame in the muxer
# and the vault's unsealed chunk, never a whole group of pictures (law 5). The cost is a
# moof header a frame, about 0.1-0.2 % of the bitrate (bench/sigkill_bench.py).
FRAGMENTED_MP4 = {
    "movflags": "frag_every_frame+empty_moov+default_base_moof",
    "flush_packets": "1",
}


class H264Encoder:
    """BGR frames in, H.264 packets out (libx264, or another encoder by name).

    Thread ownership: one thread calls ``encode``; packets come back in order.
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
    ) -> None:
        self.width, self.height, self.fps = width, height, fps
        ctx = av.CodecContext.create(codec, "w")
        assert isinstance(ctx, VideoCodecContext), f"{codec} is not a video codec"
        ctx.width, ctx.height = width, height
        ctx.pix_fmt = "yuv420p"
        ctx.time_base = TIME_BASE
        ctx.framerate = fractions.Fraction(fps).limit_denominator(1001)
        ctx.gop_size = max(1, round(fps * keyframe_interval))
        if bitrate:
            ctx.bit_rate = bitrate
        if codec == "libx264":
            ctx.options = {"preset": "ultrafast", "tune": "zerolatency", "bf": "0"}
        self._ctx = ctx
        ctx.open()

    def stream_info(self) -> StreamInfo:
        extradata = self._ctx.extradata
        return StreamInfo(
            self.width, self.height, self.fps, bytes(extradata) if extradata else None
        )

    def encode(self, frame: np.ndarray, at: float) -> list[EncodedPacket]:
        """Encode one BGR frame shown at ``at`` seconds; the packets ready so far."""
        video = av.VideoFrame.from_ndarray(frame, format="bgr24").reformat(format="yuv420p")
        video.pts = round(at / TIME_BASE)
        video.time_base = TIME_BASE
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
        stream = self._container.add_stream(
            "h264", rate=fractions.Fraction(info.fps).limit_denominator(1001)
        )
        stream.width, stream.height = info.width, info.height
        stream.pix_fmt = "yuv420p"
        stream.time_base = TIME_BASE
        if info.extradata:
            stream.codec_context.extradata = info.extradata
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
