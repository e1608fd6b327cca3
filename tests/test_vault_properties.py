"""Properties of the vault API, checked with hypothesis and exhaustive loops.

What every clip relies on (DESIGN.md, laws 1, 5 and 6): a round trip gives the
plaintext back whatever the sizes of the writes; random access equals slicing;
no flipped byte and no cut is ever returned as plaintext; ``recover`` gives back
exactly the authenticated prefix of a crashed ``.part``; sealed chunks reach the
OS at once and fsync follows the (injected) clock; no plaintext lands on disk;
error messages name the file and never a secret.
"""

import gc
import io
import os
import random
import stat
import threading
from itertools import count
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from doorbell import vault
from doorbell.vault.stream import SEALED_CHUNK_SIZE, TAG_SIZE, sealed_size

CHUNK = vault.CHUNK_SIZE  # 65536 bytes of plaintext a chunk
SEALED = SEALED_CHUNK_SIZE  # 65552 bytes on disk a full chunk
NONCE = 16
OWNER = vault.X25519Identity.generate()
EDGE_SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 2 * CHUNK + 1]
HEADER_ERRORS = (vault.HeaderError, vault.NoIdentityMatchError, vault.HeaderMacError)
# hypothesis runs many examples in one test, so tmp_path is shared: names come from here.
NAMES = count()
PROPERTY = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Sizes near the chunk edges, where off-by-one mistakes live, and anywhere up to ~300 KB.
near_an_edge = st.builds(lambda k, d: max(0, k * CHUNK + d), st.integers(0, 4), st.integers(-2, 2))
sizes = st.one_of(near_an_edge, st.integers(0, 300_000))
write_sizes = st.lists(
    st.one_of(
        st.integers(0, 17),
        st.integers(0, 3 * CHUNK),
        st.sampled_from([CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK]),
    ),
    max_size=12,
)


def plaintext(size: int, seed: int = 0) -> bytes:
    """Reproducible random bytes (so hypothesis can replay a failure)."""
    return random.Random(seed).randbytes(size)


def pieces(plain: bytes, splits: list[int]) -> list[bytes]:
    """``plain`` cut into writes of the sizes in ``splits``, the rest in one last write."""
    out, pos = [], 0
    for size in splits:
        out.append(plain[pos : pos + size])
        pos = min(len(plain), pos + size)
    out.append(plain[pos:])
    return out


def write_file(path: Path, plain: bytes, recipients=None, splits=(), **options) -> Path:
    writer = vault.create(path, recipients or [OWNER.recipient], **options)
    for piece in pieces(plain, list(splits)):
        assert writer.write(piece) == len(piece)
    writer.close()
    return path


def read_file(path: Path, identities=None) -> bytes:
    with vault.open_file(path, identities or [OWNER]) as reader:
        return reader.read()


def payload_start(data: bytes, identity=OWNER) -> int:
    """Offset of the first chunk: after the header and the 16-byte payload nonce."""
    stream = io.BytesIO(data)
    vault.open_header(stream, [identity])
    return stream.tell()


def sequential(data: bytes, identities=None) -> tuple[bytes, vault.VaultError | None]:
    """What ``iter_plaintext`` releases from ``data`` before it stops, and why it stopped."""
    stream = io.BytesIO(data)
    released = []
    try:
        _, cipher = vault.open_header(stream, identities or [OWNER])
        for piece in vault.iter_plaintext(stream, cipher, "memory"):
            released.append(piece)
    except vault.VaultError as err:
        return b"".join(released), err
    return b"".join(released), None


def recovered(path: Path, identities=None) -> tuple[bytes, vault.Recovery]:
    report = vault.Recovery()
    with open(path, "rb") as stream:
        got = b"".join(vault.recover(stream, identities or [OWNER], report))
    return got, report


def fresh(tmp_path: Path, suffix: str = ".age") -> Path:
    return tmp_path / f"f{next(NAMES)}{suffix}"


# --- round trips ------------------------------------------------------------------------


@pytest.mark.parametrize("size", EDGE_SIZES)
def test_round_trip_at_the_chunk_edges(tmp_path, size):
    plain = os.urandom(size)
    path = write_file(tmp_path / "clip.mp4.age", plain)
    assert not (tmp_path / ("clip.mp4.age" + vault.PART_SUFFIX)).exists()
    data = path.read_bytes()
    # the size on disk follows from the plaintext size alone: that is what seeking stands on
    assert len(data) - payload_start(data) == sealed_size(size)
    with vault.open_file(path, [OWNER]) as reader:
        assert reader.size == size
        assert reader.read() == plain
        assert reader.read() == b""
    assert sequential(data) == (plain, None)


