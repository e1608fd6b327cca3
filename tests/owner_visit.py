"""An owner's whole visit to a running doorbell, in Debian's chromium (Playwright), with
every request the page made on record. For tests that watch the device while it serves.

    visit = await owner_visit(url, setup_code, key_file=tmp_path / "identity.age")
    visit.requests        # (method, path, sent with a Range header), in order
    visit.server_errors   # every 5xx answer ("500 http://...")

The visit: pair with the setup code (the key made in the page, downloaded to
``key_file``, wrapped under :data:`PASSPHRASE`), lock, unlock, press the demo bell, wait
for the clip, list the clips (the page, with its thumbnails, and ``GET /api/clips``),
play one and seek to 80 % (its index and its ciphertext by Range), open the live view,
ring again while watching, keep it open ``live_seconds`` in all, lock. The second ring's
clip is still being recorded when it returns.
"""

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from tests.test_browser import CHROMIUM_ARGS, until

PASSPHRASE = "nothing leaves this porch"


@dataclass
class Visit:
    """What the page did: its requests, the 5xx answers, how many clips GET /api/clips
    listed, and how long the live view was open (seconds)."""

    requests: list[tuple[str, str, bool]] = field(default_factory=list)
    server_errors: list[str] = field(default_factory=list)
    clips_listed: int = 0
    live_seconds: float = 0.0


async def pair_and_unlock(page, url: str, code: str, key_file: Path) -> None:
    """In Playwright's ``page``: pair as Alice with ``code`` at ``url`` (the key made in
    the page, wrapped under :data:`PASSPHRASE`, downloaded to ``key_file``), lock, and
    unlock again; the page is left on the clips with its event stream open."""
    await page.goto(url)
    await page.fill("#setup-code", code)
    await page.fill("#owner-name", "Alice")
    await page.fill("#new-passphrase", PASSPHRASE)
    await page.fill("#confirm-passphrase", PASSPHRASE)
    await page.click("#setup-form button[type=submit]")
    await page.wait_for_selector("#setup-done", state="visible")
    async with page.expect_download() as download:
        await page.click("#download-identity")
    await (await download.value).save_as(key_file)
    await page.click("text=Go to my clips")
    await page.click("#lock")
    await page.wait_for_url("**/unlock")
    await page.fill("#passphrase", PASSPHRASE)
    await page.click("#unlock-form button[type=submit]")
    await page.wait_for_url(url)
    # the stream's first message is written once it is subscribed to the bus: an event
    # published from here on reaches the page (one published before it would not)
    await until(page, "(window.doorbellEvents || []).some(e => e.kind === 'recordings')")


async def owner_visit(url: str, code: str, key_file: Path, live_seconds: float = 15) -> Visit:
    """The visit described above, to the device at ``url`` (its root, with a slash),
    pairing with ``code``. Fails (AssertionError) if a step does not happen in time."""
    from playwright.async_api import async_playwright

    visit = Visit()

    origin = url.rstrip("/")

    def seen(request) -> None:
        if request.url.startswith(origin):
            path = urlsplit(request.url).path
            visit.requests.append((request.method, path, "range" in request.headers))

    def answered(response) -> None:
        if response.status >= 500:
            visit.server_errors.append(f"{response.status} {response.url}")

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=shutil.which("chromium"), headless=True, args=CHROMIUM_ARGS
        )
        page = await (await browser.new_context(accept_downloads=True)).new_page()
        page.set_default_timeout(30_000)
        page.on("request", seen)
        page.on("response", answered)
        await pair_and_unlock(page, url, code, key_file)
        await page.click("#press-bell")
        await until(page, "window.doorbellEvents.some(e => e.kind === 'bell')")
        await until(page, "window.doorbellEvents.some(e => e.kind === 'clip')", 60)
        await page.click("header a.brand")
        await until(
            page,
            "document.querySelector('li.clip') && document.body.dataset.thumbnails === 'shown'",
        )
        listed = await page.evaluate("async () => (await (await fetch('/api/clips')).json())")
        visit.clips_listed = len(listed["clips"])
        await page.click("li.clip a")
        await page.wait_for_url("**/clips/*")
        video = "document.getElementById('video')"
        await until(page, f"{video} && isFinite({video}.duration)")
        await page.evaluate(f"{video}.currentTime = {video}.duration * 0.8")
        await until(page, f"{video}.readyState >= 2")
        await page.click("nav a[href='/live']")
        live = time.monotonic()
        await until(page, "document.getElementById('live')?.naturalWidth > 0")
        bells = "window.doorbellEvents.filter(e => e.kind === 'bell').length"
        before = await page.evaluate(bells)
        await page.click("#press-bell")  # a visitor rings while the owner watches
        await until(page, f"{bells} > {before}")
        await page.wait_for_timeout(max(0.0, live_seconds - (time.monotonic() - live)) * 1000)
        await until(page, "document.getElementById('live')?.naturalWidth > 0")
        visit.live_seconds = time.monotonic() - live
        await page.click("#lock")
        await page.wait_for_url("**/unlock")
        await browser.close()
    return visit
