#!/usr/bin/env python3
"""Half-precision routing oracle from Zyphra's own BlackMamba code (github.com/Zyphra/BlackMamba, brought along
uncommitted; pass its folder with --src). Writes tests/fixtures/blackmamba-tiny-halfroute/:

  config.json, pytorch_model.bin   blackmamba-tiny's config and weights with every router weight and bias scaled by
                                   the smallest power of two (2, 4, 8, ...) at which the bf16 sigmoid saturates to
                                   exactly 1.0 for at least --min-tie-share of the tokens in every MoE layer
  expected-bf16.safetensors,       Zyphra's MambaModel.from_pretrained run in that dtype (.to(dtype)) on
  expected-fp16.safetensors        input_ids int64 [B, T]; per MoE layer i (position in decoder.layers):
                                     route.{i}.router_logits [B, T, E] in the model dtype (the router's output),
                                     route.{i}.expert int64 [B, T] and route.{i}.prob [B, T] in the model dtype:
                                     torch.max's (indices, values) as SwitchMLP.forward computed them (recorded by
                                     wrapping the `torch` its module calls), route.{i}.expert_fp32 int64 [B, T] from
                                     the same weights run in fp32; logits float32 [B, T, V] (the model-dtype logits)
  expected.json, README.md         provenance: scale, ties and agreement with fp32 routes per layer, versions

Stand-ins per ../shared/README.md: empty `causal_conv1d` (fn and update None) and `causal_conv1d_cuda` modules,
identity torch.cuda.amp.custom_fwd/custom_bwd.

Usage: python3 routing_oracle.py --src ZYPHRA_DIR --fixture tests/fixtures/blackmamba-tiny \
           --out tests/fixtures/blackmamba-tiny-halfroute [--batch 4 --seq-len 20 --min-tie-share 0.25]
"""
import argparse, json, os, shutil, subprocess, sys, types


def install_stand_ins(torch):
    cc = types.ModuleType("causal_conv1d")
    cc.causal_conv1d_fn = None
    cc.causal_conv1d_update = None
    sys.modules["causal_conv1d"] = cc
    sys.modules["causal_conv1d_cuda"] = types.ModuleType("causal_conv1d_cuda")
    ident = lambda f=None, **kw: f if f is not None else (lambda g: g)
    torch.cuda.amp.custom_fwd = ident
    torch.cuda.amp.custom_bwd = ident


class TorchMaxRecorder:
    """Stands in for the `torch` module inside switch_mlp.py: everything passes through, torch.max is recorded."""

    def __init__(self, real):
        self._real, self.calls = real, []

    def __getattr__(self, name):
        return getattr(self._real, name)

    def max(self, *args, **kw):
        r = self._real.max(*args, **kw)
        self.calls.append(r)
        return r


def run(torch, MambaModel, switch_mlp, ckpt, cfg_path, ids, dtype):
    """Zyphra's model in `dtype`; returns logits and, per MoE layer position, (router logits, indices, values)."""
    with torch.device("cuda"):
        m = MambaModel.from_pretrained(checkpoint_name=ckpt, config_name=cfg_path)
    m = m.to(device="cuda", dtype=dtype).eval()
    rec = TorchMaxRecorder(torch)
    switch_mlp.torch = rec
    layers, hooks, current = {}, [], {}
    for i, layer in enumerate(m.decoder.layers):
        for mod in layer.modules():
            if type(mod).__name__ == "SwitchMLP":
                def pre(_m, _a, i=i):
                    current["i"] = i
                    layers[i] = {"calls_before": len(rec.calls)}

                def router_out(_m, _a, out, i=i):
                    layers[i]["logits"] = out.detach()

                hooks.append(mod.register_forward_pre_hook(pre))
                hooks.append(mod.router.register_forward_hook(router_out))
    try:
        with torch.no_grad():
            logits = m(ids)
    finally:
        switch_mlp.torch = torch
        for h in hooks:
            h.remove()
    out = {}
    starts = sorted(d["calls_before"] for d in layers.values()) + [len(rec.calls)]
    for i, d in layers.items():
        # this layer's calls only: up to where the next MoE layer's forward began
        end = next(x for x in starts if x > d["calls_before"]) if d["calls_before"] < len(rec.calls) else len(rec.calls)
        calls = rec.calls[d["calls_before"]:end]
        assert len(calls) == 1, f"layer {i}: expected one torch.max call in SwitchMLP.forward, saw {len(calls)}"
        values, indices = calls[0]
        B, T = ids.shape
        out[i] = (d["logits"].reshape(B, T, -1), indices.reshape(B, T), values.reshape(B, T))
    return logits, out


