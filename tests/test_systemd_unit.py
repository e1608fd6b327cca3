"""The systemd unit (systemd/doorbell.service) says what the design requires.

The unit is read with a small parser of our own: systemd allows a key more than
once (``DeviceAllow=``, ``IPAddressAllow=``, ``SystemCallFilter=``) and gives an
empty assignment a meaning (it resets the list), which configparser cannot express.
Where ``systemd-analyze`` is installed, systemd itself scores and checks the file.
"""

import ipaddress
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

SYSTEMD = Path(__file__).resolve().parent.parent / "systemd"
UNIT = SYSTEMD / "doorbell.service"
README = SYSTEMD / "README.md"
MAX_EXPOSURE = 2.0

# systemd.resource-control(5): the keywords IPAddressAllow= accepts, as prefixes.
IP_KEYWORDS = {
    "any": ["0.0.0.0/0", "::/0"],
    "localhost": ["127.0.0.0/8", "::1/128"],
    "link-local": ["169.254.0.0/16", "fe80::/64"],
    "multicast": ["224.0.0.0/4", "ff00::/8"],
}
PUBLIC = ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "100.64.0.1", "172.32.0.1", "2001:db8::1"]
HOME = ["192.168.1.10", "10.0.0.5", "172.16.5.4", "127.0.0.1", "::1", "fe80::1", "fd12:3456::1"]


def parse_unit(text: str) -> dict[str, list[tuple[str, str]]]:
    """Sections of a unit file, each a list of (key, value) in file order, repeats kept."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    lines = iter(text.splitlines())
    for raw in lines:
        line = raw.strip()
        while line.endswith("\\"):  # a continuation joins the next line with a space
            line = line[:-1] + " " + next(lines, "").strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        key, sep, value = line.partition("=")
        assert current is not None and sep, f"not a key=value line in a section: {raw!r}"
        current.append((key.strip(), value.strip()))
    return sections


@pytest.fixture(scope="module")
def unit() -> dict[str, list[tuple[str, str]]]:
    return parse_unit(UNIT.read_text())


def assignments(unit: dict, key: str, section: str = "Service") -> list[str]:
    return [value for k, value in unit.get(section, []) if k == key]


def one(unit: dict, key: str, section: str = "Service") -> str:
    values = assignments(unit, key, section)
    assert len(values) == 1, f"{key}= should be set exactly once in [{section}], got {values}"
    return values[0]


def words(unit: dict, key: str) -> list[str]:
    """A list setting as systemd builds it: words accumulate, an empty assignment resets."""
    result: list[str] = []
    for value in assignments(unit, key):
        result = [*result, *value.split()] if value else []
    return result


def allowed_networks(unit: dict) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    prefixes = []
    for word in words(unit, "IPAddressAllow"):
        prefixes += IP_KEYWORDS.get(word, [word])
    return [ipaddress.ip_network(p) for p in prefixes]


def systemd_analyze() -> str:
    """The systemd-analyze binary, if it is new enough for --offline (systemd 250)."""
    binary = shutil.which("systemd-analyze")
    if binary is None:
        pytest.skip("systemd-analyze is not installed")
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
    number = int(version.stdout.split()[1])
    if number < 250:
        pytest.skip(f"systemd {number} has no systemd-analyze security --offline (needs 250)")
    return binary


def test_parser_keeps_repeats_and_resets():
    """The parser keeps repeated keys in order and an empty assignment resets a list."""
    parsed = parse_unit("[Service]\nA=x y\nA=z\n# note\nB=1\nB=\nB=2 \\\n 3\n")
    assert words(parsed, "A") == ["x", "y", "z"]
    assert words(parsed, "B") == ["2", "3"]


def test_lifecycle(unit):
    """Type=notify with watchdog, restart on failure and a stop window longer than the 5 s clip finish."""
    assert one(unit, "Type") == "notify"
    assert one(unit, "NotifyAccess") == "main"
    assert one(unit, "ExecStart") == (
        "/opt/doorbell/venv/bin/doorbell run --config /etc/doorbell/doorbell.toml"
    )
    assert 10 <= int(one(unit, "WatchdogSec")) <= 60
    assert one(unit, "Restart") == "on-failure"
    assert int(one(unit, "RestartSec")) > 0
    assert one(unit, "KillSignal") == "SIGTERM"
    assert int(one(unit, "TimeoutStopSec")) > 5
    assert assignments(unit, "WantedBy", "Install") == ["multi-user.target"]


def test_user_and_directories(unit):
    """A static doorbell user with the video and gpio groups, a private state dir and umask."""
    assert one(unit, "User") == "doorbell"
    assert one(unit, "Group") == "doorbell"
    assert {"video", "gpio"} <= set(words(unit, "SupplementaryGroups"))
    assert one(unit, "StateDirectory") == "doorbell"
    assert one(unit, "StateDirectoryMode") == "0700"
    assert one(unit, "ConfigurationDirectory") == "doorbell"
    assert one(unit, "UMask") == "0077"


def test_the_browser_library_is_where_install_puts_it(unit):
    """The service serves the age library from the node_modules scripts/install.sh makes
    (tests/test_install.py checks that npm ci installs it there)."""
    environment = dict(value.split("=", 1) for value in words(unit, "Environment"))
    assert environment["DOORBELL_NODE_MODULES"] == "/opt/doorbell/node_modules"
    assert environment["GPIOZERO_PIN_FACTORY"] == "lgpio"  # the other settings stay


def test_sandbox(unit):
    """Read-only system, private /tmp, no privileges, no capabilities and a system call filter."""
    assert one(unit, "ProtectSystem") == "strict"
    assert one(unit, "ProtectHome") == "yes"
    assert one(unit, "PrivateTmp") == "yes"
    assert one(unit, "NoNewPrivileges") == "yes"
    assert assignments(unit, "CapabilityBoundingSet") == [""]
    assert assignments(unit, "AmbientCapabilities") == [""]
    filters = assignments(unit, "SystemCallFilter")
    assert "@system-service" in filters
    denied = {w for f in filters if f.startswith("~") for w in f[1:].split()}
    assert {"@privileged", "@resources"} <= denied
    assert one(unit, "SystemCallArchitectures") == "native"
    assert one(unit, "SystemCallErrorNumber") == "EPERM"


def test_settings_that_would_break_the_doorbell_are_absent(unit):
    """No setting that would cut the LAN, the device groups, gpiozero's /proc reads or the data's owner."""
    for key in ("PrivateNetwork", "PrivateUsers", "PrivateDevices", "DynamicUser", "ProcSubset"):
        assert not assignments(unit, key), f"{key}= is explained as unset in systemd/README.md"


def test_devices(unit):
    """Closed device policy; read-write access to the camera, its DMA heaps and the GPIO chips only."""
    assert one(unit, "DevicePolicy") == "closed"
    allowed = dict(value.split() for value in assignments(unit, "DeviceAllow"))
    assert allowed == {
        "char-video4linux": "rw",  # /dev/video*, /dev/v4l-subdev*
        "char-media": "rw",  # /dev/media*
        "char-dma_heap": "rw",  # /dev/dma_heap/*
        "char-gpiochip": "rw",  # /dev/gpiochip*
    }


def test_memory_keeps_secrets_off_disk(unit):
    """No core dumps and no swap for the process that holds the owner's identity."""
    assert one(unit, "LimitCORE") == "0"
    assert one(unit, "MemorySwapMax") == "0"
    assert one(unit, "MemoryMax")


