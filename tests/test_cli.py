"""The ``doorbell`` command as an owner uses it: keys, encrypt, decrypt, exit codes."""

import contextlib
import ctypes
import errno
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from doorbell import cli, vault
from doorbell.store import Keyring
from tests.conftest import PASSPHRASE, on_a_terminal

DOORBELL = [sys.executable, "-m", "doorbell"]


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*DOORBELL, *args], input=stdin, capture_output=True, timeout=60, check=False
    )


def main(*args) -> int:
    return cli.main([str(a) for a in args])


@pytest.fixture(autouse=True)
def core_dumps_as_they_were():
    """``cli.main`` turns core dumps off for the whole process, pytest's too when called
    in-process: put the core rlimit and the dumpable flag back. (Raising the hard limit
    again takes CAP_SYS_RESOURCE; without it the rlimit stays down.)"""
    limits = resource.getrlimit(resource.RLIMIT_CORE)
    yield
    with contextlib.suppress(ValueError):  # not allowed to raise the hard limit
        resource.setrlimit(resource.RLIMIT_CORE, limits)
    ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE, 1


def core_file_limits(pid: int) -> tuple[str, str]:
    """The soft and hard "Max core file size" of a running process, as /proc shows them."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max core file size"):
            soft, hard = line.split()[4:6]
            return soft, hard
    raise AssertionError(f"/proc/{pid}/limits has no core file size")


# Before any in-process cli.main (here or in other files): those lower pytest's own hard
# core limit, which only CAP_SYS_RESOURCE can raise again for the child this test starts.
@pytest.mark.runs_first
@pytest.mark.cli
@pytest.mark.parametrize("command", ["keys export", "decrypt"])
def test_a_command_holding_a_secret_cannot_dump_core(data_dir, tmp_path, command):
    """Law 1 for the owner's tools as for the service: from the moment `keys export` or
    `decrypt -i identity.age` reads the passphrase, its core file size is 0, soft and hard.
    The passphrase file is a FIFO, so the command waits there while /proc is read."""
    soft, ceiling = resource.getrlimit(resource.RLIMIT_CORE)
    if ceiling == 0:
        try:
            resource.setrlimit(resource.RLIMIT_CORE, (soft, resource.RLIM_INFINITY))
        except ValueError:
            pytest.skip(
                "pytest was started with a hard RLIMIT_CORE of 0 (ulimit -c 0, or a unit's LimitCORE=0): no child can start with core dumps allowed"
            )
        ceiling = resource.RLIM_INFINITY
    clip = tmp_path / "clip.age"
    clip.write_bytes(vault.encrypt_bytes(b"front door", Keyring.in_data_dir(data_dir).recipients()))
    fifo = tmp_path / "passphrase.fifo"
    os.mkfifo(fifo)
    argv = {
        "keys export": ["keys", "export", "--data-dir", str(data_dir)],
        "decrypt": ["decrypt", "-i", str(data_dir / "keys" / "identity.age"), str(clip)],
    }[command]
    child = subprocess.Popen(
        [*DOORBELL, *argv, "--passphrase-file", str(fifo)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # Core dumps allowed to start with, so that only the command can turn them off.
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_CORE, (ceiling, ceiling)),
    )
    try:
        deadline = time.monotonic() + 30
        while True:  # until the command opens the FIFO to read the passphrase
            try:
                writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError as err:
                if err.errno != errno.ENXIO:
                    raise
            assert child.poll() is None, child.communicate()[1]
            assert time.monotonic() < deadline, "the command never read its passphrase file"
            time.sleep(0.01)
        assert core_file_limits(child.pid) == ("0", "0")
        os.write(writer, PASSPHRASE.encode() + b"\n")
        os.close(writer)
        out, err = child.communicate(timeout=60)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == 0, err
    assert (b"AGE-SECRET-KEY-1" in out) if command == "keys export" else (out == b"front door")


@pytest.fixture
def owner(tmp_path, passphrase_file):
    """A data dir set up by 'doorbell keys init', and the exported identity file."""
    data = tmp_path / "data"
    assert main("keys", "init", "--data-dir", data, "--passphrase-file", passphrase_file,
                "--work-factor", 10) == 0  # fmt: skip
    result = run(
        "keys", "export", "--data-dir", str(data), "--passphrase-file", str(passphrase_file)
    )
    assert result.returncode == 0, result.stderr
    identity = tmp_path / "identity.txt"
    identity.write_bytes(result.stdout)
    return data, identity


def test_keys_init_prints_the_recipient_and_how_to_back_up(tmp_path, passphrase_file, capsys):
    data = tmp_path / "data"
    assert main("keys", "init", "--data-dir", data, "--passphrase-file", passphrase_file,
                "--work-factor", 10) == 0  # fmt: skip
    out = capsys.readouterr().out
    [recipient] = vault.parse_recipients((data / "keys" / "recipients.txt").read_text())
    assert str(recipient) in out
    assert "doorbell keys export" in out and "age -d -i" in out
    assert "AGE-SECRET-KEY" not in out and PASSPHRASE not in out
    # for the owner's own computer now: the doorbell pairs owners in the browser
    assert "use this on your computer" in out
    assert f"keys add-recipient {recipient}" in out


def test_keys_init_refuses_to_replace_an_identity(owner, passphrase_file, capsys):
    data, _ = owner
    before = (data / "keys" / "identity.age").read_bytes()
    assert main("keys", "init", "--data-dir", data, "--passphrase-file", passphrase_file) == 2
    assert "exists already" in capsys.readouterr().err
    assert (data / "keys" / "identity.age").read_bytes() == before


def test_keys_init_refuses_a_short_passphrase(tmp_path, capsys):
    short = tmp_path / "short"
    short.write_text("hunter2\n")
    assert main("keys", "init", "--data-dir", tmp_path / "d", "--passphrase-file", short) == 2
    assert "at least 8 characters" in capsys.readouterr().err
    assert not (tmp_path / "d" / "keys" / "identity.age").exists()


def test_end_of_input_at_the_prompt_is_a_usage_error_not_a_traceback(tmp_path):
    """Ctrl-D at "Passphrase:" ends the command with exit 2 and one line saying so (law 6)."""
    code, shown = on_a_terminal(
        [*DOORBELL, "keys", "init", "--data-dir", str(tmp_path / "d")], ["\x04"]
    )
    assert code == 2, shown
    assert "doorbell: no passphrase given (end of input at the prompt)" in shown
    assert "Traceback" not in shown
    assert not (tmp_path / "d" / "keys" / "identity.age").exists()


def test_keys_init_on_a_terminal_asks_twice(tmp_path):
    data = tmp_path / "data"
    argv = [*DOORBELL, "keys", "init", "--data-dir", str(data), "--work-factor", "10"]
    code, seen = on_a_terminal(argv, [PASSPHRASE, PASSPHRASE + " typo"])
    assert code == 2 and "the two passphrases differ; nothing was changed" in seen
    assert not (data / "keys").exists()
    code, seen = on_a_terminal(argv, [PASSPHRASE, PASSPHRASE])
    assert code == 0 and "Owner identity created." in seen
    assert PASSPHRASE not in seen  # never echoed
    assert Keyring.in_data_dir(data).unlock(PASSPHRASE)


def test_keys_init_without_a_terminal_or_file_says_what_to_do():
    result = run("keys", "init", "--data-dir", "/nonexistent/x", stdin=b"")
    assert result.returncode == 2
    assert b"--passphrase-file" in result.stderr


def test_exported_identity_opens_clips_with_the_stock_age(owner, tmp_path):
    data, identity = owner
    [one] = vault.parse_identities(identity.read_text())
    assert str(one.recipient) in (data / "keys" / "recipients.txt").read_text()
    plain = tmp_path / "plain"
    plain.write_bytes(os.urandom(150_000))
    out = tmp_path / "clip.age"
    assert main("encrypt", "-R", data / "keys" / "recipients.txt", "-o", out, plain) == 0
    result = subprocess.run(
        ["age", "-d", "-i", str(identity), str(out)], capture_output=True, check=True
    )
    assert result.stdout == plain.read_bytes()


def test_keys_export_with_a_wrong_passphrase(owner, tmp_path, capsys):
    data, _ = owner
    wrong = tmp_path / "wrong"
    wrong.write_text("definitely wrong\n")
    assert main("keys", "export", "--data-dir", data, "--passphrase-file", wrong) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "identity.age" in captured.err and "wrong passphrase" in captured.err
    assert "definitely wrong" not in captured.err


def test_keys_add_recipient(owner, capsys):
    data, _ = owner
    partner = vault.X25519Identity.generate().recipient
    assert main("keys", "add-recipient", "--data-dir", data, partner) == 0
    assert "encrypted to 2 recipient(s)" in capsys.readouterr().out
    assert main("keys", "add-recipient", "--data-dir", data, partner) == 0
    assert "already a recipient" in capsys.readouterr().out
    assert main("keys", "add-recipient", "--data-dir", data, "age1notakey") == 1
    assert "bad key" in capsys.readouterr().err
    assert len(vault.parse_recipients((data / "keys" / "recipients.txt").read_text())) == 2


def test_a_secret_key_given_as_recipient_is_never_echoed(tmp_path, capsys):
    secret = vault.X25519Identity.generate().secret()
    assert main("encrypt", "-r", secret, "-o", tmp_path / "x", tmp_path / "x") == 1
    err = capsys.readouterr().err
    assert secret not in err and "secret identity" in err


def test_encrypt_decrypt_round_trip_with_several_recipients(tmp_path):
    people = [vault.X25519Identity.generate() for _ in range(3)]
    plain = tmp_path / "plain"
    plain.write_bytes(os.urandom(200_001))
    out = tmp_path / "c.age"
    args = [a for p in people for a in ("-r", str(p.recipient))]
    assert main("encrypt", *args, "-o", out, plain) == 0
    for person in people:
        ident = tmp_path / "id"
        ident.write_text(person.secret() + "\n")
        dec = tmp_path / "dec"
        assert main("decrypt", "-i", ident, "-o", dec, out) == 0
        assert dec.read_bytes() == plain.read_bytes()


def test_decrypt_with_the_passphrase_protected_identity(owner, passphrase_file, tmp_path):
    data, _ = owner
    plain = tmp_path / "plain"
    plain.write_bytes(b"front door" * 1000)
    out = tmp_path / "c.age"
    assert main("encrypt", "-R", data / "keys" / "recipients.txt", "-o", out, plain) == 0
    dec = tmp_path / "dec"
    assert main("decrypt", "-i", data / "keys" / "identity.age", "--passphrase-file",
                passphrase_file, "-o", dec, out) == 0  # fmt: skip
    assert dec.read_bytes() == plain.read_bytes()


@pytest.mark.parametrize(
    ("offset", "length"),
    [(0, 64), (65530, 20), (199_990, 64), (250_000, 10), (3, None), (None, 5)],
)
def test_decrypt_a_byte_range(owner, tmp_path, offset, length):
    data, identity = owner
    plain = os.urandom(200_000)
    (tmp_path / "p").write_bytes(plain)
    assert (
        main(
            "encrypt", "-R", data / "keys" / "recipients.txt", "-o", tmp_path / "c", tmp_path / "p"
        )
        == 0
    )
    args = ["decrypt", "-i", identity, "-o", tmp_path / "r"]
    args += ["--offset", offset] if offset is not None else []
    args += ["--length", length] if length is not None else []
    assert main(*args, tmp_path / "c") == 0
    start = offset or 0
    end = len(plain) if length is None else start + length
    assert (tmp_path / "r").read_bytes() == plain[start:end]


def test_pipes_work_both_ways(owner):
    data, identity = owner
    plain = os.urandom(100_000)
    enc = run("encrypt", "-R", str(data / "keys" / "recipients.txt"), stdin=plain)
    assert enc.returncode == 0, enc.stderr
    dec = run("decrypt", "-i", str(identity), stdin=enc.stdout)
    assert dec.returncode == 0 and dec.stdout == plain


def test_tampered_file_fails_with_a_one_line_message_and_no_output(owner, tmp_path):
    data, identity = owner
    (tmp_path / "p").write_bytes(os.urandom(150_000))
    clip = tmp_path / "clip.mp4.age"
    assert main("encrypt", "-R", data / "keys" / "recipients.txt", "-o", clip, tmp_path / "p") == 0
    raw = bytearray(clip.read_bytes())
    raw[-70_000] ^= 1  # inside chunk 1
    clip.write_bytes(bytes(raw))
    result = run("decrypt", "-i", str(identity), "-o", str(tmp_path / "out"), str(clip))
    assert result.returncode == 1
    lines = result.stderr.decode().splitlines()
    chunk_1 = len(raw) - (150_000 + 3 * 16) + (65536 + 16)  # the payload's start, plus chunk 0
    assert lines == [
        f"doorbell: {clip}: payload failure: chunk 1 fails authentication: damaged, or cut short "
        f"(chunk 1, at byte {chunk_1} of the file); the intact part before it comes back with "
        f"'doorbell decrypt --recover -i IDENTITY -o OUT {clip}'"
    ]
    assert not (tmp_path / "out").exists()


def test_header_tampering_is_a_mac_failure(owner, tmp_path, capsys):
    data, identity = owner
    (tmp_path / "p").write_bytes(b"x" * 10)
    clip = tmp_path / "c"
    assert main("encrypt", "-R", data / "keys" / "recipients.txt", "-o", clip, tmp_path / "p") == 0
    raw = clip.read_bytes()
    clip.write_bytes(
        raw.replace(b"age-encryption.org/v1\n", b"age-encryption.org/v1\n-> grease x\n\n", 1)
    )
    assert main("decrypt", "-i", identity, "-o", tmp_path / "o", clip) == 1
    assert "header MAC failure" in capsys.readouterr().err


def test_recover_writes_the_intact_prefix_and_says_what_was_lost(owner, tmp_path, capsys):
    data, identity = owner
    plain = os.urandom(300_000)
    (tmp_path / "p").write_bytes(plain)
    clip = tmp_path / "c"
    assert main("encrypt", "-R", data / "keys" / "recipients.txt", "-o", clip, tmp_path / "p") == 0
    whole = clip.read_bytes()
    clip.write_bytes(whole[: len(whole) - 100_000])
    assert main("decrypt", "-i", identity, "-o", tmp_path / "o", clip) == 1
    assert "payload failure" in capsys.readouterr().err
    assert main("decrypt", "-i", identity, "--recover", "-o", tmp_path / "o", clip) == 0
    err = capsys.readouterr().err
    assert "recovered 196608 bytes (3 chunks)" in err
    assert (tmp_path / "o").read_bytes() == plain[:196_608]


def test_usage_errors_exit_2(owner, tmp_path, capsys):
    _, identity = owner
    assert main("decrypt", tmp_path / "x") == 2
    assert "needs -i" in capsys.readouterr().err
    assert main("decrypt", "-i", identity, "-o", tmp_path / "o", tmp_path / "missing") == 2
    assert "missing: cannot open" in capsys.readouterr().err
    assert main("decrypt", "-i", identity, "--recover", "--offset", 3, tmp_path / "x") == 2
    with pytest.raises(SystemExit) as info:
        main("decrypt", "-i", identity, "--offset", -1, tmp_path / "x")
    assert info.value.code == 2
    assert main("encrypt", "-o", tmp_path / "o", tmp_path / "x") == 2


def test_not_an_age_file(owner, tmp_path, capsys):
    _, identity = owner
    junk = tmp_path / "holiday.mp4"
    junk.write_bytes(b"\x00\x00\x00\x18ftypmp42")
    assert main("decrypt", "-i", identity, "-o", tmp_path / "o", junk) == 1
    assert capsys.readouterr().err.strip() == (
        f"doorbell: {junk}: header failure: not an age file (no age-encryption.org/v1 line)"
    )


def test_decrypt_does_not_load_the_video_stack(owner, tmp_path):
    """`doorbell decrypt` stays a small tool: no av, cv2, numpy, aiohttp or sqlite3."""
    data, identity = owner
    (tmp_path / "p").write_bytes(b"x" * 1000)
    assert (
        main(
            "encrypt", "-R", data / "keys" / "recipients.txt", "-o", tmp_path / "c", tmp_path / "p"
        )
        == 0
    )
    probe = (
        "import sys; from doorbell import cli\n"
        f"code = cli.main(['decrypt', '-i', {str(identity)!r}, '-o', {str(tmp_path / 'o')!r},"
        f" {str(tmp_path / 'c')!r}])\n"
        "heavy = sorted({'av', 'cv2', 'numpy', 'aiohttp', 'picamera2', 'sqlite3'} & set(sys.modules))\n"
        "print(code, heavy)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "0 []"


def test_console_script_is_installed():
    entry = Path(sys.executable).with_name("doorbell")
    assert entry.exists(), "pip install -e . puts the doorbell command beside python"
