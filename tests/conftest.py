"""Shared fixtures: a data dir with owner keys made the way `doorbell keys init` makes them."""

import os
import pty
import select
import shutil
import subprocess
import termios
import time
from pathlib import Path

import pytest

from doorbell.store import Keyring


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "runs_first: run before every other test (it needs the process state pytest "
        "started with, e.g. a core-dump limit that an in-process cli.main lowers for good)",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``runs_first`` go first, whatever files or order were asked for."""
    items.sort(key=lambda item: item.get_closest_marker("runs_first") is None)


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


@pytest.fixture
def small_disk(tmp_path: Path):
    """A factory for a real, tiny file system (tmpfs of ``size`` bytes) that fills up:
    writes past it fail with ENOSPC from the kernel, as on a full SD card."""
    mounted: list[Path] = []

    def make(size: int, name: str = "disk") -> Path:
        point = tmp_path / name
        point.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(point)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a small tmpfs here (needs root): {done.stderr.strip()}")
        mounted.append(point)
        return point

    yield make
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=False)


def decodable_frames(mp4: bytes) -> int:
    """Frames of an MP4 that decode. A clip cut at a chunk boundary (a full disk, a killed
    writer) may end inside its last packet: decoding stops there."""
    import io

    import av

    frames = 0
    with av.open(io.BytesIO(mp4)) as container:
        for packet in container.demux(video=0):
            try:
                frames += len(packet.decode())
            except av.error.InvalidDataError:
                break
    return frames


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


def on_a_terminal(argv: list[str], answers: list[str], timeout: float = 30.0) -> tuple[int, str]:
    """Run ``argv`` with a pty as its controlling terminal; type the next answer at
    each passphrase prompt, once the program has turned echo off for it (typing
    earlier would echo the secret). Returns the exit code and what the terminal showed."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: /dev/tty is the pty
        os.execv(argv[0], argv)
    seen, answered = b"", 0
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.01)
            if ready:
                try:
                    data = os.read(fd, 1024)
                except OSError:  # the child closed the terminal: it is done
                    break
                if not data:
                    break
                seen += data
            prompts = seen.lower().count(b"passphrase")
            if answered < min(prompts, len(answers)) and not echoing(fd):
                os.write(fd, answers[answered].encode() + b"\n")
                answered += 1
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    return os.waitstatus_to_exitcode(status), seen.decode(errors="replace")


def echoing(fd: int) -> bool:
    try:
        return bool(termios.tcgetattr(fd)[3] & termios.ECHO)
    except termios.error:  # the terminal is gone
        return True


# Real footage stays out of the repository (see docs/FOOTAGE.md for what
# each file shows). Tests that need it get it from footage(), and every behaviour
# they check is also checked on generated footage (tests/scenes.py).
FOOTAGE_BESIDE_REPOSITORY = Path(__file__).resolve().parents[2] / "shared" / "footage"


def footage_dir() -> Path:
    """Where real footage is: $DOORBELL_FOOTAGE if set, else ../shared/footage beside the repository."""
    chosen = os.environ.get("DOORBELL_FOOTAGE")
    return Path(chosen) if chosen else FOOTAGE_BESIDE_REPOSITORY


def footage(name: str) -> Path:
    """The real footage file ``name``. Missing, the test is skipped, saying what is missing
    and how to provide it; with DOORBELL_REQUIRE_FOOTAGE=1 (CI) it fails instead."""
    path = footage_dir() / name
    if path.is_file():
        return path
    reason = f"real footage not found: {path} (set DOORBELL_FOOTAGE=DIR; docs/FOOTAGE.md says where to get it)"
    if os.environ.get("DOORBELL_REQUIRE_FOOTAGE", "") not in ("", "0"):
        pytest.fail(
            f"{reason}; DOORBELL_REQUIRE_FOOTAGE is set, so it must be there", pytrace=False
        )
    pytest.skip(reason)


def grey_frames(path: Path, size: tuple[int, int] | None = None):
    """The frames of a video file as grey arrays (optionally resized)."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened(), f"cannot open {path}"
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                return
            grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
            yield cv2.resize(grey, size, interpolation=cv2.INTER_AREA) if size else grey
    finally:
        capture.release()


# root without CAP_DAC_OVERRIDE (or any other): another user's 0700 folder is closed to it
WITHOUT_CAPABILITIES = ["setpriv", "--bounding-set=-all", "--inh-caps=-all", "--"]


@pytest.fixture
def foreign_data_dir(tmp_path: Path) -> Path:
    """A data dir of another user (nobody's, 0700), for a command run as root without its
    capabilities (``WITHOUT_CAPABILITIES``), as a user without rights to it would be."""
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv is not installed")
    if os.geteuid() != 0:
        pytest.skip("needs root, to drop its capabilities against a folder of another user")
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    os.chown(data, 65534, 65534)
    return data
