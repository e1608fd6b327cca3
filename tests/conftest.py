"""Shared fixtures: a data dir with owner keys made the way `doorbell keys init` makes them."""

import os
from pathlib import Path

import pytest

from doorbell.store import Keyring

PASSPHRASE = "correct horse battery staple"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data dir with an owner identity (scrypt work factor 10, so tests stay fast)."""
    path = tmp_path / "data"
    Keyring.in_data_dir(path).init(PASSPHRASE, work_factor=10)
    return path


@pytest.fixture
def identities(data_dir: Path):
    return Keyring.in_data_dir(data_dir).unlock(PASSPHRASE)


@pytest.fixture
def passphrase_file(tmp_path: Path) -> Path:
    path = tmp_path / "passphrase.txt"
    path.write_text(PASSPHRASE + "\n")
    return path


def find_plaintext(root: Path, plaintext: bytes, window: int = 32, step: int = 997) -> list[str]:
    """Files under ``root`` holding any ``window``-byte run of ``plaintext`` (sampled every ``step``)."""
    probes = {plaintext[i : i + window] for i in range(0, max(1, len(plaintext) - window), step)}
    hits = []
    for folder, _, names in os.walk(root):
        for name in names:
            data = (Path(folder) / name).read_bytes()
            if any(p in data for p in probes):
                hits.append(os.path.join(folder, name))
    return hits
