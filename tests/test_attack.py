"""Issue 13: the doorbell keeps recording, ringing and serving its owner while anyone on
the LAN attacks its port (tests/attack.py runs the real service in a child process and
the attacks from other loopback addresses).

Each test runs one scenario for $DOORBELL_ATTACK_SECONDS (default 60) with the real
footage as a 1280x720, 15 fps camera, prints its figures and holds them to the issue's
limits (``Figures.failures``): bell -> event p99 <= 100 ms, peak RSS <= 150 MB, no frame
dropped or missed (by the status counters and by the frames the camera delivered
against the wall clock), the log grown by at most 64 KiB, /health answered on new
connections from the owner's address throughout and after, and every bell press
during it in a finished clip that is complete and decrypts with the owner's identity
to an MP4 whose every frame decodes. $DOORBELL_ATTACK_ROOT runs the service from
another checkout of the code (e.g. an older commit's export), the probes from here.
"""

import os
from pathlib import Path

import pytest

from tests.attack import REPO, Device, Figures, camera_source, scenario
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
