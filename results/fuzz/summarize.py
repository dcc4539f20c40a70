#!/usr/bin/env python3
"""Totals per target from results/fuzz/runs.tsv (written by scripts/fuzz.sh) as a markdown table."""
import collections, csv, os, sys

path = os.path.join(os.path.dirname(__file__), "runs.tsv")
tot = collections.OrderedDict()
with open(path) as f:
    for r in csv.DictReader(f, delimiter="\t"):
        t = tot.setdefault(r["target"], [0, 0, 0, 0])
        t[0] += 1
        t[1] += int(r["seconds"])
        t[2] += int(r["execs"])
        t[3] += int(r["findings"])
print("| target | runs | seconds | execs | findings |")
print("|---|---|---|---|---|")
for k, (n, s, e, c) in tot.items():
    print(f"| {k} | {n} | {s} | {e:,} | {c} |")
print(f"| **all** | {sum(v[0] for v in tot.values())} | {sum(v[1] for v in tot.values())} | "
      f"{sum(v[2] for v in tot.values()):,} | {sum(v[3] for v in tot.values())} |")
