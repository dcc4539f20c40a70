#!/usr/bin/env python3
"""PyTorch peers for bmh bench-gpu: random-weight transformers MambaForCausalLM (Mamba-2.8B shape) and
GPTNeoXForCausalLM (Pythia-1.4B shape) in bf16, eager (no mamba_ssm / causal_conv1d kernels on the GPU machine),
timed the way our benchmark times: batch-1 decode ms/token after a 64-token prompt, and a B x T forward.

Usage: python3 hf_peers.py --json OUT.json [--forward-batch 8] [--forward-len 2048] [--mamba-forward-batch 1]
The Mamba slow path costs ~9.5 s per 2048-token sequence at this size, so by default its forward runs at batch 1
and the JSON says so (forward_batch_measured); the table scales it to the asked batch and labels it.
"""
import argparse, json, time, sys
import torch


def sync():
    torch.cuda.synchronize()


def decode_ms_per_token(model, vocab, prompt=64, n=32):
    ids = torch.randint(0, vocab, (1, prompt), device="cuda")
    kw = dict(do_sample=False, eos_token_id=None, pad_token_id=0)
    model.generate(ids, max_new_tokens=4, min_new_tokens=4, **kw)  # warm-up
    def run(k):
        sync(); t = time.perf_counter()
        model.generate(ids, max_new_tokens=k, min_new_tokens=k, **kw)
        sync(); return time.perf_counter() - t
    t1 = min(run(1) for _ in range(2))
    tn = run(n + 1)
    return 1e3 * (tn - t1) / n


@torch.no_grad()
def forward_ms(model, vocab, B, T, reps=2):
    ids = torch.randint(0, vocab, (B, T), device="cuda")
    model(ids)  # warm-up
    best = []
    for _ in range(reps):
        sync(); t = time.perf_counter()
        model(ids)
        sync(); best.append(time.perf_counter() - t)
    return 1e3 * sorted(best)[len(best) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", required=True)
    ap.add_argument("--forward-batch", type=int, default=8)
    ap.add_argument("--forward-len", type=int, default=2048)
    ap.add_argument("--mamba-forward-batch", type=int, default=1)
    a = ap.parse_args()
    import transformers
    from transformers import MambaConfig, MambaForCausalLM, GPTNeoXConfig, GPTNeoXForCausalLM
    torch.manual_seed(0)
    out = {"torch": torch.__version__, "transformers": transformers.__version__, "device": torch.cuda.get_device_name(0),
           "peers": []}
    torch.set_default_dtype(torch.bfloat16)
    # Mamba-2.8B shape (state-spaces/mamba-2.8b config).
    try:
        cfg = MambaConfig(vocab_size=50280, hidden_size=2560, state_size=16, num_hidden_layers=64, expand=2,
                          conv_kernel=4, time_step_rank=160, use_bias=False, use_conv_bias=True,
                          residual_in_fp32=True, tie_word_embeddings=True)
        with torch.device("cuda"):
            m = MambaForCausalLM(cfg).to(torch.bfloat16).eval()
        d = decode_ms_per_token(m, cfg.vocab_size)
        Bm = a.mamba_forward_batch
        f = forward_ms(m, cfg.vocab_size, Bm, a.forward_len, reps=1)
        out["peers"].append({"preset": "mamba-2.8b", "peer": "transformers MambaForCausalLM bf16 eager",
                             "decode_ms": d, "forward_ms_measured": f, "forward_batch_measured": Bm,
                             "forward_len": a.forward_len})
        print(f"mamba-2.8b peer: decode {d:.2f} ms/token, forward {Bm}x{a.forward_len} {f:.0f} ms", flush=True)
        del m
        torch.cuda.empty_cache()
    except Exception as e:  # report, never hide
        print(f"mamba peer failed: {type(e).__name__}: {e}", flush=True)
        out["peers"].append({"preset": "mamba-2.8b", "error": f"{type(e).__name__}: {e}"})
    # Pythia-1.4B shape (EleutherAI/pythia-1.4b config).
    try:
        kw = dict(vocab_size=50304, hidden_size=2048, num_hidden_layers=24, num_attention_heads=16,
                  intermediate_size=8192, use_parallel_residual=True, tie_word_embeddings=False,
                  max_position_embeddings=4096)
        try:
            cfg = GPTNeoXConfig(**kw, rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                                       "partial_rotary_factor": 0.25})
        except TypeError:
            cfg = GPTNeoXConfig(**kw, rotary_pct=0.25, rotary_emb_base=10000)
        cfg._attn_implementation = "eager"
        with torch.device("cuda"):
            m = GPTNeoXForCausalLM(cfg).to(torch.bfloat16).eval()
        d = decode_ms_per_token(m, cfg.vocab_size)
        f = forward_ms(m, cfg.vocab_size, a.forward_batch, a.forward_len)
        out["peers"].append({"preset": "pythia-1.4b", "peer": "transformers GPTNeoXForCausalLM bf16 eager",
                             "decode_ms": d, "forward_ms_measured": f, "forward_batch_measured": a.forward_batch,
                             "forward_len": a.forward_len})
        print(f"pythia-1.4b peer: decode {d:.2f} ms/token, forward {a.forward_batch}x{a.forward_len} {f:.0f} ms",
              flush=True)
    except Exception as e:
        print(f"pythia peer failed: {type(e).__name__}: {e}", flush=True)
        out["peers"].append({"preset": "pythia-1.4b", "error": f"{type(e).__name__}: {e}"})
    json.dump(out, open(a.json, "w"), indent=1)


if __name__ == "__main__":
    main()
