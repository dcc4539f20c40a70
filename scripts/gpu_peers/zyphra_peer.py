#!/usr/bin/env python3
"""Zyphra's official BlackMamba code as the BlackMamba peer, on its fast path: the compiled selective_scan_cuda and
causal_conv1d_cuda (build_peer_kernels.py) behind its 2024 call signatures, bf16, random weights of the
BlackMamba-1.5B/2.8B shapes (the released config.json files). Forward = its `mamba_inner_fn` path (all B*T logits);
decode = its `step()` per token (causal_conv1d_update + its Triton selective_state_update, a Python loop over
experts in switch_mlp.py) — the code has no CUDA-graph decoding. --rows batched: the same loop with B prompts at
once (its InferenceParams take a batch), B = 8, 64, 256, ms per step of B tokens, each under its own deadline.

Today's causal-conv1d takes `causal_conv1d_fwd(x, w, b, seq_idx, initial_states, out, final_states_out, silu)` and
`causal_conv1d_fn(x, w, b, ..., activation=)`; Zyphra calls `causal_conv1d_fwd(x, w, b, seq_idx, silu)` expecting
the output back and `causal_conv1d_fn(x, w, b, "silu")`, so thin adapters stand in front of the real modules.
Newer torch lacks torch.cuda.amp.custom_fwd/custom_bwd, which its ops import: identity decorators (inference only).

Usage: python3 zyphra_peer.py --src ZYPHRA_DIR --mamba DIR --conv DIR --kernels BUILD_DIR --json OUT.json
       [--rows single|batched]
"""
import argparse, sys, types
import peer_common as pc

# hidden, layers, ffn (Zyphra BlackMamba-2.8B / -1.5B config.json), 8 experts on odd layers, vocab 50304.
SHAPES = {"blackmamba-2.8b": (1472, 36, 3872), "blackmamba-1.5b": (1152, 30, 3072)}


class InferenceParams:  # what mamba_ssm's InferenceParams offers Zyphra's layers
    def __init__(self, max_seqlen, max_batch_size):
        self.max_seqlen, self.max_batch_size = max_seqlen, max_batch_size
        self.seqlen_offset = 0
        self.batch_size_offset = 0
        self.key_value_memory_dict = {}
        self.lengths_per_sample = None


def import_zyphra(src, kernels, conv):
    import torch
    ident = lambda f=None, **kw: f if f is not None else (lambda g: g)
    torch.cuda.amp.custom_fwd = ident
    torch.cuda.amp.custom_bwd = ident
    pc.add_paths(kernels, conv)
    import causal_conv1d_cuda as real_cuda
    import causal_conv1d as real_pkg
    cuda_shim = types.ModuleType("causal_conv1d_cuda")

    def conv_fwd(x, w, b, seq_idx, silu):
        out = torch.empty_like(x)
        real_cuda.causal_conv1d_fwd(x, w, b, seq_idx, None, out, None, silu)
        return out
    cuda_shim.causal_conv1d_fwd = conv_fwd
    cuda_shim.causal_conv1d_update = real_cuda.causal_conv1d_update
    pkg_shim = types.ModuleType("causal_conv1d")
    pkg_shim.causal_conv1d_fn = lambda x, w, b=None, activation=None: real_pkg.causal_conv1d_fn(
        x, w, b, activation=activation)
    pkg_shim.causal_conv1d_update = lambda x, s, w, b=None, activation=None: real_pkg.causal_conv1d_update(
        x, s, w, b, activation=activation)
    sys.modules["causal_conv1d_cuda"] = cuda_shim
    sys.modules["causal_conv1d"] = pkg_shim
    pc.add_paths(src)
    import ops.selective_scan_interface as ssi
    if ssi.SELECTIVE_SCAN_CUDA_IMPORT_FAILED:
        raise RuntimeError("Zyphra's code could not import selective_scan_cuda: not its fast path")
    from mamba_config import MambaConfig
    from mamba_model import MambaModel
    return MambaConfig, MambaModel


def model(MambaConfig, MambaModel, d, L, F):
    import torch
    torch.manual_seed(0)
    cfg = MambaConfig(num_layers=L, hidden_size=d, state_size=16, conv_dimension=4, vocab_size=50304,
                      expansion_factor=2, mamba_moe_layers=["r" if i % 2 == 0 else "8" for i in range(L)],
                      ffn_hidden_size=F, bias=False, add_bias_linear=False, gated_linear_unit=True,
                      use_fast_path=True, device="cuda")
    with torch.device("cuda"):
        return MambaModel(config=cfg, max_sequence_length=2048).to(torch.bfloat16).eval()


def decode_ms(m, prompt_len=64, n=32, batch=1):
    import torch
    prompt = torch.randint(0, 50304, (batch, prompt_len), device="cuda")

    def run(steps):
        ip = InferenceParams(2048, batch)
        logits = m(prompt, inference_params=ip)
        ip.seqlen_offset += prompt_len
        tok = logits[:, -1].argmax(-1, keepdim=True)
        pc.sync()
        import time
        t = time.perf_counter()
        for _ in range(steps):
            logits = m(tok, inference_params=ip)
            ip.seqlen_offset += 1
            tok = logits[:, -1].argmax(-1, keepdim=True)  # host sees the token, as in a generation loop
        tok.cpu()
        return 1e3 * (time.perf_counter() - t) / steps
    with torch.no_grad():
        run(4)
        return sorted(run(n) for _ in range(3))[1]


def forward_ms(m, B, T):
    import torch
    ids = torch.randint(0, 50304, (B, T), device="cuda")
    with torch.no_grad():
        return pc.median_ms(lambda: m(ids), reps=3, warmup=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", required=True)
    ap.add_argument("--conv", required=True)
    ap.add_argument("--kernels", required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--forward-batch", type=int, default=8)
    ap.add_argument("--forward-len", type=int, default=2048)
    ap.add_argument("--presets", default="blackmamba-2.8b,blackmamba-1.5b")
    ap.add_argument("--rows", choices=("single", "batched"), default="single")
    a = ap.parse_args()
    rep = pc.Report(a.json)
    whats = ("decode_b8", "decode_b64", "decode_b256") if a.rows == "batched" else ("decode", "forward")
    rep.plan([{"key": f"{n}/{w}", "preset": n, "what": w} for n in a.presets.split(",") for w in whats])
    Cfg, Model = import_zyphra(a.src, a.kernels, a.conv)
    import torch
    for name in a.presets.split(","):
        m = model(Cfg, Model, *SHAPES[name])
        if a.rows == "batched":
            for Bd in (8, 64, 256):
                def batched(Bd=Bd):
                    with pc.deadline(40):
                        return {"preset": name, "what": f"decode_b{Bd}", "batch": Bd,
                                "peer": "Zyphra code + compiled kernels, step() per token, batched",
                                "peer_ms": decode_ms(m, n=8, batch=Bd)}
                rep.run(f"{name}/decode_b{Bd}", batched)
            del m
            torch.cuda.empty_cache()
            continue
        rep.run(f"{name}/decode", lambda: {"preset": name, "what": "decode", "batch": 1, "peer_ms": decode_ms(m),
                                           "peer": "Zyphra code + compiled kernels, step() per token"})
        B, T = a.forward_batch, a.forward_len
        rep.run(f"{name}/forward", lambda: {"preset": name, "what": "forward", "batch": B, "len": T,
                                            "peer": "Zyphra code + compiled kernels (mamba_inner_fn)",
                                            "peer_ms": forward_ms(m, B, T)})
        del m
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
