#!/usr/bin/env python3
"""Regenerates README.md's GPU table from the newest committed results/gpu/*/table.json (by the date that starts its
folder name), between the markers <!-- gpu-table:begin --> and <!-- gpu-table:end -->. Claims follow from committed
results: the README's numbers are never typed by hand.

Usage: python3 scripts/readme_gpu_table.py [--check]   (--check: exit 1 if README.md is not up to date)
"""
import glob, json, os, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BEGIN, END = "<!-- gpu-table:begin -->", "<!-- gpu-table:end -->"


def newest(name):
    """The newest committed results/gpu/*/NAME (by the date that starts its folder, then its measured_at)."""
    found = sorted(glob.glob(os.path.join(ROOT, "results", "gpu", "*", name)),
                   key=lambda p: (os.path.basename(os.path.dirname(p))[:10],
                                  json.load(open(p)).get("measured_at", ""), p))
    return found[-1] if found else None


def newest_table():
    table = newest("table.json")
    if not table:
        sys.exit("readme_gpu_table: no results/gpu/*/table.json")
    return table


def render(path):
    sys.path.insert(0, os.path.join(ROOT, "scripts", "gpu_peers"))
    from table import markdown  # the same rendering gpu_check prints as table.md
    t = json.load(open(path))
    rel = os.path.relpath(os.path.dirname(path), ROOT)
    out = (f"From `{rel}/table.json` (random bf16 weights of the published shapes). \"% of floor\" = floor / "
           "ours; \"peer / ours\" > 1 means bmh is faster.\n\n"
           + markdown(t["rows"], t["floors"], t["device"], t["commit"], t["command"]).rstrip("\n"))
    # The newest suite run (gpu_check suite; suite_table.py renders suite.md from it), which may be of an older
    # commit than the table: it names its own.
    suite = newest("suite.json")
    if suite:
        s = json.load(open(suite))
        srel = os.path.relpath(os.path.dirname(suite), ROOT)
        out += (f"\n\nThe 7 zero-shot tasks, full, bf16, from `{srel}/suite.json` (commit {s['commit']}, "
                f"`{s['command']}`; {s['note']}):\n\n" + open(suite[:-4] + "md").read().rstrip("\n"))
    return out


def main():
    readme = os.path.join(ROOT, "README.md")
    text = open(readme).read()
    if BEGIN not in text or END not in text:
        sys.exit(f"readme_gpu_table: README.md lacks the markers {BEGIN} ... {END}")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    new = head + BEGIN + "\n" + render(newest_table()) + "\n" + END + tail
    if "--check" in sys.argv[1:]:
        sys.exit(0 if new == text else "README.md's GPU table is not the newest table.json: run scripts/readme_gpu_table.py")
    tmp = readme + ".tmp"
    open(tmp, "w").write(new)
    os.replace(tmp, readme)


if __name__ == "__main__":
    main()
