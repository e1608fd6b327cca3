"""The clip store: lifecycle, index rebuild, crash recovery, no plaintext at rest."""

import os
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from doorbell import vault
from doorbell.store import ClipNotFound, ClipStore, Keyring
from doorbell.store.keyring import (
    SMALL_DEVICE_KDF_MEMORY,
    affordable_work_factor,
    choose_work_factor,
    kdf_memory_cap,
)
from tests.conftest import PASSPHRASE, find_plaintext

VIDEO = os.urandom(300_000)
JPEG = b"\xff\xd8\xff\xe0" + os.urandom(5000)


def decrypted(store: ClipStore, clip_id: str, identities, suffix: str = ".mp4.age") -> bytes:
    """A clip's file (its video, or ``suffix``), decrypted here as its owner would: the
    store itself never decrypts."""
    with vault.open_file(store.path(clip_id, suffix), identities) as reader:
        return reader.read()


def record(store: ClipStore, trigger="bell", start=1000.0, end=1030.0, data=VIDEO):
    clip = store.new_clip(trigger, start=start)
    clip.write_thumbnail(JPEG)
    for i in range(0, len(data), 4096):  # the muxer writes in small pieces
        clip.video.write(data[i : i + 4096])
    return clip.finish(end=end)


def test_a_clip_round_trips_with_the_owner_identity(data_dir, identities):
    store = ClipStore.open(data_dir)
    clip = record(store)
    assert clip.state == "complete" and clip.trigger == "bell" and clip.duration == 30.0
    assert [c.id for c in store.list()] == [clip.id]
    with vault.open_file(store.path(clip.id, ".mp4.age"), identities) as video:
        assert video.size == len(VIDEO)
        video.seek(200_000)
        assert video.read(100) == VIDEO[200_000:200_100]
    assert decrypted(store, clip.id, identities, ".jpg.age") == JPEG
    names = sorted(os.listdir(data_dir / "clips"))
    assert names == [f"{clip.id}.jpg.age", f"{clip.id}.mp4.age"]  # not an MP4: no index
    assert clip.bytes == sum((data_dir / "clips" / n).stat().st_size for n in names)


def test_no_plaintext_anywhere_in_the_data_dir(data_dir, identities):
    store = ClipStore.open(data_dir)
    record(store)
    half = store.new_clip("motion", start=2000.0)
    half.video.write(VIDEO)
    half.abort()
    store.close()
    assert find_plaintext(data_dir, VIDEO) == []
    assert find_plaintext(data_dir, JPEG, window=16, step=101) == []
    secret = identities[0].secret().encode()
    assert find_plaintext(data_dir, secret, window=20, step=5) == []


def test_the_recorder_needs_only_public_keys(data_dir, identities):
    """Law 2: with identity.age gone, recording still works; only recipients are held."""
    (data_dir / "keys" / "identity.age").unlink()
    store = ClipStore.open(data_dir)
    clip = record(store)
    held = [v for v in vars(store).values() if isinstance(v, vault.X25519Identity)]
    assert held == []
    with vault.open_file(store.path(clip.id, ".mp4.age"), identities) as video:
        assert video.read() == VIDEO


def test_new_clips_follow_recipients_added_later(data_dir, tmp_path):
    store = ClipStore.open(data_dir)
    partner = vault.X25519Identity.generate()
    Keyring.in_data_dir(data_dir).add_recipient(partner.recipient, "partner")
    clip = record(store)
    with vault.open_file(store.path(clip.id, ".mp4.age"), [partner]) as video:
        assert video.read() == VIDEO


def test_ids_are_random_and_paths_cannot_escape(data_dir):
    store = ClipStore.open(data_dir)
    ids = {record(store, start=float(i)).id for i in range(5)}
    assert len(ids) == 5 and all(len(i) == 16 for i in ids)
    for bad in ("../keys/identity", "", "0" * 15, "ZZZZZZZZZZZZZZZZ", "0123456789abcdef"):
        with pytest.raises(ClipNotFound):
            store.get(bad)
        with pytest.raises(ClipNotFound):
            store.delete(bad)


def test_list_filters_and_orders_newest_first(data_dir):
    store = ClipStore.open(data_dir)
    a = record(store, "bell", start=100.0, end=110.0)
    b = record(store, "motion", start=200.0, end=210.0)
    c = record(store, "bell", start=300.0, end=310.0)
    assert [x.id for x in store.list()] == [c.id, b.id, a.id]
    assert [x.id for x in store.list(trigger="bell")] == [c.id, a.id]
    assert [x.id for x in store.list(before=300.0, limit=1)] == [b.id]
    assert [x.id for x in store.list(since=150.0, before=250.0)] == [b.id]


