"""A ring through the MQTT bridge, against a message published straight to the broker.

    .venv/bin/python bench/mqtt_bench.py [--presses 100] [--json FILE]

A real mosquitto (Debian's, on a free loopback port, with a password file: the tests'
``tests/mosquitto.py``), the bridge in this process reading its own subscription to an
``EventBus``, and a subscriber (aiomqtt, as Home Assistant would be) on the ring topic.
Each press is ``bus.publish(BellPressed)`` and is timed until the subscriber has the
message. The baseline, interleaved press by press in the same run (the order alternating),
is the same subscriber receiving a message another aiomqtt client publishes directly at
QoS 1, as the bridge does: the ratio is what the bus and the bridge add. Prints p50, p99
and max in milliseconds for both, and the ratio of the p50s. Needs ``mosquitto``
(``apt install mosquitto``): without it, exits with status 2 saying so.
"""

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from doorbell.events import BellPressed, EventBus  # noqa: E402
from doorbell.mqtt import QUEUE_SIZE, MqttBridge, MqttSettings  # noqa: E402
from tests.mosquitto import INSTALL, Mosquitto, mosquitto_binary  # noqa: E402

PASSWORD = "bench-password-1"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def measure(broker: Mosquitto, password_file: Path, presses: int) -> dict:
    import aiomqtt

    loop = asyncio.get_running_loop()
    bus = EventBus(loop)
    settings = MqttSettings(
        enabled=True,
        host=broker.host,
        port=broker.port,
        username="doorbell",
        password_file=str(password_file),
        device_id="bench",
    )
    bridge = MqttBridge(settings, version="bench")
    ring = bridge.topics.ring
    direct_topic = "bench/direct"
    common = {"username": "doorbell", "password": PASSWORD}
    task = asyncio.create_task(bridge.run(bus.subscribe(maxsize=QUEUE_SIZE)))
    figures: dict[str, list[float]] = {"bridge": [], "direct": []}
    try:
        async with (
            aiomqtt.Client(broker.host, broker.port, identifier="ha", **common) as ha,
            aiomqtt.Client(broker.host, broker.port, identifier="direct", **common) as direct,
        ):
            await ha.subscribe(ring, qos=1)
            await ha.subscribe(direct_topic, qos=1)
            while not bridge.connected:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)  # discovery and availability go first
            messages = ha.messages

            async def one(kind: str) -> float:
                started = time.perf_counter()
                if kind == "bridge":
                    bus.publish(BellPressed(time.time()))
                else:
                    await direct.publish(direct_topic, '{"event_type": "ring"}', qos=1)
                while True:
                    message = await asyncio.wait_for(messages.__anext__(), 5)
                    if str(message.topic) == (ring if kind == "bridge" else direct_topic):
                        return (time.perf_counter() - started) * 1000

            for warm in ("bridge", "direct") * 5:
                await one(warm)
            for i in range(presses):
                order = ("bridge", "direct") if i % 2 == 0 else ("direct", "bridge")
                for kind in order:
                    figures[kind].append(await one(kind))
                    await asyncio.sleep(0.02)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presses", type=int, default=100)
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()
    if mosquitto_binary() is None:
        print(INSTALL, file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="mqtt-bench-") as folder:
        broker = Mosquitto(Path(folder), users={"doorbell": PASSWORD})
        password_file = Path(folder) / "password"
        password_file.write_text(PASSWORD + "\n")
        broker.start()
        try:
            figures = asyncio.run(measure(broker, password_file, args.presses))
        finally:
            broker.stop()
    summary = {
        kind: {
            "p50_ms": statistics.median(values),
            "p99_ms": percentile(values, 99),
            "max_ms": max(values),
            "n": len(values),
        }
        for kind, values in figures.items()
    }
    print(f"{'path':<36} {'n':>4} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    names = {
        "bridge": "bus -> bridge -> broker -> subscriber",
        "direct": "client -> broker -> subscriber",
    }
    for kind, row in summary.items():
        print(
            f"{names[kind]:<36} {row['n']:>4} {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} "
            f"{row['max_ms']:>8.2f}"
        )
    ratio = summary["bridge"]["p50_ms"] / summary["direct"]["p50_ms"]
    print(f"bridge / direct, p50: {ratio:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(summary | {"ratio_p50": ratio}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
