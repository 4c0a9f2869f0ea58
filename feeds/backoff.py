"""When to poll next: the interval with a little jitter, or exponential back-off.

Jitter keeps many installs from hitting the source in step; back-off with
"equal jitter" (half fixed, half random) spreads retries after an outage while
still growing with every failure. A ``Retry-After`` from the source is
honoured up to the cap.
"""

from __future__ import annotations

import random


def next_delay(
    failures: int,
    base: float,
    cap: float,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    # (a new Random() per call would seed itself from the OS every time)
    uniform = rng.uniform if rng is not None else random.uniform
    if failures <= 0:
        delay = base * uniform(0.9, 1.1)
    else:
        ceiling = min(cap, base * 2.0 ** min(failures, 32))
        delay = max(base, ceiling / 2 + uniform(0, ceiling / 2))
    if retry_after is not None:
        delay = max(delay, min(retry_after, cap))
    return min(delay, max(cap, base * 1.1))