def test_keep_and_delete(data_dir):
    store = ClipStore.open(data_dir)
    clip = record(store)
    assert store.set_keep(clip.id, True).keep
    assert (data_dir / "clips" / f"{clip.id}.keep").exists()
    assert store.get(clip.id).keep
    store.delete(clip.id)
    assert os.listdir(data_dir / "clips") == []
    assert store.list() == []
    with pytest.raises(ClipNotFound):
        store.get(clip.id)


def test_a_missing_index_is_rebuilt_from_the_files(data_dir, identities):
    store = ClipStore.open(data_dir)
    kept = record(store, "bell", start=1000.0, end=1030.0)
    other = record(store, "motion", start=2000.0, end=2012.5)
    store.set_keep(kept.id, True)
    store.close()
    for suffix in ("", "-wal", "-shm"):
        (data_dir / f"index.sqlite3{suffix}").unlink(missing_ok=True)

    store = ClipStore.open(data_dir)
    assert store.report.rebuilt == "no index file"
    rows = {c.id: c for c in store.list()}
    assert rows[kept.id].keep and not rows[other.id].keep
    assert (rows[other.id].start, rows[other.id].end) == (2000.0, 2012.5)
    assert rows[kept.id].trigger == "unknown"  # the one fact only the index knew
    assert decrypted(store, other.id, identities) == VIDEO


def test_a_corrupt_index_is_moved_aside_and_rebuilt(data_dir):
    store = ClipStore.open(data_dir)
    clip = record(store)
    store.close()
    for suffix in ("-wal", "-shm"):
        (data_dir / f"index.sqlite3{suffix}").unlink(missing_ok=True)
    (data_dir / "index.sqlite3").write_bytes(b"this is not a database" * 100)
    store = ClipStore.open(data_dir)
    assert "moved to index.sqlite3.corrupt-" in store.report.rebuilt
    assert [c.id for c in store.list()] == [clip.id]
    assert any(n.startswith("index.sqlite3.corrupt-") for n in os.listdir(data_dir))


def test_a_clip_cut_by_a_real_crash_is_kept_as_it_is_with_no_identity(data_dir, identities):
    """A child process dies (os._exit) mid-clip; the next start, with no identity anywhere,
    keeps the clip's video as it was cut (renamed into place, marked cut, "partial"), its
    thumbnail with it; the owner's identity gets back its whole chunks, and the marker
    keeps it "partial" through an index rebuild."""
    script = textwrap.dedent(
        """
        import os, sys
        from doorbell.store import ClipStore
        store = ClipStore.open(sys.argv[1], fsync_interval=0.0)
        clip = store.new_clip("bell", start=5000.0)
        clip.write_thumbnail(b"thumb")
        data = bytes(range(256)) * 1000  # 256 000 bytes: 3 full chunks and a partial one
        clip.video.write(data)
        clip.video.write(b"more")
        clip.video.flush()  # every sealed chunk is with the OS: a crash now loses only RAM
        os._exit(9)
        """
    )
    child = subprocess.run([sys.executable, "-c", script, str(data_dir)], check=False)
    assert child.returncode == 9
    (data_dir / "keys" / "identity.age").unlink()  # the device holds no identity at all
    store = ClipStore.open(data_dir)
    [clip_id] = store.report.partial
    clip = store.get(clip_id)
    video = store.path(clip_id, ".mp4.age")
    assert (clip.state, clip.trigger, clip.start) == ("partial", "bell", 5000.0)
    assert clip.end == video.stat().st_mtime and clip.bytes == store._bytes(clip_id)
    assert sorted(os.listdir(data_dir / "clips")) == [
        f"{clip_id}.cut",
        f"{clip_id}.jpg.age",
        f"{clip_id}.mp4.age",
    ]
    with open(video, "rb") as file:
        recovered = vault.Recovery()
        data = b"".join(vault.recover(file, identities, recovered))
    assert data == (bytes(range(256)) * 1000)[: 3 * 65536] and not recovered.complete
    assert decrypted(store, clip_id, identities, ".jpg.age") == b"thumb"
    store.close()

    store = ClipStore.open(data_dir)  # the next start: nothing more to do, still cut short
    assert store.report.lines() == [] and store.get(clip_id).state == "partial"
    store.close()
    for suffix in ("", "-wal", "-shm"):  # the index lost: the marker says it was cut
        (data_dir / f"index.sqlite3{suffix}").unlink(missing_ok=True)
    store = ClipStore.open(data_dir)
    assert store.get(clip_id).state == "partial" and store.get(clip_id).end == clip.end
    store.delete(clip_id)
    assert os.listdir(data_dir / "clips") == []
    store.close()


