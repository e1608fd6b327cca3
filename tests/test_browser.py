"""The owner's path in a real browser: Debian's chromium, driven by Playwright.

The real service (synthetic camera in real time, gpiozero mock pins, the web
interface on a loopback port) runs on the test's event loop. The browser
goes: pairing with the setup code (the key made in the page) → lock → unlock
(the passphrase tried in the page) → press the demo bell → the notification
arrives → the clip appears with its thumbnail decrypted in the page → play →
seek to 80% → live view → lock → the clip is no longer reachable.
"""

import asyncio
import dataclasses
import shutil

import pytest

from doorbell import trigger
from doorbell.config import CameraSettings, Config, StorageSettings, WebSettings
from doorbell.owners import SetupCode
from doorbell.pipeline import PipelineSettings
from doorbell.service import Service

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PASSPHRASE = "four random words here"
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",  # the machine has no internet: never try it
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]

pytestmark = pytest.mark.skipif(
    shutil.which("chromium") is None, reason="Debian's chromium is not installed (scripts/setup)"
)


@pytest.fixture
async def service(tmp_path, request):
    """The demo service on loopback; ``tls`` as its parameter: over HTTPS with the device's
    own self-signed certificate (the browser told to accept it, as an owner does once),
    where browsers refuse service workers: the pages must not need one."""
    tls = getattr(request, "param", None) == "tls"
    policy = trigger.Policy(pre_roll=2.0, post_roll=2.0, motion_starts=False)
    config = dataclasses.replace(
        Config(),
        pipeline=PipelineSettings(policy=policy, masks=(((0.0, 0.0), (0.3, 0.0), (0.3, 0.3)),)),
        storage=StorageSettings(data_dir=str(tmp_path / "data"), min_free_mb=0),
        camera=CameraSettings(backend="synthetic", width=640, height=360, fps=15.0),
        web=WebSettings(listen="127.0.0.1:0", tls="on" if tls else "off", live_fps=5.0),
    )
    service = Service(config, demo=True, work_factor=10)
    stop = asyncio.Event()
    ready = asyncio.Event()
    task = asyncio.create_task(service.run(stop, ready=lambda s: ready.set()))
    await asyncio.wait_for(ready.wait(), 30)
    yield service
    stop.set()
    await asyncio.wait_for(task, 30)


@pytest.fixture
async def page(service):
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        context = await browser.new_context(ignore_https_errors=True)
        page = await context.new_page()
        page.set_default_timeout(20_000)
        yield page
        await browser.close()


async def until(page, condition: str, timeout: float = 20.0) -> None:
    """Wait in the page until the JavaScript ``condition`` holds; fail after ``timeout`` s.

    Playwright's wait_for_function evaluates strings, which the pages' CSP
    (no 'unsafe-eval') rightly forbids; this runs as a function instead. The deadline
    is kept in the page, so the evaluation always ends by itself (cancelling one from
    Python can leave it waiting on the browser for good).
    """
    held = await page.evaluate(
        f"""() => new Promise((resolve) => {{
            const end = Date.now() + {timeout * 1000:.0f};
            const check = () => {{
                let ok = false;
                try {{ ok = Boolean({condition}); }} catch (err) {{ ok = false; }}
                if (ok) resolve(true);
                else if (Date.now() > end) resolve(false);
                else setTimeout(check, 20);
            }};
            check();
        }})"""
    )
    assert held, f"not within {timeout} s: {condition}"


async def pair_in_browser(page, service, name: str = "Alice") -> None:
    """The first owner pairs: setup code, name, passphrase; the key is made in the page."""
    await page.goto(service.url)
    assert page.url.endswith("/setup")
    await page.fill("#setup-code", SetupCode(service.data_dir).read())
    await page.fill("#owner-name", name)
    await page.fill("#new-passphrase", PASSPHRASE)
    assert "Strong" in await page.text_content("#strength")
    await page.fill("#confirm-passphrase", PASSPHRASE)
    await page.click("#setup-form button[type=submit]")
    await page.wait_for_selector("#setup-done", state="visible")
    assert (await page.text_content("#recipient")).startswith("age1")


