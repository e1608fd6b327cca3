"""The vault against the real thing: Debian's `age` and `age-keygen`, and pyrage (rage).

Law 3: the owner opens any clip with the stock `age` CLI and their identity, and
files from `age` open here. `age -p` reads its passphrase from the terminal only,
so a pty types it (``tests.conftest.on_a_terminal``).
"""

import io
import os
import shutil
import subprocess
from pathlib import Path

import pyrage
import pytest

from doorbell import vault
from doorbell.vault.header import parse_header
from doorbell.vault.stream import SEALED_CHUNK_SIZE, sealed_size
from tests.conftest import on_a_terminal

CHUNK = vault.CHUNK_SIZE
SIZES = [0, 1, CHUNK, CHUNK + 1, 2 * CHUNK + 1, 300_000]
TIMEOUT = 60


def tool(name: str) -> str:
    path = shutil.which(name)
    assert path, (
        f"the {name!r} command is not on PATH: the interoperability tests need the real age CLI "
        "(Debian: apt-get install age)"
    )
    return path


@pytest.fixture(scope="session")
def age() -> str:
    return tool("age")


@pytest.fixture(scope="session")
def age_keygen() -> str:
    return tool("age-keygen")


def run(argv: list, stdin: bytes | None = None) -> bytes:
    """Run a command to success and return its standard output."""
    result = subprocess.run(
        [str(a) for a in argv], input=stdin, capture_output=True, timeout=TIMEOUT, check=False
    )
    assert result.returncode == 0, f"{argv}: {result.stderr.decode(errors='replace')}"
    return result.stdout


def fails(argv: list, stdin: bytes | None = None) -> str:
    """Run a command that must fail; return what it said on standard error."""
    result = subprocess.run(
        [str(a) for a in argv], input=stdin, capture_output=True, timeout=TIMEOUT, check=False
    )
    assert result.returncode != 0, f"{argv} succeeded"
    return result.stderr.decode(errors="replace")


def age_on_a_terminal(age: str, args: list, passphrase: str) -> str:
    """Run `age` with a pty as its terminal, typing ``passphrase`` at each prompt."""
    code, screen = on_a_terminal([age, *map(str, args)], [passphrase, passphrase], TIMEOUT)
    assert code == 0, screen
    assert passphrase not in screen  # typed, never echoed
    return screen


class Person:
    """An identity made by age-keygen: its file, its parsed identity, its public key."""

    def __init__(self, age_keygen: str, path: Path) -> None:
        run([age_keygen, "-o", path])
        self.key_file = path
        [self.identity] = vault.parse_identities(path.read_text(), str(path))
        self.recipient = run([age_keygen, "-y", path]).decode().strip()


@pytest.fixture
def people(tmp_path, age_keygen) -> list[Person]:
    return [Person(age_keygen, tmp_path / f"key{n}.txt") for n in range(3)]


def our_file(path: Path, plain: bytes, recipients: list) -> Path:
    with vault.create(path, recipients) as writer:
        for start in range(0, len(plain), 40_000):  # writes that straddle the chunks
            writer.write(plain[start : start + 40_000])
    return path


def read_file(path: Path, identities: list) -> bytes:
    with vault.open_file(path, identities) as reader:
        return reader.read()


def read_sequentially(stream, identities: list) -> bytes:
    _, cipher = vault.open_header(stream, identities)
    return b"".join(vault.iter_plaintext(stream, cipher))


# --- our files, the stock age -------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
def test_age_decrypts_our_file_with_each_identity(tmp_path, age, people, size):
    plain = os.urandom(size)
    recipients = vault.parse_recipients("\n".join(p.recipient for p in people))
    path = our_file(tmp_path / "clip.mp4.age", plain, recipients)
    for person in people:
        assert str(person.identity.recipient) == person.recipient
        assert run([age, "-d", "-i", person.key_file, path]) == plain
    out = tmp_path / "clip.mp4"  # and from standard input, into a file
    run([age, "--decrypt", "-i", people[1].key_file, "-o", out], stdin=path.read_bytes())
    # age 1.1 opens -o at its first byte of output: an empty plaintext leaves no file
    assert (out.read_bytes() if out.exists() else b"") == plain


