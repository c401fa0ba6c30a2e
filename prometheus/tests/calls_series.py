#!/usr/bin/env python3
"""Print the input_series of calls_test.yml and calls_slo_test.yml (standard library only).

    python3 prometheus/tests/calls_series.py SCENARIO

SCENARIO is the name in the comment above each test's input_series: recording, days,
incident, night, slow, containment. The traffic is described below as calls per poll
cycle: the exporter counts closed calls once per cycle (5 minutes), so the counters are
sampled every 5 minutes and move in lumps, as the exporter's do. Each series is
compressed into promtool's expanding notation (a+bxn: n+1 values a, a+b, ..., a+n*b).
To change a scenario, edit it here and paste the output over its input_series block.

Every number is a multiple of a power of two (0.25, 0.125, ...), so that promtool's
floating-point sums are exact: a segment that starts a hair below where the previous one
ended would be a counter reset to Prometheus, and increase() would count it whole.
"""

import sys
from fractions import Fraction as F

STEP = 5                 # minutes between samples (the tests' interval)
DAY = 1440
INSTANCE = 'job="wolkvox",instance="localhost:10150"'
OUTCOMES = ("agent", "self_service", "abandoned", "other")
STEP_BOUNDS = ("1", "2", "3", "4", "5", "6", "8", "10", "15", "20", "+Inf")
DURATION_BOUNDS = ("5", "10", "15", "30", "45", "60", "90", "120", "180", "300", "600", "+Inf")


def at(day, hour=0, minute=0):
    return day * DAY + hour * 60 + minute


def fmt(v):
    f = float(v)
    if F(f) != v:
        sys.exit(f"{v} is not exact in binary floating point: use multiples of 1/2^k")
    return str(int(f)) if f == int(f) else repr(f)


def counter(inc, until):
    """inc(m): what the cycle that ends at minute m adds (m = 5, 10, ...). Sampled every
    STEP minutes from 0 to `until`, starting at 0."""
    vals = [F(0)]
    for m in range(STEP, until + 1, STEP):
        vals.append(vals[-1] + F(inc(m)))
    out, i, n = [], 0, len(vals) - 1
    while i <= n:
        if i == n:
            out.append(fmt(vals[i]))
            break
        d = vals[i + 1] - vals[i]
        j = i + 1
        while j < n and vals[j + 1] - vals[j] == d:
            j += 1
        out.append("%s+%sx%d" % (fmt(vals[i]), fmt(d), j - i))
        i = j + 1
    return " ".join(out)


def mix(**by_outcome):
    """Calls per cycle by outcome; outcomes not named are 0."""
    return {o: F(by_outcome.get(o, 0)) for o in OUTCOMES}


def phases(*spans):
    """spans: (start minute, mix), in order; each holds until the next starts."""
    def at_minute(m):
        current = spans[0][1]
        for start, value in spans:
            if m > start:
                current = value
        return current
    return at_minute


def calls(op, rp_id, rp_name, per_cycle, until):
    labels = f'{INSTANCE},operation="{op}",rp_id="{rp_id}",rp_name="{rp_name}"'
    return [
        (f'wolkvox_ivr_calls_total{{{labels},outcome="{o}"}}',
         counter(lambda m, o=o: per_cycle(m)[o], until))
        for o in OUTCOMES
    ]


def histogram(name, op, outcome, bounds, per_cycle, total_per_cycle, until):
    """per_cycle: the cumulative count per bound in one cycle; total: (count, sum)."""
    labels = f'{INSTANCE},operation="{op}",outcome="{outcome}"'
    out = [(f'{name}_bucket{{{labels},le="{b}"}}', counter(lambda m, c=c: c, until))
           for b, c in zip(bounds, per_cycle)]
    count, total = total_per_cycle
    out.append((f'{name}_sum{{{labels}}}', counter(lambda m: total, until)))
    out.append((f'{name}_count{{{labels}}}', counter(lambda m: count, until)))
    return out


def plain(name, op, per_cycle, until):
    return [(f'{name}{{{INSTANCE},operation="{op}"}}', counter(lambda m: per_cycle, until))]