def test_network_rules(unit):
    """Deny every address, allow loopback and the private ranges, never everything; no netlink or raw sockets."""
    assert one(unit, "IPAddressDeny") == "any"
    allowed = words(unit, "IPAddressAllow")
    assert {"localhost", "link-local", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"} <= set(
        allowed
    )
    assert {"fc00::/7", "fe80::/10"} <= set(allowed)
    assert not {"any", "0.0.0.0/0", "::/0", "0.0.0.0/1", "::/1"} & set(allowed)
    assert all(net.prefixlen >= 7 for net in allowed_networks(unit))
    assert words(unit, "RestrictAddressFamilies") == ["AF_UNIX", "AF_INET", "AF_INET6"]


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_refused(unit, address):
    """An internet address falls outside every IPAddressAllow= entry, so the kernel drops it."""
    ip = ipaddress.ip_address(address)
    inside = [str(net) for net in allowed_networks(unit) if ip in net]
    assert not inside, f"{address} is allowed by {inside}"


@pytest.mark.parametrize("address", HOME)
def test_home_network_addresses_are_allowed(unit, address):
    """A loopback, link-local or private LAN address falls inside an IPAddressAllow= entry."""
    ip = ipaddress.ip_address(address)
    assert any(ip in net for net in allowed_networks(unit)), f"{address} is not allowed"


