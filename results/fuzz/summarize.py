#!/usr/bin/env python3
"""Totals per target from results/fuzz/runs.tsv (written by scripts/fuzz.sh) as a markdown table, with the exec/s of
each target's latest run and how far the total is from the issue's 10 M executions per target."""
import collections, csv, os

GOAL = 10_000_000
path = os.path.join(os.path.dirname(__file__), "runs.tsv")
tot = collections.OrderedDict()
with open(path) as f:
    for r in csv.DictReader(f, delimiter="\t"):
        t = tot.setdefault(r["target"], [0, 0, 0, 0, 0.0])
        t[0] += 1
        t[1] += int(r["seconds"])
        t[2] += int(r["execs"])
        t[3] += int(r["findings"])
        t[4] = int(r["execs"]) / max(1, int(r["seconds"]))  # the latest run's rate
print("| target | runs | seconds | execs | of 10 M | exec/s, latest run | findings |")
print("|---|---|---|---|---|---|---|")
for k, (n, s, e, c, rate) in tot.items():
    print(f"| {k} | {n} | {s} | {e:,} | {100 * e / GOAL:.0f}% | {rate:,.0f} | {c} |")
v = list(tot.values())
print(f"| **all** | {sum(x[0] for x in v)} | {sum(x[1] for x in v)} | {sum(x[2] for x in v):,} | "
      f"{100 * sum(x[2] for x in v) / (GOAL * len(v)):.0f}% | | {sum(x[3] for x in v)} |")
