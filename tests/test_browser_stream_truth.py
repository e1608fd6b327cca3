"""The page tells the truth about its event stream, in a real browser (Debian's chromium,
Playwright) against the real demo service of tests/test_browser.py. After pairing, the
doorbell's answers to the stream are replaced in the browser (Playwright's routing) for
the first requests of a reloaded page, then the real ones go through:

- refused for a while (503): a banner says rings will not show here; once the stream is
  back, the banner goes;
- refused with 401 (the session ended while the tab was not listening, so the stream's
  last message never came): the page asks why and says it is locked.
"""

from doorbell.owners import SetupCode
from tests import test_browser
from tests.owner_visit import PASSPHRASE, pair_and_unlock
from tests.test_browser import until

pytestmark = test_browser.pytestmark
service, page = test_browser.service, test_browser.page  # the demo service, a chromium tab


async def refuse(page, status: int, times: int) -> list[int]:
    """Answer the next ``times`` requests for the event stream with ``status``; the list
    of statuses answered so far."""
    answered: list[int] = []

    async def handle(route) -> None:
        if len(answered) < times:
            answered.append(status)
            await route.fulfill(status=status, body="refused by the test\n")
        else:
            answered.append(0)
            await route.continue_()

    await page.route("**/api/events", handle)
    return answered


async def test_a_stream_refused_for_a_while_shows_a_banner_until_it_is_back(
    service, page, tmp_path
):
    await pair_and_unlock(page, service.url, SetupCode(service.data_dir).read(), tmp_path / "k")
    answered = await refuse(page, 503, 2)  # the page's stream, then its question why
    await page.reload()
    await until(page, "document.body.dataset.offline === 'yes'")
    assert await page.is_visible("#offline")
    await until(page, "document.body.dataset.offline === undefined", timeout=10)  # 3 s on
    assert not await page.is_visible("#offline") and 0 in answered
    assert await page.evaluate("document.body.dataset.session") is None
    await page.fill("#tab-passphrase", PASSPHRASE)
    await page.click("#tab-unlock-form button[type=submit]")
    await page.wait_for_selector("#tab-locked", state="hidden")
    await page.click("#press-bell")  # and the stream is real again
    await until(page, "window.doorbellEvents.some(e => e.kind === 'bell')")


async def test_a_stream_refused_with_401_is_a_session_that_ended(service, page, tmp_path):
    await pair_and_unlock(page, service.url, SetupCode(service.data_dir).read(), tmp_path / "k")
    await refuse(page, 401, 1_000)
    await page.reload()
    await page.wait_for_selector("#tab-locked", state="visible", timeout=10_000)
    assert await page.get_attribute("#tab-locked", "data-reason") == "locked"
    assert (await page.title()).startswith("Locked · ")
    assert not await page.is_visible("#offline")