def test_age_refuses_what_we_refuse(tmp_path, age, people):
    """A cut, a flipped byte, an unfinished .part: age fails where our reader fails."""
    person = people[0]
    plain = os.urandom(3 * CHUNK + 100)
    path = our_file(tmp_path / "clip.age", plain, [person.identity.recipient])
    data = path.read_bytes()
    start = len(data) - sealed_size(len(plain))
    bad = tmp_path / "bad.age"
    for damaged in (
        data[: start + 2 * SEALED_CHUNK_SIZE],  # cut at a chunk boundary
        data[: start + CHUNK],  # cut inside a chunk
        data[:-1],
        data[:100] + bytes([data[100] ^ 1]) + data[101:],  # in the header
        data[: start + 5] + bytes([data[start + 5] ^ 1]) + data[start + 6 :],  # in chunk 0
        data + b"\x00",
    ):
        bad.write_bytes(damaged)
        fails([age, "-d", "-i", person.key_file, "-o", tmp_path / "out", bad])
        with pytest.raises(vault.VaultError):
            read_file(bad, [person.identity])
        with pytest.raises(vault.VaultError):
            read_sequentially(io.BytesIO(damaged), [person.identity])

    crashed = tmp_path / "crashed.age"
    writer = vault.create(crashed, [person.identity.recipient])
    writer.write(plain)
    writer.abort()
    part = Path(str(crashed) + vault.PART_SUFFIX)
    fails([age, "-d", "-i", person.key_file, "-o", tmp_path / "out", part])
    report = vault.Recovery()
    with open(part, "rb") as stream:
        assert b"".join(vault.recover(stream, [person.identity], report)) == plain[: 3 * CHUNK]
    assert report.chunks == 3 and not report.complete


def test_age_reads_the_identity_files_we_write(tmp_path, age, age_keygen):
    identities = [vault.X25519Identity.generate() for _ in range(2)]
    key_file = tmp_path / "identity.txt"
    key_file.write_text(
        "# doorbell owner\n"
        f"# public key: {identities[0].recipient}\n"
        f"{identities[0].secret()}\n\n"
        f"# backup\n{identities[1].secret()}\n"
    )
    public = run([age_keygen, "-y", key_file]).decode().split()
    assert public == [str(i.recipient) for i in identities]
    for identity in identities:
        path = our_file(tmp_path / "clip.age", b"the porch at night", [identity.recipient])
        assert run([age, "-d", "-i", key_file, path]) == b"the porch at night"
        path.unlink()


