"""The recipients the recorder encrypts to, when keys/recipients.txt goes missing or bad."""

import pytest

from doorbell import vault
from doorbell.store.keyring import KeptRecipients, Keyring, KeyringError


@pytest.fixture
def keyring(tmp_path):
    return Keyring(tmp_path / "keys")


def test_before_set_up_there_is_nothing_to_encrypt_to_and_no_fault(keyring):
    """No file yet: the doorbell waits for set-up quietly (no key, no fault)."""
    kept = KeptRecipients(keyring)
    assert kept.check() is False and kept.fault is None
    with pytest.raises(KeyringError, match="no recipients yet"):
        kept.recipients()


def test_a_bad_file_from_the_start_is_a_fault_and_nothing_is_recorded(keyring):
    """The file is there but no key can be read from it: nothing can be encrypted, said so."""
    keyring.folder.mkdir()
    keyring.recipients_file.write_text("age1notakey\n")
    kept = KeptRecipients(keyring)
    assert kept.check() is False
    assert kept.fault is not None and kept.fault.startswith(str(keyring.recipients_file))
    assert kept.fault.endswith(": nothing can be encrypted, so nothing is recorded")


@pytest.mark.parametrize("damage", ["remove", "garble", "directory", "binary"])
def test_keys_read_before_are_kept_while_the_file_is_bad_and_the_fault_clears(keyring, damage):
    """Missing, garbled, a folder in its place, not text: the keys read before are used (the
    owner can still open every new clip) and the fault names the file; put back, it clears."""
    owner = vault.X25519Identity.generate()
    keyring.folder.mkdir()
    keyring.recipients_file.write_text(f"# owner\n{owner.recipient}\n")
    kept = KeptRecipients(keyring)
    assert kept.recipients() == [owner.recipient] and kept.fault is None
    path = keyring.recipients_file
    if damage == "remove":
        path.unlink()
    elif damage == "garble":
        path.write_text("age1qqqq\n")
    elif damage == "directory":
        path.unlink()
        path.mkdir()
    else:
        path.write_bytes(b"\xff\xfe\x00age1")
    assert kept.check() is True
    assert kept.recipients() == [owner.recipient]
    assert kept.fault is not None and str(path) in kept.fault
    assert "new clips are still encrypted to the 1 key(s) read before" in kept.fault
    if damage == "directory":
        path.rmdir()
    path.write_text(f"{owner.recipient}\n")
    assert kept.recipients() == [owner.recipient] and kept.fault is None
