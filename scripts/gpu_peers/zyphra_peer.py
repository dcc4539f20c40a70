#!/usr/bin/env python3
"""Zyphra's official BlackMamba inference code as the blackmamba-2.8b peer, run the way a user without the compiled
mamba kernels runs it (its reference scan, a torch conv, its Triton RMSNorm and state update, a Python loop over
experts), bf16, random weights of the BlackMamba-2.8B shape. The source (github.com/Zyphra/BlackMamba) is brought
along uncommitted; pass its folder with --src. Stand-ins per ../shared/README.md: empty `causal_conv1d` (fn and
update None) and `causal_conv1d_cuda` modules, identity torch.cuda.amp.custom_fwd/custom_bwd, and an object with
key_value_memory_dict and seqlen_offset for decoding.

Usage: python3 zyphra_peer.py --src DIR --json OUT.json [--forward-len 2048]
"""
import argparse, json, sys, time, types


class InferenceParams:  # what mamba_ssm's InferenceParams offers Zyphra's layers
    def __init__(self, max_seqlen, max_batch_size):
        self.max_seqlen, self.max_batch_size = max_seqlen, max_batch_size
        self.seqlen_offset = 0
        self.batch_size_offset = 0
        self.key_value_memory_dict = {}
        self.lengths_per_sample = None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--forward-len", type=int, default=2048)
    a = ap.parse_args()
    out = {"peers": []}
    try:
        import torch
        cc = types.ModuleType("causal_conv1d")
        cc.causal_conv1d_fn = None
        cc.causal_conv1d_update = None
        sys.modules["causal_conv1d"] = cc
        sys.modules["causal_conv1d_cuda"] = types.ModuleType("causal_conv1d_cuda")
        ident = lambda f=None, **kw: f if f is not None else (lambda g: g)
        torch.cuda.amp.custom_fwd = ident
        torch.cuda.amp.custom_bwd = ident
        sys.path.insert(0, a.src)
        from mamba_config import MambaConfig
        from mamba_model import MambaModel
        torch.manual_seed(0)
        n_layers = 36
        cfg = MambaConfig(num_layers=n_layers, hidden_size=1472, state_size=16, conv_dimension=4, vocab_size=50304,
                          expansion_factor=2, mamba_moe_layers=["r" if i % 2 == 0 else "8" for i in range(n_layers)],
                          ffn_hidden_size=3872, bias=False, add_bias_linear=False, gated_linear_unit=True,
                          device="cuda")
        with torch.device("cuda"):
            m = MambaModel(config=cfg, max_sequence_length=2048).to(torch.bfloat16).eval()
        sync = torch.cuda.synchronize
        with torch.no_grad():
            prompt = torch.randint(0, 50304, (1, 64), device="cuda")

            def decode(n):
                ip = InferenceParams(2048, 1)
                logits = m(prompt, inference_params=ip)
                ip.seqlen_offset += prompt.shape[1]
                tok = logits[:, -1].argmax(-1, keepdim=True)
                sync(); t = time.perf_counter()
                for _ in range(n):
                    logits = m(tok, inference_params=ip)
                    ip.seqlen_offset += 1
                    tok = logits[:, -1].argmax(-1, keepdim=True)
                sync(); return 1e3 * (time.perf_counter() - t) / n

            decode(4)
            d = decode(32)
            ids = torch.randint(0, 50304, (1, a.forward_len), device="cuda")
            m(ids); sync()
            t = time.perf_counter(); m(ids); sync()
            f = 1e3 * (time.perf_counter() - t)
        out["peers"].append({"preset": "blackmamba-2.8b", "peer": "Zyphra BlackMamba code bf16 (no compiled kernels)",
                             "decode_ms": d, "forward_ms_measured": f, "forward_batch_measured": 1,
                             "forward_len": a.forward_len})
        print(f"blackmamba-2.8b peer (Zyphra code): decode {d:.2f} ms/token, forward 1x{a.forward_len} {f:.0f} ms",
              flush=True)
    except Exception as e:
        import traceback
        traceback.print_exc()
        print(f"zyphra peer failed: {type(e).__name__}: {e}", flush=True)
        out["peers"].append({"preset": "blackmamba-2.8b", "error": f"{type(e).__name__}: {e}"})
    json.dump(out, open(a.json, "w"), indent=1)


if __name__ == "__main__":
    main()
