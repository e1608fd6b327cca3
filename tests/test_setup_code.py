"""``doorbell setup-code``: the one-time code that pairs the first owner in the browser,
and the demo that prints it with the page to type it in."""

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from doorbell.cli.serve import SETUP_CODE_USE
from doorbell.owners import SetupCode
from tests.conftest import WITHOUT_CAPABILITIES

DOORBELL = [sys.executable, "-m", "doorbell"]
ENTRY = Path(sys.executable).with_name("doorbell")  # the command the hint names
CODE = re.compile(r"setup code: ([0-9A-Z]{4}-[0-9A-Z]{4})\n")
USE = SETUP_CODE_USE


pytestmark = pytest.mark.cli


def setup_code(*args: str, prefix: list[str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*(prefix or []), *DOORBELL, "setup-code", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def shown(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # the code goes to stdout only: no log line carries it
    match = CODE.fullmatch(result.stdout.split(USE)[0])
    assert match, result.stdout
    assert result.stdout.endswith(USE + "\n")
    return match.group(1)


def test_the_code_is_made_once_kept_0600_and_shown_again(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    first = shown(setup_code("--data-dir", str(data)))
    path = data / "setup-code"
    assert path.stat().st_mode & 0o777 == 0o600
    assert SetupCode(data).read() == first
    assert shown(setup_code("--data-dir", str(data))) == first  # the same until used


def test_new_replaces_the_code(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    first = shown(setup_code("--data-dir", str(data)))
    second = shown(setup_code("--data-dir", str(data), "--new"))
    assert second != first
    assert SetupCode(data).matches(second) and not SetupCode(data).matches(first)


def test_the_data_dir_comes_from_the_environment_too(tmp_path, monkeypatch):
    monkeypatch.setenv("DOORBELL_DATA_DIR", str(tmp_path / "env"))
    (tmp_path / "env").mkdir()
    code = shown(setup_code())
    assert SetupCode(tmp_path / "env").read() == code


def test_a_data_dir_that_is_not_there_is_named_never_made(tmp_path):
    """Run before the service (or with the wrong folder), it makes nothing: a code in a
    folder the service does not read would pair nothing."""
    missing = tmp_path / "nowhere"
    result = setup_code("--data-dir", str(missing))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"doorbell: {missing}: no data dir there; the service makes it when it first runs. "
        "If its data is elsewhere, say where: --data-dir D\n"
    )
    assert not missing.exists()


def test_a_data_dir_it_cannot_use_is_one_line_with_what_to_do(foreign_data_dir):
    """As a user without rights to the data dir: exit 1, one line naming the folder and
    saying to use sudo -u doorbell, no traceback, no code."""
    data = foreign_data_dir
    for args in ([], ["--new"]):
        result = setup_code("--data-dir", str(data), *args, prefix=WITHOUT_CAPABILITIES)
        assert result.returncode == 1, result.stderr
        assert result.stdout == ""
        [line] = result.stderr.splitlines()
        assert line.startswith(f"doorbell: {data}: cannot read and write the data dir")
        assert f"'sudo -u doorbell {ENTRY} setup-code'" in line
    assert not (data / "setup-code").exists()


def test_a_code_it_cannot_read_is_never_replaced(tmp_path):
    """The service's code, in a data dir this user may list but whose code file it may
    not read, is left alone (replacing it would show a code the service does not hold)."""
    if shutil.which("setpriv") is None or os.geteuid() != 0:
        pytest.skip("needs root and setpriv")
    data = tmp_path / "data"
    code = SetupCode(data).new()
    os.chown(data / "setup-code", 65534, 65534)  # 0600, another user's
    result = setup_code("--data-dir", str(data), prefix=WITHOUT_CAPABILITIES)
    assert result.returncode == 1
    assert "sudo -u doorbell" in result.stderr
    assert SetupCode(data).read() == code


def test_run_as_root_the_code_stays_readable_by_the_service(tmp_path):
    """sudo doorbell setup-code on the service's data dir: the file is the service's."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    os.chown(data, 65534, 65534)
    shown(setup_code("--data-dir", str(data)))
    assert (data / "setup-code").stat().st_uid == 65534


def test_the_demo_prints_the_page_and_the_setup_code(tmp_path):
    """`doorbell demo` makes no owner: it prints /setup and the data dir's setup code."""
    data = tmp_path / "data"
    process = subprocess.Popen(
        [*DOORBELL, "demo", "--port", "0", "--data-dir", str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = [process.stdout.readline() for _ in range(3)]
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            assert process.wait(timeout=20) == 0
        finally:
            process.kill()
            process.wait()
    assert "Traceback" not in process.stderr.read()
    assert process.stdout.read().endswith("doorbell: stopped\n")  # its last word on SIGTERM
    match = re.fullmatch(
        r"doorbell: open (http://localhost:\d+/)setup and type the setup code (\S+)\n", lines[0]
    )
    assert match, lines
    assert SetupCode(data).read() == match.group(2)
    assert lines[1] == f"doorbell: data dir: {data} (kept)\n"
    assert "passphrase" not in "".join(lines)
    assert not (data / "keys" / "identity.age").exists()  # the device makes no identity
