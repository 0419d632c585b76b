"""The soak's pass/fail rules on the server's samples, kept apart from the
processes so that tests/bench/test_soak_judge.py can feed them made-up
series: a leak must fail, a noisy plateau must pass."""


def slope_per_min(points):
    """Least-squares slope of [(t_s, value)], in value units per minute."""
    n = len(points)
    if n < 2:
        return 0.0
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    return 60.0 * sum((t - mt) * (v - mv) for t, v in points) / var


def judge_rss(samples, load_start, load_end, slope_limit_kib_min, ceiling_kib, hwm_kib=0):
    """samples: [(t_s, rss_kib)]; hwm_kib: the process's own peak (VmHWM),
    which catches a spike between samples. The slope is fitted over the second half of
    the load (the first half is warm-up: the allocator's arenas, the kernel's
    socket memory and the server's tables reach their working size). Returns
    (failures, slope_kib_min, peak_kib)."""
    mid = load_start + (load_end - load_start) / 2
    tail = [(t, v) for t, v in samples if mid <= t <= load_end]
    slope = slope_per_min(tail)
    peak = max([v for _, v in samples] + [hwm_kib])
    failures = []
    if len(tail) < 4:
        failures.append(f"only {len(tail)} RSS samples in the second half of the load: no slope")
    elif slope > slope_limit_kib_min:
        failures.append(f"RSS grows {slope:.0f} KiB/min over the second half of the load "
                        f"(limit {slope_limit_kib_min:.0f})")
    if peak > ceiling_kib:
        failures.append(f"RSS peaked at {peak} KiB, above the ceiling of {ceiling_kib} KiB")
    return failures, slope, peak


def judge_fds(baseline, after, peak, slack, ceiling):
    """Descriptors: back to the idle server's count once the load is gone
    (within `slack`), and never above `ceiling` during it."""
    failures = []
    if abs(after - baseline) > slack:
        failures.append(f"{after} descriptors open after the load, {baseline} before it "
                        f"(allowed difference {slack})")
    if peak > ceiling:
        failures.append(f"{peak} descriptors open at the peak, above the ceiling of {ceiling}")
    return failures
