"""Interoperability both ways with the real `age` CLI (Debian's), and with pyrage.

An owner must never depend on this software to reach their footage (law 3).
"""

import os
import shutil
import subprocess

import pyrage
import pytest

from doorbell import vault
from doorbell.store import Keyring
from tests.conftest import PASSPHRASE, on_a_terminal

AGE = shutil.which("age")
AGE_KEYGEN = shutil.which("age-keygen")
SIZES = [0, 1, 65536, 200_001]


@pytest.fixture(autouse=True)
def _age_is_installed():
    assert AGE and AGE_KEYGEN, "the age CLI is missing: run scripts/setup (apt-get install age)"


def age(*args, stdin: bytes | None = None) -> bytes:
    result = subprocess.run([AGE, *map(str, args)], input=stdin, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout


def age_on_a_terminal(args: list, passphrase: str) -> None:
    """Run age with a pty as its terminal, typing ``passphrase`` at every prompt."""
    code, seen = on_a_terminal([AGE, *map(str, args)], [passphrase] * 2)
    assert code == 0, seen


@pytest.fixture
def people(tmp_path):
    """Three age-keygen identities, their files and recipients."""
    found = []
    for n in range(3):
        path = tmp_path / f"key{n}.txt"
        subprocess.run([AGE_KEYGEN, "-o", path], check=True, capture_output=True)
        found.append((path, vault.parse_identities(path.read_text(), str(path))[0]))
    return found


@pytest.mark.parametrize("size", SIZES)
def test_stock_age_decrypts_our_files_for_every_recipient(tmp_path, people, size):
    plain = os.urandom(size)
    path = tmp_path / "clip.mp4.age"
    with vault.create(path, [identity.recipient for _, identity in people]) as out:
        out.write(plain)
    for key_file, _ in people:
        assert age("-d", "-i", key_file, path) == plain


@pytest.mark.parametrize("size", SIZES)
def test_we_decrypt_files_from_the_stock_age(tmp_path, people, size):
    plain = os.urandom(size)
    src = tmp_path / "plain"
    src.write_bytes(plain)
    enc = tmp_path / "from-age.age"
    recipients = [a for _, i in people for a in ("-r", str(i.recipient))]
    age(*recipients, "-o", enc, src)
    for _, identity in people:
        with vault.open_file(enc, [identity]) as reader:
            assert reader.read() == plain
            if size > 10:
                reader.seek(size // 2)
                assert reader.read(10) == plain[size // 2 : size // 2 + 10]


def test_age_keygen_files_with_comments_parse(people):
    key_file, identity = people[0]
    text = key_file.read_text()
    assert text.startswith("# created:")
    public = subprocess.run(
        [AGE_KEYGEN, "-y", key_file], capture_output=True, check=True, text=True
    )
    assert str(identity.recipient) == public.stdout.strip()


def test_stock_age_opens_identity_age_with_the_passphrase(data_dir, identities, tmp_path):
    """`age -d keys/identity.age` gives the identity back: no lock-in, ever."""
    out = tmp_path / "identity.txt"
    keyring = Keyring.in_data_dir(data_dir)
    age_on_a_terminal(["-d", "-o", out, keyring.identity_file], PASSPHRASE)
    [identity] = vault.parse_identities(out.read_text())
    assert identity.secret() == identities[0].secret()
    clip = tmp_path / "clip.age"
    with vault.create(clip, keyring.recipients()) as writer:
        writer.write(b"the porch at night")
    assert age("-d", "-i", out, clip) == b"the porch at night"


def test_we_open_an_identity_file_made_by_age_passphrase(people, tmp_path):
    """An identity file encrypted with `age -p` (work factor 18) works with -i."""
    key_file, identity = people[0]
    protected = tmp_path / "key.age"
    age_on_a_terminal(["-p", "-o", protected, key_file], "a long passphrase for age")
    assert vault.is_age_file(protected.read_bytes())
    [loaded] = vault.load_identities(protected, lambda: "a long passphrase for age")
    assert loaded.secret() == identity.secret()
    with pytest.raises(vault.NoIdentityMatchError, match="wrong passphrase"):
        vault.load_identities(protected, lambda: "not it")


def test_pyrage_cross_checks_both_ways(tmp_path):
    identity = vault.X25519Identity.generate()
    theirs = pyrage.x25519.Identity.from_str(identity.secret())
    plain = os.urandom(150_000)
    path = tmp_path / "ours.age"
    with vault.create(path, [identity.recipient]) as out:
        out.write(plain)
    assert pyrage.decrypt(path.read_bytes(), [theirs]) == plain
    from_pyrage = tmp_path / "theirs.age"
    from_pyrage.write_bytes(pyrage.encrypt(plain, [theirs.to_public()]))
    with vault.open_file(from_pyrage, [identity]) as reader:
        assert reader.read() == plain


def test_passphrase_files_cross_check_with_pyrage(tmp_path):
    plain = b"identity file body"
    ours = vault.encrypt_bytes(plain, [vault.ScryptRecipient("pass phrase", work_factor=10)])
    assert pyrage.passphrase.decrypt(ours, "pass phrase") == plain
    theirs = pyrage.passphrase.encrypt(plain, "pass phrase")
    assert vault.decrypt_bytes(theirs, [vault.ScryptIdentity("pass phrase")]) == plain
