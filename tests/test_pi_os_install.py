"""Installing doorbell on Raspberry Pi OS Bookworm keeps its camera stack importable.

On the Pi, picamera2 and simplejpeg come from apt (dist-packages), built against
Debian's numpy 1.24; the venv is made with ``--system-site-packages``. A venv that
pulls numpy 2 from PyPI shadows Debian's and ``import simplejpeg`` (so ``import
picamera2``) fails with "numpy.dtype size changed, may indicate binary
incompatibility".

The stand-in for Raspberry Pi OS, built here off a Pi:

- Debian's own Python 3.11 (``/usr/bin/python3.11``) with apt's python3-numpy
  (1.24.2) and the python3-* packages picamera2 depends on (scripts/setup installs
  them), as the system Python, in a prefix of its own: a copy of the interpreter
  whose ``lib/python3/dist-packages`` holds links to every entry of Debian's
  ``/usr/lib/python3/dist-packages`` plus what Raspberry Pi OS adds there;
- that addition: PyPI's simplejpeg 1.7.2 (its cp311 wheel was built against numpy
  1.x: under numpy 2 its import fails with the same dtype-size error, checked in
  :func:`test_the_stand_in_simplejpeg_is_bound_to_numpy_1`), picamera2, pidng and
  videodev2, installed without their dependencies, as apt would.

A venv made from that Python with ``--system-site-packages`` sees them exactly as a
venv on the Pi sees dist-packages: after its own site-packages. The checkout is then
installed the two ways a Pi owner does: the commands ``scripts/install.sh`` runs
(taken from its own output under ``--root``, so they cannot drift), and the
README's ``python3 -m venv --system-site-packages .venv && .venv/bin/pip install .``.
In each venv: simplejpeg encodes, picamera2 imports (libcamera and pykms stubbed as
in tests/fake_picamera2.py), cv2 and av work on Debian's numpy, and ``doorbell
--help`` and ``doorbell config check`` run.

pip's own cache (~/.cache/pip) keeps the downloads and the built pidng wheel.
"""

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
DEBIAN_PYTHON = Path("/usr/bin/python3.11")
DEBIAN_DIST_PACKAGES = Path("/usr/lib/python3/dist-packages")
# What Raspberry Pi OS Bookworm adds to dist-packages beyond Debian's own packages,
# at fixed versions; simplejpeg 1.7.2's cp311 wheel is bound to numpy 1.x.
PI_OS_PACKAGES = ("simplejpeg==1.7.2", "picamera2==0.3.38", "pidng==4.0.9", "videodev2==0.0.4")
# picamera2's other dependencies, from Debian's apt as on Raspberry Pi OS
APT_PACKAGES = (
    "python3-numpy",
    "python3-venv",
    "python3-pil",
    "python3-piexif",
    "python3-prctl",
    "python3-av",
    "python3-libarchive-c",
    "python3-tqdm",
    "python3-jsonschema",
)

PROBE = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("fake_picamera2", sys.argv[1])
spec.loader.exec_module(importlib.util.module_from_spec(spec))  # stubs libcamera and pykms
import numpy as np
import simplejpeg
import picamera2
from picamera2.encoders import LibavH264Encoder
import cv2
import av

