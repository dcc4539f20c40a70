#!/usr/bin/env python3
"""gpu_check's suite mode: one row per `bmh eval` run (`ours`), then the table of our cold suite times against the
lm-eval-style peers that scored the same requests (`table`: suite.json and suite.md in --dir, printed).

  suite_table.py ours --preset P --start T0 --end T1 --exit RC --run-dir DIR --limit N --json OUT.json
  suite_table.py table --dir DIR --commit HASH --command CMD
"""
import argparse, glob, json, os, sys, time


def ours(a):
    row = {"preset": a.preset, "exit": a.exit, "wall_s": a.end - a.start, "limit": a.limit}
    try:
        r = json.load(open(os.path.join(a.run_dir, "results.json")))
        with open(os.path.join(a.run_dir, "requests.jsonl")) as f:
            row["requests"] = sum(1 for _ in f)
        row["requests_per_s"] = row["requests"] / row["wall_s"]
        row["accuracy"] = {t: v.get("acc,none") for t, v in r["results"].items()}
        row["bmh"] = r.get("bmh", {})
    except Exception as e:
        row["error"] = f"{type(e).__name__}: {e}"
    with open(a.json, "w") as f:
        json.dump(row, f, indent=1)
    print(f"== {a.preset} suite: exit {a.exit}, {row['wall_s']:.1f} s wall cold, {row.get('requests')} requests"
          + (f", {row['requests_per_s']:.0f} requests/s" if "requests_per_s" in row else f" ({row.get('error')})"))


def table(a):
    rows = []
    peers = {}
    for p in glob.glob(os.path.join(a.dir, "suite_peer_*.json")):
        d = json.load(open(p))
        for r in d.get("peers", []):
            if "preset" in r or "error" in r:
                peers[r.get("preset") or r["key"].split("/")[0]] = r
        for e in d.get("planned", []):
            peers.setdefault(e["preset"], {"error": f"not measured: {os.path.basename(p)}'s script ended first"})
    for p in sorted(glob.glob(os.path.join(a.dir, "suite_ours_*.json"))):
        o = json.load(open(p))
        pr = peers.get(o["preset"], {"error": "no peer row"})
        row = {"preset": o["preset"], "requests": o.get("requests"), "ours_s": o["wall_s"], "ours_exit": o["exit"],
               "ours_requests_per_s": o.get("requests_per_s"), "peer": pr.get("peer"), "peer_s": pr.get("peer_s"),
               "peer_requests": pr.get("requests"), "peer_error": pr.get("error"), "peer_model_build_s": pr.get("model_build_s")}
        if row["peer_s"] and row["ours_s"] and pr.get("requests") == o.get("requests"):
            row["peer_over_ours"] = row["peer_s"] / row["ours_s"]
        rows.append(row)
    out = {"commit": a.commit, "command": a.command, "date": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()),
           "note": "ours: cold wall time of `bmh eval` (model load, task loading and tokenization included); peer: "
                   "scoring time only (model built and requests tokenized beforehand)", "rows": rows}
    with open(os.path.join(a.dir, "suite.json"), "w") as f:
        json.dump(out, f, indent=1)
    md = ["| preset | requests | ours (s, cold) | requests/s | peer | peer (s, scoring only) | peer / ours |",
          "|---|---|---|---|---|---|---|"]
    for r in rows:
        peer_cell = f"{r['peer_s']:.1f}" if r["peer_s"] else f"failed: {r['peer_error']}"
        ratio = f"{r['peer_over_ours']:.2f}x" if r.get("peer_over_ours") else "-"
        rps = f"{r['ours_requests_per_s']:.0f}" if r.get("ours_requests_per_s") else "-"
        md.append(f"| {r['preset']} | {r['requests']} | {r['ours_s']:.1f} | {rps} | {r['peer'] or '-'} | {peer_cell} | {ratio} |")
    text = "\n".join(md) + "\n"
    with open(os.path.join(a.dir, "suite.md"), "w") as f:
        f.write(text)
    print(text)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    o = sub.add_parser("ours")
    o.add_argument("--preset", required=True)
    o.add_argument("--start", type=float, required=True)
    o.add_argument("--end", type=float, required=True)
    o.add_argument("--exit", type=int, required=True)
    o.add_argument("--run-dir", required=True)
    o.add_argument("--limit", type=int, default=0)
    o.add_argument("--json", required=True)
    t = sub.add_parser("table")
    t.add_argument("--dir", required=True)
    t.add_argument("--commit", required=True)
    t.add_argument("--command", required=True)
    a = ap.parse_args()
    ours(a) if a.cmd == "ours" else table(a)


if __name__ == "__main__":
    main()
