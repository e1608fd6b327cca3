"""Issue 13: the doorbell keeps recording, ringing and serving its owner while anyone on
the LAN attacks its port (tests/attack.py runs the real service in a child process and
the attacks from other loopback addresses).

Each test runs one scenario for $DOORBELL_ATTACK_SECONDS (default 60) with the real
footage as the camera (768x432, 10 fps; DOORBELL_ATTACK_CAMERA=720p15: 1280x720, 15 fps), prints its figures and holds them to the issue's
limits (``Figures.failures``): bell -> event p99 <= 100 ms, peak RSS <= 150 MB, no frame
dropped or missed (by the status counters and by the frames the camera delivered
against the wall clock), the log grown by at most 64 KiB, /health answered on new
connections from the owner's address throughout and after, and every bell press
during it in a finished clip that is complete and decrypts with the owner's identity
to an MP4 whose every frame decodes. $DOORBELL_ATTACK_ROOT runs the service from
another checkout of the code (e.g. an older commit's export), the probes from here.
"""

import dataclasses
import os
from pathlib import Path

import pytest

from tests.attack import FPS, REPO, Device, Figures, Press, camera_source, scenario
from tests.conftest import footage

pytestmark = pytest.mark.slow

SECONDS = float(os.environ.get("DOORBELL_ATTACK_SECONDS", "60"))
ROOT = Path(os.environ.get("DOORBELL_ATTACK_ROOT") or REPO)


@pytest.fixture(scope="module")
def camera(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return camera_source(footage("porch-visitors.mp4"), tmp_path_factory.mktemp("camera"))


async def measure(
    folder: Path, camera: Path, attack: str | None, *, load: bool = False, nofile: int | None = None
) -> Figures:
    async with Device(folder, camera, nofile=nofile, root=ROOT) as device:
        figures = await scenario(device, attack, seconds=SECONDS, load=load)
    print(figures.report())
    return figures


async def test_a_thousand_idle_connections(tmp_path, camera):
    figures = await measure(tmp_path, camera, "idle")
    assert not figures.failures(), figures.report()


async def test_two_hundred_slow_headers(tmp_path, camera):
    figures = await measure(tmp_path, camera, "slow-headers")
    assert not figures.failures(), figures.report()


async def test_two_hundred_unauthenticated_megabyte_bodies(tmp_path, camera):
    figures = await measure(tmp_path, camera, "bodies")
    assert not figures.failures(), figures.report()


async def test_two_hundred_event_streams(tmp_path, camera):
    figures = await measure(tmp_path, camera, "streams")
    assert not figures.failures(), figures.report()


async def test_the_owner_s_own_load_drops_no_frame(tmp_path, camera):
    """4 players reading 4 clips by 1 MiB ranges and 2 live viewers, while recording."""
    figures = await measure(tmp_path, camera, None, load=True)
    assert not figures.failures(), figures.report()


async def test_a_thousand_connections_at_a_limit_of_200_descriptors(tmp_path, camera):
    """RLIMIT_NOFILE 200 (soft and hard): recording goes on, the log does not flood."""
    figures = await measure(tmp_path, camera, "idle", nofile=200)
    assert not figures.failures(), figures.report()


def test_the_limits_pass_figures_within_them_and_name_each_one_broken():
    """The judge itself, on made-up figures: within every limit nothing fails; past
    each limit the failure names the figure and the limit."""
    good = Figures(
        "made up",
        60,
        presses=[Press(1000.0 + 2 * i, 3.0 + i) for i in range(30)],
        rss_peak=140_000_000,
        counters={"frames.received": 900, "frames.dropped": 0, "frames.missed": 0},
        lag=[0.0, 1.0, 0.5],
        log_bytes=100,
        health_ms=[5.0] * 60,
        health_after=True,
        clips=[{"id": "a" * 32, "state": "complete", "seconds": 10.0, "problem": ""}],
        attack={"attack": "idle", "counts": {"connected": 1000}},
        started=1000.0,
    )
    assert good.failures() == []
    assert good.bell(50) == 17.0 and good.bell(99) == 32.0  # nearest rank

    bad = dataclasses.replace(
        good,
        presses=[*good.presses[:-1], Press(1058.0, None, "no bell event within 10 s")],
        rss_peak=151_000_000,
        counters={"frames.dropped": 0, "frames.missed": 3},
        lag=[0.0, 3.0],
        log_bytes=70_000,
        health_ms=[5.0, "no answer in 5 s"],
        uncovered=[1058.0],
        attack={"attack": "idle", "error": "the attacker exited with 1"},
    )
    assert bad.failures() == [
        "1 of 30 presses missed: Counter({'no bell event within 10 s': 1})",
        "bell -> event p99 inf ms > 100 ms",
        "peak RSS 151 MB > 150 MB",
        "status frames.missed grew by 3",
        f"the camera fell 3 frames ({3 / FPS:.1f} s) behind real time (> 2); at the end 3",
        "the log grew 70000 bytes > 65536: []",
        "GET /health on a new connection failed 1 of 2 times: {'no answer in 5 s': 1}",
        "1 presses are in no finished clip: at [58.0] s into the scenario",
        "the attack did not run: {'attack': 'idle', 'error': 'the attacker exited with 1'}",
    ]
