"""A clip played from its start while it is still being recorded, in a real browser
(Debian's chromium, Playwright) against the real demo service (synthetic camera in real
time, the mock bell pin), with a 6 s post-roll (8 s at most) so there is time to open it.

The page reads the clip's growing file (``/clips/{id}/recording``: its ``.part``, whole
sealed chunks only) and plays on into the finished file once the recording ends."""

import asyncio
import dataclasses

import pytest

from doorbell import trigger
from doorbell.config import CameraSettings, Config, StorageSettings, WebSettings
from doorbell.owners import SetupCode
from doorbell.pipeline import PipelineSettings
from doorbell.service import Service
from tests import test_browser
from tests.owner_visit import pair_and_unlock
from tests.test_browser import until

pytestmark = test_browser.pytestmark
page = test_browser.page  # a chromium tab on this module's service
POST_ROLL = 6.0
MAX_CLIP = 8.0
VIDEO = "document.getElementById('video')"


@pytest.fixture
async def service(tmp_path):
    # at most MAX_CLIP s: the synthetic porch's visitors would keep it open for longer
    policy = trigger.Policy(
        pre_roll=1.0, post_roll=POST_ROLL, max_clip=MAX_CLIP, motion_starts=False
    )
    config = dataclasses.replace(
        Config(),
        pipeline=PipelineSettings(policy=policy),
        storage=StorageSettings(data_dir=str(tmp_path / "data"), min_free_mb=0),
        camera=CameraSettings(backend="synthetic", width=640, height=360, fps=15.0),
        web=WebSettings(listen="127.0.0.1:0", tls="off", live_fps=5.0),
    )
    service = Service(config, demo=True, work_factor=10)
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(service.run(stop, ready=lambda s: ready.set()))
    await asyncio.wait_for(ready.wait(), 30)
    yield service
    stop.set()
    await asyncio.wait_for(task, 30)


async def test_a_clip_plays_from_its_start_while_it_is_recorded(service, page, tmp_path):
    await pair_and_unlock(page, service.url, SetupCode(service.data_dir).read(), tmp_path / "k")
    await page.click("#press-bell")
    await until(page, "window.doorbellEvents.some(e => e.kind === 'recording')")
    await page.click("header a.brand")  # the list again: the card of the clip being recorded
    await page.wait_for_selector("li.recording a.play")
    clip_id = await page.get_attribute("li.recording", "data-recording")
    await page.click("li.recording a.play")
    await page.wait_for_url(f"**/clips/{clip_id}")
    await until(
        page, "document.getElementById('player-state').textContent.includes('Being recorded now')"
    )

    # it plays while the doorbell is still recording it
    await until(page, f"{VIDEO}.currentTime > 1")
    assert service.store.get(clip_id).state == "recording"
    assert not await page.is_visible("#download-clip")  # a .part is no clip to keep
    assert await page.text_content(".player .meta .duration") == "recording now"

    # the recording ends: the page reads on into the finished file, to its end
    await until(page, "window.doorbellEvents.some(e => e.kind === 'clip')", timeout=30)
    assert service.store.get(clip_id).state == "complete"
    await until(page, f"isFinite({VIDEO}.duration)", timeout=15)
    duration = await page.evaluate(f"{VIDEO}.duration")
    assert duration >= POST_ROLL - 0.5
    assert await page.text_content("#player-state") == ""
    # and its line says so, as a finished clip's page does: its length, and a download
    await page.wait_for_selector("#download-clip")
    assert not await page.is_visible("#watch-live")
    assert await page.get_attribute("#download-clip", "href") == f"/clips/{clip_id}/file"
    finished = service.store.get(clip_id)
    length = await page.text_content(".player .meta .duration")
    assert length == f"{finished.duration:.0f} s"
