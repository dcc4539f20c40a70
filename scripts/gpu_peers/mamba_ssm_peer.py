#!/usr/bin/env python3
"""mamba_ssm (state-spaces/mamba, Python sources of the carried release) with its compiled kernels
(selective_scan_cuda, causal_conv1d_cuda from build_peer_kernels.py) as the peer for dense Mamba: random bf16
weights of the Mamba-1.4B/2.8B shapes (state-spaces/mamba-*/config.json), `MambaLMHeadModel`.
- decode b=1: `generate(cg=True)` (its CUDA-graph decoding), timed as the difference of two generation lengths
  (each length warmed up first, since a new max_length re-captures the graph), per token;
- decode at batch 8, 64, 256 the same way (B prompts of the same length; ms per step of B tokens), each under its
  own deadline so a slow batch cannot use up the call;
- forward B x T: one call returning all B*T logits, as our benchmark;
- selective_scan_fn alone on our op table's scan shapes (bf16 u/delta/B/C, fp32 A/D, z and softplus as in Mamba).

--rows picks the rows: "single" (decode b=1, forward, scan) or "batched" (decode at batch 8/64/256), so gpu_check.sh
can run the batched rows last, after every other peer, in what is left of its device call.

Usage: python3 mamba_ssm_peer.py --mamba DIR --conv DIR --kernels BUILD_DIR --json OUT.json [--rows single|batched]
"""
import argparse, types, sys
import peer_common as pc

SHAPES = {"mamba-2.8b": (2560, 64), "mamba-1.4b": (2048, 48)}  # d_model, n_layer; vocab 50277 padded to 50280


def import_mamba(a):
    pc.add_paths(a.kernels, a.conv, a.mamba)
    import selective_scan_cuda, causal_conv1d_cuda  # noqa: F401  (the fast path needs both)
    try:
        import mamba_ssm  # noqa: F401
    except Exception as e:  # its __init__ also imports Mamba2/Mamba3 (Triton, TileLang); Mamba-1 needs none
        print(f"(import mamba_ssm: {type(e).__name__}: {e}; importing its Mamba-1 modules directly)")
        import os
        pkg = types.ModuleType("mamba_ssm")
        pkg.__path__ = [os.path.join(a.mamba, "mamba_ssm")]
        sys.modules["mamba_ssm"] = pkg
    from mamba_ssm.models.mixer_seq_simple import MambaLMHeadModel
    from mamba_ssm.models.config_mamba import MambaConfig
    return MambaLMHeadModel, MambaConfig


def model(MambaLMHeadModel, MambaConfig, d, L):
    import torch
    cfg = MambaConfig(d_model=d, n_layer=L, vocab_size=50277, ssm_cfg={"layer": "Mamba1"}, rms_norm=True,
                      residual_in_fp32=True, fused_add_norm=True, pad_vocab_size_multiple=8)
    torch.manual_seed(0)
    return MambaLMHeadModel(cfg, device="cuda", dtype=torch.bfloat16).eval()


def decode_ms(m, prompt_len=64, n1=16, n2=80, batch=1):
    import torch
    ids = torch.randint(0, 50277, (batch, prompt_len), device="cuda")

    def gen(n):
        return lambda: m.generate(ids, max_length=prompt_len + n, cg=True, top_k=1,
                                  return_dict_in_generate=True, output_scores=False)
    t1 = pc.median_ms(gen(n1), reps=3, warmup=2)
    t2 = pc.median_ms(gen(n2), reps=3, warmup=2)
    return (t2 - t1) / (n2 - n1)


def forward_ms(m, B, T):
    import torch
    ids = torch.randint(0, 50277, (B, T), device="cuda")
    with torch.no_grad():
        return pc.median_ms(lambda: m(ids).logits, reps=3, warmup=1)


def scan_ms(B, T, D, N=16):
    import torch
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    g = torch.Generator(device="cuda").manual_seed(0)
    r = lambda *s: torch.randn(*s, device="cuda", generator=g)
    u, dt, z = (r(B, D, T).bfloat16() for _ in range(3))
    Bm, Cm = r(B, N, T).bfloat16(), r(B, N, T).bfloat16()
    A = -torch.rand(D, N, device="cuda", generator=g) - 0.5
    Dv, dtb = r(D), r(D) * 0.1
    with torch.no_grad():
        return pc.median_ms(lambda: selective_scan_fn(u, dt, A, Bm, Cm, Dv, z=z, delta_bias=dtb,
                                                      delta_softplus=True), reps=5, warmup=2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mamba", required=True)
    ap.add_argument("--conv", required=True)
    ap.add_argument("--kernels", required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--forward-batch", type=int, default=8)
    ap.add_argument("--forward-len", type=int, default=2048)
    ap.add_argument("--presets", default="mamba-2.8b,mamba-1.4b")
    ap.add_argument("--rows", choices=("single", "batched"), default="single")
    a = ap.parse_args()
    rep = pc.Report(a.json)
    LM, Cfg = import_mamba(a)
    import torch
    rep.meta["peer"] = "mamba_ssm (compiled selective_scan_cuda + causal_conv1d_cuda) bf16"
    scans = [(8, 2048, 5120), (1, 16384, 5120)] if a.rows == "single" else []
    whats = ["decode_b8", "decode_b64", "decode_b256"] if a.rows == "batched" else ["decode", "forward"]
    rep.plan([{"key": f"{n}/{w}", "preset": n, "what": w} for n in a.presets.split(",") for w in whats]
             + [{"key": f"scan/{B}x{T}x{D}", "what": "selective_scan", "shape": [B, T, D]} for B, T, D in scans])
    for name in a.presets.split(","):
        d, L = SHAPES[name]
        m = model(LM, Cfg, d, L)
        if a.rows == "batched":
            for Bd in (8, 64, 256):
                def batched(Bd=Bd):
                    with pc.deadline(25):
                        return {"preset": name, "what": f"decode_b{Bd}", "peer": "mamba_ssm generate(cg=True)",
                                "batch": Bd, "peer_ms": decode_ms(m, n1=8, n2=40, batch=Bd)}
                rep.run(f"{name}/decode_b{Bd}", batched)
        else:
            rep.run(f"{name}/decode", lambda: {"preset": name, "what": "decode",
                                               "peer": "mamba_ssm generate(cg=True)", "batch": 1,
                                               "peer_ms": decode_ms(m)})
            B, T = a.forward_batch, a.forward_len
            rep.run(f"{name}/forward", lambda: {"preset": name, "what": "forward",
                                                "peer": "mamba_ssm MambaLMHeadModel", "batch": B, "len": T,
                                                "peer_ms": forward_ms(m, B, T)})
        del m
        torch.cuda.empty_cache()
    for B, T, D in scans:
        rep.run(f"scan/{B}x{T}x{D}", lambda: {"what": "selective_scan", "shape": [B, T, D],
                                              "peer": "mamba_ssm selective_scan_fn", "peer_ms": scan_ms(B, T, D)})


if __name__ == "__main__":
    main()
