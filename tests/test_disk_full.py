"""A full disk (a real tmpfs that fills up) never corrupts: files end at their last whole
chunk, retention frees space, recording goes on, nothing stored is harmed (law 5)."""

import os
import subprocess

import pytest

from doorbell import vault
from doorbell.vault.stream import CHUNK_SIZE


@pytest.fixture
def owner():
    identity = vault.X25519Identity.generate()
    return identity, identity.recipient


def fill(path, leave: int) -> None:
    """Fill the file system holding ``path`` until ``leave`` bytes are free."""
    with open(path, "wb") as file:
        while (free := os.statvfs(path).f_bavail * os.statvfs(path).f_frsize) > leave:
            file.write(b"\0" * min(free - leave, 1 << 20))


def write_until_full(path, recipient, data: bytes) -> vault.DiskFullError:
    writer = vault.create(path, [recipient])
    with pytest.raises(vault.DiskFullError) as info:
        for start in range(0, len(data), 10_000):
            writer.write(data[start : start + 10_000])
        writer.close()
    return info.value


@pytest.mark.cli
def test_the_file_ends_at_its_last_whole_chunk(small_disk, owner, tmp_path):
    """Writing 2 MB onto 1 MB: a whole age file of the chunks that fit, which `age` opens."""
    identity, recipient = owner
    disk = small_disk(1 << 20)
    data = os.urandom(2 << 20)
    err = write_until_full(disk / "clip.age", recipient, data)
    assert err.filename == str(disk / "clip.age") and "ended early" in str(err)
    assert err.kept > 0 and err.kept % CHUNK_SIZE == 0
    assert not (disk / "clip.age.part").exists()
    keyfile = tmp_path / "key.txt"
    keyfile.write_text(identity.secret() + "\n")
    out = subprocess.run(
        ["age", "-d", "-i", str(keyfile), str(disk / "clip.age")],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    assert out == data[: err.kept]


def test_a_full_disk_at_the_final_chunk_still_finishes(small_disk, owner):
    """Space runs out just at the final chunk: the chunk before is sealed again as the final one."""
    identity, recipient = owner
    disk = small_disk(1 << 20)
    page = os.statvfs(disk).f_frsize
    # Room for the header and three whole chunks (49 pages), not for a final chunk of 4000 B.
    fill(disk / "filler", leave=-(-(200 + 3 * (CHUNK_SIZE + 16)) // page) * page)
    data = os.urandom(3 * CHUNK_SIZE + 4000)
    err = write_until_full(disk / "clip.age", recipient, data)
    assert err.kept == 3 * CHUNK_SIZE
    with vault.open_file(disk / "clip.age", [identity]) as reader:
        assert reader.read() == data[: 3 * CHUNK_SIZE]


def test_nothing_whole_written_removes_the_file(small_disk, owner):
    """A full disk before the first chunk is whole: no file at all, rather than a broken one."""
    _, recipient = owner
    disk = small_disk(256 << 10)
    fill(disk / "filler", leave=0)
    writer_error = None
    try:
        writer = vault.create(disk / "clip.age", [recipient])
        writer.write(os.urandom(3 * CHUNK_SIZE))
        writer.close()
    except vault.DiskFullError as err:
        writer_error = err
    assert writer_error is not None and writer_error.kept == 0
    assert sorted(p.name for p in disk.iterdir()) == ["filler"]


def test_other_write_errors_are_not_taken_for_a_full_disk(tmp_path, owner):
    """Only ENOSPC and EDQUOT end a file early; anything else leaves the .part, recoverable."""
    assert vault.is_disk_full(OSError(28, "No space left on device"))
    assert vault.is_disk_full(OSError(122, "Disk quota exceeded"))
    assert not vault.is_disk_full(OSError(5, "Input/output error"))
    assert not vault.is_disk_full(ValueError())
