"""The event stream's side of "a ring you can open at once": a clip that starts is told
at once (``event: recording``), a clip that ends comes with its card's words, so the
page can put both in its list without a reload. Through aiohttp's test client, with the
real bus, store and owner of tests/test_web.py."""

import json
import time

import pytest

from doorbell.events import ClipFinished, ClipStarted
from doorbell.web.streams import sse_message
from doorbell.web.views import recording_card
from tests import test_web

# tests/test_web.py's fixtures: a real store, owner, app and bus
client, context, owner, store, clock = (
    test_web.client,
    test_web.context,
    test_web.owner,
    test_web.store,
    test_web.clock,
)

AT = 1_764_511_320.5  # 2025-11-30 14:02:00.5 UTC: 15:02 in Berlin


@pytest.fixture
def berlin(monkeypatch):
    """The device's local time is Europe/Berlin for the test."""
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def parsed(message: bytes) -> tuple[str, dict]:
    name, data = message.decode().removesuffix("\n\n").split("\n")
    return name.removeprefix("event: "), json.loads(data.removeprefix("data: "))


def test_a_clip_that_starts_is_a_recording_message_with_the_device_s_local_time(berlin):
    message = sse_message(ClipStarted(AT, "bell", "0123456789abcdef"))
    assert message is not None
    assert parsed(message) == (
        "recording",
        {
            "at": AT,
            "trigger": "bell",
            "id": "0123456789abcdef",
            "time": "15:02",
            "day": "2025-11-30",
        },
    )


def test_a_recording_whose_id_was_not_said_has_none():
    assert recording_card(AT, "motion", "")["id"] is None
    message = sse_message(ClipStarted(AT, "motion"))
    assert message is not None and parsed(message)[1]["id"] is None


def test_a_finished_clip_comes_with_the_words_of_its_card(berlin, store):
    clip = store.get(test_web.add_clip(store, "bell", AT))
    message = sse_message(ClipFinished(clip))
    assert message is not None
    name, data = parsed(message)
    assert name == "clip"
    assert data["id"] == clip.id and data["trigger"] == "bell" and data["start"] == AT
    assert data["when"] == "Sun 30 Nov 15:02:00" and data["day"] == "2025-11-30"
    assert data["duration"] == "12 s" and data["partial"] is False


async def test_an_unlocked_tab_hears_a_clip_start_and_end_in_order(client, context, store):
    await test_web.unlock(client)
    response = await client.get("/api/events")
    await response.content.readuntil(b"\n\n")  # connected
    clip = store.get(test_web.add_clip(store, "bell", AT))
    context.bus.publish(ClipStarted(AT, "bell", clip.id))
    context.bus.publish(ClipFinished(clip))
    messages = []
    while len(messages) < 2:
        block = (await response.content.readuntil(b"\n\n")).decode()
        if block.startswith("event: "):
            messages.append(parsed(block.encode()))
    assert [name for name, _ in messages] == ["recording", "clip"]
    assert messages[0][1]["id"] == messages[1][1]["id"] == clip.id
    response.close()


async def test_the_stream_begins_with_the_clips_being_recorded(client, store):
    """On every (re)connection: a page drops the cards of clips that ended meanwhile."""
    await test_web.unlock(client)
    recording = store.new_clip("bell", start=AT)
    try:
        response = await client.get("/api/events")
        head = (await response.content.readuntil(b"\n\n")).decode()
        assert head == ": connected\n\n"
        block = (await response.content.readuntil(b"\n\n")).decode()
        retry, rest = block.split("\n", 1)
        assert retry == "retry: 3000"
        assert parsed(rest.encode()) == ("recordings", {"ids": [recording.id]})
        response.close()
    finally:
        recording.discard()


async def test_the_clips_page_shows_a_clip_being_recorded_until_it_ends(berlin, client, store):
    await test_web.unlock(client)
    recording = store.new_clip("bell", start=AT)
    recording.write_thumbnail(test_web.JPEG)
    recording.video.write(test_web.VIDEO_BYTES)
    page = await (await client.get("/")).text()
    assert f'data-recording="{recording.id}"' in page
    assert "Recording now — bell at 15:02" in page and 'href="/live"' in page
    assert f"/clips/{recording.id}/thumbnail" in page  # written whole as the clip starts
    assert (await client.get(f"/clips/{recording.id}/thumbnail")).status == 200
    older = await (await client.get(f"/?before={AT + 1}")).text()  # an older page: not there
    assert recording.id not in older
    recording.finish(end=AT + 12)
    page = await (await client.get("/")).text()
    assert "data-recording" not in page and f'data-clip="{recording.id}"' in page


async def test_a_clip_being_recorded_is_served_as_far_as_it_is_written(client, store):
    """``/clips/{id}/recording``: the ``.part`` (ciphertext, by Range) while it grows, the
    finished file once it ends; the page reads on from one into the other."""
    await test_web.unlock(client)
    recording = store.new_clip("bell", start=AT)
    recording.video.write(test_web.VIDEO_BYTES)  # four whole 64 KiB chunks sealed so far
    url = f"/clips/{recording.id}/recording"
    growing = await client.get(url)
    part = store.path(recording.id, ".mp4.age.part").read_bytes()
    assert growing.status == 200 and await growing.read() == part
    assert growing.headers["Cache-Control"] == "no-store"
    ranged = await client.get(url, headers={"Range": "bytes=0-0"})
    assert ranged.status == 206 and ranged.headers["Content-Range"] == f"bytes 0-0/{len(part)}"
    assert (await client.get(f"/clips/{recording.id}/file")).status == 409  # not a clip yet
    recording.finish(end=AT + 12)
    whole = store.path(recording.id, ".mp4.age").read_bytes()
    assert whole.startswith(part) and len(whole) > len(part)
    assert await (await client.get(url)).read() == whole
    assert (await client.get("/clips/0123456789abcdef/recording")).status == 404
