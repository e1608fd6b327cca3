"""Properties of the vault: round trips, random access, tamper and truncation detection,
recovery of exactly the authenticated prefix, fsync cadence, nothing left in plaintext."""

import io
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from doorbell import vault
from doorbell.vault.stream import SEALED_CHUNK_SIZE
from tests.conftest import find_plaintext

CHUNK = vault.CHUNK_SIZE
IDENTITY = vault.X25519Identity.generate()
RECIPIENTS = [IDENTITY.recipient]
EDGE_SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 2 * CHUNK + 1]
SETTINGS = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def encrypt(plain: bytes, splits: list[int] | None = None) -> bytes:
    out = io.BytesIO()
    writer = vault.Writer(vault.StreamSink(out), RECIPIENTS)
    pos = 0
    for size in splits or []:
        writer.write(plain[pos : pos + size])
        pos += size
    writer.write(plain[pos:])
    writer.close()
    return out.getvalue()


def payload_start(data: bytes) -> int:
    return data.index(b"\n---") + len(b"\n--- ") + 43 + 1 + 16  # MAC line, then the nonce


def sequential(data: bytes) -> bytes:
    stream = io.BytesIO(data)
    _, cipher = vault.open_header(stream, [IDENTITY])
    return b"".join(vault.iter_plaintext(stream, cipher))


def random_access(tmp_path, data: bytes) -> bytes:
    path = tmp_path / "file.age"
    path.write_bytes(data)
    with vault.open_file(path, [IDENTITY]) as reader:
        return reader.read()


@pytest.mark.parametrize("size", EDGE_SIZES)
def test_round_trip_at_the_chunk_edges(tmp_path, size):
    plain = os.urandom(size)
    path = tmp_path / "clip.age"
    with vault.create(path, RECIPIENTS) as writer:
        writer.write(plain)
    assert not (tmp_path / "clip.age.part").exists()
    with vault.open_file(path, [IDENTITY]) as reader:
        assert reader.size == size
        assert reader.read() == plain
    assert path.stat().st_size - payload_start(path.read_bytes()) == vault.stream.sealed_size(size)


@SETTINGS
@given(
    plain=st.binary(max_size=300_000),
    splits=st.lists(st.integers(min_value=0, max_value=70_000), max_size=8),
)
def test_same_file_whatever_the_write_sizes(plain, splits):
    assert sequential(encrypt(plain, splits)) == plain


