#!/usr/bin/env python3
"""Regenerates README.md's GPU table from the newest committed results/gpu/*/table.json (by the date that starts its
folder name), between the markers <!-- gpu-table:begin --> and <!-- gpu-table:end -->. Claims follow from committed
results: the README's numbers are never typed by hand.

Usage: python3 scripts/readme_gpu_table.py [--check]   (--check: exit 1 if README.md is not up to date)
"""
import glob, json, os, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BEGIN, END = "<!-- gpu-table:begin -->", "<!-- gpu-table:end -->"


def newest_table():
    tables = sorted(glob.glob(os.path.join(ROOT, "results", "gpu", "*", "table.json")),
                    key=lambda p: (os.path.basename(os.path.dirname(p))[:10], p))
    if not tables:
        sys.exit("readme_gpu_table: no results/gpu/*/table.json")
    return tables[-1]


def render(path):
    t = json.load(open(path))
    rel = os.path.relpath(os.path.dirname(path), ROOT)
    fl = t["floors"]
    L = [f"From `{rel}/table.json` (device {t['device']}, commit `{t['commit']}`, `{t['command']}`; floors "
         f"measured in the same run: copy {fl['copy_GBps']:.0f} GB/s, bf16 GEMM {fl['gemm_bf16_TFLOPs']:.0f} "
         "TFLOP/s; random bf16 weights of the published shapes). \"% of floor\" = floor / ours; "
         "\"peer / ours\" > 1 means bmh is faster.", "",
         "| benchmark | bmh | floor | % of floor | peer | peer time | peer / ours |", "|---|---|---|---|---|---|---|"]
    for r in t["rows"]:
        pct = f"{100 * r['floor_ms'] / r['ours_ms']:.0f}%"
        if r.get("peer_ms") is not None:
            peer = f"{r['peer']} | {r['peer_ms']:.4g} | {r['peer_ms'] / r['ours_ms']:.2f}x"
        else:
            peer = f"{r.get('peer') or '-'} | failed: {r.get('peer_error')} | -"
        L.append(f"| {r['benchmark']} | {r['ours_ms']:.4g} | {r['floor_ms']:.4g} | {pct} | {peer} |")
    return "\n".join(L)


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
