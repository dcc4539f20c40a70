#!/usr/bin/python3
"""Training plots from results.h5 (train/trainer.h write_training_h5; one run of bmh train or a runner experiment).

  training_loss.png   held-out loss vs training FLOPs (every model; a line per seed, one colour per architecture,
                      the held-out unigram entropy as a dashed line) and training loss vs step
  training_load.png   expert load through training: per MoE layer the fraction of tokens each expert received in
                      each log window, and the CV of that load (the paper's routing-balance figure)

usage: /usr/bin/python3 scripts/plot_training.py results/<name>/results.h5 results/<name>
"""
import sys

import h5py
import numpy as np

from plot_common import ARCH_COLORS, plt, save, text


def runs(f):
    """(label, arch, train group) for each trained model (runner layout /<model>/train, bmh train's /train)."""
    out = []
    if "train" in f and isinstance(f["train"], h5py.Group):
        out.append(("model", text(f["train"].attrs.get("family", "other")), f["train"]))
    if "models" in f:
        for name in (text(x) for x in f["models"][()]):
            if name in f and "train" in f[name]:
                g = f[name]
                out.append((text(g.attrs.get("label", name)), text(g.attrs.get("arch", "other")), g["train"]))
    return out


def main():
    if len(sys.argv) != 3:
        sys.exit(f"usage: {sys.argv[0]} results.h5 OUT_DIR")
    f, out = h5py.File(sys.argv[1], "r"), sys.argv[2]
    rs = runs(f)
    if not rs:
        print("plot_training: no training results; nothing to plot")
        return
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.2), constrained_layout=True)
    styles = ["-", "--", ":", "-."]
    seen = {}
    for label, arch, g in rs:
        k = seen.get(arch, 0)
        seen[arch] = k + 1
        color = ARCH_COLORS.get(arch, ARCH_COLORS["other"])
        a1.plot(g["eval_flops"][()], g["eval_loss"][()], styles[k % 4], color=color, marker="o", ms=3, label=label)
        loss, step = g["train_loss"][()], g["step"][()]
        ok = loss >= 0
        a2.plot(step[ok], loss[ok], styles[k % 4], color=color, label=label)
    h1 = rs[0][2].attrs.get("val_unigram_entropy", None)
    for ax in (a1, a2):
        if h1 is not None:
            ax.axhline(float(h1), color="k", ls="--", lw=1, label="held-out unigram entropy")
        ax.grid(True, alpha=0.3)
    a1.set_xlabel("training FLOPs")
    a1.set_ylabel("held-out loss (nats/token)")
    a1.set_title("held-out loss vs training FLOPs", fontsize=10)
    a1.legend(fontsize=7)
    a2.set_xlabel("optimizer step")
    a2.set_ylabel("training loss (nats/token)")
    a2.set_title("training loss", fontsize=10)
    save(fig, out, "training_loss.png")

    moe = [(label, arch, g) for label, arch, g in rs if "expert_load" in g]
    if not moe:
        return
    L = max(g["expert_load"].shape[1] for _, _, g in moe)
    fig, axes = plt.subplots(len(moe), L + 1, figsize=(4 * (L + 1), 2.6 * len(moe)), squeeze=False,
                             constrained_layout=True)
    for r, (label, arch, g) in enumerate(moe):
        load, step, cv = g["expert_load"][()], g["step"][()], g["load_cv"][()]
        keep = load.sum(axis=2).sum(axis=1) > 0  # rows with routed tokens (not the initial evaluation)
        for l in range(load.shape[1]):
            ax = axes[r][l]
            ax.stackplot(step[keep], load[keep, l, :].T, alpha=0.85)
            ax.set_ylim(0, 1)
            ax.set_title(f"{label}: MoE layer {l} expert load", fontsize=8)
            ax.set_xlabel("step", fontsize=8)
        ax = axes[r][L]
        for l in range(cv.shape[1]):
            ax.plot(step[keep], cv[keep, l], label=f"layer {l}")
        ax.set_title(f"{label}: load CV (std/mean)", fontsize=8)
        ax.set_xlabel("step", fontsize=8)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    save(fig, out, "training_load.png")


if __name__ == "__main__":
    main()
