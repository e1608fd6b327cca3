"""scripts/install.sh, run against a temporary root (``--root``): what it prints, what it
writes there, what it keeps, and how it refuses. Nothing here touches the real system:
under ``--root`` the script only prints apt-get, useradd, systemctl and the venv steps."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "install.sh"
DEFAULT_TOML = REPO / "doorbell" / "default.toml"
UNIT = REPO / "systemd" / "doorbell.service"
PACKAGES = ("python3-venv", "python3-picamera2", "python3-lgpio", "age", "nodejs", "npm")
NPM_CI = "npm ci --prefix {root}/opt/doorbell --ignore-scripts --omit=dev --no-audit --no-fund"


def install(
    *args, as_user: list[str] | None = None, script: Path = SCRIPT
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*(as_user or []), "bash", str(script), *map(str, args)],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def installed(*args) -> str:
    """Run the script, expect success, return what it printed."""
    result = install(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def listing(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every path under root with its mode, size and modification time."""
    return {
        str(path.relative_to(root)): (stat.st_mode, stat.st_size, stat.st_mtime_ns)
        for path in sorted(root.rglob("*"))
        for stat in [path.lstat()]
    }


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A Raspberry Pi OS Bookworm root as the script reads it: no doorbell in it yet."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "os-release").write_text(
        'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nVERSION_CODENAME=bookworm\n'
    )
    (root / "etc" / "hostname").write_text("porch\n")
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (root / "etc" / "group").write_text("root:x:0:\nvideo:x:44:pi\ngpio:x:997:pi\n")
    return root


