#!/usr/bin/env python3
"""Prints the gpu_check summary table from bmh bench-gpu's JSON and the peers' JSON files.

Usage: python3 table.py BENCH.json PEERS.json [PEERS.json ...]
Ratios: "% of floor" = floor time / our time (100% = at the floor); "speed-up" = peer time / our time.
Where a peer could not run here, the figure recorded in ../shared/README.md (same machine type, 2026-11-22) is used
and labelled "recorded".
"""
import json, sys

# ../shared/README.md: Zyphra's BlackMamba code without compiled kernels, bf16, batch 1, BlackMamba-2.8B shape.
RECORDED = {"blackmamba-2.8b": {"peer": "Zyphra BlackMamba code (recorded, shared/README 2026-11-22)",
                                "decode_ms": 57.9, "forward_ms_measured": 4280.0, "forward_batch_measured": 1,
                                "forward_len": 2048}}


def main():
    bench = json.load(open(sys.argv[1]))
    peers = {}
    for p in sys.argv[2:]:
        try:
            for e in json.load(open(p)).get("peers", []):
                peers[e["preset"]] = e
        except Exception as ex:
            print(f"(could not read {p}: {ex})")
    for k, v in RECORDED.items():
        if k not in peers or "error" in peers[k]:
            if k in peers:
                print(f"note: {k} peer failed here ({peers[k]['error']}); using the recorded figure")
            peers[k] = v
    fl = bench["floors"]
    lines = []
    P = lines.append
    P(f"device: {bench['device']}; floors measured in this run: copy {fl['copy_GBps']:.0f} GB/s (read+write), "
      f"bf16 GEMM {fl['gemm_bf16_TFLOPs']:.0f} TFLOP/s")
    P("")
    P("| benchmark | ours | floor | % of floor | peer | peer time | speed-up |")
    P("|---|---|---|---|---|---|---|")
    for m in bench.get("models", []):
        pr = m["preset"]
        pe = peers.get(pr, {})
        dp = pe.get("decode_ms")
        peer_s = f"{dp:.2f} | {dp / m['decode_ms']:.1f}x" if dp else "- | -"
        P(f"| {pr} decode b=1 (ms/token) | {m['decode_ms']:.3f} | {m['decode_floor_ms']:.3f} | "
          f"{100 * m['decode_floor_ms'] / m['decode_ms']:.0f}% | {pe.get('peer', pe.get('error', 'none'))} | "
          f"{peer_s} |")
    for m in bench.get("models", []):
        pr = m["preset"]
        pe = peers.get(pr, {})
        B, T = m["forward_shape"]
        f = pe.get("forward_ms_measured")
        if f is not None:
            bm = pe.get("forward_batch_measured", B)
            scaled = f * B / bm
            note = "" if bm == B else f" ({bm}x{T} measured, x{B // bm} linear)"
            peer_s = f"{scaled:.0f}{note} | {scaled / m['forward_ms']:.1f}x"
        else:
            peer_s = "- | -"
        P(f"| {pr} forward {B}x{T} (ms) | {m['forward_ms']:.1f} | {m['forward_floor_ms']:.1f} | "
          f"{100 * m['forward_floor_ms'] / m['forward_ms']:.0f}% | {pe.get('peer', 'none')} | {peer_s} |")
    for o in bench.get("ops", []):
        if o["op"] == "selective_scan":
            P(f"| {o['name']} (ms) | {o['ms']:.3f} | {o['floor_ms']:.3f} | {100 * o['floor_ms'] / o['ms']:.0f}% | - | - | - |")
    if "moe" in bench:
        mo = bench["moe"]
        P(f"| MoE layer top-1 of {mo['experts']}, {mo['tokens']} tokens (ms) | {mo['ms']:.3f} | {mo['floor_ms']:.3f} | "
          f"{100 * mo['floor_ms'] / mo['ms']:.0f}% | dense GEMM, equal FLOPs | {mo['dense_ms']:.3f} | "
          f"{mo['dense_ms'] / mo['ms']:.2f}x |")
    P("")
    P("op table (model-sized cases): " + "; ".join(
        f"{o['name']} {o['ms']:.3f} ms ({100 * o['floor_ms'] / o['ms']:.0f}% of floor)" for o in bench.get("ops", [])))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
