"""The architecture, checked: which module may load what, and who may open a clip's files."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "doorbell"


def loaded_after(statement: str) -> set[str]:
    """Top-level module names in ``sys.modules`` after ``statement``, in a fresh interpreter."""
    code = f"import sys\n{statement}\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return set(done.stdout.split())


@pytest.mark.parametrize(
    ("statement", "absent"),
    [
        ("import doorbell.recorder", {"cv2", "picamera2", "aiohttp"}),
        ("import doorbell.camera", {"cv2", "numpy", "av", "picamera2"}),
        ("from doorbell.camera.frame import Frame, EncodedPacket", {"cv2", "numpy", "av"}),
        ("import doorbell.store", {"cv2", "numpy", "av", "aiohttp"}),
        ("import doorbell.live", {"cv2", "numpy"}),
        # the integrations: their libraries load only when turned on
        ("import doorbell.service", {"apprise", "requests", "aiomqtt", "paho"}),
        ("import doorbell.config", {"apprise", "aiomqtt", "asyncio"}),
    ],
)
def test_heavy_libraries_load_only_where_needed(statement, absent):
    """The recorder and the frame and packet types load no OpenCV: a Pi camera (which
    encodes itself) and the tools built on them do not pay for it."""
    assert not (loaded_after(statement) & absent)


def test_the_check_above_can_see_a_heavy_import():
    assert "cv2" in loaded_after("import doorbell.pipeline")  # motion and masks use OpenCV


def calls_in(path: Path) -> list[str]:
    """Every call in a module as dotted text: ``store.path``, ``OpenedPayload``, ``open``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            found.append(ast.unparse(node.func))
    return found


def test_the_web_opens_clips_only_through_the_store():
    """The web package never opens or decrypts a clip: it only serves the files the store
    names for a clip it found (``store.path`` of ``store.get(id).id``: the store turns only
    a clip id into a path), and only in ``files.py``. No vault reader anywhere in it."""
    for module in sorted((PACKAGE / "web").glob("*.py")):
        for call in calls_in(module):
            last = call.split(".")[-1]
            assert last not in ("OpenedPayload", "open_file", "open_payload", "read_thumbnail")
            if last == "path" and "store" in call:
                assert module.name == "files.py", f"{module.name}: {call}()"
                assert call.endswith("store.path"), call
            if module.name not in ("tls.py", "vendor.py"):  # its certificate; the library
                assert call not in ("open", "os.open"), f"{module.name}: {call}()"
        assert "doorbell.vault" not in module.read_text() or module.name == "__init__.py", (
            module.name
        )


def test_nothing_imports_the_composition_root_or_the_cli():
    """Dependencies point one way: only ``doorbell.cli`` may import ``doorbell.service``."""
    for module in sorted(PACKAGE.rglob("*.py")):
        relative = module.relative_to(PACKAGE.parent).with_suffix("")
        if relative.parts[:2] in (("doorbell", "cli"), ("doorbell", "__main__")):
            continue
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                assert not name.startswith(("doorbell.service", "doorbell.cli")), (
                    f"{relative} imports {name}"
                )
