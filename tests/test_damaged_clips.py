"""A damaged clip is named with the damage's place (chunk and byte of its file) and the way
to get back the rest, wherever the owner meets it: `doorbell decrypt`, the vault's own
errors. (The device never decrypts: the owner's browser meets damage in its own player.)"""

import os

import pytest

from doorbell import vault
from doorbell.cli import main
from doorbell.store import ClipStore
from doorbell.vault.stream import CHUNK_SIZE, SEALED_CHUNK_SIZE

PLAIN = os.urandom(3 * CHUNK_SIZE + 5000)  # chunks 0-2 whole, chunk 3 the last


@pytest.fixture
def store(data_dir):
    store = ClipStore.open(data_dir)
    yield store
    store.close()


def add_clip(store: ClipStore, body: bytes) -> str:
    recording = store.new_clip("bell", start=1_700_000_000)
    recording.video.write(body)
    return recording.finish(end=1_700_000_012).id


def payload_start(path) -> int:
    """Where chunk 0 starts: the file's size less its sealed chunks."""
    return path.stat().st_size - (len(PLAIN) + 4 * 16)


def damaged_clip(store, chunk: int) -> tuple[str, object, int]:
    """A finished clip with one byte flipped in ``chunk``; its id, file and chunk's offset."""
    clip_id = add_clip(store, PLAIN)
    path = store.path(clip_id, ".mp4.age")
    offset = payload_start(path) + chunk * SEALED_CHUNK_SIZE
    data = bytearray(path.read_bytes())
    data[offset + 100] ^= 1
    path.write_bytes(bytes(data))
    return clip_id, path, offset


def test_a_damaged_last_chunk_names_the_file_the_chunk_its_byte_and_the_remedy(store, identities):
    """Caught as the file opens (the final chunk is checked then)."""
    _, path, offset = damaged_clip(store, 3)
    with pytest.raises(vault.PayloadError) as caught:
        vault.open_file(path, identities)
    assert str(caught.value) == (
        f"{path}: payload failure: chunk 3 (the last) fails authentication: damaged, or cut "
        f"short (chunk 3, at byte {offset} of the file); the intact part before it comes "
        f"back with 'doorbell decrypt --recover -i IDENTITY -o OUT {path}'"
    )


def test_a_damaged_first_chunk_says_nothing_before_it_is_intact(store, identities):
    """Caught as its bytes are read."""
    _, path, offset = damaged_clip(store, 0)
    with vault.open_file(path, identities) as reader, pytest.raises(vault.PayloadError) as caught:
        reader.read(100)
    assert (caught.value.chunk, caught.value.offset) == (0, offset)
    assert caught.value.remedy() == "nothing before it is intact"


def test_a_damaged_header_says_nothing_can_be_decrypted(store, identities):
    clip_id = add_clip(store, PLAIN)
    path = store.path(clip_id, ".mp4.age")
    data = path.read_bytes()
    mac = data.index(b"\n--- ") + 10
    path.write_bytes(data[:mac] + (b"A" if data[mac : mac + 1] != b"A" else b"B") + data[mac + 1 :])
    with pytest.raises(vault.HeaderMacError) as caught:
        vault.open_file(path, identities)
    assert str(caught.value) == (
        f"{path}: header MAC failure: the header was modified after it was written; its key "
        "cannot be trusted, so nothing in it can be decrypted (a backup copy of the file may "
        "be whole)"
    )


def test_decrypt_names_the_chunk_and_recover_gives_back_the_rest(
    data_dir, identities, tmp_path, capsys
):
    clip = tmp_path / "clip.mp4.age"
    with vault.create(clip, [i.recipient for i in identities]) as writer:
        writer.write(PLAIN)
    data = bytearray(clip.read_bytes())
    offset = len(data) - (len(PLAIN) + 4 * 16) + 2 * SEALED_CHUNK_SIZE
    data[offset + 7] ^= 1  # chunk 2 of 4
    clip.write_bytes(bytes(data))
    identity = tmp_path / "identity.txt"
    identity.write_text(identities[0].secret() + "\n")
    assert main(["decrypt", "-i", str(identity), "-o", str(tmp_path / "out"), str(clip)]) == 1
    assert capsys.readouterr().err == (
        f"doorbell: {clip}: payload failure: chunk 2 fails authentication: damaged, or cut "
        f"short (chunk 2, at byte {offset} of the file); the intact part before it comes "
        f"back with 'doorbell decrypt --recover -i IDENTITY -o OUT {clip}'\n"
    )
    argv = ["decrypt", "--recover", "-i", str(identity), "-o", str(tmp_path / "out"), str(clip)]
    assert main(argv) == 0
    assert (tmp_path / "out").read_bytes() == PLAIN[: 2 * CHUNK_SIZE]
    assert "recovered 131072 bytes (2 chunks)" in capsys.readouterr().err


