"""The soak's pass/fail rules (bench/soak/judge.py) on made-up series: the
soak itself only ever sees a healthy server, so these show that a leak, a
spike and a descriptor left open would fail it, and that noise would not."""
import os
import random
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bench", "soak"))
import judge  # noqa: E402

LIMIT = 1000.0  # KiB/min
CEILING = 50_000  # KiB


def series(seconds, step, f):
    return [(t, f(t)) for t in range(0, seconds + 1, step)]


def test_slope_of_a_line():
    assert abs(judge.slope_per_min(series(60, 5, lambda t: 100 + 2 * t)) - 120) < 1e-9
    assert judge.slope_per_min([(0, 5)]) == 0.0
    assert judge.slope_per_min([(3, 5), (3, 9)]) == 0.0


def test_flat_noisy_plateau_passes():
    rng = random.Random(16)
    samples = series(3600, 10, lambda t: 10_000 + rng.randint(-200, 200))
    failures, slope, peak = judge.judge_rss(samples, 0, 3600, LIMIT, CEILING)
    assert failures == [], failures
    assert abs(slope) < 50


def test_warm_up_growth_in_the_first_half_passes():
    # Allocator and tables grow to their working size early, then stay.
    samples = series(60, 2, lambda t: 10_000 + min(t, 25) * 200)
    failures, slope, _ = judge.judge_rss(samples, 0, 60, LIMIT, CEILING)
    assert failures == [] and slope == 0.0


def test_steady_leak_fails():
    # 1.5 MiB/min, as 1 KiB per connection at 25 connections/s would grow.
    samples = series(60, 2, lambda t: 10_000 + 25 * t)
    failures, slope, _ = judge.judge_rss(samples, 0, 60, LIMIT, CEILING)
    assert abs(slope - 1500) < 1e-6
    assert len(failures) == 1 and "grows 1500 KiB/min" in failures[0]


def test_slow_leak_over_an_hour_fails_a_tight_limit():
    samples = series(3600, 10, lambda t: 10_000 + t * 3 // 60)  # 3 KiB/min
    failures, _, _ = judge.judge_rss(samples, 0, 3600, 2.0, CEILING)
    assert len(failures) == 1


def test_ceiling_fails_even_without_a_slope():
    samples = series(60, 2, lambda t: 60_000)
    failures, _, peak = judge.judge_rss(samples, 0, 60, LIMIT, CEILING)
    assert peak == 60_000 and any("ceiling" in f for f in failures)


def test_spike_between_samples_counts_through_the_high_water_mark():
    samples = series(60, 2, lambda t: 10_000)
    failures, _, peak = judge.judge_rss(samples, 0, 60, LIMIT, CEILING, hwm_kib=80_000)
    assert peak == 80_000 and any("ceiling" in f for f in failures)


def test_too_few_samples_fail():
    failures, _, _ = judge.judge_rss([(0, 1), (50, 1)], 0, 60, LIMIT, CEILING)
    assert failures and "no slope" in failures[0]


def test_samples_after_the_load_are_not_in_the_slope():
    # The drop when the load ends (queues freed) must not hide a leak.
    samples = series(60, 2, lambda t: 10_000 + 25 * t) + [(70, 5_000), (75, 5_000)]
    failures, _, _ = judge.judge_rss(samples, 0, 60, LIMIT, CEILING)
    assert len(failures) == 1


def test_descriptors():
    assert judge.judge_fds(8, 8, 300, 0, 700) == []
    assert judge.judge_fds(8, 10, 300, 2, 700) == []
    left = judge.judge_fds(8, 9, 300, 0, 700)
    assert len(left) == 1 and "9 descriptors open after the load, 8 before" in left[0]
    assert len(judge.judge_fds(8, 8, 701, 0, 700)) == 1
