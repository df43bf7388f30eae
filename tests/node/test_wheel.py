"""The host's housekeeping timer wheel (wheel.py) on a real event loop: every entry fires once a
period in its own slot, removal stops it, one failing entry does not stop the others, and the wheel
of a (loop, period) is shared and dropped with its last entry. Deadlines are generous (loaded
machine); counts are compared with the elapsed time, never asserted as speed."""

from __future__ import annotations

import asyncio

from harness_node.wheel import SLOTS, _WHEELS, wheel_for

PERIOD = 0.2


def test_entries_fire_about_once_a_period_until_removed() -> None:
    async def run() -> tuple[dict[str, int], dict[str, int], float]:
        loop = asyncio.get_running_loop()
        wheel = wheel_for(loop, PERIOD)
        assert wheel_for(loop, PERIOD) is wheel  # one wheel per loop and period
        fired = {"a": 0, "b": 0}
        key_a = wheel.add(lambda: fired.__setitem__("a", fired["a"] + 1), slot=0)
        wheel.add(lambda: fired.__setitem__("b", fired["b"] + 1), slot=SLOTS - 1)
        started = loop.time()
        while fired["a"] < 5 or fired["b"] < 5:
            assert loop.time() - started < 30, f"the wheel stopped firing: {fired}"
            await asyncio.sleep(0.05)
        elapsed = loop.time() - started
        wheel.remove(key_a)
        at_removal = dict(fired)
        await asyncio.sleep(3 * PERIOD)
        return at_removal, dict(fired), elapsed

    at_removal, after, elapsed = asyncio.run(run())
    # once a period: never more often than the elapsed periods allow (a late loop only makes it fewer)
    assert at_removal["a"] <= elapsed / PERIOD + 1 and at_removal["b"] <= elapsed / PERIOD + 1
    assert after["a"] == at_removal["a"]  # removed: no more calls
    assert after["b"] > at_removal["b"]  # the other entry goes on


def test_a_failing_entry_does_not_stop_the_others() -> None:
    async def run() -> int:
        loop = asyncio.get_running_loop()
        wheel = wheel_for(loop, PERIOD)
        calls = {"ok": 0}

        def boom() -> None:
            raise RuntimeError("injected failure")

        wheel.add(boom, slot=3)
        wheel.add(lambda: calls.__setitem__("ok", calls["ok"] + 1), slot=3)  # same slot, after it
        started = loop.time()
        while calls["ok"] < 3:
            assert loop.time() - started < 30, "the wheel stopped after a failing entry"
            await asyncio.sleep(0.05)
        return calls["ok"]

    assert asyncio.run(run()) >= 3


def test_the_wheel_is_dropped_with_its_last_entry() -> None:
    async def run() -> None:
        loop = asyncio.get_running_loop()
        wheel = wheel_for(loop, 0.5)
        keys = [wheel.add(lambda: None, slot=s) for s in (1, 2)]
        assert (loop, 0.5) in _WHEELS and wheel._handle is not None
        for key in keys:
            wheel.remove(key)
        assert (loop, 0.5) not in _WHEELS and wheel._handle is None  # no timer left on the loop
        assert wheel_for(loop, 0.5) is not wheel

    asyncio.run(run())