def test_decrypt_says_a_damaged_header_leaves_nothing_to_decrypt(identities, tmp_path, capsys):
    clip = tmp_path / "clip.mp4.age"
    with vault.create(clip, [i.recipient for i in identities]) as writer:
        writer.write(PLAIN)
    clip.write_bytes(clip.read_bytes().replace(b"v1\n", b"v1\n-> grease x\n\n", 1))
    identity = tmp_path / "identity.txt"
    identity.write_text(identities[0].secret() + "\n")
    assert main(["decrypt", "-i", str(identity), "-o", str(tmp_path / "out"), str(clip)]) == 1
    assert capsys.readouterr().err == (
        f"doorbell: {clip}: header MAC failure: the header was modified after it was written; "
        "its key cannot be trusted, so nothing in it can be decrypted (a backup copy of the "
        "file may be whole)\n"
    )


@pytest.mark.parametrize("existing", ["none", "file", "fifo"])
def test_a_failed_decrypt_never_harms_what_the_output_named(identities, tmp_path, existing):
    """`-o OUT` with a damaged input: an existing file is left as it was, a device or FIFO
    is never removed (a trial run deleted /dev/null this way), and no partial file stays.
    A good input replaces the file whole."""
    clip = tmp_path / "clip.mp4.age"
    with vault.create(clip, [i.recipient for i in identities]) as writer:
        writer.write(PLAIN)
    good = clip.read_bytes()
    bad = bytearray(good)
    bad[-100] ^= 1  # the last chunk
    damaged = tmp_path / "damaged.mp4.age"
    damaged.write_bytes(bytes(bad))
    identity = tmp_path / "identity.txt"
    identity.write_text(identities[0].secret() + "\n")
    out = tmp_path / "out"
    if existing == "file":
        out.write_bytes(b"precious")
    elif existing == "fifo":
        os.mkfifo(out)
        reader = os.open(out, os.O_RDONLY | os.O_NONBLOCK)  # so opening it to write works
    try:
        if existing != "fifo":  # (a FIFO nobody reads would block the plaintext before it)
            assert main(["decrypt", "-i", str(identity), "-o", str(out), str(damaged)]) == 1
        assert main(["decrypt", "-i", str(identity), "-o", str(out), str(identity)]) == 1
        assert not (tmp_path / "out.part").exists()
        if existing == "none":
            assert not out.exists()
        elif existing == "file":
            assert out.read_bytes() == b"precious"
        else:
            assert out.is_fifo()
    finally:
        if existing == "fifo":
            os.close(reader)
            out.unlink()
    assert main(["decrypt", "-i", str(identity), "-o", str(out), str(clip)]) == 0
    assert out.read_bytes() == PLAIN and oct(out.stat().st_mode & 0o777) == "0o600"


def test_recover_gives_a_video_that_plays_to_its_end(identities, tmp_path, capsys):
    """`decrypt --recover` of a damaged clip, as its message advises: the intact prefix cut
    back to its last whole fragment, so a strict decoder (every error raised, as Chromium
    and `ffmpeg -xerror`) plays it to its end; stderr says how much was cut."""
    import numpy as np

    from doorbell.codec import H264Encoder, Mp4Writer
    from tests.test_disk_full import strict_frames

    encoder = H264Encoder(320, 240, 10.0)
    clip = tmp_path / "clip.mp4.age"
    noise = np.random.default_rng(7)
    with vault.create(clip, [i.recipient for i in identities]) as writer:
        mp4 = Mp4Writer(writer, encoder.stream_info())
        for n in range(60):  # noise: about 30 kB a frame, so chunks end inside fragments
            picture = noise.integers(0, 255, (240, 320, 3), dtype=np.uint8)
            for packet in encoder.encode(picture, n / 10):
                mp4.write(packet)
        for packet in encoder.flush():
            mp4.write(packet)
        mp4.close()
    data = bytearray(clip.read_bytes())
    data[len(data) // 2] ^= 1
    clip.write_bytes(bytes(data))
    identity = tmp_path / "identity.txt"
    identity.write_text(identities[0].secret() + "\n")
    out = tmp_path / "out.mp4"
    assert main(["decrypt", "--recover", "-i", str(identity), "-o", str(out), str(clip)]) == 0
    err = capsys.readouterr().err
    assert "to its last whole fragment" in err
    frames = strict_frames(out.read_bytes())
    assert 15 <= frames < 60  # the part before the damage, every frame of it whole