picture = np.full((48, 64, 3), 128, np.uint8)
assert simplejpeg.decode_jpeg(simplejpeg.encode_jpeg(picture)).shape == (48, 64, 3)
assert cv2.cvtColor(picture, cv2.COLOR_BGR2GRAY).shape == (48, 64)
frame = av.VideoFrame.from_ndarray(picture, format="bgr24")
assert frame.to_ndarray(format="bgr24").shape == (48, 64, 3)
print(json.dumps({
    module.__name__: [getattr(module, "__version__", ""), module.__file__]
    for module in (np, simplejpeg, picamera2, cv2, av)
}))
"""


def run(*args, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [str(arg) for arg in args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        **kwargs,
    )
    assert result.returncode == 0, f"{shlex.join(map(str, args))}\n{result.stdout}{result.stderr}"
    return result


def debian_numpy() -> str | None:
    """The version of apt's python3-numpy under Debian's Python 3.11, or None."""
    if not DEBIAN_PYTHON.exists():
        return None
    result = subprocess.run(
        [DEBIAN_PYTHON, "-I", "-c", "import numpy, venv, PIL, prctl; print(numpy.__version__)"],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() if result.returncode == 0 else None


@pytest.fixture(scope="module")
def system(tmp_path_factory) -> Path:
    """The stand-in for Raspberry Pi OS Bookworm's Python: its bin/python3 and its dist-packages."""
    numpy_version = debian_numpy()
    if numpy_version is None or not numpy_version.startswith("1."):
        message = (
            f"needs Debian Bookworm's {DEBIAN_PYTHON} with numpy 1.x and "
            f"{' '.join(APT_PACKAGES)} (scripts/setup installs them)"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    top = tmp_path_factory.mktemp("pi-os")
    prefix = top / "usr"
    (prefix / "bin").mkdir(parents=True)
    # A copy, not a link: Python finds its prefix (so its dist-packages) from where
    # the interpreter file lies.
    shutil.copy2(DEBIAN_PYTHON, prefix / "bin" / "python3.11")
    (prefix / "bin" / "python3").symlink_to("python3.11")
    (prefix / "lib").mkdir()
    (prefix / "lib" / "python3.11").symlink_to("/usr/lib/python3.11")
    dist_packages = prefix / "lib" / "python3" / "dist-packages"
    dist_packages.mkdir(parents=True)
    for entry in DEBIAN_DIST_PACKAGES.iterdir():
        (dist_packages / entry.name).symlink_to(entry)
    pi = top / "pi-os-packages"
    run(sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", pi,
        *PI_OS_PACKAGES)  # fmt: skip
    for entry in pi.iterdir():
        if entry.name != "bin":
            (dist_packages / entry.name).symlink_to(entry)
    return prefix / "bin"


def checkout_copy(tmp_path: Path) -> Path:
    """This checkout without its venv and build leftovers (pip builds in the tree it is given)."""
    source = tmp_path / "doorbell"
    ignore = shutil.ignore_patterns(".*", "build", "*.egg-info", "__pycache__")
    shutil.copytree(REPO, source, ignore=ignore)
    return source


def check_venv(venv: Path, system: Path) -> None:
    """In the venv: the camera stack imports and works on Debian's numpy, and doorbell runs."""
    result = run(venv / "bin" / "python", "-c", PROBE, REPO / "tests" / "fake_picamera2.py")
    found = json.loads(result.stdout)
    dist_packages = system.parent / "lib" / "python3" / "dist-packages"
    numpy_version, numpy_file = found["numpy"]
    # Debian's numpy, not one from PyPI in the venv shadowing it
    assert numpy_version == debian_numpy()
    assert Path(numpy_file).is_relative_to(dist_packages), found
    assert Path(found["simplejpeg"][1]).is_relative_to(dist_packages), found
    assert Path(found["picamera2"][1]).is_relative_to(dist_packages), found
    assert "usage: doorbell" in run(venv / "bin" / "doorbell", "--help").stdout
    run(venv / "bin" / "doorbell", "config", "check", REPO / "doorbell" / "default.toml")


def test_the_stand_in_simplejpeg_is_bound_to_numpy_1(system, tmp_path):
    """The stand-in is faithful: its simplejpeg fails under numpy 2 the way the Pi's does."""
    venv = tmp_path / "numpy2"
    run(system / "python3", "-m", "venv", "--system-site-packages", venv)
    run(venv / "bin" / "python", "-m", "pip", "install", "--quiet", "numpy>=2")
    result = subprocess.run(
        [venv / "bin" / "python", "-c", "import simplejpeg"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "numpy.dtype size changed, may indicate binary incompatibility" in result.stderr


def test_the_readme_way_keeps_debians_numpy(system, tmp_path):
    """python3 -m venv --system-site-packages .venv && .venv/bin/pip install . on Bookworm."""
    source = checkout_copy(tmp_path)
    run(system / "python3", "-m", "venv", "--system-site-packages", ".venv", cwd=source)
    run(source / ".venv" / "bin" / "pip", "install", "--quiet", ".", cwd=source)
    check_venv(source / ".venv", system)


def test_the_install_script_way_keeps_debians_numpy(system, tmp_path):
    """The venv steps scripts/install.sh prints under --root, run with the stand-in's python3."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "os-release").write_text("VERSION_CODENAME=bookworm\n")
    script = run("bash", REPO / "scripts" / "install.sh", "--root", root, cwd=REPO)
    skipped = "+ (skipped under --root) "
    venv = root / "opt" / "doorbell" / "venv"
    steps = [
        line.removeprefix(skipped)
        for line in script.stdout.splitlines()
        if line.startswith(skipped)
        and (
            line.removeprefix(skipped).split()[0] in ("python3", "mv")
            or line.removeprefix(skipped).startswith(str(venv))
        )
    ]
    assert any(step.startswith("python3 -m venv --system-site-packages") for step in steps), steps
    # the copy of the checkout pip installs is made under --root too (only files there)
    assert (root / "opt" / "doorbell" / "doorbell-src.new.tar").is_file()
    assert any(" -m pip install " in step for step in steps), steps
    path = f"{system}{os.pathsep}{os.environ['PATH']}"  # python3 is the stand-in's
    for step in steps:
        run("bash", "-c", step, cwd=REPO, env=os.environ | {"PATH": path})
    check_venv(venv, system)