def test_a_clip_renamed_but_not_indexed_is_adopted(data_dir, identities):
    store = ClipStore.open(data_dir)
    clip = store.new_clip("motion", start=7000.0)
    clip.video.write(VIDEO)
    clip.video.close()  # finished on disk; the process dies before the index row
    store.close()
    store = ClipStore.open(data_dir)
    assert store.report.finished == [clip.id]
    assert store.get(clip.id).state == "complete"


def test_rows_without_files_are_dropped(data_dir):
    store = ClipStore.open(data_dir)
    clip = record(store)
    store.close()
    (data_dir / "clips" / f"{clip.id}.mp4.age").unlink()
    store = ClipStore.open(data_dir)
    assert store.report.dropped == [clip.id]
    assert store.list() == []


def test_index_holds_metadata_only(data_dir):
    store = ClipStore.open(data_dir)
    clip = record(store)
    store.close()
    db = sqlite3.connect(data_dir / "index.sqlite3")
    assert db.execute("SELECT id, trigger, state FROM clips").fetchall() == [
        (clip.id, "bell", "complete")
    ]


def test_recorder_without_recipients_gets_a_clear_error(tmp_path):
    with pytest.raises(Exception, match="run 'doorbell keys init' first"):
        ClipStore.open(tmp_path / "empty")


# -- keyring ----------------------------------------------------------------


def test_unlock_with_the_wrong_passphrase_names_the_file_only(data_dir):
    with pytest.raises(vault.NoIdentityMatchError) as info:
        Keyring.in_data_dir(data_dir).unlock("not the passphrase")
    message = str(info.value)
    assert "identity.age" in message and "wrong passphrase" in message
    assert "not the passphrase" not in message and PASSPHRASE not in message


def test_identity_file_is_a_plain_age_file_without_plaintext(data_dir, identities):
    keyring = Keyring.in_data_dir(data_dir)
    data = keyring.identity_file.read_bytes()
    assert vault.is_age_file(data)
    assert b"AGE-SECRET-KEY" not in data
    assert oct(keyring.folder.stat().st_mode & 0o777) == "0o700"
    assert oct(keyring.identity_file.stat().st_mode & 0o777) == "0o600"
    plain = vault.decrypt_bytes(data, [vault.ScryptIdentity(PASSPHRASE)])
    assert identities[0].secret() in plain.decode()


def test_init_never_replaces_an_identity(data_dir):
    keyring = Keyring.in_data_dir(data_dir)
    before = keyring.identity_file.read_bytes()
    with pytest.raises(ValueError, match="exists already"):
        keyring.init("another passphrase", work_factor=10)
    assert keyring.identity_file.read_bytes() == before


@pytest.mark.parametrize(
    ("probe_seconds", "ram", "expected"),
    [
        (0.0625, 512 << 20, 15),  # Zero 2 W: 1 s would be 2^18, but 32 MiB caps it at 2^15
        (0.5, 512 << 20, 15),
        (4.0, 512 << 20, 12),  # a slow board: about 1 s at 2^12
        (0.0625, 8 << 30, 18),  # Pi 5 8 GB: age's default, 256 MiB
        (0.001, 8 << 30, 18),  # very fast: still capped at 256 MiB
        (100.0, 8 << 30, 10),  # never below the floor
    ],
)
def test_work_factor_targets_one_second_within_the_memory_cap(probe_seconds, ram, expected):
    assert choose_work_factor(14, probe_seconds, ram) == expected


def test_small_devices_never_spend_more_than_32_mib_on_the_kdf():
    for ram in (256 << 20, 512 << 20, (1 << 30) - 1):
        assert kdf_memory_cap(ram) == SMALL_DEVICE_KDF_MEMORY
        assert 1024 * 2 ** choose_work_factor(10, 1e-6, ram) <= 32 << 20


def test_a_small_device_refuses_identity_files_it_cannot_afford():
    assert affordable_work_factor(512 << 20) == 17  # 128 MiB: a quarter of its RAM
    assert affordable_work_factor(64 << 30) == vault.MAX_WORK_FACTOR