@PROPERTY
@given(size=sizes, seed=st.integers(0, 2**32), splits=write_sizes, kind=st.sampled_from("BAM"))
def test_round_trip_whatever_the_write_sizes(tmp_path, size, seed, splits, kind):
    plain = plaintext(size, seed)
    path = fresh(tmp_path)
    writer = vault.create(path, [OWNER.recipient], durable=False)
    as_type = {"B": bytes, "A": bytearray, "M": memoryview}[kind]
    written = 0
    for piece in pieces(plain, splits):
        assert writer.write(as_type(piece)) == len(piece)
        written += len(piece)
        assert writer.tell() == written
    writer.close()
    try:
        assert read_file(path) == plain
        assert len(path.read_bytes()) - payload_start(path.read_bytes()) == sealed_size(size)
    finally:
        path.unlink()


@PROPERTY
@given(size=sizes, seed=st.integers(0, 2**32), splits=write_sizes)
def test_the_file_does_not_depend_on_the_write_sizes(monkeypatch, size, seed, splits):
    """With the randomness pinned, any split of the writes gives the very same bytes."""
    plain = plaintext(size, seed)

    def encrypt(writes: list[bytes]) -> bytes:
        out = io.BytesIO()
        with monkeypatch.context() as patch:
            patch.setattr(os, "urandom", random.Random(seed).randbytes)  # key, nonce, salt
            # the file key is read from /dev/urandom into memory that can be wiped
            patch.setattr(vault.writer, "_random_key", lambda n: bytearray(os.urandom(n)))
            writer = vault.Writer(vault.StreamSink(out), [vault.ScryptRecipient("pw", 2)])
            for piece in writes:
                writer.write(piece)
            writer.close()
        return out.getvalue()

    assert encrypt(pieces(plain, splits)) == encrypt([plain])


# --- random access ----------------------------------------------------------------------

near_a_boundary = st.builds(lambda k, d: k * CHUNK + d, st.integers(0, 5), st.integers(-20, 20))
operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("seek"),
            st.one_of(near_a_boundary, st.integers(-3 * CHUNK, 6 * CHUNK)),
            st.sampled_from([io.SEEK_SET, io.SEEK_CUR, io.SEEK_END]),
        ),
        st.tuples(
            st.sampled_from(["read", "readinto"]),
            st.one_of(st.integers(-1, 40), st.integers(0, 3 * CHUNK), near_a_boundary),
            st.just(0),
        ),
    ),
    min_size=1,
    max_size=15,
)


@PROPERTY
@given(size=sizes, seed=st.integers(0, 2**32), ops=operations)
def test_random_access_equals_slicing(tmp_path, size, seed, ops):
    plain = plaintext(size, seed)
    path = write_file(fresh(tmp_path), plain, durable=False)
    try:
        with vault.open_file(path, [OWNER]) as reader:
            assert reader.size == len(plain)
            assert reader.seekable() and reader.readable()
            pos = 0
            for op, value, whence in ops:
                if op == "seek":
                    target = {io.SEEK_SET: 0, io.SEEK_CUR: pos, io.SEEK_END: size}[whence] + value
                    if target < 0:
                        with pytest.raises(ValueError):
                            reader.seek(value, whence)
                    else:
                        assert reader.seek(value, whence) == target
                        pos = target
                elif op == "read":
                    want = plain[pos:] if value < 0 else plain[pos : pos + value]
                    assert reader.read(value) == want
                    pos += len(want)
                else:
                    buffer = bytearray(max(0, value))
                    want = plain[pos : pos + len(buffer)]
                    assert reader.readinto(buffer) == len(want)
                    assert bytes(buffer[: len(want)]) == want
                    pos += len(want)
                assert reader.tell() == pos
    finally:
        path.unlink()


def test_reads_across_every_chunk_boundary(tmp_path):
    plain = os.urandom(3 * CHUNK + 777)
    path = write_file(tmp_path / "clip.age", plain)
    with vault.open_file(path, [OWNER]) as reader:
        for boundary in (CHUNK, 2 * CHUNK, 3 * CHUNK):
            for before, after in ((1, 1), (100, 5000), (CHUNK, CHUNK)):
                reader.seek(boundary - before)
                assert reader.read(before + after) == plain[boundary - before : boundary + after]
        reader.seek(-10, io.SEEK_END)
        assert reader.read(1000) == plain[-10:]
        assert reader.read(1) == b""
        reader.seek(5, io.SEEK_END)  # past the end is allowed, and reads nothing
        assert reader.tell() == len(plain) + 5
        assert reader.read() == b""
        reader.seek(CHUNK - 3)
        reader.seek(6, io.SEEK_CUR)
        assert reader.read(4) == plain[CHUNK + 3 : CHUNK + 7]
        reader.seek(-8, io.SEEK_CUR)
        assert reader.read(8) == plain[CHUNK - 1 : CHUNK + 7]


