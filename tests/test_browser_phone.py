"""The pages on a phone, in a real browser (Debian's chromium, Playwright) against the real
demo service of tests/test_browser.py: a web app manifest the browser accepts (same
origin, under the pages' CSP, with its icons), and at 390 px wide (a phone held upright)
no page scrolls sideways and no word on the status page is broken in two."""

import json

from doorbell.owners import SetupCode
from tests import test_browser
from tests.owner_visit import pair_and_unlock
from tests.test_browser import until

pytestmark = test_browser.pytestmark
service, page = test_browser.service, test_browser.page  # the demo service, a chromium tab

PHONE = {"width": 390, "height": 844}

# In the page: the words of the status page (outside <code>: keys and fingerprints are no
# words) laid out on more than one line. A hyphen may end a line: each part between
# hyphens is a word of its own.
BROKEN_WORDS = """() => {
    const broken = [];
    for (const block of document.querySelectorAll("main h1, main dt, main dd, main p")) {
        const walker = document.createTreeWalker(block, NodeFilter.SHOW_TEXT, {
            acceptNode: (node) => node.parentElement.closest("code")
                ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT,
        });
        for (let node = walker.nextNode(); node; node = walker.nextNode()) {
            for (const word of node.data.matchAll(/[^\\s\\-\\u2013\\u2014]+/g)) {
                const range = document.createRange();
                range.setStart(node, word.index);
                range.setEnd(node, word.index + word[0].length);
                const lines = new Set([...range.getClientRects()].map((r) => Math.round(r.top)));
                if (lines.size > 1) broken.push(word[0]);
            }
        }
    }
    return broken;
}"""

SIDEWAYS = "document.documentElement.scrollWidth - document.documentElement.clientWidth"


async def test_every_page_fits_a_phone_and_the_status_page_breaks_no_word(service, page, tmp_path):
    await page.set_viewport_size(PHONE)
    await page.goto(service.url)  # the pairing page, before there is an owner
    assert page.url.endswith("/setup") and await page.evaluate(SIDEWAYS) == 0
    await pair_and_unlock(page, service.url, SetupCode(service.data_dir).read(), tmp_path / "k")
    await page.click("#press-bell")
    await until(page, "window.doorbellEvents.some(e => e.kind === 'clip')", timeout=30)
    clip = await page.evaluate("window.doorbellEvents.find(e => e.kind === 'clip').data.id")
    for path in ("/", f"/clips/{clip}", "/status", "/owners", "/live"):
        await page.click(f"a[href='{path}']")  # followed in the page: the key stays open
        await until(page, f"location.pathname === '{path}' && document.body.dataset.page")
        assert await page.evaluate(SIDEWAYS) == 0, f"{path} scrolls sideways at 390 px"
        if path == "/status":
            assert await page.evaluate(BROKEN_WORDS) == []


async def test_the_manifest_and_its_icons_are_the_device_s_own(service, page):
    await page.goto(service.url + "unlock")
    cdp = await page.context.new_cdp_session(page)
    manifest = await cdp.send("Page.getAppManifest")
    assert manifest["url"] == service.url + "static/manifest.webmanifest"
    assert manifest["errors"] == []
    data = json.loads(manifest["data"])
    assert data["start_url"] == "/" and data["display"] == "standalone"
    assert {"short_name", "name", "theme_color"} <= data.keys()
    for icon in data["icons"]:
        assert icon["src"].startswith("/static/")  # same origin, no outside address
        width = await page.evaluate(
            """(src) => new Promise((resolve) => {
                const img = new Image();
                img.onload = () => resolve(img.naturalWidth);
                img.onerror = () => resolve(-1);
                img.src = src;
            })""",
            icon["src"],
        )
        if icon["sizes"] == "any":  # the SVG: any size, so none of its own
            assert width >= 0, icon["src"]
        else:
            assert width == int(icon["sizes"].split("x")[0]), icon["src"]
