#!/usr/bin/env python3
"""Loads checkpoints written by `bmh train` with the families' own PyTorch code and compares their logits with
`bmh forward` on the same ids (the GPU machine has torch, transformers and safetensors; run once there).

  Zyphra BlackMamba layout: Zyphra's MambaModel.from_pretrained(DIR) (torch.load of our torch-zip writer's file),
                            with the stand-ins ../shared/README.md lists, on CUDA in fp32 with TF32 off
  transformers layouts:     AutoModelForCausalLM.from_pretrained(DIR) (MambaForCausalLM / GPTNeoXForCausalLM), fp32
  "bmh" layout:             no PyTorch loader exists (the paper's transformer baselines); skipped

Usage: python3 scripts/check_trained_checkpoints.py --bmh build/bmh [--zyphra-src DIR] CKPT_DIR...
       e.g. the checkpoints of `bmh run`: results/default/parts/*/train/checkpoint
Exit status 1 when any relative Frobenius difference exceeds --tol (default 1e-4, fp32).
"""
import argparse, json, os, subprocess, sys, tempfile, types


def zyphra_model(src, d):
    import torch
    cc = types.ModuleType("causal_conv1d")
    cc.causal_conv1d_fn = None
    cc.causal_conv1d_update = None
    sys.modules["causal_conv1d"] = cc
    sys.modules["causal_conv1d_cuda"] = types.ModuleType("causal_conv1d_cuda")
    ident = lambda f=None, **kw: f if f is not None else (lambda g: g)
    torch.cuda.amp.custom_fwd = ident
    torch.cuda.amp.custom_bwd = ident
    if src not in sys.path:
        sys.path.insert(0, src)
    from mamba_model import MambaModel
    return MambaModel.from_pretrained(d).cuda().float().eval(), "cuda"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bmh", required=True)
    ap.add_argument("--zyphra-src", default="")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("dirs", nargs="+")
    a = ap.parse_args()
    import torch
    from safetensors.torch import load_file, save_file
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    worst, bad = 0.0, False
    for d in a.dirs:
        cfg = json.load(open(os.path.join(d, "config.json")))
        if cfg.get("model_type") == "bmh":
            print(f"{d}: bmh layout (no PyTorch loader): skipped")
            continue
        vocab = cfg["vocab_size"]
        g = torch.Generator().manual_seed(7)
        ids = torch.randint(0, vocab, (2, 24), generator=g)
        with tempfile.TemporaryDirectory() as tmp:
            save_file({"input_ids": ids}, f"{tmp}/in.safetensors")
            subprocess.run([a.bmh, "forward", "--model", d, "--inputs", f"{tmp}/in.safetensors", "--out",
                            f"{tmp}/out.safetensors"], check=True, stdout=subprocess.DEVNULL)
            ours = load_file(f"{tmp}/out.safetensors")["logits"].double()
        with torch.no_grad():
            if "mamba_moe_layers" in cfg:
                if not a.zyphra_src:
                    print(f"{d}: Zyphra layout needs --zyphra-src (github.com/Zyphra/BlackMamba checkout)")
                    bad = True
                    continue
                model, dev = zyphra_model(a.zyphra_src, d)
                theirs = model(ids.to(dev)).double().cpu()
            else:
                from transformers import AutoModelForCausalLM
                model = AutoModelForCausalLM.from_pretrained(d, torch_dtype=torch.float32).eval()
                theirs = model(ids).logits.double()
        rel = float((ours - theirs).norm() / theirs.norm())
        worst = max(worst, rel)
        ok = rel <= a.tol
        bad |= not ok
        print(f"{d}: {type(model).__name__} logits rel. Frobenius difference {rel:.3g} ({'ok' if ok else 'FAIL'})")
    print(f"worst {worst:.3g}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