async def test_pairing_to_playback_and_back_to_locked(service, page):
    url = service.url
    await pair_in_browser(page, service)
    await page.click("text=Go to my clips")
    await page.click("#lock")
    await page.wait_for_url("**/unlock")
    assert await page.text_content("#known-owner-name") == "Alice"  # this browser holds the key
    await page.fill("#passphrase", "not the passphrase")
    await page.click("#unlock-form button[type=submit]")
    await page.wait_for_selector("#unlock-error", state="visible")
    assert "Wrong passphrase" in await page.text_content("#unlock-error")
    await page.fill("#passphrase", PASSPHRASE)
    await page.click("#unlock-form button[type=submit]")
    await page.wait_for_url(url)

    # the demo's bell: a notification in this tab, then a clip
    await until(page, "window.doorbellEvents !== undefined")
    await page.click("#press-bell")
    await until(page, "window.doorbellEvents.some(e => e.kind === 'bell')")
    assert await page.is_visible("#toast")
    await until(page, "window.doorbellEvents.some(e => e.kind === 'clip')", timeout=30)
    await page.click("header a.brand")  # followed in the page: the key stays in memory
    await until(
        page,
        "document.querySelector('li.clip') && document.body.dataset.thumbnails === 'shown'",
    )
    clips = await page.query_selector_all("li.clip")
    assert len(clips) == 1
    clip_id = await clips[0].get_attribute("data-clip")
    width = await page.evaluate(
        f"document.querySelector(\"li[data-clip='{clip_id}'] img\").naturalWidth"
    )
    assert width == 640  # the thumbnail, decrypted in the page

    # play, then seek to 80%
    await page.click(f"li.clip[data-clip='{clip_id}'] a")
    await page.wait_for_url(f"**/clips/{clip_id}")
    duration = await page.evaluate(
        """() => new Promise((resolve, reject) => {
            const v = document.getElementById('video');
            const done = () => isFinite(v.duration) ? resolve(v.duration) : setTimeout(done, 20);
            v.addEventListener('error', () => reject(new Error('video error ' + v.error.code)));
            done();
        })"""
    )
    # The 2 s post-roll, and what pre-roll there was: none if the bell came before the
    # recorder's first keyframe (the key is looked for once a second after set-up). The
    # player shows the clip's own length (end - start, from the list) until its stream
    # ends: the last frame's time, so a frame or two short of 2 s when a loaded machine
    # hands the real-time camera's frames over late (seen once: 1.8 s).
    assert duration >= 1.7
    seeked = await page.evaluate(
        """() => new Promise((resolve) => {
            const v = document.getElementById('video');
            v.addEventListener('seeked', () => resolve(v.currentTime), { once: true });
            v.currentTime = v.duration * 0.8;
        })"""
    )
    assert seeked == pytest.approx(duration * 0.8, abs=0.2)
    await until(page, "document.getElementById('video').readyState >= 2")  # a frame to show

    # the live view shows frames, and the LED is on while it is open
    await page.click("nav a[href='/live']")
    await until(
        page, "document.getElementById('live') && document.getElementById('live').naturalWidth > 0"
    )
    assert service.live.viewers == 1 and service.pins.led.value == 1

    # lock: the clip is gone from this browser
    await page.click("#lock")
    await page.wait_for_url("**/unlock")
    status = await page.evaluate(
        "async (src) => (await fetch(src)).status", f"/clips/{clip_id}/file"
    )
    assert status == 401


