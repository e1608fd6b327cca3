"""Law 2 in a running device: after a whole owner's journey in a real browser, the
device's memory holds neither the owner's passphrase, nor their identity, nor a
finished clip's file key.

The service runs in a child process (as under systemd); Debian's chromium pairs (the
key made in the page), locks, unlocks, lists clips with their thumbnails, plays one,
seeks and locks. The test then reads every readable mapping of the service's memory
(/proc/PID/maps and /proc/PID/mem, which the parent may read) and looks for each
secret in every form Python or a browser might hold it. The same scan must find the
owner's *public* key (the recipient), so a scanner that reads nothing cannot pass.
"""

import asyncio
import base64
import io
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from doorbell import vault
from doorbell.owners import SetupCode
from tests.owner_visit import PASSPHRASE, pair_and_unlock
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, until

SERVE = """
import asyncio, dataclasses, signal, sys
from doorbell import trigger
from doorbell.config import CameraSettings, Config, StorageSettings, WebSettings
from doorbell.pipeline import PipelineSettings
from doorbell.service import Service

policy = trigger.Policy(pre_roll=1.0, post_roll=1.0, motion_starts=False)
config = dataclasses.replace(
    Config(),
    pipeline=PipelineSettings(policy=policy),
    storage=StorageSettings(data_dir=sys.argv[1], min_free_mb=0),
    camera=CameraSettings(backend="synthetic", width=640, height=360, fps=15.0),
    web=WebSettings(listen="127.0.0.1:0", tls="off"),
)
service = Service(config, demo=True, work_factor=10)

async def main():
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await service.run(stop, ready=lambda s: print(s.url, flush=True))

asyncio.run(main())
"""

pytestmark = [
    pytest.mark.skipif(
        shutil.which("chromium") is None,
        reason="Debian's chromium is not installed (scripts/setup)",
    ),
    pytest.mark.skipif(not Path("/proc/self/mem").exists(), reason="needs Linux /proc/PID/mem"),
]


def readable_memory(pid: int):
    """(start address, bytes) of every readable mapping of process ``pid``."""
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            span, perms, *_ = line.split()
            if not perms.startswith("r"):
                continue
            start, end = (int(x, 16) for x in span.split("-"))
            try:
                mem.seek(start)
                yield start, mem.read(end - start)
            except (OSError, ValueError, OverflowError):  # [vvar] and the like
                continue


def forms(secret: str | bytes) -> list[bytes]:
    """The ways a secret may sit in memory: its bytes, and for text UTF-8 (CPython's
    1-byte strings, browsers' Latin-1), UTF-16 and UTF-32 (wider strings), in both cases."""
    if isinstance(secret, bytes):
        return [secret]
    found = []
    for text in {secret, secret.lower(), secret.upper()}:
        found += [text.encode(e) for e in ("utf-8", "utf-16-le", "utf-32-le")]
    return found


def hits(pid: int, secrets: dict[str, list[bytes]]) -> dict[str, int]:
    """How often each secret occurs in ``pid``'s memory, in one pass of one regex."""
    names = {p: name for name, patterns in secrets.items() for p in patterns}
    pattern = re.compile(b"|".join(re.escape(p) for p in sorted(names, key=len, reverse=True)))
    counts = dict.fromkeys(secrets, 0)
    for _start, data in readable_memory(pid):
        for match in pattern.finditer(data):
            counts[names[match.group(0)]] += 1
    return counts


def keys_of(path: Path, identity: vault.X25519Identity) -> tuple[bytes, bytes]:
    """A clip's file key and payload key, opened with the owner's identity (here, in the
    test: the device has no identity to do it with)."""
    from doorbell.vault.header import hkdf, parse_header

    stream = io.BytesIO(path.read_bytes())
    header = parse_header(stream.readline)
    file_key = identity.unwrap(header.stanzas)
    assert file_key is not None
    return file_key, hkdf(file_key, stream.read(16), b"payload")


@pytest.fixture
async def device(tmp_path):
    data = tmp_path / "data"
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SERVE,
        str(data),
        stdout=subprocess.PIPE,
        cwd=Path(__file__).parents[1],
    )
    url = (await asyncio.wait_for(child.stdout.readline(), 60)).decode().strip()
    assert url.startswith("http://"), url
    yield child, url, data
    child.send_signal(signal.SIGTERM)
    await asyncio.wait_for(child.wait(), 30)


async def test_the_device_never_holds_the_owner_s_secrets(device, tmp_path):
    from playwright.async_api import async_playwright

    child, url, data = device
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        page = await (await browser.new_context(accept_downloads=True)).new_page()
        page.set_default_timeout(20_000)
        # pairing (the key made in the page and downloaded), lock, unlock in the page
        key_file = tmp_path / "identity.age"
        await pair_and_unlock(page, url, SetupCode(data).read(), key_file)
        for ring in range(1, 4):
            await page.click("#press-bell")
            await until(
                page, f"window.doorbellEvents.filter(e => e.kind === 'clip').length >= {ring}", 30
            )
        await page.click("header a.brand")
        await until(
            page,
            "document.querySelectorAll('li.clip').length === 3"
            " && document.body.dataset.thumbnails === 'shown'",
        )
        assert len(await page.query_selector_all("li.clip")) == 3
        await page.click("li.clip a")
        await page.wait_for_url("**/clips/*")
        await until(
            page,
            "document.getElementById('video') && isFinite(document.getElementById('video').duration)",
        )
        await page.evaluate(
            "document.getElementById('video').currentTime = document.getElementById('video').duration * 0.8"
        )
        await until(page, "document.getElementById('video').readyState >= 2")
        await page.click("#lock")
        await page.wait_for_url("**/unlock")
        await browser.close()

    text = vault.decrypt_bytes(
        key_file.read_bytes(), [vault.ScryptIdentity(PASSPHRASE, 20)]
    ).decode()
    secret = re.search(r"AGE-SECRET-KEY-1[0-9A-Z]+", text).group(0)
    identity = vault.X25519Identity.parse(secret)
    raw = identity._key.private_bytes_raw()
    clips = sorted((data / "clips").glob("*.mp4.age"))
    file_keys = [key for path in clips for key in keys_of(path, identity)]
    secrets = {
        "passphrase": forms(PASSPHRASE),
        "identity text": forms(secret),
        "identity raw key": forms(raw),
        "identity raw key (base64)": forms(base64.b64encode(raw).decode()),
        **{f"file or payload key {i}": forms(k) for i, k in enumerate(file_keys)},
        "recipient (public: must be found)": forms(str(identity.recipient)),
    }
    counts = hits(child.pid, secrets)
    print(counts)
    assert counts.pop("recipient (public: must be found)") > 0, "the scan read nothing"
    assert counts == dict.fromkeys(counts, 0)
