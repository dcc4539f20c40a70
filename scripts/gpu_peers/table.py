#!/usr/bin/env python3
"""Builds gpu_check's summary from bmh bench-gpu's JSON and the peers' JSON files: table.md (printed) and
table.json (one row per benchmark: ours_ms, floor_ms, peer, peer_ms; the floors measured in that run; the commit).

Usage: python3 table.py --bench BENCH.json --peers P1.json [P2.json ...] --commit HASH --command CMD --out DIR
"% of floor" = floor time / our time (100% = at the floor); "peer / ours" = peer time / our time (> 1: we are
faster). A peer that failed keeps its row, with its error in place of a time; nothing is filled in from elsewhere.
"""
import argparse, json, os, re


def load_peers(paths):
    rows = []
    for p in paths:
        try:
            d = json.load(open(p))
        except Exception as e:
            rows.append({"key": os.path.basename(p), "error": f"could not read {p}: {e}"})
            continue
        rows += d.get("peers", [])
    return rows


def find_peer(peers, **want):
    for r in peers:
        if all(r.get(k) == v for k, v in want.items()):
            return r
    return None


def scan_shape(name):
    dims = {k: int(v) for k, v in re.findall(r"_(B|T|N)(\d+)", name)}
    return [dims.get("B", 1), dims.get("T", 1), dims.get("N", 1)]


def build_rows(bench, peers):
    rows = []
    for m in bench.get("models", []):
        pr = m["preset"]
        B, T = m["forward_shape"]
        for what, ours, floor, label in (("decode", m["decode_ms"], m["decode_floor_ms"], f"{pr} decode b=1 (ms/token)"),
                                         ("forward", m["forward_ms"], m["forward_floor_ms"], f"{pr} forward {B}x{T} (ms)")):
            pe = find_peer(peers, preset=pr, what=what)
            if pe is None:
                pe = next((r for r in peers if r.get("key") == f"{pr}/{what}"), None)
            rows.append({"benchmark": label, "ours_ms": ours, "floor_ms": floor,
                         "peer": pe.get("peer") if pe else None, "peer_ms": pe.get("peer_ms") if pe else None,
                         "peer_error": pe.get("error") if pe else ("no peer for this shape" if pe is None else None)})
    for o in bench.get("ops", []):
        if o.get("op") != "selective_scan" or "_B" not in o["name"] and "_T" not in o["name"]:
            continue
        shape = scan_shape(o["name"])
        if shape[1] < 1024:
            continue  # the correctness-sized cases are not benchmarks
        pe = find_peer(peers, what="selective_scan", shape=shape)
        rows.append({"benchmark": f"{o['name']} (ms)", "ours_ms": o["ms"], "floor_ms": o["floor_ms"],
                     "peer": pe.get("peer") if pe else None, "peer_ms": pe.get("peer_ms") if pe else None,
                     "peer_error": pe.get("error") if pe else "no peer for this shape"})
    if "moe" in bench:
        mo = bench["moe"]
        rows.append({"benchmark": f"MoE layer top-1 of {mo['experts']}, {mo['tokens']} tokens (ms)",
                     "ours_ms": mo["ms"], "floor_ms": mo["floor_ms"], "peer": "dense GEMM of equal FLOPs (cuBLAS)",
                     "peer_ms": mo["dense_ms"], "peer_error": None})
    return rows


def markdown(rows, fl, device, commit, command):
    L = [f"device: {device}; commit {commit}; command: `{command}`",
         f"floors measured in this run: copy {fl['copy_GBps']:.0f} GB/s (read+write), "
         f"bf16 GEMM {fl['gemm_bf16_TFLOPs']:.0f} TFLOP/s", "",
         "| benchmark | ours | floor | % of floor | peer | peer time | peer / ours |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        pct = f"{100 * r['floor_ms'] / r['ours_ms']:.0f}%"
        if r["peer_ms"] is not None:
            peer = f"{r['peer']} | {r['peer_ms']:.3g} | {r['peer_ms'] / r['ours_ms']:.2f}x"
        else:
            peer = f"{r['peer'] or '-'} | failed: {r['peer_error']} | -"
        L.append(f"| {r['benchmark']} | {r['ours_ms']:.4g} | {r['floor_ms']:.4g} | {pct} | {peer} |")
    return "\n".join(L) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", required=True)
    ap.add_argument("--peers", nargs="*", default=[])
    ap.add_argument("--commit", required=True)
    ap.add_argument("--command", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    bench = json.load(open(a.bench))
    peers = load_peers(a.peers)
    rows = build_rows(bench, peers)
    fl = bench["floors"]
    md = markdown(rows, fl, bench["device"], a.commit, a.command)
    doc = {"device": bench["device"], "commit": a.commit, "command": a.command,
           "floors": {"copy_GBps": fl["copy_GBps"], "gemm_bf16_TFLOPs": fl["gemm_bf16_TFLOPs"]}, "rows": rows}
    for name, text in (("table.md", md), ("table.json", json.dumps(doc, indent=1) + "\n")):
        tmp = os.path.join(a.out, name + ".tmp")
        open(tmp, "w").write(text)
        os.replace(tmp, os.path.join(a.out, name))
    print(md)


if __name__ == "__main__":
    main()
