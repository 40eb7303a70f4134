"""Summaries of repeated samples: median and spread.

The benchmark repeats every cell a few times, interleaved with the other configurations, and
reports the median (robust against one noisy round) with the spread of all samples so the
reader can tell a real difference from noise.
"""

import math


def median(values):
    """Median of a non-empty sequence of numbers (mean of the two middle ones if even)."""
    vals = sorted(v for v in values if v is not None)
    if not vals:
        raise ValueError("median of no values")
    mid = len(vals) // 2
    if len(vals) % 2:
        return vals[mid]
    return (vals[mid - 1] + vals[mid]) / 2.0


def spread(values):
    """(min, max, percent) where percent is (max - min) relative to the median.

    percent is 0 for a single sample and None when the median is 0 (no meaningful ratio).
    """
    vals = [v for v in values if v is not None]
    if not vals:
        raise ValueError("spread of no values")
    lo, hi = min(vals), max(vals)
    med = median(vals)
    if med == 0:
        pct = 0.0 if lo == hi else None
    else:
        pct = (hi - lo) / abs(med) * 100.0
    return lo, hi, pct


def summarize(values):
    """Summary dict of samples: n, median, min, max, spread_pct. Empty input gives n=0."""
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return {"n": 0, "median": None, "min": None, "max": None, "spread_pct": None}
    lo, hi, pct = spread(vals)
    return {"n": len(vals), "median": median(vals), "min": lo, "max": hi, "spread_pct": pct}


def ratio(value, base, better="higher"):
    """value / base, or None when either is missing or base is 0.

    With better="lower" the ratio is inverted (base / value) so that, in both cases, a result
    above 1 means "better than the baseline". Used for the chart; the table shows raw ratios.
    """
    if value is None or base is None:
        return None
    if better == "lower":
        if value == 0:
            return None
        return base / value
    if base == 0:
        return None
    return value / base
