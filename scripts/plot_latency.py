#!/usr/bin/python3
"""Latency plots from results.h5: prefill time vs prompt length and decode time per token vs position, per model
(median over repeats; bars and bands span the 25th-75th percentiles).

usage: /usr/bin/python3 scripts/plot_latency.py results/<name>/results.h5 results/<name>
"""
import sys

import numpy as np

from plot_common import models, open_results, plt, save, style, text, title_of


def main():
    f, out = open_results(sys.argv)
    ms = [m for m in models(f) if "latency" in m[1] and "prefill_median" in m[1]["latency"]]
    if not ms:
        print("plot_latency: no latency results; nothing to plot")
        return
    st = style(ms)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    backends = set()
    for name, g, label, _ in ms:
        l = g["latency"]
        backends.add(text(l.attrs.get("backend", "")))
        x = l["prompt_lengths"][()]
        med, lo, hi = l["prefill_median"][()], l["prefill_q25"][()], l["prefill_q75"][()]
        a1.errorbar(x, med, yerr=[med - lo, hi - med], label=label, capsize=3, **st[name])
        if "decode_median" in l and len(l["decode_median"]):
            pos = l["decode_positions"][()]
            d, dlo, dhi = l["decode_median"][()], l["decode_q25"][()], l["decode_q75"][()]
            a2.plot(pos, d, label=f"{label} (median {np.median(d):.3g} ms)", color=st[name]["color"],
                    marker=st[name]["marker"], markersize=3, linewidth=1)
            a2.fill_between(pos, dlo, dhi, color=st[name]["color"], alpha=0.2)
    a1.set_xscale("log", base=2)
    a1.set_yscale("log")
    a1.set_xlabel("prompt length (tokens)")
    a1.set_ylabel("prefill time (ms)")
    a1.set_title("prefill vs prompt length", fontsize=10)
    a1.grid(True, which="both", alpha=0.3)
    a1.legend(fontsize=8)
    a2.set_xlabel("position of the decoded token")
    a2.set_ylabel("decode time per token (ms)")
    a2.set_ylim(bottom=0)
    a2.set_title("decode step time vs position", fontsize=10)
    a2.grid(True, alpha=0.3)
    a2.legend(fontsize=8)
    fig.suptitle(f"{title_of(f)}: latency ({', '.join(sorted(b for b in backends if b))}, batch "
                 f"{int(ms[0][1]['latency'].attrs.get('batch', 1))})", y=1.02)
    save(fig, out, "latency.png")

    # Memory: on a GPU, device memory in use after the prefills of each length (cudaMemGetInfo); on the CPU, the
    # host memory a prefill adds (resident high-water mark minus the resident set before).
    on_device = all("prefill_device_used" in g["latency"] for _, g, _, _ in ms)
    key = "prefill_device_used" if on_device else "prefill_extra_rss"
    if all(key in g["latency"] for _, g, _, _ in ms):
        fig, ax = plt.subplots(figsize=(6.5, 4))
        for name, g, label, _ in ms:
            l = g["latency"]
            ax.plot(l["prompt_lengths"][()], l[key][()] / 2**30 if on_device else l[key][()] / 2**20, label=label,
                    **st[name])
        ax.set_xscale("log", base=2)
        ax.set_xlabel("prompt length (tokens)")
        ax.set_ylabel("GiB in use on the device" if on_device else "MiB above the resident set before")
        ax.set_title(f"{title_of(f)}: " + ("device memory in use after the prefills (weights included)" if on_device
                                           else "host memory added by a prefill (peak RSS)"), fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        save(fig, out, "latency_memory.png")

if __name__ == "__main__":
    main()
