#!/usr/bin/python3
"""FLOP, memory and accuracy-vs-FLOPs plots from results.h5.

  flops.png              forward FLOPs of one token vs context, and the per-term breakdown at the reference context
  memory.png             Mamba state and KV cache per sequence vs context (weights as a reference line)
  accuracy_vs_flops.png  mean zero-shot accuracy vs inference FLOPs/token and vs training FLOPs (total where the
                         experiment gives train_tokens, else per token)

usage: /usr/bin/python3 scripts/plot_flops.py results/<name>/results.h5 results/<name>
"""
import sys

import numpy as np

from plot_common import models, open_results, plt, save, set_scale, style, text, title_of, unit_of


def main():
    f, out = open_results(sys.argv)
    all_models = models(f)
    ms = [m for m in all_models if "flops" in m[1]]
    if not ms:
        print("plot_flops: no flops results; nothing to plot")
        return
    st = style(all_models)

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [1, 1.3]},
                                 constrained_layout=True)
    dec = [v for _, g, _, _ in ms for v in g["flops"]["decode_flops_per_token"][()]]
    div, unit = unit_of(dec)
    for name, g, label, _ in ms:
        fl = g["flops"]
        a1.plot(fl["contexts"][()], fl["decode_flops_per_token"][()] / div, label=label, **st[name])
    a1.set_xscale("log", base=2)
    set_scale(a1, "y", dec)
    a1.set_xlabel("context (tokens)")
    a1.set_ylabel(f"forward {unit} for one new token")
    a1.set_title("decode cost vs context", fontsize=10)
    a1.grid(True, which="both", alpha=0.3)
    a1.legend(fontsize=8)
    # Stacked per-term breakdown, grouped by block type.
    groups = ["mamba", "attention", "mlp", "moe", "lm_head", "other"]
    colors = {"mamba": "#1f77b4", "attention": "#2ca02c", "mlp": "#9467bd", "moe": "#ff7f0e", "lm_head": "#8c564b",
              "other": "#c7c7c7"}
    names = [m[2] for m in ms]
    bottom = np.zeros(len(ms))
    ref_ctx = int(ms[0][1]["flops"].attrs["reference_context"])
    bdiv, bunit = unit_of([float(g["flops"].attrs["forward_flops_per_token"]) for _, g, _, _ in ms])
    for grp in groups:
        vals = []
        for _, g, _, _ in ms:
            fl = g["flops"]
            terms = [text(t) for t in fl["term_names"][()]]
            v = fl["term_flops_per_token"][()]
            s = 0.0
            for t, x in zip(terms, v):
                head = t.split(".")[0]
                key = head if head in groups else ("lm_head" if t == "lm_head" else "other")
                s += x if key == grp else 0.0
            vals.append(s)
        vals = np.array(vals) / bdiv
        a2.bar(names, vals, bottom=bottom, color=colors[grp], label=grp)
        bottom += vals
    a2.set_ylabel(f"forward {bunit} per token (sequence of {ref_ctx})")
    a2.set_title("where the FLOPs go", fontsize=10)
    a2.tick_params(axis="x", labelrotation=20, labelsize=8)
    a2.legend(fontsize=8)
    fig.suptitle(f"{title_of(f)}: analytic FLOPs (core/flops.h)")
    save(fig, out, "flops.png")

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for name, g, label, _ in ms:
        fl = g["flops"]
        ctx = fl["contexts"][()]
        state = fl["mamba_state_bytes"][()] + fl["kv_cache_bytes"][()]
        ax.plot(ctx, np.maximum(state, 1) / 2**20, label=f"{label}: state + KV cache", **st[name])
        ax.plot(ctx, fl["weights_bytes"][()] / 2**20, linestyle=":", color=st[name]["color"], linewidth=1)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("context (tokens)")
    ax.set_ylabel("MiB per sequence")
    ax.set_title(f"{title_of(f)}: inference memory per sequence (dotted: weights)", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    save(fig, out, "memory.png")

    pts = []
    for name, g, label, _ in all_models:
        if "flops" not in g or "eval" not in g or "acc" not in g["eval"]:
            continue
        acc = g["eval"]["acc"][()]
        if len(acc) == 0:
            continue
        fl = g["flops"]
        train_total = float(fl.attrs.get("training_flops_total", 0.0))
        pts.append((name, label, float(np.mean(acc)), float(fl.attrs["forward_flops_per_token"]),
                    train_total if train_total > 0 else float(fl.attrs["training_flops_per_token"]),
                    train_total > 0))
    if not pts:
        print("plot_flops: no model has both eval and flops results; accuracy_vs_flops.png not made")
        return
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    idiv, iunit = unit_of([p[3] for p in pts])
    tdiv, tunit = unit_of([p[4] for p in pts])
    pts = [(n, lab, acc, inf / idiv, train / tdiv, tot) for n, lab, acc, inf, train, tot in pts]
    for name, label, acc, inf, train, _ in pts:
        a1.scatter(inf, acc, s=50, color=st[name]["color"], marker=st[name]["marker"], label=label)
        a2.scatter(train, acc, s=50, color=st[name]["color"], marker=st[name]["marker"], label=label)
        a1.annotate(label, (inf, acc), fontsize=7, xytext=(4, 4), textcoords="offset points")
        a2.annotate(label, (train, acc), fontsize=7, xytext=(4, 4), textcoords="offset points")
    total = all(p[5] for p in pts)
    set_scale(a1, "x", [p[3] for p in pts])
    set_scale(a2, "x", [p[4] for p in pts])
    a1.set_xlabel(f"inference {iunit} per token (sequence of {ref_ctx})")
    a2.set_xlabel(f"training {tunit} (total)" if total else f"training {tunit} per token (3 x forward)")
    for a in (a1, a2):
        a.set_ylabel("mean zero-shot accuracy")
        a.grid(True, which="both", alpha=0.3)
    tasks = sorted({text(t) for _, g, _, _ in all_models if "eval" in g and "acc_tasks" in g["eval"]
                    for t in g["eval"]["acc_tasks"][()]})
    fig.suptitle(f"{title_of(f)}: accuracy vs FLOPs (mean acc over {', '.join(tasks)})", y=1.02, fontsize=9)
    a1.legend(fontsize=8, loc="best")
    fig.tight_layout()
    save(fig, out, "accuracy_vs_flops.png")


if __name__ == "__main__":
    main()