def test_every_setting_is_explained(unit):
    """The unit points to systemd/README.md and the README names every key the unit sets."""
    assert "systemd/README.md" in UNIT.read_text().splitlines()[1]
    readme = README.read_text()
    keys = {key for section in unit.values() for key, _ in section}
    missing = sorted(key for key in keys if f"`{key}" not in readme)
    assert not missing, f"systemd/README.md does not explain {missing}"


def test_exposure_is_at_most_2():
    """systemd-analyze security --offline scores the unit file 2.0 or lower (lower is safer).

    --offline=true reads the file as it is: it needs neither the ExecStart binary nor
    the doorbell user to exist, so the repository's own file is scored, unchanged.
    """
    binary = systemd_analyze()
    result = subprocess.run(
        [binary, "security", "--offline=true", "--no-pager", str(UNIT)],
        capture_output=True,
        text=True,
        env={"SYSTEMD_COLORS": "0", "PATH": "/usr/bin:/bin"},
        timeout=30,
    )
    match = re.search(r"Overall exposure level for doorbell\.service: (\d+\.\d+)", result.stdout)
    assert match, f"no exposure figure in the output:\n{result.stdout}\n{result.stderr}"
    assert float(match.group(1)) <= MAX_EXPOSURE, result.stdout


def test_systemd_verify_accepts_the_unit(tmp_path):
    """systemd-analyze verify finds no unknown key, bad value or missing dependency in the unit.

    verify checks that ExecStart's binary exists and that the units it depends on
    exist, which on a build machine they do not. So it runs with --root= on a small
    tree holding the unchanged unit, an empty executable at the install path
    (/opt/doorbell/venv/bin/doorbell) and an empty sysinit.target (every service
    requires it). Any message at all, even a warning it "ignores", fails the test.
    """
    binary = systemd_analyze()
    executable = tmp_path / "opt/doorbell/venv/bin/doorbell"
    executable.parent.mkdir(parents=True)
    executable.write_text("#!/bin/sh\n")
    executable.chmod(0o755)
    units = tmp_path / "etc/systemd/system"
    units.mkdir(parents=True)
    shutil.copy(UNIT, units / "doorbell.service")
    (units / "sysinit.target").write_text("[Unit]\n")
    result = subprocess.run(
        [binary, "verify", f"--root={tmp_path}", "--man=no", "doorbell.service"],
        capture_output=True,
        text=True,
        env={"SYSTEMD_COLORS": "0", "PATH": "/usr/bin:/bin"},
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert not (result.stdout + result.stderr).strip(), result.stdout + result.stderr


def test_recording_never_waits_for_ntp(unit):
    """Ordered after time-set.target (the saved time, no network), never after or on
    time-sync.target (NTP, which a LAN without a time server never reaches)."""
    for key in ("After", "Wants", "Requires", "Requisite", "BindsTo"):
        values = [w for v in assignments(unit, key, "Unit") for w in v.split()]
        assert "time-sync.target" not in values, f"{key}= waits for NTP"
    assert "time-set.target" in [w for v in assignments(unit, "After", "Unit") for w in v.split()]


def test_the_clock_state_can_be_read_but_the_clock_never_set(unit):
    """adjtimex and clock_adjtime come back after ~@privileged (reading the NTP state);
    ProtectClock= is unset (it refuses them even for reading); no capability, so no call
    can change the clock, and the setting calls stay out of every allow line."""
    filters = assignments(unit, "SystemCallFilter")
    privileged = filters.index("~@privileged @resources")
    readers = filters.index("adjtimex clock_adjtime clock_adjtime64")
    assert readers > privileged  # after the removal, so it adds them back
    allowed = {w for f in filters if not f.startswith("~") for w in f.split()}
    assert not {"settimeofday", "clock_settime", "clock_settime64", "@clock"} & allowed
    assert assignments(unit, "ProtectClock") == []
    assert assignments(unit, "CapabilityBoundingSet") == [""]


def test_systemd_agrees_the_clock_cannot_be_changed():
    """systemd-analyze's own view of the file: CAP_SYS_TIME cannot be held."""
    binary = systemd_analyze()
    result = subprocess.run(
        [binary, "security", "--offline=true", "--json=short", "--no-pager", str(UNIT)],
        capture_output=True,
        text=True,
        env={"SYSTEMD_COLORS": "0", "PATH": "/usr/bin:/bin"},
        timeout=30,
    )
    items = {item["name"]: item for item in json.loads(result.stdout)}
    assert items["CapabilityBoundingSet=~CAP_SYS_TIME"]["set"] is True
    assert items["SystemCallFilter=~@clock"]["set"] is False  # adjtimex is allowed: reading
