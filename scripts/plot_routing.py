#!/usr/bin/python3
"""Routing plots from results.h5: expert-load heatmaps (layer x expert), load imbalance (CV) per layer, and the
cross-layer transition matrices P(expert at the next MoE layer | expert here).

usage: /usr/bin/python3 scripts/plot_routing.py results/<name>/results.h5 results/<name>
"""
import math
import sys

import numpy as np

from plot_common import models, open_results, plt, save, style, text, title_of


def main():
    f, out = open_results(sys.argv)
    ms = [m for m in models(f) if "routing" in m[1] and "cv" in m[1]["routing"]]
    if not ms:
        print("plot_routing: no routing results; nothing to plot")
        return
    st = style(ms)

    # Expert load: one heatmap per MoE model, fraction of tokens per expert in each MoE layer.
    fig, axes = plt.subplots(1, len(ms), figsize=(5.2 * len(ms), 0.5 + min(8.0, 1.2 + 0.35 * max(
        len(m[1]["routing"]["blocks"]) for m in ms))), squeeze=False, constrained_layout=True)
    for ax, (name, g, label, _) in zip(axes[0], ms):
        r = g["routing"]
        if "fraction_per_expert" not in r:
            ax.set_title(f"{label}\n(layers differ in expert count)")
            continue
        frac = r["fraction_per_expert"][()]
        blocks = r["blocks"][()]
        E = frac.shape[1]
        im = ax.imshow(frac, aspect="auto", cmap="viridis", vmin=0, vmax=max(2.0 / E, float(frac.max())))
        ax.set_xticks(range(E))
        ax.set_yticks(range(len(blocks)))
        ax.set_yticklabels([str(b) for b in blocks])
        ax.set_xlabel("expert")
        ax.set_ylabel("MoE block (layer index)")
        ax.set_title(f"{label}\nshare of expert assignments, k per token (uniform = {1 / E:.3f})", fontsize=10)
        fig.colorbar(im, ax=ax, label="fraction of tokens")
    fig.suptitle(f"{title_of(f)}: expert load")
    save(fig, out, "routing_load.png")

    # Load imbalance per layer, with entropy on a second panel.
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    for name, g, label, _ in ms:
        r = g["routing"]
        blocks = r["blocks"][()]
        a1.plot(blocks, r["cv"][()], label=label, **st[name])
        a2.plot(blocks, r["entropy"][()], label=label, **st[name])
    all_blocks = sorted({int(b) for _, g, _, _ in ms for b in g["routing"]["blocks"][()]})
    for a in (a1, a2):
        a.set_xticks(all_blocks if len(all_blocks) <= 20 else all_blocks[::2])
        a.grid(True, alpha=0.3)
    a1.set_xlabel("MoE block (layer index)")
    a1.set_ylabel("coefficient of variation of tokens/expert")
    a1.set_ylim(bottom=0)
    a1.set_title("load imbalance (0 = balanced)", fontsize=10)
    a2.set_xlabel("MoE block (layer index)")
    a2.set_ylabel("entropy / ln E")
    a2.set_ylim(0, 1.05)
    a2.set_title("normalized entropy of the expert distribution (1 = uniform)", fontsize=10)
    a1.legend(fontsize=8)
    fig.suptitle(f"{title_of(f)}: routing balance per layer", y=1.02)
    save(fig, out, "routing_cv.png")

    # Breakdowns: load imbalance per text source and per position bucket, one figure per model.
    for name, g, label, _ in ms:
        r = g["routing"]
        blocks = [int(b) for b in r["blocks"][()]]
        sources = [text(s) for s in r["sources"][()]]
        edges = r["position_edges"][()]
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3.8), constrained_layout=True)
        for si, src in enumerate(sources):
            a1.plot(blocks, [r[f"layer_{b}"]["source_cv"][si] for b in blocks], marker="o", label=src)
        a1.set_xticks(blocks if len(blocks) <= 20 else blocks[::2])
        a1.set_xlabel("MoE block (layer index)")
        a1.set_ylabel("CV of tokens per expert")
        a1.set_ylim(bottom=0)
        a1.set_title("load imbalance by source", fontsize=10)
        a1.grid(True, alpha=0.3)
        a1.legend(fontsize=8)
        cmap = plt.get_cmap("viridis")
        for li, b in enumerate(blocks):
            pc = r[f"layer_{b}"]["position_counts"][()].astype(float)
            used = pc.sum(axis=1) > 0
            cv = pc.std(axis=1) / np.maximum(pc.mean(axis=1), 1e-30)
            a2.plot(np.maximum(edges[used], 0.5), cv[used], marker=".", color=cmap(li / max(1, len(blocks) - 1)),
                    label=f"block {b}")
        a2.set_xscale("log", base=2)
        a2.set_xlabel("position in the sequence (bucket start; 0 drawn at 0.5)")
        a2.set_ylabel("CV of tokens per expert")
        a2.set_ylim(bottom=0)
        a2.set_title("load imbalance by position (few tokens per bucket inflate CV)", fontsize=10)
        a2.grid(True, alpha=0.3)
        a2.legend(fontsize=7, ncol=2 if len(blocks) > 6 else 1)
        fig.suptitle(f"{label}: routing breakdowns")
        save(fig, out, f"routing_breakdown_{name}.png")

    # Transition matrices, one figure per model.
    for name, g, label, _ in ms:
        r = g["routing"]
        keys = sorted((k for k in r if k.startswith("transition_")), key=lambda k: int(k.split("_")[1]))
        if not keys:
            continue
        n = len(keys)
        cols = min(n, 6)
        rows = math.ceil(n / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols + 0.8, 2.4 * rows + 0.6), squeeze=False)
        for ax in axes.flat:
            ax.axis("off")
        im = None
        for ax, k in zip(axes.flat, keys):
            t = r[k]
            p = t["prob"][()]
            ax.axis("on")
            im = ax.imshow(p, cmap="magma", vmin=0, vmax=1)
            mi = float(t.attrs.get("mutual_information_bits", np.nan))
            ax.set_title(f"{t.attrs['from_block']} -> {t.attrs['to_block']}  MI {mi:.2f} b", fontsize=8)
            E_from, E_to = p.shape
            ax.set_xticks(range(E_to) if E_to <= 16 else [])
            ax.set_yticks(range(E_from) if E_from <= 16 else [])
            ax.tick_params(labelsize=6)
        axes[0][0].set_ylabel("expert here")
        axes[-1][0].set_xlabel("expert at next MoE layer")
        fig.colorbar(im, ax=axes.ravel().tolist(), fraction=0.03, pad=0.02, label="P(next | here)")
        fig.suptitle(f"{label}: expert transitions between consecutive MoE layers", y=1.0)
        save(fig, out, f"routing_transitions_{name}.png")


if __name__ == "__main__":
    main()