@pytest.mark.parametrize(
    "script",
    [
        "scripts/install.sh",
        "scripts/setup",
        "scripts/test",
        "scripts/demo",
        "scripts/lock",
        "scripts/lowest-check",
        ".ci/run",
    ],
)
def test_shellcheck_is_clean(script):
    """shellcheck finds nothing in the project's shell scripts."""
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    result = subprocess.run(
        ["shellcheck", script], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dry_run_prints_every_step_and_changes_nothing(root):
    """--dry-run --root prints each command of a first install and leaves the root as it was."""
    before = listing(root)
    out = installed("--dry-run", "--root", root)
    assert listing(root) == before
    apt = next(line for line in out.splitlines() if "apt-get install" in line)
    assert "--no-install-recommends" in apt
    assert all(package in apt for package in PACKAGES)
    assert "useradd --system --home-dir /var/lib/doorbell" in out
    assert "usermod --append --groups video doorbell" in out
    assert "usermod --append --groups gpio doorbell" in out
    assert f"python3 -m venv --system-site-packages {root}/opt/doorbell/venv" in out
    # the locked dependencies, hashes checked, then doorbell alone
    lock = REPO / "requirements.lock"
    assert f"-m pip install --quiet --require-hashes --requirement {lock}" in out
    assert "-m pip install --quiet --no-deps" in out
    assert out.index("--require-hashes") < out.index("--no-deps")
    assert f"+ install -D -m 0640 {DEFAULT_TOML} {root}/etc/doorbell/doorbell.toml" in out
    assert "doorbell config check" in out
    assert f"+ install -D -m 0644 {UNIT} {root}/etc/systemd/system/doorbell.service" in out
    assert "systemctl enable --now doorbell" in out
    # the browser's age library: the lock beside node_modules, npm ci, no scripts run
    lock = REPO / "package-lock.json"
    assert f"+ install -D -m 0644 {lock} {root}/opt/doorbell/package-lock.json" in out
    assert f"+ (skipped under --root) {NPM_CI.format(root=root)}\n" in out
    # no owner yet: the setup code, and the page to type it in
    assert "https://porch.local:8443/setup" in out
    assert (
        "+ (skipped under --root) runuser -u doorbell -- /opt/doorbell/venv/bin/doorbell "
        "setup-code --data-dir /var/lib/doorbell"
    ) in out
    assert "self-signed" in out
    assert "journalctl -u doorbell" in out


def test_system_commands_are_only_printed_under_root(root):
    """Under --root, apt-get, useradd, chown, systemctl and the venv are marked as skipped."""
    out = installed("--root", root)
    for command in (
        "apt-get",
        "useradd",
        "usermod",
        "chown",
        "systemctl",
        "python3 -m venv",
        "pip",
        "npm",
        "runuser",
    ):
        lines = [line for line in out.splitlines() if line.startswith("+") and command in line]
        assert lines, command
        assert all(line.startswith("+ (skipped under --root) ") for line in lines), lines
    assert not (root / "opt" / "doorbell" / "venv").exists()


def test_install_puts_config_and_unit_under_root(root):
    """A run with --root writes the default config (mode 0640) and the unit under the root."""
    installed("--root", root)
    config = root / "etc" / "doorbell" / "doorbell.toml"
    assert config.read_bytes() == DEFAULT_TOML.read_bytes()
    assert config.stat().st_mode & 0o777 == 0o640
    unit = root / "etc" / "systemd" / "system" / "doorbell.service"
    assert unit.read_bytes() == UNIT.read_bytes()
    assert unit.stat().st_mode & 0o777 == 0o644
    readme = root / "opt" / "doorbell" / "systemd" / "README.md"  # the unit's Documentation=
    assert readme.read_bytes() == (REPO / "systemd" / "README.md").read_bytes()


def test_second_run_keeps_the_owners_config(root):
    """Run again, the script keeps an edited config byte for byte and says so; so does a dry run."""
    installed("--root", root)
    config = root / "etc" / "doorbell" / "doorbell.toml"
    edited = config.read_bytes() + b'\n# the owner was here\n[camera]\nbackend = "opencv"\n'
    config.write_bytes(edited)
    for args in (["--dry-run"], []):
        out = installed(*args, "--root", root)
        assert f"keeping {config}" in out
        assert "default.toml" not in out
        assert "unit" in out and "is up to date" in out
        assert config.read_bytes() == edited


def test_nothing_to_install_on_a_root_that_has_it(root):
    """With the packages in the root's dpkg database and the user in its passwd, no apt-get, useradd or usermod."""
    if shutil.which("dpkg-query") is None:
        pytest.skip("dpkg-query is not installed")
    dpkg = root / "var" / "lib" / "dpkg"
    dpkg.mkdir(parents=True)
    (dpkg / "status").write_text(
        "".join(
            f"Package: {package}\nStatus: install ok installed\nMaintainer: -\n"
            f"Architecture: all\nVersion: 1\nDescription: -\n\n"
            for package in PACKAGES
        )
    )
    with (root / "etc" / "passwd").open("a") as passwd:
        passwd.write("doorbell:x:999:995::/var/lib/doorbell:/usr/sbin/nologin\n")
    (root / "etc" / "group").write_text("video:x:44:pi,doorbell\ngpio:x:997:doorbell\n")
    out = installed("--dry-run", "--root", root)
    assert "apt packages are installed" in out
    assert "user doorbell exists" in out
    assert "apt-get" not in out and "useradd" not in out and "usermod" not in out


def test_node_modules_is_installed_once_a_lock(root):
    """npm ci runs again only when package-lock.json changed since it last ran."""
    home = root / "opt" / "doorbell"
    (home / "node_modules").mkdir(parents=True)
    (home / "node_modules.lock").write_bytes((REPO / "package-lock.json").read_bytes())
    out = installed("--dry-run", "--root", root)
    assert "node_modules has this package-lock.json already" in out
    assert "npm ci" not in out
    (home / "node_modules.lock").write_bytes(b"{}")  # an older lock
    assert NPM_CI.format(root=root) in installed("--dry-run", "--root", root)


def test_with_an_owner_paired_no_setup_code(root):
    keys = root / "var" / "lib" / "doorbell" / "keys"
    keys.mkdir(parents=True)
    (keys / "owners.json").write_text('{"version": 1, "owners": [{"name": "Alice"}]}')
    out = installed("--dry-run", "--root", root)
    assert "setup-code" not in out
    assert "https://porch.local:8443/\n" in out and "/setup" not in out


def checkout(tmp_path: Path, git: bool = True) -> Path:
    """A small checkout with what install.sh needs, committed to git (unless not
    ``git``), and beside it files nobody committed: an exported identity, a note, a
    node_modules and a build leftover."""
    top = tmp_path / "checkout"
    for name in (
        "scripts/install.sh",
        "doorbell/default.toml",
        "systemd/doorbell.service",
        "systemd/README.md",
        "requirements.lock",
        "package.json",
        "package-lock.json",
    ):
        (top / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, top / name)
    (top / ".gitignore").write_text("node_modules/\n")
    if git:
        quiet = {"cwd": top, "check": True, "capture_output": True}
        subprocess.run(["git", "init", "-q"], **quiet)
        subprocess.run(["git", "add", "."], **quiet)
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qm", "x"],
            **quiet,
        )
    (top / "identity.txt").write_text("AGE-SECRET-KEY-1QQQQ\n")  # keys export > identity.txt
    (top / "notes.txt").write_text("untracked\n")
    (top / "node_modules" / "x").mkdir(parents=True)
    (top / "node_modules" / "x" / "index.js").write_text("//\n")
    (top / "doorbell" / "__pycache__").mkdir()
    (top / "doorbell" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    return top


def packed(root: Path) -> tuple[list[str], int]:
    """The names in the copy install.sh made, and its mode."""
    tar = root / "opt" / "doorbell" / "doorbell-src.new.tar"
    names = subprocess.run(["tar", "-tf", tar], capture_output=True, text=True, check=True)
    return sorted(names.stdout.split()), tar.stat().st_mode & 0o777


def test_only_tracked_files_are_packed_root_only(root, tmp_path):
    """The copy pip builds from holds the files git tracks, nothing else (no identity.txt),
    and it and its list are root's alone (0600); a second run finds it the same."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    top = checkout(tmp_path)
    result = install("--root", root, script=top / "scripts" / "install.sh")
    assert result.returncode == 0, result.stdout + result.stderr
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=top, capture_output=True, text=True, check=True
    ).stdout.split()
    names, mode = packed(root)
    assert names == sorted(tracked)
    assert "identity.txt" not in names and "notes.txt" not in names
    assert mode == 0o600
    listed = root / "opt" / "doorbell" / "doorbell-src.files"
    assert listed.stat().st_mode & 0o777 == 0o600
    home = root / "opt" / "doorbell"
    (home / "doorbell-src.new.tar").rename(home / "doorbell-src.tar")  # what pip installed
    (home / "doorbell-src.tar").chmod(0o644)  # as an older install.sh left it
    again = install("--root", root, script=top / "scripts" / "install.sh")
    assert "the venv has this checkout already" in again.stdout
    assert (home / "doorbell-src.tar").stat().st_mode & 0o777 == 0o600
    (top / "notes.txt").write_text("changed, still untracked\n")
    assert "the venv has this checkout already" in installed_from(top, root)
    (top / "doorbell" / "default.toml").write_text("# changed\n")  # tracked: a new copy
    assert "tar -C" in installed_from(top, root)


def installed_from(top: Path, root: Path) -> str:
    result = install("--dry-run", "--root", root, script=top / "scripts" / "install.sh")
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_outside_git_everything_but_the_excluded_is_packed(root, tmp_path):
    """Without git to ask, the copy is every file but dot-files, build leftovers and
    node_modules, and the script says so."""
    top = checkout(tmp_path, git=False)
    result = install("--root", root, script=top / "scripts" / "install.sh")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is not a git checkout" in result.stdout
    names, mode = packed(root)
    assert mode == 0o600
    assert "./identity.txt" in names and "./scripts/install.sh" in names
    assert not [n for n in names if "node_modules" in n or "__pycache__" in n or "/." in n]


def test_uninstall_keeps_clips_keys_and_config(root):
    """--uninstall removes the unit and /opt/doorbell, keeps /var/lib/doorbell and /etc/doorbell and names them."""
    installed("--root", root)
    identity = root / "var" / "lib" / "doorbell" / "keys" / "identity.age"
    identity.parent.mkdir(parents=True)
    identity.write_bytes(b"age-encryption.org/v1\n")
    out = installed("--uninstall", "--root", root)
    assert "systemctl disable --now doorbell" in out
    assert not (root / "etc" / "systemd" / "system" / "doorbell.service").exists()
    assert not (root / "opt" / "doorbell").exists()
    assert identity.read_bytes() == b"age-encryption.org/v1\n"
    assert (root / "etc" / "doorbell" / "doorbell.toml").is_file()
    assert f"keeping {root}/var/lib/doorbell" in out
    assert f"{root}/etc/doorbell" in out
    assert "--purge" in out


def test_uninstall_purge_removes_clips_keys_config_and_user(root):
    """--uninstall --purge says what it deletes, then deletes /var/lib/doorbell and /etc/doorbell."""
    installed("--root", root)
    (root / "var" / "lib" / "doorbell" / "clips").mkdir(parents=True)
    with (root / "etc" / "passwd").open("a") as passwd:
        passwd.write("doorbell:x:999:995::/var/lib/doorbell:/usr/sbin/nologin\n")
    out = installed("--uninstall", "--purge", "--root", root)
    assert f"{root}/var/lib/doorbell: the encrypted clips" in out
    assert out.index("deletes, for good") < out.index(f"+ rm -rf {root}/var/lib/doorbell")
    assert "+ (skipped under --root) userdel doorbell" in out
    for gone in (
        "var/lib/doorbell",
        "etc/doorbell",
        "opt/doorbell",
        "etc/systemd/system/doorbell.service",
    ):
        assert not (root / gone).exists(), gone


def test_unknown_os_needs_force(root):
    """An OS other than Bookworm or Trixie stops the script with a message naming it, unless --force."""
    (root / "etc" / "os-release").write_text('NAME="Ubuntu"\nVERSION_CODENAME="noble"\n')
    before = listing(root)
    result = install("--root", root)
    assert result.returncode == 1
    assert "'noble'" in result.stderr and "--force" in result.stderr
    assert listing(root) == before
    forced = install("--force", "--root", root)
    assert forced.returncode == 0, forced.stderr
    assert "warning: OS 'noble'" in forced.stdout


def test_purge_alone_is_an_error(root):
    """--purge without --uninstall fails and does nothing."""
    result = install("--purge", "--root", root)
    assert result.returncode == 1
    assert "--purge only goes with --uninstall" in result.stderr
    assert not result.stdout


@pytest.mark.parametrize("args", [["--frobnicate"], ["--root"], ["extra"]])
def test_unknown_option_exits_2(args):
    """An unknown option, or --root without its directory, is a usage error: exit 2."""
    result = install(*args)
    assert result.returncode == 2
    assert result.stderr.startswith("install: ")
    assert not result.stdout


def test_help_shows_the_options():
    """-h prints the usage and the rule for --root."""
    out = installed("-h")
    for option in (
        "--dry-run",
        "--root DIR",
        "--force",
        "--uninstall",
        "--purge",
        "skipped under --root",
    ):
        assert option in out


def test_not_root_is_an_error_without_dry_run_or_root():
    """As an ordinary user, a real install on / is refused with a hint to use sudo."""
    as_user = ["runuser", "-u", "nobody", "--"] if os.geteuid() == 0 else []
    if as_user and shutil.which("runuser") is None:
        pytest.skip("running as root and runuser is not installed")
    result = install(as_user=as_user)
    assert result.returncode == 1
    assert "run me as root: sudo" in result.stderr
    assert not result.stdout


def test_the_built_package_carries_its_data_files(tmp_path):
    """Every file of the doorbell package (default.toml, templates, static) reaches the build pip installs."""
    pytest.importorskip("setuptools")
    source = tmp_path / "source"
    ignore = shutil.ignore_patterns(".*", "build", "*.egg-info", "__pycache__")
    shutil.copytree(REPO, source, ignore=ignore)
    build = tmp_path / "build"
    setup = "from setuptools import setup; setup()"
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", setup, "-q", "build_py", "--build-lib", build],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr

    def files(top: Path) -> set[str]:
        return {
            str(path.relative_to(top))
            for path in top.rglob("*")
            if path.is_file() and "__pycache__" not in path.parts
        }

    missing = files(source / "doorbell") - files(build / "doorbell")
    assert not missing, (
        f"not in the installed package (pyproject.toml package-data?): {sorted(missing)}"
    )


def locked(python: str, machine: str, lock: Path = REPO / "requirements.lock") -> dict[str, str]:
    """The pins of a requirements file that apply on Linux with this Python and machine."""
    from packaging.requirements import Requirement

    environment = {
        "python_version": python,
        "python_full_version": f"{python}.0",
        "platform_machine": machine,
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_python_implementation": "CPython",
        "implementation_name": "cpython",
    }
    pins = {}
    lines = (line.strip() for line in lock.read_text().splitlines())
    text = "\n".join(line for line in lines if not line.startswith("#"))  # comments
    for line in text.replace("\\\n", " ").splitlines():
        if not line:
            continue
        assert "--hash=sha256:" in line, f"no hash: {line}"
        requirement = Requirement(line.split(" --hash")[0])
        if requirement.marker is None or requirement.marker.evaluate(environment):
            (version,) = [spec.version for spec in requirement.specifier if spec.operator == "=="]
            assert requirement.name not in pins, f"two pins for {requirement.name}"
            pins[requirement.name] = version
    return pins


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
@pytest.mark.parametrize(
    ("python", "debian_numpy"), [("3.11", "1.24.2"), ("3.13", "2.2.4")], ids=["bookworm", "trixie"]
)
def test_the_lock_pins_debians_numpy_on_raspberry_pi_os(python, debian_numpy, machine):
    """On Bookworm and Trixie the lock holds Debian's own numpy, so pip keeps the one in dist-packages."""
    for lock in ("requirements.lock", "requirements-test.lock"):
        pins = locked(python, machine, REPO / lock)
        assert pins["numpy"] == debian_numpy, lock
        for name in ("aiohttp", "av", "cryptography", "opencv-python-headless"):
            assert name in pins, (lock, name)
    if python == "3.11":  # OpenCV from 4.12 on requires numpy 2
        assert tuple(map(int, pins["opencv-python-headless"].split(".")[:2])) < (4, 12)


def test_the_lock_has_a_pin_on_each_python():
    """Every runtime dependency has exactly one pin on each supported Python."""
    for python in ("3.11", "3.12", "3.13"):
        assert {"numpy", "opencv-python-headless", "av", "aiohttp"} <= set(locked(python, "x86_64"))
