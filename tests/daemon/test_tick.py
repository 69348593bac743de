"""The daemon's tick: it rides on its sources' wake-ups, and reads the sockets whose datagrams
can wait for it.

An in-process Agent with no source and nothing published: only the tick runs. A source's timer
calls ``Agent.wake()``; the tick then runs right there if the last one is TICK_SLACK_S old, and
its own timer is re-armed TICK_MAX_S from that moment, so a loop woken by its sources anyway is
not woken again just to tick.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import subprocess
import sys
from pathlib import Path

from netclock.config import load_text
from netclock.daemon.agent import TICK_MAX_S, TICK_S, TICK_SLACK_S, Agent
from netclock.platform.timestamping import RxPoller

REPO = Path(__file__).resolve().parents[2]

CONFIG = """
[publish]
shm = false
socket = false
[metrics]
enabled = false
"""


def _run(scenario: str) -> tuple[list[float], list[tuple[float, bool]]]:
    """Run the agent for ~2 s; returns the ticks' loop times and, for each ``wake()`` the
    scenario made, (its loop time, whether a tick ran inside that call)."""

    async def main() -> tuple[list[float], list[tuple[float, bool]]]:
        agent = Agent(load_text(CONFIG, "test"))
        ticks: list[float] = []
        wakes: list[tuple[float, bool]] = []
        agent.add_tick_hook(ticks.append)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def wake() -> None:
            before = len(ticks)
            agent.wake()
            wakes.append((loop.time(), len(ticks) > before))

        task = asyncio.create_task(agent.run(stop))
        while not ticks:
            await asyncio.sleep(0.005)
        t0 = ticks[0]
        if scenario == "wakes":
            # a source waking 0.06 s after the first tick, then 0.2 s after it, then every 0.2 s
            for at in (0.06, 0.2, 0.4, 0.6, 0.8, 1.0):
                await asyncio.sleep(t0 + at - loop.time())
                wake()
        await asyncio.sleep(t0 + 2.0 - loop.time())
        stop.set()
        await task
        return ticks[:-1], wakes  # (the last one is the tick at stop)

    return asyncio.run(main())


def test_without_other_wake_ups_the_tick_runs_on_its_own_timer() -> None:
    ticks, _ = _run("none")
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert len(ticks) >= 3, ticks
    assert all(TICK_MAX_S - 0.001 <= g < TICK_MAX_S + 0.1 for g in gaps), gaps


def test_a_source_wake_up_carries_the_tick_once_the_slack_has_passed() -> None:
    ticks, wakes = _run("wakes")
    # 0.06 s after a tick: too soon, nothing runs in that wake-up
    assert wakes[0][1] is False
    # then 0.2 s after the first tick, and every 0.2 s (>= TICK_SLACK_S): each of these
    # wake-ups runs the tick itself
    assert all(ran for _, ran in wakes[1:]), wakes
    assert all(any(abs(t - w) < 0.001 for t in ticks) for w, _ in wakes[1:]), (ticks, wakes)
    # and no tick of its own came in between: every gap between ticks is a wake-up's 0.2 s,
    # until the wake-ups stop and the timer, re-armed TICK_MAX_S after the last ridden tick,
    # takes over again
    last_wake = max(t for t, _ in wakes)
    during = [t for t in ticks if wakes[1][0] - 0.001 <= t <= last_wake + 0.001]
    gaps = [b - a for a, b in itertools.pairwise(during)]
    assert len(during) == len(wakes) - 1 and all(0.19 <= g < 0.23 for g in gaps), (ticks, wakes)
    after = [t for t in ticks if t > last_wake + 0.001]
    assert after and TICK_MAX_S - 0.001 <= after[0] - last_wake < TICK_MAX_S + 0.1, (
        ticks, wakes)
    assert TICK_SLACK_S < 0.2 < TICK_S < TICK_MAX_S


def _ntp_agent_sockets(minpoll: int, seconds: float) -> tuple[bool, int, int, int, bool, int]:
    """An agent with one NTP server (a real `netclock ntp serve` on loopback) at ``minpoll``:
    (whether the client socket is polled, datagrams the tick's poller delivered, answers
    counted, the agent's ticks, whether the requests have a timer of their own, the polls of
    the client socket)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    srv = subprocess.Popen(
        [sys.executable, "-m", "netclock", "ntp", "serve", "--listen", f"127.0.0.1:{port}",
         "--duration", "30"],
        env=dict(os.environ, PYTHONPATH=str(REPO)), stdout=subprocess.PIPE, text=True,
    )
    try:
        assert srv.stdout is not None and "serving NTP on" in srv.stdout.readline()

        async def main() -> tuple[bool, int, int, int, bool, int]:
            cfg = CONFIG + (
                f'[[ntp.server]]\naddress = "127.0.0.1"\nport = {port}\n'
                f"minpoll = {minpoll}\nmaxpoll = {minpoll}\n"
            )
            agent = Agent(load_text(cfg, "test"))
            ticks: list[float] = []
            agent.add_tick_hook(ticks.append)
            stop = asyncio.Event()
            task = asyncio.create_task(agent.run(stop))
            await asyncio.sleep(seconds)
            (sock,) = agent._sockets
            polled = sock.polled
            pollers = [h.__self__ for h in agent._tick_hooks if isinstance(
                getattr(h, "__self__", None), RxPoller)]
            delivered = sum(p.delivered for p in pollers)
            polls = sum(p.polls for p in pollers)
            (info,) = agent.sources.values()
            answers = info.packets["response"][0]
            (driver,) = agent._drivers
            stop.set()
            await task
            return polled, delivered, answers, len(ticks), driver.timer, polls

        return asyncio.run(main())
    finally:
        srv.terminate()
        srv.wait(timeout=5)


def test_ntp_requests_and_answers_ride_the_tick_when_requests_are_a_second_apart() -> None:
    # 1 s polls, sent by the ticks (0.5 s apart here, with no other source): 1 to 1.5 s apart
    polled, delivered, answers, ticks, timer, polls = _ntp_agent_sockets(0, 5.2)
    assert polled and not timer
    assert 4 <= answers <= 6 and delivered == answers, (delivered, answers)
    assert ticks >= 5.2 / TICK_MAX_S - 1  # the tick kept its pace while it read them
    # and read the socket only while an answer was due: once per answer (the first tick
    # after each request), not on every tick
    assert answers <= polls <= answers + 1 < ticks - 3, (polls, answers, ticks)


def test_ntp_requests_and_answers_wake_the_loop_when_requests_come_faster() -> None:
    polled, delivered, answers, _, timer, _ = _ntp_agent_sockets(-1, 2.5)
    assert not polled and timer and delivered == 0 and answers >= 3