# --- files from the stock age, our reader -------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
def test_we_decrypt_files_age_made_for_two_recipients(tmp_path, age, people, size):
    plain = os.urandom(size)
    source = tmp_path / "clip.mp4"
    source.write_bytes(plain)
    path = tmp_path / "clip.mp4.age"
    run([age, "-r", people[0].recipient, "-r", people[1].recipient, "-o", path, source])
    for person in people[:2]:
        with vault.open_file(path, [person.identity]) as reader:
            assert reader.size == size
            assert reader.read() == plain
            for offset in (0, CHUNK - 3, size // 2, size - 1):
                reader.seek(max(0, offset))
                assert reader.read(7) == plain[max(0, offset) : max(0, offset) + 7]
        with open(path, "rb") as stream:
            assert read_sequentially(stream, [person.identity]) == plain
    with pytest.raises(vault.NoIdentityMatchError) as caught:
        vault.open_file(path, [people[2].identity])
    assert str(path) in str(caught.value)


def test_we_decrypt_from_age_through_a_pipe(tmp_path, age, people):
    """iter_plaintext needs no seeking: it reads age's output as it comes."""
    plain = os.urandom(3 * CHUNK + 5)
    recipients_file = tmp_path / "recipients.txt"
    recipients_file.write_text(f"# household\n{people[0].recipient}\n\n{people[2].recipient}\n")
    source = tmp_path / "clip.mp4"
    source.write_bytes(plain)
    with subprocess.Popen([age, "-R", recipients_file, source], stdout=subprocess.PIPE) as proc:
        assert read_sequentially(proc.stdout, [people[2].identity]) == plain
        assert proc.wait(timeout=TIMEOUT) == 0


def test_age_keygen_files_parse_with_their_comments(tmp_path, people):
    text = people[0].key_file.read_text()
    assert text.startswith("# created: ") and "# public key: age1" in text
    combined = tmp_path / "all.txt"
    combined.write_text("\n".join(p.key_file.read_text() for p in people) + "\n# the end\n")
    parsed = vault.parse_identities(combined.read_text(), str(combined))
    assert [str(i.recipient) for i in parsed] == [p.recipient for p in people]
    loaded = vault.load_identities(
        combined, lambda: pytest.fail("a plain key file asks for nothing")
    )
    assert [str(i.recipient) for i in loaded] == [p.recipient for p in people]
    assert [i.secret() for i in parsed] == [p.identity.secret() for p in people]
    assert vault.parse_recipients(
        "\n".join(f"# {n}\n{p.recipient}" for n, p in enumerate(people))
    ) == [p.identity.recipient for p in people]


# --- passphrases: age -p and our scrypt ---------------------------------------------------

PASSPHRASE = "winter porch light 7"


def test_age_opens_our_passphrase_file(tmp_path, age, people):
    """keys/identity.age, as we write it (work factor 10), opens with `age -d` and the
    passphrase, and serves as `age -i` directly."""
    identity_text = people[0].key_file.read_bytes()
    protected = our_file(
        tmp_path / "identity.age",
        identity_text,
        [vault.ScryptRecipient(PASSPHRASE, work_factor=10)],
    )
    out = tmp_path / "identity.txt"
    screen = age_on_a_terminal(age, ["-d", "-o", out, protected], PASSPHRASE)
    assert "passphrase" in screen.lower()
    assert out.read_bytes() == identity_text

    clip = our_file(tmp_path / "clip.age", b"a visitor at 21:04", [people[0].identity.recipient])
    decrypted = tmp_path / "clip"
    age_on_a_terminal(age, ["-d", "-i", protected, "-o", decrypted, clip], PASSPHRASE)
    assert decrypted.read_bytes() == b"a visitor at 21:04"


@pytest.fixture(scope="module")
def age_protected_identity(tmp_path_factory, age, age_keygen) -> tuple[Path, Path]:
    """An age-keygen identity file and the same encrypted by `age -p` (work factor 18)."""
    folder = tmp_path_factory.mktemp("age-p")
    key_file = folder / "key.txt"
    run([age_keygen, "-o", key_file])
    protected = folder / "key.txt.age"
    age_on_a_terminal(age, ["-p", "-o", protected, key_file], PASSPHRASE)
    return key_file, protected


def test_we_open_a_file_from_age_p(age_protected_identity):
    key_file, protected = age_protected_identity
    data = protected.read_bytes()
    assert vault.is_age_file(data)
    [stanza] = parse_header(io.BytesIO(data).readline).stanzas
    assert stanza.type == "scrypt" and stanza.args[1] == "18"  # age's own default
    with vault.open_file(protected, [vault.ScryptIdentity(PASSPHRASE)]) as reader:
        assert reader.read() == key_file.read_bytes()


def test_load_identities_opens_an_identity_file_from_age_p(age_protected_identity):
    key_file, protected = age_protected_identity
    asked = []
    loaded = vault.load_identities(protected, lambda: asked.append(1) or PASSPHRASE)
    assert asked == [1]
    assert [i.secret() for i in loaded] == [
        i.secret() for i in vault.parse_identities(key_file.read_text())
    ]


def test_a_wrong_passphrase_and_a_low_cap_are_refused_by_name(age_protected_identity):
    _, protected = age_protected_identity
    with pytest.raises(vault.NoIdentityMatchError, match="wrong passphrase") as caught:
        vault.load_identities(protected, lambda: "not the passphrase")
    assert str(protected) in str(caught.value)
    assert "not the passphrase" not in str(caught.value) and PASSPHRASE not in str(caught.value)
    # a small device caps the work factor: refused before any scrypt work is done
    with pytest.raises(vault.HeaderError, match="work factor 18 is above the limit of 15"):
        vault.load_identities(protected, lambda: PASSPHRASE, max_work_factor=15)


# --- pyrage (rage) ------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, CHUNK, 2 * CHUNK + 1, 300_000])
def test_pyrage_decrypts_our_files(tmp_path, size):
    people = [vault.X25519Identity.generate() for _ in range(2)]
    plain = os.urandom(size)
    path = our_file(tmp_path / "clip.age", plain, [p.recipient for p in people])
    for person in people:
        theirs = pyrage.x25519.Identity.from_str(person.secret())
        assert str(theirs.to_public()) == str(person.recipient)
        assert pyrage.decrypt(path.read_bytes(), [theirs]) == plain


@pytest.mark.parametrize("size", [0, 1, CHUNK, 2 * CHUNK + 1, 300_000])
def test_we_decrypt_files_from_pyrage(tmp_path, size):
    person = vault.X25519Identity.generate()
    plain = os.urandom(size)
    recipient = pyrage.x25519.Recipient.from_str(str(person.recipient))
    path = tmp_path / "theirs.age"
    path.write_bytes(pyrage.encrypt(plain, [recipient]))
    with vault.open_file(path, [person]) as reader:
        assert reader.size == size and reader.read() == plain
    assert read_sequentially(io.BytesIO(path.read_bytes()), [person]) == plain


def test_passphrase_files_both_ways_with_pyrage():
    plain = b"AGE-SECRET-KEY-1 would go here"
    ours = vault.encrypt_bytes(plain, [vault.ScryptRecipient(PASSPHRASE, work_factor=10)])
    assert pyrage.passphrase.decrypt(ours, PASSPHRASE) == plain
    theirs = pyrage.passphrase.encrypt(plain, PASSPHRASE)
    assert vault.decrypt_bytes(theirs, [vault.ScryptIdentity(PASSPHRASE)]) == plain
