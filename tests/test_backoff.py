"""Reconnect pacing as plain objects (`edge.backoff`), with a clock the test moves: a link's backoff and the
site's cap on new upstream connections."""

from __future__ import annotations

import random

from edge.backoff import Backoff, RateLimit


def test_backoff_doubles_to_its_cap_with_jitter_and_resets():
    low, high = Backoff(0.5, 30, rng=lambda: 0.0), Backoff(0.5, 30, rng=lambda: 1.0)
    assert [low.next() for _ in range(9)] == [0.25, 0.5, 1, 2, 4, 8, 15, 15, 15]
    assert [high.next() for _ in range(9)] == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    low.reset()
    assert low.next() == 0.25


def test_backoff_keeps_a_failing_link_to_a_handful_of_attempts_a_minute():
    for seed in range(20):
        rng = random.Random(seed)
        b = Backoff(0.5, 30, rng=rng.random)
        t, attempts = 0.0, 0
        while t < 60:
            attempts += 1
            t += b.next()
        assert 6 <= attempts <= 12, (seed, attempts)


def test_rate_limit_staggers_a_crowd_and_refills():
    now = [100.0]
    limit = RateLimit(20, clock=lambda: now[0])
    waits = [limit.delay() for _ in range(200)]  # 200 chargers after an outage, in the same instant
    assert waits[:20] == [0.0] * 20  # a second's worth at once
    assert waits[-1] == 9.0 and waits == sorted(waits)  # the rest one slot each, 50 ms apart
    assert sum(1 for w in waits if w < 1.0) <= 40
    assert not limit.try_take()  # booked out
    now[0] += 11
    assert limit.try_take() and limit.delay() == 0.0
