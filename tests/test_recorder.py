"""The pre-roll ring buffer: whole GOPs, always from a keyframe."""

from doorbell.camera import EncodedPacket
from doorbell.recorder import PacketRing


def stream(seconds: float, fps: int = 10, gop: int = 10):
    for i in range(int(seconds * fps)):
        yield EncodedPacket(i / fps, i % gop == 0, bytes([i % 256]))


def test_the_ring_keeps_its_seconds_in_whole_gops():
    ring = PacketRing(5.0)
    for packet in stream(30.0):
        ring.add(packet)
    held = ring.since(-1.0)
    assert held[0].keyframe
    assert held[0].at <= 29.9 - 5.0  # at least the pre-roll
    assert held[0].at > 29.9 - 5.0 - 1.0  # and at most one GOP more


def test_since_starts_at_the_keyframe_at_or_before():
    ring = PacketRing(10.0)
    for packet in stream(20.0):
        ring.add(packet)
    assert ring.since(15.5)[0].at == 15.0
    assert ring.since(15.0)[0].at == 15.0
    assert ring.since(3.0)[0].at == ring.since(-100)[0].at  # older than held: the oldest keyframe


def test_an_empty_ring_or_one_without_keyframes_gives_nothing():
    ring = PacketRing(5.0)
    assert ring.since(0.0) == []
    ring.add(EncodedPacket(0.0, False, b"x"))
    assert ring.since(0.0) == []
