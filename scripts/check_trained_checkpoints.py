#!/usr/bin/env python3
"""Loads checkpoints written by `bmh train` with each family's own PyTorch code and compares their logits with
`bmh forward` on the same ids (run once on the GPU machine, which has torch, transformers 5.x and safetensors but no
network and no mamba_ssm / causal_conv1d kernels).

Which loader reads which layout (train/family_layout.h writes them):
  zyphra-blackmamba  ({"model": state_dict} torch zip + config.json with mamba_moe_layers): Zyphra's own
                     MambaModel.from_pretrained(checkpoint_name=, config_name=) from a checkout of Zyphra/BlackMamba
                     (--zyphra-src), i.e. its from_pretrained minus the Hub lookup. Without the kernels it runs its
                     slow path: ops/selective_scan_interface.py sets SELECTIVE_SCAN_CUDA_IMPORT_FAILED, mamba_layer.py
                     then takes selective_scan_ref and a torch conv1d; its RMSNorm is Triton, so it runs on CUDA, in
                     fp32 with TF32 off. It imports causal_conv1d and causal_conv1d_cuda unconditionally (empty
                     stand-ins here) and torch.cuda.amp.custom_fwd/custom_bwd, which newer torch lacks (identity).
                     Needs einops.
  mamba-ssm          (plain state-dict torch zip + config.json with ssm_cfg): state-spaces/mamba's MambaLMHeadModel
                     (--mamba-src: the directory holding the mamba_ssm package, v2.3.2), built from MambaConfig(**json)
                     and load_state_dict (its from_pretrained minus the Hub lookup). Without selective_scan_cuda a
                     stand-in module is imported and mamba_simple's selective_scan_fn replaced by its own
                     selective_scan_ref (the slow path); fused_add_norm uses its Triton RMSNorm, so CUDA, fp32.
  hf-mamba, hf-gpt-neox, hf-mixtral, hf-jamba  (model.safetensors + config.json with model_type):
                     transformers AutoModelForCausalLM.from_pretrained(DIR, dtype=float32) on the CPU; Jamba's
                     config says use_mamba_kernels=false, so JambaMambaMixer takes its slow path.
  bmh                no PyTorch loader exists (the paper's transformer baselines): reported and skipped.

Our side: `bmh forward` on ids [2, 24]. Either this script runs it (--bmh BINARY), or it reads what
scripts/make_trained_checkpoints.sh stored beside each checkpoint (DIR/../bmh_forward.safetensors, computed on the
CPU where the checkpoints were trained, from FOLDER/inputs.safetensors) so the GPU machine needs no bmh binary.

Usage: python3 scripts/check_trained_checkpoints.py [--bmh build/bmh] [--zyphra-src DIR] [--mamba-src DIR] CKPT_DIR...
Exit status 1 when any relative Frobenius difference exceeds --tol (default 1e-4: fp32 computations of the same
function in different orders; seen for the fixtures: <= 1e-5) or a checkpoint could not be loaded.
"""
import argparse, json, os, subprocess, sys, tempfile, traceback, types


def identity_decorator(f=None, **kw):
    return f if f is not None else (lambda g: g)


def zyphra_model(src, d):
    import torch
    cc = types.ModuleType("causal_conv1d")
    cc.causal_conv1d_fn = None
    cc.causal_conv1d_update = None
    sys.modules.setdefault("causal_conv1d", cc)
    sys.modules.setdefault("causal_conv1d_cuda", types.ModuleType("causal_conv1d_cuda"))
    torch.cuda.amp.custom_fwd = identity_decorator
    torch.cuda.amp.custom_bwd = identity_decorator
    if src not in sys.path:
        sys.path.insert(0, src)
    from mamba_model import MambaModel
    model = MambaModel.from_pretrained(checkpoint_name=os.path.join(d, "pytorch_model.bin"),
                                       config_name=os.path.join(d, "config.json"))
    return model.cuda().float().eval(), "cuda"


def mamba_ssm_model(src, d):
    import torch
    if src not in sys.path:
        sys.path.insert(0, src)
    try:
        import selective_scan_cuda  # noqa: F401
    except ImportError:
        sys.modules["selective_scan_cuda"] = types.ModuleType("selective_scan_cuda")
    try:
        import mamba_ssm  # noqa: F401
    except Exception as e:  # its __init__ also imports Mamba2/Mamba3 (Triton, TileLang); Mamba-1 needs none
        print(f"  (import mamba_ssm: {type(e).__name__}: {e}; importing its Mamba-1 modules directly)")
        pkg = types.ModuleType("mamba_ssm")
        pkg.__path__ = [os.path.join(src, "mamba_ssm")]
        sys.modules["mamba_ssm"] = pkg
    import mamba_ssm.modules.mamba_simple as ms
    from mamba_ssm.ops.selective_scan_interface import selective_scan_ref
    ms.selective_scan_fn = selective_scan_ref  # the slow path's scan without the CUDA kernel
    from mamba_ssm.models.config_mamba import MambaConfig
    from mamba_ssm.models.mixer_seq_simple import MambaLMHeadModel
    cfg = MambaConfig(**json.load(open(os.path.join(d, "config.json"))))
    model = MambaLMHeadModel(cfg, device="cuda", dtype=torch.float32)
    model.load_state_dict(torch.load(os.path.join(d, "pytorch_model.bin"), map_location="cuda"))
    return model.eval(), "cuda"


