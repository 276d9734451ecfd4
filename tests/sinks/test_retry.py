from __future__ import annotations

from log_server.sinks.retry import RetryPolicy


def test_backoff_doubles_then_caps() -> None:
    policy = RetryPolicy(initial_delay_s=0.1, factor=2.0, max_delay_s=0.5)
    assert [policy.delay_s(n) for n in range(1, 6)] == [0.1, 0.2, 0.4, 0.5, 0.5]


def test_degraded_after_one_try_and_three_retries_fail() -> None:
    policy = RetryPolicy()
    assert [policy.is_degraded(n) for n in range(1, 6)] == [False, False, False, True, True]
