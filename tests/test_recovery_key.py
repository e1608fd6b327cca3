"""``doorbell keys recovery``: a paper recovery key, shown once, only its recipient kept.

Checked with the real ``age`` CLI (the printed key opens a clip recorded afterwards),
OpenCV's QR decoder (the printed QR code reads back as the key) and a grep of the whole
data dir (the key is nowhere in it)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from doorbell import vault
from doorbell.store import Keyring
from tests.conftest import WITHOUT_CAPABILITIES, on_a_terminal

DOORBELL = [sys.executable, "-m", "doorbell"]
ENTRY = Path(sys.executable).with_name("doorbell")  # the command the hint names
DARK, LIGHT = 1, 0
# segno's compact terminal form: two rows a line, dark modules as blanks (light text on a
# dark terminal); each character is (top, bottom)
BLOCKS = {
    " ": (DARK, DARK),
    "\u2580": (LIGHT, DARK),
    "\u2584": (DARK, LIGHT),
    "\u2588": (LIGHT, LIGHT),
}


pytestmark = pytest.mark.cli


def recovery(data: Path, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*DOORBELL, "keys", "recovery", "--data-dir", str(data), *options],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def printed_key(out: str) -> str:
    [key] = [line.strip() for line in out.splitlines() if "AGE-SECRET-KEY-1" in line]
    return key


def printed_matrix(out: str) -> list[list[int]]:
    """The QR code as printed, back to rows of modules (quiet zone included)."""
    lines = [line for line in out.splitlines() if line and set(line) <= set(BLOCKS)]
    matrix = []
    for line in lines:
        matrix += [[BLOCKS[ch][0] for ch in line], [BLOCKS[ch][1] for ch in line]]
    return matrix


@pytest.fixture
def made(tmp_path):
    """A data dir with an owner, then a recovery key made in it: (data dir, stdout)."""
    data = tmp_path / "data"
    Keyring.in_data_dir(data).add_recipient(vault.X25519Identity.generate().recipient, "owner")
    result = recovery(data, "--yes-print-to-pipe")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return data, result.stdout


def test_the_printed_key_opens_a_clip_recorded_afterwards_with_the_stock_age(made, tmp_path):
    data, out = made
    key = printed_key(out)
    identity = vault.parse_identities(key)[0]
    keyring = Keyring.in_data_dir(data)
    assert str(identity.recipient) in {str(r) for r in keyring.recipients()}
    assert str(identity.recipient) in out  # the public key is shown with it
    clip = tmp_path / "clip.mp4.age"
    plain = b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * 600
    clip.write_bytes(vault.encrypt_bytes(plain, keyring.recipients()))
    paper = tmp_path / "recovery.txt"  # what the owner types in from the paper
    paper.write_text(key + "\n")
    opened = subprocess.run(
        ["age", "-d", "-i", str(paper), str(clip)], capture_output=True, check=True
    )
    assert opened.stdout == plain
    assert "age -d -i recovery.txt" in out


def test_only_the_recipient_is_kept_in_the_data_dir(made):
    data, out = made
    key = printed_key(out)
    found = subprocess.run(
        ["grep", "-rIl", "-e", "AGE-SECRET-KEY", "-e", key[len("AGE-SECRET-KEY-1") :], str(data)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert found.returncode == 1, found.stdout  # grep: no file holds it
    for path in data.rglob("*"):  # and not in binary files either
        if path.is_file():
            raw = path.read_bytes()
            assert b"AGE-SECRET-KEY" not in raw.upper(), path
    recipient = str(vault.parse_identities(key)[0].recipient)
    kept = json.loads((data / "keys" / "owners.json").read_text())
    assert [r["recipient"] for r in kept["recovery"]] == [recipient]


def test_the_qr_code_is_the_key(made):
    """The QR code printed is segno's for the key, and a QR decoder reads the key back."""
    segno = pytest.importorskip("segno")
    cv2 = pytest.importorskip("cv2")
    np = pytest.importorskip("numpy")
    _, out = made
    key = printed_key(out)
    printed = printed_matrix(out)
    expected = segno.make(key, micro=False)
    border = 4
    size = len(expected.matrix) + 2 * border
    # an odd count of rows ends in a half line segno pads with blanks
    assert printed[size:] in ([], [[DARK] * size])
    framed = [[LIGHT] * size for _ in range(border)]
    framed += [
        [LIGHT] * border + [int(m) for m in row] + [LIGHT] * border for row in expected.matrix
    ]
    framed += [[LIGHT] * size for _ in range(border)]
    assert printed[:size] == framed
    image = np.array([[0 if m else 255 for m in row] for row in printed[:size]], np.uint8)
    image = cv2.resize(image, None, fx=8, fy=8, interpolation=cv2.INTER_NEAREST)
    text, _, _ = cv2.QRCodeDetector().detectAndDecode(image)
    assert text == key


def test_a_pipe_is_refused_without_the_flag(tmp_path):
    data = tmp_path / "data"
    result = recovery(data)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "--yes-print-to-pipe" in result.stderr
    assert not (data / "keys").exists()  # nothing made


def test_on_a_terminal_it_is_shown(tmp_path):
    data = tmp_path / "data"
    code, seen = on_a_terminal([*DOORBELL, "keys", "recovery", "--data-dir", str(data)], answers=[])
    assert code == 0, seen
    key = printed_key(seen)
    [recipient] = [
        r["recipient"] for r in json.loads((data / "keys" / "owners.json").read_text())["recovery"]
    ]
    assert recipient == str(vault.parse_identities(key)[0].recipient)


def test_a_second_key_adds_a_second_recipient(made):
    data, first = made
    second = recovery(data, "--yes-print-to-pipe")
    assert second.returncode == 0, second.stderr
    assert printed_key(second.stdout) != printed_key(first)
    recipients = {str(r) for r in Keyring.in_data_dir(data).recipients()}
    for out in (first, second.stdout):
        assert str(vault.parse_identities(printed_key(out))[0].recipient) in recipients
    assert len(recipients) == 3  # the owner and two paper keys


def test_a_data_dir_it_cannot_write_is_one_line_and_no_key(foreign_data_dir):
    """Without the rights to the data dir (root without CAP_DAC_OVERRIDE stands in for
    another user), one line saying to use sudo -u doorbell; no key printed."""
    data = foreign_data_dir
    argv = ["keys", "recovery", "--data-dir", str(data), "--yes-print-to-pipe"]
    result = subprocess.run(
        [*WITHOUT_CAPABILITIES, *DOORBELL, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "AGE-SECRET-KEY" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    assert f"'sudo -u doorbell {ENTRY} keys recovery'" in line


def test_root_gives_the_keys_back_to_the_data_dirs_owner(tmp_path):
    """Run with sudo on the service's data dir, the files it writes stay the service's."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    os.chown(data, 65534, 65534)
    result = recovery(data, "--yes-print-to-pipe")
    assert result.returncode == 0, result.stderr
    for name in ("keys", "keys/owners.json", "keys/recipients.txt"):
        assert (data / name).stat().st_uid == 65534, name


def test_keys_recovery_does_not_load_the_video_stack(tmp_path):
    probe = (
        "import sys; from doorbell import cli\n"
        f"code = cli.main(['keys', 'recovery', '--data-dir', {str(tmp_path / 'd')!r},"
        " '--yes-print-to-pipe'])\n"
        "heavy = sorted({'av', 'cv2', 'numpy', 'picamera2', 'aiohttp'} & set(sys.modules))\n"
        "print(code, heavy, file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stderr.strip() == "0 []"