def recording():
    """Two hours of constant traffic at acme: by entry routing point, steps, durations."""
    until = at(0, 2)
    s = []
    # 101: 10 calls a cycle (6 agent, 3 self_service, 1 abandoned); 205: 4 (3 agent, 1
    # abandoned); 310: none (its series exist at 0).
    s += calls("acme", "101", "Menú Principal",
               lambda m: mix(agent=6, self_service=3, abandoned=1), until)
    s += calls("acme", "205", "Ventas", lambda m: mix(agent=3, abandoned=1), until)
    s += calls("acme", "310", "Soporte", lambda m: mix(), until)
    # Steps, a cycle: agent 2,2,3,3,3,3,5,5,5; self_service 3,3,3; abandoned 1,4.
    steps = {
        "agent": ((0, 2, 6, 6, 9, 9, 9, 9, 9, 9, 9), (9, 31)),
        "self_service": ((0, 0, 3, 3, 3, 3, 3, 3, 3, 3, 3), (3, 9)),
        "abandoned": ((1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2), (2, 5)),
        "other": ((0,) * 11, (0, 0)),
    }
    # Durations, a cycle: agent 4 x 50 s and 5 x 100 s; self_service 3 x 80 s;
    # abandoned 8 s and 20 s.
    durations = {
        "agent": ((0, 0, 0, 0, 0, 4, 4, 9, 9, 9, 9, 9), (9, 700)),
        "self_service": ((0, 0, 0, 0, 0, 0, 3, 3, 3, 3, 3, 3), (3, 240)),
        "abandoned": ((0, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2), (2, 28)),
        "other": ((0,) * 12, (0, 0)),
    }
    for o in OUTCOMES:
        s += histogram("wolkvox_ivr_call_steps", "acme", o, STEP_BOUNDS, *steps[o], until)
    for o in OUTCOMES:
        s += histogram("wolkvox_ivr_call_duration_seconds", "acme", o, DURATION_BOUNDS,
                       *durations[o], until)
    s += plain("wolkvox_ivr_rows_total", "acme", 40, until)
    s += plain("wolkvox_ivr_rows_without_call_total", "acme", 2, until)
    s += plain("wolkvox_ivr_call_rows_late_total", "acme", 1, until)
    return s


def days():
    """Seven days and an hour at acme: on day d, d + 1 agent calls a cycle."""
    until = at(7, 1)
    return calls("acme", "101", "Menú Principal",
                 lambda m: mix(agent=min((m - 1) // DAY, 6) + 1), until)


# The usual traffic of the SLO tests: 10 calls a cycle (120 an hour), 2.5% abandoned,
# 37.5% served by the IVR.
NORMAL = dict(agent="6", self_service="3.75", abandoned="0.25")


def scaled(factor, **by_outcome):
    return mix(**{o: F(v) * F(factor) for o, v in by_outcome.items()})


def incident():
    """Abandonment: from day 1 00:00 to 12:00, half the callers hang up in the IVR."""
    until = at(2)
    bad = dict(agent=3, self_service=2, abandoned=5)
    s = []
    for op, rp, name, f in (("acme", "101", "Menú Principal", 1), ("tiny", "1", "IVR", "0.125")):
        s += calls(op, rp, name, phases((0, scaled(f, **NORMAL)), (at(1), scaled(f, **bad)),
                                        (at(1, 12), scaled(f, **NORMAL))), until)
    return s


def night():
    """Two days; 07:00-22:00 10 calls a cycle, 2.5% abandoned; at night 0.5 a cycle
    (6 an hour), 50% abandoned (callers who hear the IVR is closed and hang up)."""
    until = at(2)
    day = scaled(1, **NORMAL)
    dark = mix(agent="0.25", abandoned="0.25")
    def per_cycle(m):
        minute = (m - 1) % DAY
        return day if 7 * 60 <= minute < 22 * 60 else dark
    return calls("acme", "101", "Menú Principal", per_cycle, until)


def slow():
    """Five days. From day 3: acme abandons 7.5% (2.5% before); beta contains 25%
    (37.5% before); micro has both, with 0.625 calls a cycle."""
    until = at(5)
    before_a = NORMAL
    after_a = dict(agent="5.5", self_service="3.75", abandoned="0.75")
    before_b = NORMAL
    after_b = dict(agent="7.25", self_service="2.5", abandoned="0.25")
    after_m = dict(agent="6.75", self_service="2.5", abandoned="0.75")
    s = []
    s += calls("acme", "101", "Menú Principal",
               phases((0, scaled(1, **before_a)), (at(3), scaled(1, **after_a))), until)
    s += calls("beta", "900", "Principal",
               phases((0, scaled(1, **before_b)), (at(3), scaled(1, **after_b))), until)
    s += calls("micro", "1", "IVR",
               phases((0, scaled("0.0625", **before_a)), (at(3), scaled("0.0625", **after_m))),
               until)
    return s


def containment():
    """Containment: from day 1 00:00 the self-service back end fails (2.5% contained, the
    rest go to agents). tiny: the same at 1.25 calls a cycle. noself: an IVR without
    self-service options, never contained."""
    until = at(2)
    broken = dict(agent="9.5", self_service="0.25", abandoned="0.25")
    s = []
    for op, rp, name, f in (("acme", "101", "Menú Principal", 1), ("tiny", "1", "IVR", "0.125")):
        s += calls(op, rp, name, phases((0, scaled(f, **NORMAL)), (at(1), scaled(f, **broken))),
                   until)
    s += calls("noself", "7", "Principal", lambda m: mix(agent="9.75", abandoned="0.25"), until)
    return s


SCENARIOS = {f.__name__: f for f in (recording, days, incident, night, slow, containment)}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in SCENARIOS:
        sys.exit(f"usage: {sys.argv[0]} {'|'.join(SCENARIOS)}")
    for name, values in SCENARIOS[sys.argv[1]]():
        print(f"      - series: '{name}'")
        print(f"        values: '{values}'")
