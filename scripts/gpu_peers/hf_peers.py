#!/usr/bin/env python3
"""transformers GPT-NeoX (Pythia-1.4B shape, EleutherAI/pythia-1.4b config) with SDPA attention as the transformer
peer, bf16, random weights:
- forward B x T: one call returning all B*T logits;
- decode b=1: the first `generate()` setup that runs here of: a static cache compiled by generate() itself, a static
  cache with torch.compile(mode="reduce-overhead") (CUDA graphs), the default dynamic cache; each compile attempt
  within --compile-budget seconds; the row names which ran and why the ones before it did not. Timed as the
  difference of two generation lengths, per token.

Usage: python3 hf_peers.py --json OUT.json [--forward-batch 8] [--forward-len 2048]
"""
import argparse
import peer_common as pc


def pythia():
    import torch
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM
    kw = dict(vocab_size=50304, hidden_size=2048, num_hidden_layers=24, num_attention_heads=16,
              intermediate_size=8192, use_parallel_residual=True, tie_word_embeddings=False,
              max_position_embeddings=4096)
    try:
        cfg = GPTNeoXConfig(**kw, rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                                   "partial_rotary_factor": 0.25})
    except TypeError:
        cfg = GPTNeoXConfig(**kw, rotary_pct=0.25, rotary_emb_base=10000)
    torch.manual_seed(0)
    with torch.device("cuda"):
        return GPTNeoXForCausalLM._from_config(cfg, attn_implementation="sdpa",
                                               torch_dtype=torch.bfloat16).eval()


def decode_ms(m, static, prompt_len=64, n1=16, n2=80):
    import torch
    ids = torch.randint(0, 50304, (1, prompt_len), device="cuda")
    kw = dict(do_sample=False, eos_token_id=None, pad_token_id=0)
    if static:
        kw["cache_implementation"] = "static"

    def gen(n):
        return lambda: m.generate(ids, max_new_tokens=n, min_new_tokens=n, **kw)
    with torch.no_grad():
        t1 = pc.median_ms(gen(n1), reps=3, warmup=2)
        t2 = pc.median_ms(gen(n2), reps=3, warmup=2)
    return (t2 - t1) / (n2 - n1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", required=True)
    ap.add_argument("--forward-batch", type=int, default=8)
    ap.add_argument("--forward-len", type=int, default=2048)
    ap.add_argument("--compile-budget", type=float, default=75,
                    help="seconds each torch.compile attempt may take (compilation included) before it is abandoned")
    a = ap.parse_args()
    import torch, transformers
    rep = pc.Report(a.json)
    rep.plan([{"key": f"pythia-1.4b/{w}", "preset": "pythia-1.4b", "what": w} for w in ("forward", "decode")])
    rep.meta["transformers"] = transformers.__version__
    m = pythia()
    B, T = a.forward_batch, a.forward_len
    ids = torch.randint(0, 50304, (B, T), device="cuda")

    def fwd():
        with torch.no_grad():
            return {"preset": "pythia-1.4b", "what": "forward", "batch": B, "len": T,
                    "peer": f"transformers {transformers.__version__} GPT-NeoX SDPA",
                    "peer_ms": pc.median_ms(lambda: m(ids).logits, reps=3, warmup=1)}
    rep.run("pythia-1.4b/forward", fwd)

    # The fastest generation setup that runs (the order): a static cache, for which generate() compiles the
    # decoding step itself (transformers' automatic compile: generation_config.compile_config, CUDA graphs); where
    # that fails, a static cache with forward wrapped in torch.compile(reduce-overhead) by hand; where both fail, the
    # default dynamic cache. Each runs under its own deadline; the row names the one that ran and why others did not.
    ran, failures = [], []
    for how, mode, budget in (("static cache + generate()'s automatic torch.compile", "auto", a.compile_budget),
                              ("static cache + torch.compile(reduce-overhead)", "reduce-overhead", a.compile_budget),
                              ("dynamic cache", None, 60)):
        if ran:
            break
        m = pythia()
        try:
            with pc.deadline(budget):
                if mode == "reduce-overhead":
                    m.forward = torch.compile(m.forward, mode=mode, fullgraph=True)
                ran.append((decode_ms(m, static=mode is not None), how))
            print(f"decode, {how}: {ran[-1][0]:.3f} ms/token", flush=True)
        except BaseException as e:  # includes the deadline's TimeoutError raised inside compilation
            if isinstance(e, KeyboardInterrupt):
                raise
            lines = [x for x in f"{type(e).__name__}: {e}".splitlines() if x.strip()]
            # The first line names the exception; the last often holds the cause (inductor's nested error).
            msg = lines[0][:120] + (" ... " + lines[-1][:160] if len(lines) > 1 else "")
            failures.append(f"{how}: {msg}")
            print(f"{how} failed: {failures[-1]}", flush=True)
        del m
        torch.cuda.empty_cache()
    if ran:
        best, how = ran[0]  # the loop stops at the first setup that runs
        others = [f"failed: {f}" for f in failures]
        # The attempts that failed before it go to "also" (JSON and log), not into the table's peer name.
        rep.run("pythia-1.4b/decode", lambda: {"preset": "pythia-1.4b", "what": "decode", "batch": 1,
                                               "peer": f"transformers generate(), {how}", "peer_ms": best,
                                               "also": "; ".join(others)})
    else:
        rep.run("pythia-1.4b/decode", lambda: (_ for _ in ()).throw(RuntimeError("; ".join(failures))))


if __name__ == "__main__":
    main()