def test_a_closed_reader_reads_nothing(tmp_path):
    """Like every file object, a closed Reader refuses to read, and lets go of its plaintext.

    Reader.close() keeps the last decrypted chunk, and readinto never checks
    ``closed``: a read after close() still returns plaintext from that chunk.
    """
    plain = os.urandom(100)
    path = write_file(tmp_path / "thumb.jpg.age", plain)
    reader = vault.open_file(path, [OWNER])
    reader.close()
    with pytest.raises(ValueError, match="closed"):
        reader.read()


# --- every flipped byte is caught ---------------------------------------------------------


def flipped(data: bytes, index: int, mask: int) -> bytes:
    bad = bytearray(data)
    bad[index] ^= mask
    return bytes(bad)


@pytest.mark.parametrize("size", [0, 2 * CHUNK + 100])
@pytest.mark.parametrize("recipients", [1, 3])
def test_every_flipped_header_byte_is_caught(tmp_path, size, recipients):
    others = [vault.X25519Identity.generate().recipient for _ in range(recipients - 1)]
    data = vault.encrypt_bytes(os.urandom(size), [*others, OWNER.recipient])
    header = payload_start(data) - NONCE
    path = tmp_path / "clip.age"
    for index in range(header):
        for mask in (0x01, 0x20, 0xFF):
            bad = flipped(data, index, mask)
            path.write_bytes(bad)
            with pytest.raises(HEADER_ERRORS) as caught:
                vault.open_file(path, [OWNER])
            assert str(path) in str(caught.value)
            released, error = sequential(bad)
            assert isinstance(error, HEADER_ERRORS), (index, mask, error)
            assert released == b""