@pytest.mark.parametrize("service", ["tls"], indirect=True)
async def test_a_second_owner_a_new_browser_and_removal_told_in_the_open_tab(service, page):
    """Alice pairs and invites Bob; Bob pairs in his own browser (his key made there);
    Alice signs in on a browser new to her by name and passphrase; a reload asks for the
    passphrase again (the key lived only in the tab); Alice removes Bob and Bob's open tab
    says so at once."""
    await pair_in_browser(page, service)
    await page.click("text=Go to my clips")
    await page.click("nav a[href='/owners']")
    await page.click("#new-invite")
    await page.wait_for_selector("#invite", state="visible")
    invite_url = await page.text_content("#invite-url")

    assert service.url.startswith("https://")
    browser = page.context.browser
    bob = await (await browser.new_context(ignore_https_errors=True)).new_page()
    await bob.goto(invite_url)
    assert await bob.input_value("#setup-code") == invite_url.rsplit("=", 1)[1]
    await bob.fill("#owner-name", "Bob")
    await bob.fill("#new-passphrase", "bob's own four words")
    await bob.fill("#confirm-passphrase", "bob's own four words")
    await bob.click("#setup-form button[type=submit]")
    await bob.wait_for_selector("#setup-done", state="visible")
    await bob.click("text=Go to my clips")
    await until(bob, "window.doorbellEvents !== undefined")

    # a browser new to Alice: name and passphrase fetch her wrapped key (a throttled proof)
    elsewhere = await (await browser.new_context(ignore_https_errors=True)).new_page()
    await elsewhere.goto(service.url + "unlock")
    assert await elsewhere.is_visible("#owner-name")
    await elsewhere.fill("#owner-name", "alice")
    await elsewhere.fill("#passphrase", PASSPHRASE)
    await elsewhere.click("#unlock-form button[type=submit]")
    await elsewhere.wait_for_url(service.url)
    await elsewhere.reload()  # the key lived in the tab only: the passphrase again
    await elsewhere.wait_for_selector("#tab-locked", state="visible")
    await elsewhere.fill("#tab-passphrase", PASSPHRASE)
    await elsewhere.click("#tab-unlock-form button[type=submit]")
    await elsewhere.wait_for_selector("#tab-locked", state="hidden")

    await page.reload()
    await page.fill("#tab-passphrase", PASSPHRASE)
    await page.click("#tab-unlock-form button[type=submit]")
    await page.wait_for_selector("#tab-locked", state="hidden")
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await page.click("li:has-text('Bob') button.remove-owner")
    await bob.wait_for_selector("#tab-locked", state="visible", timeout=5_000)
    assert "removed" in await bob.text_content("#tab-locked-why")
    # the pictures behind the overlay are taken down, not shown broken with words
    assert await bob.evaluate("[...document.images].every(i => i.hidden && !i.alt && !i.src)")
    assert await bob.evaluate("async () => (await fetch('/api/clips')).status") == 401

    # over HTTPS with the self-signed certificate, a clip plays (no service worker needed)
    await page.click("#press-bell")
    await until(page, "window.doorbellEvents.some(e => e.kind === 'clip')", timeout=30)
    await page.click("header a.brand")
    await until(page, "document.querySelector('li.clip a') !== null")
    await page.click("li.clip a")
    await page.wait_for_url("**/clips/*")
    await until(
        page, "document.getElementById('video') && document.getElementById('video').readyState >= 2"
    )


async def test_pairing_with_an_identity_file_of_one_s_own(service, page, tmp_path):
    """An owner who has an identity already (from `doorbell keys export`, or age-keygen)
    gives the page the file: it stays in the browser, the device gets its recipient."""
    from doorbell import vault

    identity = vault.X25519Identity.generate()
    key_file = tmp_path / "identity.txt"
    key_file.write_text(f"# public key: {identity.recipient}\n{identity.secret()}\n")
    await page.goto(service.url)
    await page.fill("#setup-code", SetupCode(service.data_dir).read())
    await page.fill("#owner-name", "Alice")
    await page.fill("#new-passphrase", PASSPHRASE)
    await page.fill("#confirm-passphrase", PASSPHRASE)
    await page.click("summary")
    await page.set_input_files("#identity-file", str(key_file))
    await page.click("#setup-form button[type=submit]")
    await page.wait_for_selector("#setup-done", state="visible")
    assert await page.text_content("#recipient") == str(identity.recipient)
    recipients = [str(r) for r in service.keyring.recipients()]
    assert str(identity.recipient) in recipients
