#!/usr/bin/env python3
"""Builds gpu_check's summary from bmh bench-gpu's JSON and the peers' JSON files: table.md (printed) and
table.json (one row per benchmark: ours_ms, floor_ms, peer, peer_ms; the floors measured in that run; the commit).

Usage: python3 table.py --bench BENCH.json --peers P1.json [P2.json ...] --commit HASH --command CMD --out DIR
       (--bench-log LOG instead of --bench: the rows bench-gpu printed to gpu_check's log, for a run whose JSON was
        never written; a benchmark of ours that did not run is a row without our time, saying why)
"% of floor" = floor time / our time (100% = at the floor); "peer / ours" = peer time / our time (> 1: we are
faster). A peer that failed keeps its row, with its error in place of a time; nothing is filled in from elsewhere.
"""
import argparse, json, os, re, time


NO_PEER = "no peer for this shape"  # not a failure: no peer script measures it (e.g. batched decoding of BlackMamba)


def peer_cell(r):
    """The peer-time cell: the time, or why there is none."""
    if r["peer_ms"] is not None:
        return f"{r['peer_ms']:.3g}"
    return f"({NO_PEER})" if r.get("peer_error") == NO_PEER else f"failed: {r.get('peer_error')}"


def load_peers(paths):
    rows = []
    for p in paths:
        try:
            d = json.load(open(p))
        except Exception as e:
            rows.append({"key": os.path.basename(p), "error": f"could not read {p}: {e}"})
            continue
        got = {r.get("key") for r in d.get("peers", [])}
        rows += d.get("peers", [])
        # A row the script planned but never wrote: it was ended (gpu_check's time limit) or crashed first.
        rows += [{**e, "error": f"not measured: {os.path.basename(p)}'s script ended before this row "
                                "(time limit or crash; gpu_check log)"}
                 for e in d.get("planned", []) if e["key"] not in got]
    return rows


def find_peer(peers, **want):
    for r in peers:
        if all(r.get(k) == v for k, v in want.items()):
            return r
    return None


def scan_shape(name):
    dims = {k: int(v) for k, v in re.findall(r"_(B|T|N)(\d+)", name)}
    return [dims.get("B", 1), dims.get("T", 1), dims.get("N", 1)]


def bench_from_log(path):
    """What `bmh bench-gpu` printed: device, floors, op rows (floor = ms x the larger of %copy and %gemm) and the MoE
    line, in the JSON's shape; `error` holds a `bmh: error:` line if the run stopped on one."""
    b = {"ops": [], "models": []}
    for line in open(path):
        m = re.match(r"device: (.+?), \d+ SMs", line)
        if m: b["device"] = m.group(1)
        m = re.match(r"floors: device copy (\d+) GB/s .* bf16 GEMM 8192\^3 (\d+) TFLOP/s", line)
        if m: b["floors"] = {"copy_GBps": float(m.group(1)), "gemm_bf16_TFLOPs": float(m.group(2))}
        m = re.match(r"(\w+_(?:bf16|fp16|fp32)\w*)\s+([\d.]+)\s+(\d+)\s+([\d.]+)%\s+([\d.]+)\s+([\d.]+)%", line)
        if m:
            ms = float(m.group(2))
            op = "selective_scan" if m.group(1).startswith("selective_scan") else m.group(1).split("_bf16")[0]
            b["ops"].append({"name": m.group(1), "op": op, "ms": ms,
                             "floor_ms": ms * max(float(m.group(4)), float(m.group(6))) / 100})
        m = re.match(r"MoE layer top-1 of (\d+), (\d+) tokens.*?: ([\d.]+) ms \(([\d.]+) TFLOP/s\); dense GEMM.*?: "
                     r"([\d.]+) ms", line)
        if m:
            ms = float(m.group(3))
            b["moe"] = {"experts": int(m.group(1)), "tokens": int(m.group(2)), "ms": ms, "dense_ms": float(m.group(5)),
                        "floor_ms": ms * float(m.group(4)) / b["floors"]["gemm_bf16_TFLOPs"]}
        if line.startswith("bmh: error:"):
            b["error"] = line.strip().split(" (known:")[0]
    return b