@SETTINGS
@given(
    size=st.integers(min_value=0, max_value=4 * CHUNK + 100),
    reads=st.lists(
        st.tuples(st.integers(min_value=0, max_value=5 * CHUNK), st.integers(0, 3 * CHUNK)),
        min_size=1,
        max_size=6,
    ),
)
def test_random_access_reads_equal_slices(tmp_path, size, reads):
    plain = bytes(range(256)) * (size // 256) + bytes(size % 256)
    path = tmp_path / "ra.age"
    path.write_bytes(encrypt(plain))
    with vault.open_file(path, [IDENTITY]) as reader:
        assert reader.size == size
        for offset, length in reads:
            reader.seek(offset)
            assert reader.read(length) == plain[offset : offset + length]
            assert reader.tell() == min(offset + length, max(offset, size))
        reader.seek(-min(size, 10), io.SEEK_END)
        assert reader.read() == plain[size - min(size, 10) :]
        reader.seek(0)
        reader.seek(min(size, 5), io.SEEK_CUR)
        assert reader.read(3) == plain[min(size, 5) : min(size, 5) + 3]


def test_every_flipped_header_byte_is_detected(tmp_path):
    data = encrypt(os.urandom(2 * CHUNK + 10))
    for i in range(payload_start(data)):
        bad = bytearray(data)
        bad[i] ^= 0x01
        with pytest.raises(vault.VaultError):
            sequential(bytes(bad))
        with pytest.raises(vault.VaultError):
            random_access(tmp_path, bytes(bad))


@SETTINGS
@given(data=st.data())
def test_every_flipped_payload_byte_is_detected(tmp_path, data):
    size = data.draw(st.sampled_from([0, 100, CHUNK, 2 * CHUNK + 10]))
    encrypted = encrypt(os.urandom(size))
    index = data.draw(
        st.integers(min_value=payload_start(encrypted) - 16, max_value=len(encrypted) - 1)
    )
    bit = data.draw(st.integers(min_value=0, max_value=7))
    bad = bytearray(encrypted)
    bad[index] ^= 1 << bit
    with pytest.raises(vault.VaultError):
        sequential(bytes(bad))
    with pytest.raises(vault.VaultError):
        random_access(tmp_path, bytes(bad))


def test_truncation_at_every_chunk_boundary(tmp_path):
    plain = os.urandom(5 * CHUNK + 1234)
    data = encrypt(plain)
    start = payload_start(data)
    for k in range(6):  # cut after k whole chunks: the final chunk is missing
        cut = data[: start + k * SEALED_CHUNK_SIZE]
        with pytest.raises(vault.TruncatedError) as seq:
            sequential(cut)
        assert seq.value.authenticated == k * CHUNK
        with pytest.raises(vault.TruncatedError):
            random_access(tmp_path, cut)
        report = vault.Recovery()
        got = b"".join(vault.recover(io.BytesIO(cut), [IDENTITY], report))
        assert got == plain[: k * CHUNK]
        assert (report.chunks, report.plaintext_bytes, report.complete) == (k, k * CHUNK, False)
        assert report.lost_bytes == 0


@pytest.mark.parametrize("into_chunk", [1, 15, 16, 17, 40_000, SEALED_CHUNK_SIZE - 1])
def test_truncation_inside_a_chunk(tmp_path, into_chunk):
    plain = os.urandom(3 * CHUNK + 99)
    data = encrypt(plain)
    cut = data[: payload_start(data) + 2 * SEALED_CHUNK_SIZE + into_chunk]
    with pytest.raises(vault.PayloadError):
        sequential(cut)
    with pytest.raises(vault.PayloadError):
        random_access(tmp_path, cut)
    report = vault.Recovery()
    assert b"".join(vault.recover(io.BytesIO(cut), [IDENTITY], report)) == plain[: 2 * CHUNK]
    assert report.lost_bytes == into_chunk


def test_recover_an_intact_file_is_complete():
    plain = os.urandom(CHUNK + 5)
    report = vault.Recovery()
    assert b"".join(vault.recover(io.BytesIO(encrypt(plain)), [IDENTITY], report)) == plain
    assert report.complete and report.describe() == f"complete: {len(plain)} bytes, nothing lost"


def test_abort_leaves_a_recoverable_part_and_no_final_file(tmp_path):
    plain = os.urandom(3 * CHUNK + 500)
    path = tmp_path / "clip.age"
    writer = vault.create(path, RECIPIENTS)
    writer.write(plain)
    writer.abort()
    part = tmp_path / "clip.age.part"
    assert part.exists() and not path.exists()
    report = vault.Recovery()
    with open(part, "rb") as source:
        assert b"".join(vault.recover(source, [IDENTITY], report)) == plain[: 3 * CHUNK]


def test_discard_removes_the_part(tmp_path):
    writer = vault.create(tmp_path / "x.age", RECIPIENTS)
    writer.write(b"abc")
    writer.discard()
    assert list(tmp_path.iterdir()) == []


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_fsync_follows_the_clock_and_byte_count(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    clock = FakeClock()
    sink = vault.AtomicFileSink(tmp_path / "c.age", 2.0, clock, fsync_bytes=1 << 30)
    writer = vault.Writer(sink, RECIPIENTS)
    at_open = len(synced)  # the folder, so the .part itself survives
    writer.write(os.urandom(3 * CHUNK))
    sink.wait_synced()
    assert len(synced) == at_open  # no time has passed: no fsync yet
    # each sealed chunk went to the OS at once (the last one waits: it may be the final)
    assert (tmp_path / "c.age.part").stat().st_size > 2 * SEALED_CHUNK_SIZE
    clock.now = 2.5
    writer.write(os.urandom(CHUNK))
    sink.wait_synced()
    assert len(synced) == at_open + 1  # the interval passed: one fsync, in the helper thread
    writer.write(os.urandom(CHUNK))
    sink.wait_synced()
    assert len(synced) == at_open + 1
    writer.close()
    assert len(synced) >= at_open + 3  # the file before the rename, then the folder


def test_fsync_by_bytes(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    sink = vault.AtomicFileSink(
        tmp_path / "c.age", 1e9, FakeClock(), fsync_bytes=4 * SEALED_CHUNK_SIZE
    )
    writer = vault.Writer(sink, RECIPIENTS)
    before = len(synced)
    for _ in range(9):
        writer.write(os.urandom(CHUNK))
        sink.wait_synced()
    assert len(synced) - before == 2
    writer.abort()


def test_no_plaintext_in_any_file_the_writer_leaves(tmp_path):
    plain = os.urandom(200_000)
    with vault.create(tmp_path / "done.age", RECIPIENTS) as writer:
        writer.write(plain)
    cut = vault.create(tmp_path / "cut.age", RECIPIENTS)
    cut.write(plain)
    cut.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.age.part", "done.age"]
    assert find_plaintext(tmp_path, plain, step=101) == []


def test_messages_name_the_file_and_never_a_secret(tmp_path):
    others = [vault.X25519Identity.generate() for _ in range(2)]
    path = tmp_path / "clip.mp4.age"
    with vault.create(path, RECIPIENTS) as writer:
        writer.write(b"x")
    with pytest.raises(vault.NoIdentityMatchError) as info:
        vault.open_file(path, others)
    assert str(path) in str(info.value)
    assert all(o.secret() not in str(info.value) for o in others)
    assert "AGE-SECRET-KEY" not in repr(others[0])

    secret = IDENTITY.secret()
    for bad in (secret[:-1] + ("q" if secret[-1] != "Q" else "p"), secret.lower() + "X"):
        with pytest.raises(vault.KeyFormatError) as info:
            vault.X25519Identity.parse(bad)
        assert secret[20:40] not in str(info.value) and secret[20:40].lower() not in str(info.value)
    with pytest.raises(vault.KeyFormatError) as info:
        vault.X25519Recipient.parse(secret)
    assert secret not in str(info.value)

    locked = vault.encrypt_bytes(b"k", [vault.ScryptRecipient("the real one", work_factor=10)])
    with pytest.raises(vault.NoIdentityMatchError) as info:
        vault.decrypt_bytes(locked, [vault.ScryptIdentity("a wrong guess")], "identity.age")
    assert "a wrong guess" not in str(info.value) and "the real one" not in str(info.value)


def test_scrypt_work_factor_above_the_cap_is_refused_before_any_work():
    locked = vault.encrypt_bytes(b"k", [vault.ScryptRecipient("pw", work_factor=12)])
    with pytest.raises(vault.HeaderError, match="above the limit of 11"):
        vault.decrypt_bytes(locked, [vault.ScryptIdentity("pw", max_work_factor=11)])


def test_a_passphrase_cannot_join_other_recipients():
    with pytest.raises(ValueError, match="cannot be combined"):
        vault.Writer(vault.StreamSink(io.BytesIO()), [*RECIPIENTS, vault.ScryptRecipient("pw", 10)])
