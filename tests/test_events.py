"""The event bus: fan-out, bounded queues, hand-over from threads."""

import asyncio
import threading

from doorbell.events import BellPressed, EventBus, MotionChanged


def test_every_subscriber_gets_every_event_in_order():
    async def main():
        bus = EventBus(asyncio.get_running_loop())
        first, second = bus.subscribe(), bus.subscribe()
        events = [BellPressed(1.0), MotionChanged(2.0, True)]
        for event in events:
            bus.publish(event)
        return [await first.get() for _ in events], [await second.get() for _ in events]

    first, second = asyncio.run(main())
    assert first == second == [BellPressed(1.0), MotionChanged(2.0, True)]


def test_a_slow_subscriber_loses_its_oldest_events_and_nobody_waits():
    async def main():
        bus = EventBus(asyncio.get_running_loop())
        slow = bus.subscribe(maxsize=3)
        for i in range(10):
            bus.publish(BellPressed(float(i)))
        return [await slow.get() for _ in range(3)], slow.dropped

    kept, dropped = asyncio.run(main())
    assert kept == [BellPressed(7.0), BellPressed(8.0), BellPressed(9.0)]
    assert dropped == 7


def test_events_from_another_thread_arrive_on_the_loop():
    async def main():
        loop = asyncio.get_running_loop()
        bus = EventBus(loop)
        sub = bus.subscribe()
        on_loop = []
        original = bus.publish

        def recording_publish(event):
            on_loop.append(threading.current_thread() is threading.main_thread())
            original(event)

        bus.publish = recording_publish
        worker = threading.Thread(target=bus.publish_threadsafe, args=(BellPressed(5.0),))
        worker.start()
        event = await asyncio.wait_for(sub.get(), 5)
        worker.join()
        return event, on_loop

    event, on_loop = asyncio.run(main())
    assert event == BellPressed(5.0) and on_loop == [True]


def test_closed_subscriptions_get_nothing_more():
    async def main():
        bus = EventBus(asyncio.get_running_loop())
        sub = bus.subscribe()
        sub.close()
        bus.publish(BellPressed(1.0))
        return sub.queue.qsize()

    assert asyncio.run(main()) == 0