def ties_per_layer(torch, routes, dtype):
    """Tokens whose maximal sigmoid value (computed in `dtype`, as SwitchMLP does) is shared by several experts."""
    res = {}
    for i, (lg, _, _) in routes.items():
        p = torch.sigmoid(lg.to(dtype))
        res[i] = int(((p == p.max(dim=-1, keepdim=True).values).sum(-1) > 1).sum())
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", required=True, help="Zyphra/BlackMamba checkout")
    ap.add_argument("--fixture", required=True, help="tests/fixtures/blackmamba-tiny")
    ap.add_argument("--out", required=True)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq-len", type=int, default=20)
    ap.add_argument("--min-tie-share", type=float, default=0.25)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    import torch
    from safetensors.torch import save_file
    install_stand_ins(torch)
    sys.path.insert(0, a.src)
    from mamba_model import MambaModel
    import switch_mlp
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False

    cfg_path = os.path.join(a.fixture, "config.json")
    cfg = json.load(open(cfg_path))
    base = torch.load(os.path.join(a.fixture, "pytorch_model.bin"), map_location="cpu")["model"]
    g = torch.Generator().manual_seed(a.seed)
    ids = torch.randint(0, cfg["vocab_size"], (a.batch, a.seq_len), generator=g).cuda()
    os.makedirs(a.out, exist_ok=True)
    ckpt = os.path.join(a.out, "pytorch_model.bin")

    def write_scaled(scale):
        sd = {k: (v * scale if k.endswith("router.weight") or k.endswith("router.bias") else v).clone()
              for k, v in base.items()}  # powers of two: exact in bf16
        torch.save({"model": sd}, ckpt)

    scale, tokens = 1, a.batch * a.seq_len
    while True:
        write_scaled(scale)
        _, r = run(torch, MambaModel, switch_mlp, ckpt, cfg_path, ids, torch.bfloat16)
        ties = ties_per_layer(torch, r, torch.bfloat16)
        print(f"router scale {scale}: bf16 ties per MoE layer {ties} of {tokens} tokens", flush=True)
        if min(ties.values()) >= a.min_tie_share * tokens:
            break
        if scale >= 1024:
            sys.exit("the bf16 sigmoid did not saturate up to router scale 1024")
        scale *= 2
    shutil.copy(cfg_path, os.path.join(a.out, "config.json"))

    _, fp32 = run(torch, MambaModel, switch_mlp, ckpt, cfg_path, ids, torch.float32)
    summary = {"oracle": "Zyphra/BlackMamba MambaModel.from_pretrained, .to(dtype), SwitchMLP.forward's torch.max",
               "router_scale": scale, "tokens_per_layer": tokens, "torch": torch.__version__,
               "gpu": torch.cuda.get_device_name(), "dtypes": {}}
    try:
        summary["zyphra_commit"] = subprocess.check_output(["git", "-C", a.src, "rev-parse", "HEAD"], text=True).strip()
    except Exception:
        summary["zyphra_commit"] = "unknown (not a git checkout)"
    for name, dt in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
        logits, r = run(torch, MambaModel, switch_mlp, ckpt, cfg_path, ids, dt)
        t = {"input_ids": ids.cpu().to(torch.int64).contiguous(), "logits": logits.float().cpu().contiguous()}
        ties = ties_per_layer(torch, r, dt)
        layers = {}
        for i, (lg, idx, val) in r.items():
            t[f"route.{i}.router_logits"] = lg.to(dt).cpu().contiguous()
            t[f"route.{i}.expert"] = idx.to(torch.int64).cpu().contiguous()
            t[f"route.{i}.prob"] = val.to(dt).cpu().contiguous()
            t[f"route.{i}.expert_fp32"] = fp32[i][1].to(torch.int64).cpu().contiguous()
            agree = int((idx.cpu() == fp32[i][1].cpu()).sum())
            layers[str(i)] = {"ties": ties[i], "agree_with_fp32_routes": agree}
        save_file(t, os.path.join(a.out, f"expected-{name}.safetensors"))
        summary["dtypes"][name] = layers
        print(f"{name}: {layers}", flush=True)
    json.dump(summary, open(os.path.join(a.out, "expected.json"), "w"), indent=1)
    with open(os.path.join(a.out, "README.md"), "w") as f:
        f.write("# blackmamba-tiny-halfroute\n\nMade by `scripts/gpu_peers/routing_oracle.py` on the GPU machine from "
                "blackmamba-tiny with every router weight and bias scaled by %d, run through Zyphra's code in bf16 and "
                "fp16 (see the script's docstring for each tensor). `expected.json` records the ties and the agreement "
                "with fp32 routes per MoE layer, the torch version, the GPU and Zyphra's commit.\n" % scale)


if __name__ == "__main__":
    main()
