#!/usr/bin/env python3
"""Print the input_series of ivr_week_test.yml (standard library only).

    python3 prometheus/tests/week_series.py

The traffic is described below as calls per minute for each period; the counters are
sampled every 5 minutes and compressed into promtool's expanding notation (a+bxn: n+1
values a, a+b, ..., a+n*b). To change the scenario, edit it here and paste the output
over the input_series block of ivr_week_test.yml.
"""

from fractions import Fraction as F

STEP = 5                 # minutes between samples (the test's interval)
DAY = 1440
N = 7 * DAY + 18 * 60    # up to day 7, 18:00
INSTANCE = 'job="wolkvox",instance="localhost:10150"'


def at(day, hour, minute=0):
    return day * DAY + hour * 60 + minute


def daytime(m):
    return 7 <= (m % DAY) / 60 < 22


def fmt(v):
    v = float(v)
    return str(int(v)) if v == int(v) else ("%.4f" % v).rstrip("0").rstrip(".")


def counter(inc):
    """inc(m): increment during minute m. Returns the counter, sampled every STEP minutes."""
    vals = [F(0)]
    for m in range(N):
        vals.append(vals[-1] + F(inc(m)))
    vals = vals[::STEP]
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


def gauge(fn):
    vals = [fn(m) for m in range(N + 1)][::STEP]
    out, i, n = [], 0, len(vals) - 1
    while i <= n:
        j = i
        while j < n and vals[j + 1] == vals[i]:
            j += 1
        out.append("%sx%d" % (fmt(vals[i]), j - i))
        i = j + 1
    return " ".join(out)


def by_time(day_rate, night_rate):
    return lambda m: F(day_rate) if daytime(m) else F(night_rate)


def during(start, end, rate, otherwise):
    return lambda m: F(rate) if start <= m < end else otherwise(m)


def silent_from(t, f):
    return lambda m: F(0) if m >= t else f(m)


def zero(m):
    return 0


def routing_point(op, rp_id, name, ok, hung_up, pulse):
    labels = f'{INSTANCE},operation="{op}",rp_id="{rp_id}",rp_name="{name}"'
    return [
        (f'wolkvox_ivr_interactions_total{{{labels},result="ok"}}', counter(ok)),
        (f'wolkvox_ivr_interactions_total{{{labels},result="hung_up"}}', counter(hung_up)),
        (f'wolkvox_ivr_interactions_total{{{labels},result="other"}}', counter(zero)),
        (f'wolkvox_ivr_pulse_total{{{labels}}}', counter(pulse)),
    ]


series = []
# acme / 101: 10 calls/min by day (20% hung up, 10% PULSE), 0.5/min at night.
# Day 7 02:00-03:00: 80% hung up (a quiet night). Day 7 12:00-13:00: 80% PULSE.
series += routing_point(
    "acme", "101", "Menú Principal",
    ok=during(at(7, 2), at(7, 3), "0.1", by_time(8, "0.4")),
    hung_up=during(at(7, 2), at(7, 3), "0.4", by_time(2, "0.1")),
    pulse=during(at(7, 12), at(7, 13), 8, by_time(1, "0.05")))
# acme / 205: 5/min by day (20% hung up), 0.25/min at night; day 7 10:00-12:00: 80% hung up.
series += routing_point(
    "acme", "205", "Ventas",
    ok=during(at(7, 10), at(7, 12), 1, by_time(4, "0.2")),
    hung_up=during(at(7, 10), at(7, 12), 4, by_time(1, "0.05")),
    pulse=by_time("0.5", "0.025"))
# acme / 310: 2/min by day, none at night; silent from day 7 14:00.
series += routing_point(
    "acme", "310", "Soporte",
    ok=silent_from(at(7, 14), by_time("1.6", 0)),
    hung_up=silent_from(at(7, 14), by_time("0.4", 0)),
    pulse=silent_from(at(7, 14), by_time("0.2", 0)))
# acme / 410: 1/min by day on days 5 and 6 only.
series += routing_point(
    "acme", "410", "Promo fin de semana",
    ok=lambda m: F(1) if m // DAY in (5, 6) and daytime(m) else F(0),
    hung_up=zero, pulse=zero)
# acme / 520: an announcement, every interaction is PULSE.
series += routing_point("acme", "520", "Bienvenida", ok=by_time(3, "0.1"), hung_up=zero,
                        pulse=by_time(3, "0.1"))
# beta: no rows at all from day 7 16:00 while its polls succeed.
series += routing_point("beta", "900", "Principal", ok=silent_from(at(7, 16), by_time(5, "0.5")),
                        hung_up=zero, pulse=zero)
# gamma: no rows from day 7 16:00 because its polls fail.
series += routing_point("gamma", "950", "Principal", ok=silent_from(at(7, 16), by_time(5, "0.5")),
                        hung_up=zero, pulse=zero)
series.append((f'wolkvox_up{{{INSTANCE},operation="acme"}}', gauge(lambda m: 1)))
series.append((f'wolkvox_up{{{INSTANCE},operation="beta"}}', gauge(lambda m: 1)))
series.append((f'wolkvox_up{{{INSTANCE},operation="gamma"}}', gauge(lambda m: 0 if m >= at(7, 16) else 1)))

for name, values in series:
    print(f"      - series: '{name}'")
    print(f"        values: '{values}'")
