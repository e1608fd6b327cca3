"""Ring passes (doorbell/web/ring_passes.py) on their own, with an injected clock: who
holds one, how long it lives, what ends it and what does not."""

import threading

import pytest

from doorbell.web.ring_passes import (
    CAP,
    EVERYWHERE,
    EXPIRED,
    LIFETIME_SECONDS,
    REPLACED,
    SHUTDOWN,
    TURNED_OFF,
    RingPasses,
)
from tests.test_auth import Clock  # a monotonic clock the test moves


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def passes(clock):
    return RingPasses(LIFETIME_SECONDS, clock)


def test_a_pass_is_found_by_its_token_and_knows_its_owner(passes, clock):
    ring_pass = passes.issue("alice")
    assert passes.get(ring_pass.token) is ring_pass
    assert ring_pass.owner_id == "alice" and ring_pass.created == clock.now
    assert not ring_pass.ended.is_set() and ring_pass.end_reason is None
    assert len(passes) == 1
    for unknown in (None, "", "not a token", ring_pass.token[:-1]):
        assert passes.get(unknown) is None


def test_tokens_are_random_and_unique(passes):
    tokens = {RingPasses(LIFETIME_SECONDS, Clock()).issue("a").token for _ in range(200)}
    assert len(tokens) == 200
    assert all(len(t) >= 43 for t in tokens)  # 32 random bytes, URL-safe base64


def test_the_lifetime_is_thirty_days_and_a_pass_past_it_ends_on_the_way(passes, clock):
    assert LIFETIME_SECONDS == 30 * 24 * 3600
    ring_pass = passes.issue("alice")
    clock.now += LIFETIME_SECONDS
    assert passes.get(ring_pass.token) is ring_pass  # to the second: still live
    clock.now += 1
    assert passes.get(ring_pass.token) is None
    assert ring_pass.ended.is_set() and ring_pass.end_reason == EXPIRED
    assert len(passes) == 0


def test_ending_a_pass_sets_its_event_with_the_reason_once(passes):
    ring_pass = passes.issue("alice")
    assert passes.end(ring_pass.token) is True
    assert ring_pass.ended.is_set() and ring_pass.end_reason == TURNED_OFF
    assert passes.get(ring_pass.token) is None
    assert passes.end(ring_pass.token, SHUTDOWN) is False  # gone: nothing more
    ring_pass.end(SHUTDOWN)
    assert ring_pass.end_reason == TURNED_OFF  # the first reason stays
    assert passes.end(None) is False and passes.end("") is False


def test_end_owner_ends_that_owner_s_passes_only(passes):
    alices = [passes.issue("alice") for _ in range(3)]
    bobs = passes.issue("bob")
    assert passes.end_owner("alice", EVERYWHERE) == 3
    assert all(p.end_reason == EVERYWHERE for p in alices)
    assert passes.get(bobs.token) is bobs and not bobs.ended.is_set()
    assert passes.end_owner("alice", EVERYWHERE) == 0
    assert len(passes) == 1


def test_at_the_cap_the_oldest_pass_gives_way(passes, clock):
    assert passes.cap == CAP == 8
    first = passes.issue("alice")
    clock.now += 1
    rest = [passes.issue("bob") for _ in range(CAP - 1)]
    assert len(passes) == CAP and not first.ended.is_set()
    newest = passes.issue("carol")
    assert first.end_reason == REPLACED and passes.get(first.token) is None
    assert all(passes.get(p.token) is p for p in rest) and passes.get(newest.token) is newest
    assert len(passes) == CAP


def test_end_all_ends_everything(passes):
    issued = [passes.issue(name) for name in ("alice", "bob")]
    assert passes.end_all() == 2
    assert [p.end_reason for p in issued] == [SHUTDOWN, SHUTDOWN] and len(passes) == 0


def test_a_cap_below_one_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        RingPasses(LIFETIME_SECONDS, Clock(), cap=0)


def test_issue_from_many_threads_keeps_the_cap(clock):
    passes = RingPasses(LIFETIME_SECONDS, clock, cap=5)
    issued = []
    lock = threading.Lock()

    def issue_some() -> None:
        for _ in range(50):
            ring_pass = passes.issue("alice")
            with lock:
                issued.append(ring_pass)

    threads = [threading.Thread(target=issue_some) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    live = [p for p in issued if passes.get(p.token) is p]
    assert len(passes) == len(live) == 5
    assert all(p.end_reason == REPLACED for p in issued if p not in live)
