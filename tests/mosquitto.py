"""A real mosquitto for a test: Debian's broker on a free loopback port, with a password
file, no anonymous clients and no persistence, started and stopped by the test.

    broker = Mosquitto(tmp_path, users={"doorbell": "s3cret"})
    broker.start()           # waits until the port accepts connections
    broker.kill()            # SIGKILL: the broker's retained messages go with it
    broker.start()           # the same port again
    broker.stop()            # SIGTERM, then SIGKILL after 5 s

``require_mosquitto()`` skips the test, saying how to install it, when the broker is
missing. Its log goes to ``tmp_path/mosquitto-N.log`` (``broker.log()``).
"""

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

SEARCH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
INSTALL = "mosquitto is not installed (apt install mosquitto mosquitto-clients)"


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto", path=SEARCH)


def require_mosquitto() -> str:
    """The broker's path, or the test is skipped saying how to install it."""
    found = mosquitto_binary()
    passwd = shutil.which("mosquitto_passwd", path=SEARCH)
    if not found or not passwd:
        pytest.skip(INSTALL)
    return found


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on now at ``host`` (the kernel's choice)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


class Mosquitto:
    """One broker, listening on ``host`` only (127.0.0.1 unless told). ``users`` maps user names to passwords
    (hashed into the password file by ``mosquitto_passwd -b``); ``anonymous`` also lets
    clients in without a user name (as ``doorbell demo --mqtt HOST:PORT`` connects)."""

    def __init__(
        self,
        folder: Path,
        users: dict[str, str],
        port: int | None = None,
        *,
        anonymous: bool = False,
        host: str = "127.0.0.1",
    ) -> None:
        self.binary = require_mosquitto()
        self.folder = folder
        self.host = host
        self.port = port or free_port(host)
        self.users = dict(users)
        self.process: subprocess.Popen | None = None
        self.starts = 0
        self.passwords = folder / "mosquitto.passwd"
        self.passwords.unlink(missing_ok=True)
        passwd = shutil.which("mosquitto_passwd", path=SEARCH)
        assert passwd is not None
        for user, password in self.users.items():
            flags = ["-b"] if self.passwords.exists() else ["-c", "-b"]
            subprocess.run(
                [passwd, *flags, str(self.passwords), user, password],
                check=True,
                capture_output=True,
                timeout=10,
            )
        if self.users:
            self.passwords.chmod(0o600)
        self.config = folder / "mosquitto.conf"
        self.config.write_text(
            "\n".join(
                [
                    f"listener {self.port} {self.host}",
                    f"allow_anonymous {'true' if anonymous else 'false'}",
                    f"password_file {self.passwords}" if self.users else "",
                    "persistence false",
                    # as root it would become the user "mosquitto", who cannot read tmp_path
                    f"user {pwd.getpwuid(os.getuid()).pw_name}",
                    "log_dest stderr",
                    "log_type error",
                    "log_type warning",
                    "log_type notice",
                    "",
                ]
            )
        )

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def log(self) -> str:
        return "".join(
            path.read_text(errors="replace") for path in sorted(self.folder.glob("mosquitto-*.log"))
        )

    def start(self, timeout: float = 5.0) -> None:
        """Start the broker and wait until its port accepts a connection."""
        assert self.process is None or self.process.poll() is not None, "already running"
        self.starts += 1
        log = open(self.folder / f"mosquitto-{self.starts}.log", "wb")  # noqa: SIM115
        with log:
            self.process = subprocess.Popen(
                [self.binary, "-c", str(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"mosquitto exited with {self.process.returncode}:\n{self.log()}"
                )
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    self.kill()
                    raise RuntimeError(
                        f"mosquitto did not listen in {timeout} s:\n{self.log()}"
                    ) from None
                time.sleep(0.01)

    def kill(self) -> None:
        """SIGKILL: no goodbye to its clients; its retained messages are gone (no persistence)."""
        self._end(signal.SIGKILL)

    def stop(self) -> None:
        self._end(signal.SIGTERM)

    def _end(self, sig: int) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None
