"""A press of the bell button through the whole service to Home Assistant and to a phone.

    .venv/bin/python bench/ring_bench.py [--presses 100] [--every 0.5]

The real service in this process (``Service(demo=True)``: gpiozero's mock pins, the
synthetic camera at 640x360, 15 fps, in real time, recording a clip for the rings), with
MQTT on to a real mosquitto (Debian's, a free loopback port, no account: what
``doorbell demo --mqtt`` uses) and notifications on to a local ntfy-compatible server
(``tests/ntfy_server.py``, what ``doorbell demo --notify ntfy://…`` reaches). Each press
drives the mock bell pin (``Service.press_mock_bell``, the GPIO callback and all) and is
timed until: the service's own event bus has the ring (the baseline: everything before
the integrations), a Home Assistant subscriber (aiomqtt) has the ``ring`` message, and
the ntfy server has the notice. Prints p50, p99 and max in milliseconds and each
integration's p50 and p99 against the bus's. Needs ``mosquitto`` (``apt install
mosquitto``): without it, exits with status 2 saying so.
"""

import argparse
import asyncio
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gpiozero.pins.mock import MockFactory  # noqa: E402

from doorbell.cli.serve import demo_mqtt  # noqa: E402
from doorbell.config import CameraSettings, Config, StorageSettings, WebSettings  # noqa: E402
from doorbell.events import BellPressed  # noqa: E402
from doorbell.service import Service  # noqa: E402
from tests.mosquitto import INSTALL, Mosquitto, mosquitto_binary  # noqa: E402
from tests.ntfy_server import NtfyServer  # noqa: E402
from tests.owners import pair_owner  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def measure(folder: Path, presses: int, every: float) -> dict[str, list[float]]:
    import aiomqtt

    broker = Mosquitto(folder, {}, anonymous=True)
    broker.start()
    ntfy = NtfyServer()
    await ntfy.start()
    data = folder / "data"
    pair_owner(data)  # an owner's key, so the rings' clips are recorded (encrypted)
    config = dataclasses.replace(
        Config(),
        storage=StorageSettings(data_dir=str(data), min_free_mb=0),
        camera=CameraSettings(backend="synthetic", width=640, height=360, fps=15.0),
        web=WebSettings(listen="127.0.0.1:0", tls="off"),
        mqtt=demo_mqtt(broker.address),
    )
    service = Service(
        config, demo=True, pin_factory=MockFactory(), notify_urls=[ntfy.url("doorbell")]
    )
    stop = asyncio.Event()
    up = asyncio.Event()
    running = asyncio.create_task(service.run(stop, ready=lambda s: up.set()))
    times: dict[str, list[float]] = {"bus": [], "mqtt": [], "ntfy": []}
    try:
        await asyncio.wait_for(up.wait(), 60)
        assert service.bus is not None
        bus = service.bus.subscribe()
        async with aiomqtt.Client(broker.host, broker.port, identifier="ha-bench") as ha:
            await ha.subscribe("doorbell/demo/ring", qos=1)
            async with asyncio.timeout(30):
                while service.outbound.mqtt is None or not service.outbound.mqtt.connected:
                    await asyncio.sleep(0.05)
            messages = ha.messages
            for n in range(presses):
                pressed = time.perf_counter()
                await asyncio.to_thread(service.press_mock_bell)  # as gpiozero's thread would
                while not isinstance(await bus.get(), BellPressed):
                    pass
                times["bus"].append(time.perf_counter() - pressed)
                async with asyncio.timeout(10):
                    await messages.__anext__()
                times["mqtt"].append(time.perf_counter() - pressed)
                got = await ntfy.wait_for(n + 1)
                times["ntfy"].append(got[-1].at - pressed)
                await asyncio.sleep(max(0.0, every - (time.perf_counter() - pressed)))
        bus.close()
    finally:
        stop.set()
        await asyncio.wait_for(running, 60)
        await ntfy.stop()
        broker.stop()
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presses", type=int, default=100)
    parser.add_argument("--every", type=float, default=0.5, help="seconds between presses")
    args = parser.parse_args()
    if mosquitto_binary() is None:
        print(f"ring_bench: {INSTALL}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="ring-bench-") as folder:
        times = asyncio.run(measure(Path(folder), args.presses, args.every))
    base50, base99 = percentile(times["bus"], 50), percentile(times["bus"], 99)
    print(f"{args.presses} presses of the mock bell button, one every {args.every:g} s")
    print("| press -> | p50 ms | p99 ms | max ms | p50 vs bus | p99 vs bus |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, label in (
        ("bus", "the service's event bus (baseline)"),
        ("mqtt", "Home Assistant's MQTT subscriber"),
        ("ntfy", "the ntfy server (Apprise)"),
    ):
        ms = [t * 1000 for t in times[name]]
        p50, p99 = percentile(ms, 50), percentile(ms, 99)
        print(
            f"| {label} | {p50:.2f} | {p99:.2f} | {max(ms):.2f} | "
            f"{p50 / (base50 * 1000):.1f}x | {p99 / (base99 * 1000):.1f}x |"
        )
    print(f"(median of the bus baseline: {statistics.median(times['bus']) * 1000:.2f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
