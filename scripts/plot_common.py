"""Shared helpers of scripts/plot_*.py: read the runner's results.h5 (experiments/runner.h documents the layout).

Run the scripts with /usr/bin/python3 (Debian's python3-matplotlib and python3-h5py; scripts/setup.sh installs them).
"""
import sys

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ARCH_COLORS = {
    "blackmamba": "#d62728",
    "mamba": "#1f77b4",
    "transformer": "#2ca02c",
    "transformer-moe": "#ff7f0e",
    "hybrid-moe": "#9467bd",
    "hybrid": "#8c564b",
    "mixtral": "#e377c2",  # experiments/equal-flops.json names these two archs
    "jamba": "#17becf",
    "other": "#7f7f7f",
}
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]


def text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def open_results(argv):
    if len(argv) != 3:
        sys.exit(f"usage: {argv[0]} results.h5 OUT_DIR")
    return h5py.File(argv[1], "r"), argv[2]


def models(f):
    """(name, group, label, arch) for each model, in the experiment's order."""
    out = []
    for name in (text(x) for x in f["models"][()]):
        if name not in f:
            continue
        g = f[name]
        out.append((name, g, text(g.attrs.get("label", name)), text(g.attrs.get("arch", "other"))))
    return out


def style(models_list):
    """A colour per architecture and a marker per model."""
    out = {}
    for k, (name, _, _, arch) in enumerate(models_list):
        out[name] = dict(color=ARCH_COLORS.get(arch, ARCH_COLORS["other"]), marker=MARKERS[k % len(MARKERS)])
    return out


def unit_of(values, unit="FLOP"):
    """(divisor, name) so that the largest value reads between 1 and 1000: (1e6, "MFLOP")."""
    top = max([abs(x) for x in values] + [1e-30])
    for div, prefix in ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if top >= div:
            return div, prefix + unit
    return 1.0, unit


def set_scale(ax, axis, values):
    """Log scale when the values span more than a factor of 20, else linear."""
    v = [x for x in values if x > 0]
    if v and max(v) / min(v) > 20:
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")


def save(fig, out_dir, name):
    path = f"{out_dir}/{name}"
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    print(f"wrote {path}")


def title_of(f):
    return text(f.attrs.get("experiment", ""))