def transformers_model(d):
    import torch
    from transformers import AutoModelForCausalLM
    try:
        model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32)
    except TypeError:  # transformers 4.x spells it torch_dtype
        model = AutoModelForCausalLM.from_pretrained(d, torch_dtype=torch.float32)
    return model.float().eval(), "cpu"


def layout_of(cfg):
    if cfg.get("model_type") == "bmh":
        return "bmh"
    if "mamba_moe_layers" in cfg:
        return "zyphra-blackmamba"
    if "ssm_cfg" in cfg:
        return "mamba-ssm"
    return "hf-" + cfg.get("model_type", "?").replace("_", "-")


def our_logits(a, d, tmp):
    """(ids, logits) of bmh forward: run here with --bmh, else stored beside the checkpoint."""
    import torch
    from safetensors.torch import load_file, save_file
    if a.bmh:
        vocab = json.load(open(os.path.join(d, "config.json")))
        vocab = vocab.get("vocab_size")
        ids = torch.randint(0, min(vocab, 256), (2, 24), generator=torch.Generator().manual_seed(7))
        save_file({"input_ids": ids}, f"{tmp}/in.safetensors")
        subprocess.run([a.bmh, "forward", "--model", d, "--inputs", f"{tmp}/in.safetensors", "--out",
                        f"{tmp}/out.safetensors"], check=True, stdout=subprocess.DEVNULL)
        return ids, load_file(f"{tmp}/out.safetensors")["logits"].double()
    run_dir = os.path.dirname(os.path.abspath(d.rstrip("/")))
    stored = os.path.join(run_dir, "bmh_forward.safetensors")
    inputs = os.path.join(os.path.dirname(run_dir), "inputs.safetensors")
    if not (os.path.exists(stored) and os.path.exists(inputs)):
        raise FileNotFoundError(f"no --bmh and no {stored} + {inputs} (scripts/make_trained_checkpoints.sh)")
    return load_file(inputs)["input_ids"], load_file(stored)["logits"].double()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bmh", default="", help="bmh binary to run forward (default: the stored bmh_forward.safetensors)")
    ap.add_argument("--zyphra-src", default="", help="checkout of Zyphra/BlackMamba (its Python files)")
    ap.add_argument("--mamba-src", default="", help="directory holding state-spaces/mamba's mamba_ssm package")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("dirs", nargs="+")
    a = ap.parse_args()
    import torch
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    worst, bad, checked = 0.0, False, 0
    for d in a.dirs:
        cfg = json.load(open(os.path.join(d, "config.json")))
        layout = layout_of(cfg)
        if layout == "bmh":
            print(f"{d}: bmh layout (no PyTorch loader): skipped")
            continue
        try:
            with tempfile.TemporaryDirectory() as tmp:
                ids, ours = our_logits(a, d, tmp)
            with torch.no_grad():
                if layout == "zyphra-blackmamba":
                    if not a.zyphra_src:
                        raise RuntimeError("the Zyphra layout needs --zyphra-src (a Zyphra/BlackMamba checkout)")
                    model, dev = zyphra_model(a.zyphra_src, d)
                    theirs = model(ids.to(dev)).double().cpu()
                elif layout == "mamba-ssm":
                    if not a.mamba_src:
                        raise RuntimeError("the mamba-ssm layout needs --mamba-src (state-spaces/mamba sources)")
                    model, dev = mamba_ssm_model(a.mamba_src, d)
                    theirs = model(ids.to(dev)).logits.double().cpu()
                else:
                    model, dev = transformers_model(d)
                    theirs = model(ids.to(dev)).logits.double().cpu()
            theirs = theirs[..., : ours.shape[-1]]  # mamba_ssm pads the vocabulary to a multiple of 8
            if theirs.shape != ours.shape:
                raise RuntimeError(f"logits shapes differ: theirs {tuple(theirs.shape)}, ours {tuple(ours.shape)}")
            rel = float((ours - theirs).norm() / theirs.norm())
        except Exception as e:
            traceback.print_exc()
            print(f"{d}: {layout}: FAILED to compare: {type(e).__name__}: {e}")
            bad = True
            continue
        checked += 1
        worst = max(worst, rel)
        ok = rel <= a.tol
        bad |= not ok
        print(f"{d}: {layout} via {type(model).__name__} on {dev}: logits rel. Frobenius difference {rel:.3g} "
              f"({'ok' if ok else 'FAIL'}, tol {a.tol:g})")
    print(f"{checked} compared, worst {worst:.3g}: {'FAIL' if bad else 'ok'}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