def build_rows(bench, peers):
    rows = []
    ran = {m["preset"] for m in bench.get("models", [])}
    for pe in peers:
        if pe.get("preset") and pe["preset"] not in ran and pe.get("what") in ("decode", "forward"):
            shape = "b=1 (ms/token)" if pe["what"] == "decode" else f"{pe.get('batch')}x{pe.get('len')} (ms)"
            rows.append({"benchmark": f"{pe['preset']} {pe['what']} {shape}", "ours_ms": None, "floor_ms": None,
                         "ours_error": bench.get("error") or ("not run" if bench.get("complete", True) else
                                                              "bench-gpu ended before this preset (gpu_check log)"),
                         "peer": pe.get("peer"),
                         "peer_ms": pe.get("peer_ms"), "peer_error": pe.get("error")})
    # bench-gpu --kernels-ab times a preset once per kernel set: its decode rows, then its forward rows, adjacent.
    # The default set ("v2", or no "kernels" key) keeps the plain labels; another set's rows say which, e.g.
    # "(v1 kernels)", and carry their own "kernels" key.
    models = bench.get("models", [])
    for pr in dict.fromkeys(m["preset"] for m in models):
        for what in ("decode", "forward"):
            for m in (m for m in models if m["preset"] == pr):
                B, T = m["forward_shape"]
                ours, floor = m[f"{what}_ms"], m[f"{what}_floor_ms"]
                label = f"{pr} decode b=1 (ms/token)" if what == "decode" else f"{pr} forward {B}x{T} (ms)"
                ks = m.get("kernels")
                if ks and ks != "v2":
                    label += f" ({ks} kernels)"
                pe = find_peer(peers, preset=pr, what=what)
                if pe is None:
                    pe = next((r for r in peers if r.get("key") == f"{pr}/{what}"), None)
                row = {"benchmark": label, "ours_ms": ours, "floor_ms": floor,
                       "peer": pe.get("peer") if pe else None, "peer_ms": pe.get("peer_ms") if pe else None,
                       "peer_error": pe.get("error") if pe else (NO_PEER if pe is None else None)}
                if ks:
                    row["kernels"] = ks
                rows.append(row)
    # Batched decode (bench-gpu's decode_tokens_per_s): ms per step of B tokens, ours = 1000 B / (tokens/s); the
    # floor is the batch-1 floor (the weights are read once per step; the B states add well under 1%).
    for m in models:
        ks = m.get("kernels")
        suffix = f" ({ks} kernels)" if ks and ks != "v2" else ""
        for B, tps in (m.get("decode_tokens_per_s") or {}).items():
            if B == "1":
                continue
            pe = find_peer(peers, preset=m["preset"], what=f"decode_b{B}") or find_peer(
                peers, key=f"{m['preset']}/decode_b{B}")
            if pe is None and not tps:
                continue
            rows.append({"benchmark": f"{m['preset']} decode b={B} (ms per step of {B} tokens){suffix}",
                         "ours_ms": 1e3 * int(B) / tps if tps else None, "floor_ms": m["decode_floor_ms"],
                         "ours_error": None if tps else (m.get("decode_errors") or {}).get(B, "the CUDA decoder "
                                                                                              "takes batches up to 8").split("; hint")[0],
                         "peer": pe.get("peer") if pe else None, "peer_ms": pe.get("peer_ms") if pe else None,
                         "peer_error": pe.get("error") if pe else NO_PEER})
    for o in bench.get("ops", []):
        if o.get("op") != "selective_scan" or "_B" not in o["name"] and "_T" not in o["name"]:
            continue
        shape = scan_shape(o["name"])
        if shape[1] < 1024 or shape[2] != 5120 or re.search(r"_E\d+", o["name"]):
            continue  # correctness-sized cases, other widths and fixed lane counts: bench_gpu.json only
        pe = find_peer(peers, what="selective_scan", shape=shape)
        # The scan's floor is max(copy, exp) (issue 11: B*T*D*N exponentials at 16 per clock per SM).
        rows.append({"benchmark": f"{o['name']} (ms)", "ours_ms": o["ms"],
                     "floor_ms": max(o["floor_ms"], o.get("exp_floor_ms") or 0.0),
                     "peer": pe.get("peer") if pe else None, "peer_ms": pe.get("peer_ms") if pe else None,
                     "peer_error": pe.get("error") if pe else NO_PEER})
    # Kernel rows the issues set targets on (no peer of their own): decode attention at 32k cached positions (floor:
    # the KV-cache bytes at copy bandwidth) and flash prefill attention at 8 x 2048 (floor: its FLOPs at the GEMM rate).
    for o in bench.get("ops", []):
        if re.match(r"attention_decode_bf16_H16_hd128_S32768|attention_prefill_bf16_B8_T2048", o["name"]):
            rows.append({"benchmark": f"{o['name']} (ms)", "ours_ms": o["ms"], "floor_ms": o["floor_ms"],
                         "peer": None, "peer_ms": None, "peer_error": None})
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
        if r["ours_ms"] is None:
            L.append(f"| {r['benchmark']} | not run: {r.get('ours_error')} | - | - | {r['peer'] or '-'} | {peer_cell(r)} | - |")
            continue
        pct = f"{100 * r['floor_ms'] / r['ours_ms']:.0f}%"
        if r["peer_ms"] is not None:
            peer = f"{r['peer']} | {r['peer_ms']:.3g} | {r['peer_ms'] / r['ours_ms']:.2f}x"
        elif r["peer"] is None and r.get("peer_error") is None:
            peer = "- | - | -"  # a kernel row without a peer
        else:
            peer = f"{r['peer'] or '-'} | {peer_cell(r)} | -"
        L.append(f"| {r['benchmark']} | {r['ours_ms']:.4g} | {r['floor_ms']:.4g} | {pct} | {peer} |")
    return "\n".join(L) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench")
    ap.add_argument("--bench-log")
    ap.add_argument("--peers", nargs="*", default=[])
    ap.add_argument("--commit", required=True)
    ap.add_argument("--measured-at", default="", help="UTC time of the run (default: now)")
    ap.add_argument("--command", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    bench = json.load(open(a.bench)) if a.bench else bench_from_log(a.bench_log)
    peers = load_peers(a.peers)
    rows = build_rows(bench, peers)
    fl = bench["floors"]
    md = markdown(rows, fl, bench["device"], a.commit, a.command)
    # measured_at orders two runs of one day (readme_gpu_table.py takes the newest).
    doc = {"device": bench["device"], "commit": a.commit, "command": a.command,
           "measured_at": a.measured_at or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "floors": {"copy_GBps": fl["copy_GBps"], "gemm_bf16_TFLOPs": fl["gemm_bf16_TFLOPs"]}, "rows": rows}
    for name, text in (("table.md", md), ("table.json", json.dumps(doc, indent=1) + "\n")):
        tmp = os.path.join(a.out, name + ".tmp")
        open(tmp, "w").write(text)
        os.replace(tmp, os.path.join(a.out, name))
    print(md)


if __name__ == "__main__":
    main()
