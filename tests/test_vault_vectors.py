"""The C2SP CCTV age vectors: the contract of the vault.

Each vector must give its expected outcome with the matching error class, and
every byte released before a failure must hash to the vector's payload hash.
"""

import hashlib
import io
import zlib
from pathlib import Path

import pytest

from doorbell import vault

# In the repository, so a bare clone runs them: see vectors/age/ORIGIN.md.
VECTORS = Path(__file__).resolve().parent / "vectors" / "age"
NOT_VECTORS = {"README.md", "SOURCE.txt", "ORIGIN.md"}

SKIPPED_GROUPS = {
    "armor": "ASCII armor is not implemented: clips are binary age files",
    "hybrid": "post-quantum hybrid (ML-KEM) recipients are not implemented: clips use X25519",
}

EXPECTED_ERROR = {
    "header failure": vault.HeaderError,
    "no match": vault.NoIdentityMatchError,
    "HMAC failure": vault.HeaderMacError,
    "payload failure": vault.PayloadError,
}


def load(path: Path) -> tuple[dict[str, list[str]], bytes]:
    raw = path.read_bytes()
    head, _, body = raw.partition(b"\n\n")
    meta: dict[str, list[str]] = {}
    for line in head.decode().splitlines():
        key, _, value = line.partition(": ")
        meta.setdefault(key, []).append(value)
    if meta.get("compressed") == ["zlib"]:
        body = zlib.decompress(body)
    return meta, body


def vector_names() -> list[str]:
    return sorted(p.name for p in VECTORS.iterdir() if p.name not in NOT_VECTORS)


def test_vectors_are_present():
    assert len(vector_names()) > 100, f"age vectors missing from {VECTORS}"


@pytest.mark.parametrize("name", vector_names())
def test_cctv_vector(name):
    group = name.split("_")[0]
    if group in SKIPPED_GROUPS:
        pytest.skip(SKIPPED_GROUPS[group])
    meta, body = load(VECTORS / name)
    identities: list = [vault.X25519Identity.parse(i) for i in meta.get("identity", [])]
    identities += [vault.ScryptIdentity(p) for p in meta.get("passphrase", [])]
    expect = meta["expect"][0]

    released = hashlib.sha256()
    stream = io.BytesIO(body)
    error = None
    try:
        _, cipher = vault.open_header(stream, identities)
        for chunk in vault.iter_plaintext(stream, cipher, name):
            released.update(chunk)
    except vault.VaultError as err:
        error = err

    if expect == "success":
        assert error is None, f"{name}: {error}"
    else:
        assert isinstance(error, EXPECTED_ERROR[expect]), (
            f"{name}: expected {expect}, got {error!r}"
        )
    if "payload" in meta:
        assert released.hexdigest() == meta["payload"][0]


def applicable() -> list[str]:
    return [n for n in vector_names() if n.split("_")[0] not in SKIPPED_GROUPS]


@pytest.mark.parametrize("name", applicable())
def test_cctv_vector_random_access(name, tmp_path):
    """The seekable reader reaches the same verdict as the streaming one."""
    meta, body = load(VECTORS / name)
    identities: list = [vault.X25519Identity.parse(i) for i in meta.get("identity", [])]
    identities += [vault.ScryptIdentity(p) for p in meta.get("passphrase", [])]
    path = tmp_path / name
    path.write_bytes(body)
    expect = meta["expect"][0]
    try:
        with vault.open_file(path, identities) as reader:
            plaintext = reader.read()
    except vault.VaultError as err:
        assert expect != "success", f"{name}: {err}"
        assert isinstance(err, EXPECTED_ERROR[expect]), f"{name}: expected {expect}, got {err!r}"
        assert str(path) in str(err)
    else:
        assert expect == "success", f"{name}: expected {expect}, read {len(plaintext)} bytes"
        assert hashlib.sha256(plaintext).hexdigest() == meta["payload"][0]


def test_unimplemented_kinds_fail_cleanly():
    """Armored and post-quantum files are refused with a vault error, never a crash."""
    names = [n for n in vector_names() if n.split("_")[0] in SKIPPED_GROUPS]
    assert len(names) > 40
    for name in names:
        meta, body = load(VECTORS / name)
        # Post-quantum identities are not ours to parse; use the X25519 ones.
        texts = [t for t in meta.get("identity", []) if not t.startswith("AGE-SECRET-KEY-PQ-")]
        identities: list = [vault.X25519Identity.parse(t) for t in texts]
        identities += [vault.ScryptIdentity(p) for p in meta.get("passphrase", [])]
        with pytest.raises(vault.VaultError):
            vault.decrypt_bytes(body, identities, name)