def payload_positions(data: bytes) -> list[int]:
    """The nonce, the first 64 bytes and the tag of every chunk, and the last 64 bytes."""
    start = payload_start(data)
    chunks = -(-(len(data) - start) // SEALED)
    positions = set(range(start - NONCE, start))
    for index in range(chunks):
        begin = start + index * SEALED
        end = min(len(data), begin + SEALED)
        positions.update(range(begin, min(end, begin + 64)))
        positions.update(range(end - TAG_SIZE, end))
    positions.update(range(max(start, len(data) - 64), len(data)))
    return sorted(positions)


def assert_flip_is_caught(path: Path, bad: bytes, plain: bytes, index: int) -> None:
    """A payload byte flipped at ``index``: both read paths fail at the right chunk and
    release only authentic plaintext from the chunks before it."""
    start = payload_start(bad)
    last = max(0, -(-len(plain) // CHUNK) - 1)
    damaged = 0 if index < start else (index - start) // SEALED  # the nonce spoils chunk 0 on

    released, error = sequential(bad)
    assert isinstance(error, vault.PayloadError), (index, error)
    assert not isinstance(error, vault.TruncatedError), (index, error)
    assert error.chunk == damaged
    assert released == plain[: damaged * CHUNK]

    path.write_bytes(bad)
    try:
        reader = vault.open_file(path, [OWNER])
    except vault.PayloadError as err:  # opening checks the final chunk
        assert damaged == last or index < start, (index, err)
        assert not isinstance(err, vault.TruncatedError)
        assert str(path) in str(err)
        return
    with reader:
        assert damaged != last and index >= start
        with pytest.raises(vault.PayloadError) as caught:
            reader.read()
        assert caught.value.chunk == damaged and str(path) in str(caught.value)
        for other in range(last + 1):  # the damage stays in its chunk
            if other != damaged:
                reader.seek(other * CHUNK)
                assert reader.read(CHUNK) == plain[other * CHUNK : (other + 1) * CHUNK]
        reader.seek(damaged * CHUNK + 1)
        with pytest.raises(vault.PayloadError):
            reader.read(1)


@pytest.mark.parametrize("size", [0, 1, 3 * CHUNK, 2 * CHUNK + 100])
def test_flipped_payload_bytes_are_caught(tmp_path, size):
    plain = os.urandom(size)
    data = vault.encrypt_bytes(plain, [OWNER.recipient])
    path = tmp_path / "clip.age"
    for index in payload_positions(data):
        for mask in (0x01, 0x80):
            assert_flip_is_caught(path, flipped(data, index, mask), plain, index)


@PROPERTY
@given(data=st.data())
def test_any_flipped_byte_anywhere_is_caught(tmp_path, data):
    size = data.draw(st.sampled_from([0, 1, CHUNK, 2 * CHUNK + 100]), label="size")
    plain = plaintext(size, data.draw(st.integers(0, 2**32), label="seed"))
    encrypted = vault.encrypt_bytes(plain, [OWNER.recipient])
    index = data.draw(st.integers(0, len(encrypted) - 1), label="index")
    mask = data.draw(st.integers(1, 255), label="mask")
    bad = flipped(encrypted, index, mask)
    path = fresh(tmp_path)
    try:
        if index < payload_start(encrypted) - NONCE:
            path.write_bytes(bad)
            with pytest.raises(HEADER_ERRORS):
                vault.open_file(path, [OWNER])
            assert isinstance(sequential(bad)[1], HEADER_ERRORS)
        else:
            assert_flip_is_caught(path, bad, plain, index)
    finally:
        path.unlink(missing_ok=True)


# --- truncation -------------------------------------------------------------------------


@pytest.mark.parametrize("size", [4 * CHUNK + 1000, 3 * CHUNK])
def test_cut_at_every_chunk_boundary(tmp_path, size):
    plain = os.urandom(size)
    data = vault.encrypt_bytes(plain, [OWNER.recipient])
    start = payload_start(data)
    full_chunks = -(-size // CHUNK) - 1  # every chunk before the final one
    path = tmp_path / "clip.age"
    for k in range(full_chunks + 1):  # keep k whole chunks; the final chunk is gone
        cut = data[: start + k * SEALED]
        path.write_bytes(cut)
        with pytest.raises(vault.TruncatedError) as caught:
            vault.open_file(path, [OWNER])
        # random access checks only the end, so it does not claim the prefix is intact
        assert caught.value.chunk == k and caught.value.authenticated is None
        assert str(path) in str(caught.value)

        released, error = sequential(cut)
        assert isinstance(error, vault.TruncatedError), (k, error)
        assert (error.chunk, error.authenticated) == (k, k * CHUNK)
        assert released == plain[: k * CHUNK]

        got, report = recovered(path)
        assert got == plain[: k * CHUNK]
        assert report.plaintext_bytes == k * CHUNK and report.chunks == k
        assert report.complete is False and report.lost_bytes == 0
        assert isinstance(report.error, vault.TruncatedError)
        assert str(path) in str(report.error)


@pytest.mark.parametrize("into", [1, TAG_SIZE - 1, TAG_SIZE, TAG_SIZE + 1, 1000, SEALED - 1])
@pytest.mark.parametrize("k", [0, 2])
def test_cut_inside_a_chunk(tmp_path, k, into):
    plain = os.urandom(3 * CHUNK + 500)
    data = vault.encrypt_bytes(plain, [OWNER.recipient])
    cut = data[: payload_start(data) + k * SEALED + into]
    path = tmp_path / "clip.age"
    path.write_bytes(cut)
    with pytest.raises(vault.PayloadError) as caught:
        vault.open_file(path, [OWNER])
    assert str(path) in str(caught.value)

    released, error = sequential(cut)
    assert isinstance(error, vault.PayloadError)
    assert error.chunk == k
    assert released == plain[: k * CHUNK]

    got, report = recovered(path)
    assert got == plain[: k * CHUNK]
    assert (report.chunks, report.plaintext_bytes) == (k, k * CHUNK)
    assert report.complete is False and report.lost_bytes == into
    assert f"recovered {k * CHUNK} bytes ({k} chunks); {into} bytes after them" in (
        report.describe()
    )


def test_cut_inside_the_header_or_the_nonce_is_a_header_error(tmp_path):
    data = vault.encrypt_bytes(os.urandom(CHUNK + 1), [OWNER.recipient])
    start = payload_start(data)
    path = tmp_path / "clip.age"
    for length in [0, 1, 21, 22, 50, start - NONCE - 1, start - NONCE, start - 1]:
        path.write_bytes(data[:length])
        with pytest.raises(vault.HeaderError):
            vault.open_file(path, [OWNER])
        assert isinstance(sequential(data[:length])[1], vault.HeaderError)
        with pytest.raises(vault.HeaderError):  # nothing to recover without a header
            recovered(path)


@pytest.mark.parametrize("size", [0, 1, CHUNK, 2 * CHUNK + 1])
def test_recover_gives_an_intact_file_whole(tmp_path, size):
    plain = os.urandom(size)
    path = write_file(tmp_path / "clip.age", plain)
    got, report = recovered(path)
    assert got == plain
    assert report.complete is True and report.error is None and report.lost_bytes == 0
    assert report.plaintext_bytes == size and report.chunks == max(1, -(-size // CHUNK))
    assert report.describe() == f"complete: {size} bytes, nothing lost"


def test_recover_stops_at_the_first_damaged_chunk(tmp_path):
    plain = os.urandom(4 * CHUNK + 10)
    data = vault.encrypt_bytes(plain, [OWNER.recipient])
    start = payload_start(data)
    path = tmp_path / "clip.age"
    path.write_bytes(flipped(data, start + SEALED + 100, 0x04))  # in chunk 1 of 5
    got, report = recovered(path)
    assert got == plain[:CHUNK]  # chunks 2-4 are intact, but past the damage nothing is trusted
    assert report.chunks == 1 and report.plaintext_bytes == CHUNK and not report.complete
    assert report.lost_bytes == len(data) - start - SEALED
    assert report.error.chunk == 1 and str(path) in str(report.error)
    assert report.describe().startswith(f"recovered {CHUNK} bytes (1 chunks); ")


def test_data_after_the_final_chunk_is_refused(tmp_path):
    plain = os.urandom(2 * CHUNK)
    data = vault.encrypt_bytes(plain, [OWNER.recipient]) + b"tail"
    path = tmp_path / "clip.age"
    path.write_bytes(data)
    with pytest.raises(vault.PayloadError):
        vault.open_file(path, [OWNER])
    released, error = sequential(data)
    assert isinstance(error, vault.PayloadError) and error.chunk == 2
    assert released == plain  # every chunk authenticated, but the file is not whole
    got, report = recovered(path)
    assert got == plain and report.complete is False and report.lost_bytes == 4


# --- crashes: .part files -----------------------------------------------------------------


def assert_part_holds_the_prefix(path: Path, plain: bytes, sealed_chunks: int) -> None:
    part = Path(str(path) + vault.PART_SUFFIX)
    assert part.exists() and not path.exists()
    got, report = recovered(part)
    assert got == plain[: sealed_chunks * CHUNK]
    assert report.chunks == sealed_chunks and report.complete is False
    assert report.plaintext_bytes == sealed_chunks * CHUNK and report.lost_bytes == 0
    with pytest.raises(vault.TruncatedError) as caught:  # never passes for a whole file
        vault.open_file(part, [OWNER])
    assert str(part) in str(caught.value)


def test_abort_leaves_a_recoverable_part(tmp_path):
    plain = os.urandom(3 * CHUNK + 500)
    path = tmp_path / "clip.mp4.age"
    writer = vault.create(path, [OWNER.recipient])
    writer.write(plain)
    writer.abort()
    assert writer.closed
    with pytest.raises(ValueError):
        writer.write(b"more")
    writer.close()  # after abort, close finishes nothing
    assert_part_holds_the_prefix(path, plain, 3)


@pytest.mark.parametrize(("size", "sealed_chunks"), [(0, 0), (CHUNK, 0), (3 * CHUNK, 2)])
def test_the_last_full_chunk_waits_for_more_data(tmp_path, size, sealed_chunks):
    """A full chunk may yet be the final one: it is sealed only when more data comes."""
    plain = os.urandom(size)
    path = tmp_path / "clip.age"
    writer = vault.create(path, [OWNER.recipient])
    writer.write(plain)
    writer.abort()
    assert_part_holds_the_prefix(path, plain, sealed_chunks)


def test_an_unclosed_writer_leaves_a_recoverable_part(tmp_path):
    plain = os.urandom(2 * CHUNK + 9)
    path = tmp_path / "clip.mp4.age"
    writer = vault.create(path, [OWNER.recipient])
    for piece in pieces(plain, [10, CHUNK, 7]):
        writer.write(piece)
    # the process is still writing (or the power just went): this is what is on disk
    assert_part_holds_the_prefix(path, plain, 2)
    del writer
    gc.collect()  # a writer nobody closed must not finish the file when collected
    assert_part_holds_the_prefix(path, plain, 2)


def test_an_exception_in_the_with_block_leaves_a_recoverable_part(tmp_path):
    plain = os.urandom(CHUNK + 1)
    path = tmp_path / "clip.age"
    with pytest.raises(RuntimeError), vault.create(path, [OWNER.recipient]) as writer:
        writer.write(plain)
        raise RuntimeError("the camera went away")
    assert_part_holds_the_prefix(path, plain, 1)


@PROPERTY
@given(size=sizes, seed=st.integers(0, 2**32), splits=write_sizes)
def test_abort_keeps_exactly_the_sealed_chunks(size, seed, splits):
    plain = plaintext(size, seed)
    out = io.BytesIO()
    writer = vault.Writer(vault.StreamSink(out), [OWNER.recipient])
    for piece in pieces(plain, splits):
        writer.write(piece)
    writer.abort()
    sealed_chunks = max(0, size - 1) // CHUNK  # all but the chunk still in RAM
    report = vault.Recovery()
    got = b"".join(vault.recover(io.BytesIO(out.getvalue()), [OWNER], report))
    assert got == plain[: sealed_chunks * CHUNK]
    assert report.chunks == sealed_chunks and not report.complete and report.lost_bytes == 0


def test_discard_removes_the_part(tmp_path):
    writer = vault.create(tmp_path / "clip.age", [OWNER.recipient])
    writer.write(os.urandom(2 * CHUNK))
    writer.discard()
    assert list(tmp_path.iterdir()) == []


def test_a_stale_part_is_never_overwritten(tmp_path):
    path = tmp_path / "clip.mp4.age"
    part = tmp_path / ("clip.mp4.age" + vault.PART_SUFFIX)
    part.write_bytes(b"an earlier clip, cut short")
    with pytest.raises(vault.UnfinishedFileError) as caught:
        vault.create(path, [OWNER.recipient])
    assert str(part) in str(caught.value) and "recover" in str(caught.value)
    assert part.read_bytes() == b"an earlier clip, cut short"
    assert not path.exists()


# --- sealed chunks reach the OS at once; fsync follows the clock --------------------------


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fsyncs(monkeypatch) -> list[str]:
    """Every os.fsync from now on, as "file" or "dir"; the real fsync still runs."""
    calls: list[str] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        calls.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    return calls


def join_fsync_threads() -> None:
    """Wait for the writer's helper fsync threads (named vault-fsync) to end: no sleeping."""
    for thread in threading.enumerate():
        if thread.name == "vault-fsync":
            thread.join(timeout=30)
            assert not thread.is_alive()


def test_sealed_chunks_reach_the_os_at_once(tmp_path, fsyncs):
    clock = FakeClock()
    plain = os.urandom(3 * CHUNK + 1)
    path = tmp_path / "clip.mp4.age"
    writer = vault.create(path, [OWNER.recipient], fsync_interval=2.0, clock=clock)
    try:
        assert fsyncs == ["dir"]  # the new .part's entry survives a power cut
        writer.write(plain)
        part = Path(str(path) + vault.PART_SUFFIX)
        on_disk = part.read_bytes()
        # header and nonce, then all three full chunks: the byte after them sealed the third
        assert len(on_disk) == payload_start(on_disk) + 3 * SEALED
        assert sequential(on_disk)[0] == plain[: 3 * CHUNK]
        join_fsync_threads()
        assert fsyncs == ["dir"]  # no time passed, far below 4 MiB: no fsync yet
        clock.now += 2.5
        writer.write(os.urandom(CHUNK))  # seals the chunk held back, at t+2.5
        join_fsync_threads()
        assert fsyncs == ["dir", "file"]
    finally:
        writer.discard()


def test_fsync_follows_the_clock(tmp_path, fsyncs):
    clock = FakeClock()
    sink = vault.AtomicFileSink(tmp_path / "clip.age", 2.0, clock)  # the sink create() uses
    writer = vault.Writer(sink, [OWNER.recipient])
    writer.write(os.urandom(CHUNK + 1))  # one chunk sealed at t=0

    def after_a_chunk_at(now: float) -> list[str]:
        clock.now = now
        writer.write(os.urandom(CHUNK))  # seals one chunk, keeps one in RAM
        sink.wait_synced()  # the fsync runs in a helper thread
        return [call for call in fsyncs if call == "file"]

    assert after_a_chunk_at(1000.0) == []
    assert after_a_chunk_at(1001.9) == []
    assert after_a_chunk_at(1002.1) == ["file"]  # 2.1 s since the .part was made
    assert after_a_chunk_at(1002.1) == ["file"]
    assert after_a_chunk_at(1004.0) == ["file"]  # 1.9 s since that fsync
    assert after_a_chunk_at(1004.2) == ["file"] * 2
    writer.close()  # fsync the file before the rename, then the folder after it
    assert fsyncs[-2:] == ["file", "dir"] and fsyncs.count("file") == 3
    assert (tmp_path / "clip.age").exists()


def test_fsync_after_so_many_bytes_whatever_the_clock(tmp_path, fsyncs):
    sink = vault.AtomicFileSink(tmp_path / "clip.age", 2.0, FakeClock(), fsync_bytes=3 * SEALED)
    writer = vault.Writer(sink, [OWNER.recipient])
    header = (tmp_path / "clip.age.part").stat().st_size
    for _ in range(7):
        writer.write(os.urandom(CHUNK))
        sink.wait_synced()
    assert (tmp_path / "clip.age.part").stat().st_size == header + 6 * SEALED
    assert fsyncs.count("file") == 2  # after header+3 chunks, then 3 more
    writer.abort()  # a crash stays recoverable: the prefix is made durable
    assert fsyncs.count("file") == 3


def test_abort_makes_the_prefix_durable(tmp_path, fsyncs):
    writer = vault.create(tmp_path / "clip.age", [OWNER.recipient], clock=FakeClock())
    writer.write(os.urandom(2 * CHUNK + 1))
    writer.abort()
    assert fsyncs == ["dir", "file"]


def test_not_durable_never_fsyncs(tmp_path, fsyncs):
    clock = FakeClock()
    plain = os.urandom(4 * CHUNK + 1)
    writer = vault.create(tmp_path / "clip.age", [OWNER.recipient], clock=clock, durable=False)
    writer.write(plain[: CHUNK + 1])
    clock.now += 100
    writer.write(plain[CHUNK + 1 :])
    writer.close()
    join_fsync_threads()
    assert fsyncs == []
    assert read_file(tmp_path / "clip.age") == plain


# --- no plaintext at rest (law 1) ---------------------------------------------------------

WINDOW = 32


def plaintext_on_disk(root: Path, secrets: list[bytes]) -> list[str]:
    """Files under ``root`` holding any 32-byte run of any of ``secrets``, at every offset
    (a secret shorter than that is looked for whole)."""
    runs = {secret[i : i + WINDOW] for secret in secrets for i in range(len(secret) - WINDOW + 1)}
    short = [secret for secret in secrets if len(secret) < WINDOW]
    hits = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if any(secret in data for secret in short) or any(
            data[i : i + WINDOW] in runs for i in range(len(data) - WINDOW + 1)
        ):
            hits.append(str(path))
    return hits


def test_the_scanner_finds_plaintext(tmp_path):
    secret = os.urandom(1000)
    (tmp_path / "leak.bin").write_bytes(os.urandom(50) + secret[500:532] + os.urandom(50))
    assert plaintext_on_disk(tmp_path, [secret]) == [str(tmp_path / "leak.bin")]


def test_no_plaintext_left_behind(tmp_path):
    plain = os.urandom(200_000)
    clips = tmp_path / "clips"
    clips.mkdir()
    with vault.create(clips / "done.mp4.age", [OWNER.recipient]) as writer:
        for piece in pieces(plain, [1, 1000, CHUNK, 3]):
            writer.write(piece)
    live = vault.create(clips / "live.mp4.age", [OWNER.recipient])
    live.write(plain)
    assert plaintext_on_disk(tmp_path, [plain]) == []  # mid-clip, as a power cut finds it
    live.abort()
    cut = vault.create(clips / "cut.mp4.age", [OWNER.recipient])
    cut.write(plain[:CHUNK])
    cut.abort()
    assert sorted(p.name for p in clips.iterdir()) == [
        "cut.mp4.age.part",
        "done.mp4.age",
        "live.mp4.age.part",
    ]
    assert plaintext_on_disk(tmp_path, [plain]) == []
    assert read_file(clips / "done.mp4.age") == plain


def test_no_identity_or_passphrase_left_behind(tmp_path):
    identity = vault.X25519Identity.generate()
    text = f"# created by a test\n{identity.secret()}\n".encode()
    passphrase = "a passphrase nobody may read back"
    path = tmp_path / "identity.age"
    with vault.create(path, [vault.ScryptRecipient(passphrase, work_factor=10)]) as writer:
        writer.write(text)
    assert plaintext_on_disk(tmp_path, [identity.secret().encode(), passphrase.encode()]) == []
    assert vault.load_identities(path, lambda: passphrase)[0].secret() == identity.secret()


# --- several recipients -----------------------------------------------------------------


def test_each_of_three_recipients_opens_the_file_alone(tmp_path):
    people = [vault.X25519Identity.generate() for _ in range(3)]
    plain = os.urandom(CHUNK + 10)
    path = write_file(tmp_path / "clip.mp4.age", plain, [p.recipient for p in people])
    for person in people:
        assert read_file(path, [person]) == plain
        assert sequential(path.read_bytes(), [person]) == (plain, None)
    stranger = vault.X25519Identity.generate()
    with pytest.raises(vault.NoIdentityMatchError) as caught:
        vault.open_file(path, [stranger])
    message = str(caught.value)
    assert str(path) in message
    assert "AGE-SECRET-KEY" not in message.upper()
    assert all(p.secret() not in message for p in [*people, stranger])
    with pytest.raises(vault.NoIdentityMatchError):  # strangers together fare no better
        vault.open_file(path, [stranger, vault.X25519Identity.generate()])
    assert read_file(path, [stranger, people[2]]) == plain  # any one that matches is enough


def test_a_passphrase_cannot_join_other_recipients(tmp_path):
    with pytest.raises(ValueError, match="cannot be combined"):
        vault.create(
            tmp_path / "clip.age", [OWNER.recipient, vault.ScryptRecipient("pw", work_factor=10)]
        )
    assert list(tmp_path.iterdir()) == []  # and no .part is left
    with pytest.raises(ValueError, match="at least one recipient"):
        vault.create(tmp_path / "clip.age", [])
    assert list(tmp_path.iterdir()) == []


# --- error messages never carry a secret --------------------------------------------------


def secret_runs(secret: str, length: int = 8) -> set[str]:
    """Every ``length``-character run of the key data after ``AGE-SECRET-KEY-1``."""
    data = secret[len("AGE-SECRET-KEY-1") :]
    return {data[i : i + length] for i in range(len(data) - length + 1)}


def assert_no_secret(message: str, secret: str) -> None:
    folded = message.upper()
    assert not any(run in folded for run in secret_runs(secret.upper())), message


def test_a_wrong_passphrase_is_not_echoed(tmp_path):
    right, wrong = "the right passphrase 1", "a wrong guess 2"
    path = tmp_path / "identity.age"
    with vault.create(path, [vault.ScryptRecipient(right, work_factor=10)]) as writer:
        writer.write(OWNER.secret().encode())
    with pytest.raises(vault.NoIdentityMatchError) as caught:
        vault.open_file(path, [vault.ScryptIdentity(wrong)])
    with pytest.raises(vault.NoIdentityMatchError) as loading:
        vault.load_identities(path, lambda: wrong)
    for err in (caught.value, loading.value):
        message = f"{err} {err!r}"
        assert str(path) in message
        assert right not in message and wrong not in message
        assert_no_secret(message, OWNER.secret())
    assert wrong not in repr(vault.ScryptIdentity(wrong))
    assert right not in repr(vault.ScryptRecipient(right, 10))
    assert OWNER.secret() not in repr(OWNER) and OWNER.secret() not in str(OWNER)


def damaged_secrets(secret: str) -> list[str]:
    """A secret key as people and programs mangle it: typos, cuts, case, extra bits."""
    swap = "q" if secret[-1] != "Q" else "p"
    middle = len(secret) // 2
    letter = next(i for i in range(middle, len(secret)) if secret[i].isalpha())
    return [
        secret[:-1] + swap.upper(),  # a typo in the checksum
        secret[:middle] + ("Z" if secret[middle] != "Z" else "Y") + secret[middle + 1 :],
        secret[:-3],  # cut short
        secret + "Q",  # one too many
        secret[:letter] + secret[letter].lower() + secret[letter + 1 :],  # mixed case
        secret.lower(),  # all lower case: age wants upper case
        secret.replace("AGE-SECRET-KEY-1", "AGE-SECRET-KEY-2"),
        secret[:middle] + "!" + secret[middle + 1 :],  # outside the alphabet
        "AGE-SECRET-KEY-1" + secret[len("AGE-SECRET-KEY-1") :][::-1],
        str(OWNER.recipient),  # a recipient where an identity belongs
    ]


@pytest.mark.parametrize("case", range(10))
def test_a_malformed_identity_is_not_echoed(tmp_path, case):
    secret = OWNER.secret()
    bad = damaged_secrets(secret)[case]
    with pytest.raises(vault.KeyFormatError) as caught:
        vault.X25519Identity.parse(bad)
    assert_no_secret(f"{caught.value} {caught.value!r}", secret)
    key_file = tmp_path / "identity.txt"
    key_file.write_text(f"# created: today\n\n{bad}\n")
    with pytest.raises(vault.KeyFormatError) as caught:
        vault.load_identities(key_file, lambda: pytest.fail("a plain key file asks for nothing"))
    message = str(caught.value)
    assert str(key_file) in message and "line 3" in message
    assert_no_secret(message, secret)


@pytest.mark.parametrize(
    "given_as",
    [str.strip, str.lower, lambda s: f"  {s}\n", lambda s: s[:-1], lambda s: s + "x"],
    ids=["as-is", "lower", "padded", "cut", "extra"],
)
def test_a_secret_given_as_a_recipient_is_not_echoed(given_as):
    secret = OWNER.secret()
    with pytest.raises(vault.KeyFormatError) as caught:
        vault.X25519Recipient.parse(given_as(secret))
    assert_no_secret(f"{caught.value} {caught.value!r}", secret)
    with pytest.raises(vault.KeyFormatError) as caught:
        vault.parse_recipients(f"{OWNER.recipient}\n{given_as(secret)}\n", "recipients.txt")
    assert "recipients.txt" in str(caught.value) and "line 2" in str(caught.value)
    assert_no_secret(str(caught.value), secret)


@PROPERTY
@given(data=st.data())
def test_no_mangled_secret_is_ever_echoed(data):
    secret = OWNER.secret()
    chars = list(secret)
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        at = data.draw(st.integers(0, len(chars) - 1), label="at")
        chars[at] = data.draw(st.sampled_from("QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7Lqz!- 1"))
    bad = "".join(chars)
    for parse in (vault.X25519Identity.parse, vault.X25519Recipient.parse):
        try:
            parsed = parse(bad)
        except vault.KeyFormatError as err:
            assert_no_secret(f"{err} {err!r}", secret)
        else:  # only an edit that changed nothing (or case outside the key) may parse
            assert isinstance(parsed, vault.X25519Identity) and parsed.secret() == secret
