#!/usr/bin/env python3
"""The zero-shot suite's requests scored as lm-evaluation-harness scores them, as the peer of `bmh eval`'s suite time.
Reads the requests `bmh eval --requests-jsonl` wrote (the same token ids our run scored) and runs them through the
official model code the way lm_eval/models/huggingface.py HFLM._loglikelihood_tokens does (lm-eval's MambaLMWrapper
for mamba_ssm subclasses it): requests that share their model input (context + continuation[:-1], the
Collator's group_by="contexts" one-token-continuation cache) run once; inputs sorted longest first; batches of 64
right-padded with 0; log_softmax over the vocabulary of the whole padded batch in the model's dtype; per request the
continuation's slice, its argmax compare and gather, and float()/bool() of the results (lm-eval's own host syncs).

Models: mamba_ssm's MambaLMHeadModel (Mamba-2.8B shape, mamba_ssm_peer.py) or Zyphra's BlackMamba code with the
compiled kernels (BlackMamba-2.8B shape, zyphra_peer.py), random bf16 weights: the time does not depend on them.
Tokenization and task loading are not timed here (our suite time includes them, and the model load).

Usage: python3 eval_peer.py --peer mamba_ssm|zyphra --requests requests.jsonl --json OUT.json
         [--mamba DIR --conv DIR --kernels DIR --src ZYPHRA_DIR] [--batch-size 64] [--max-length 2048]
"""
import argparse, json, time
import peer_common as pc


def load_requests(path):
    reqs = []
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            reqs.append((r["context_ids"], r["continuation_ids"]))
    return reqs


def score(model_call, reqs, batch_size, max_length, device="cuda"):
    """HFLM._loglikelihood_tokens over reqs [(context_ids, continuation_ids)]: [(logprob, is_greedy)] in input order."""
    import torch
    import torch.nn.functional as F
    groups = {}  # model input -> request indices (lm-eval's one-token-continuation cache: same input, run once)
    for i, (ctx, cont) in enumerate(reqs):
        toks = (ctx + cont)[-(max_length + 1):]
        groups.setdefault(tuple(toks[:-1]), []).append(i)
    order = sorted(groups, key=lambda k: (-(len(k) + 1), k))
    out = [None] * len(reqs)
    for b0 in range(0, len(order), batch_size):
        chunk = order[b0:b0 + batch_size]
        pad = max(len(k) for k in chunk)
        batched = torch.zeros(len(chunk), pad, dtype=torch.long)
        for j, k in enumerate(chunk):
            batched[j, :len(k)] = torch.tensor(k, dtype=torch.long)
        multi_logits = F.log_softmax(model_call(batched.to(device)), dim=-1)
        for j, k in enumerate(chunk):
            inplen = len(k)
            members = groups[k]
            contlen = max(len(reqs[i][1]) for i in members)
            logits = multi_logits[j, inplen - contlen:inplen].unsqueeze(0)  # _select_cont_toks
            greedy = logits.argmax(dim=-1)
            for i in members:
                cont = torch.tensor(reqs[i][1], dtype=torch.long, device=device).unsqueeze(0)
                n = cont.shape[1]
                max_equal = (greedy[:, -n:] == cont).all()
                lp = torch.gather(logits[:, -n:], 2, cont.unsqueeze(-1)).squeeze(-1)
                out[i] = (float(lp.sum()), bool(max_equal))
    return out, len(order)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--peer", choices=("mamba_ssm", "zyphra"), required=True)
    ap.add_argument("--requests", required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--mamba")
    ap.add_argument("--conv")
    ap.add_argument("--kernels")
    ap.add_argument("--src")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--max-length", type=int, default=2048)
    a = ap.parse_args()
    rep = pc.Report(a.json)
    preset = "mamba-2.8b" if a.peer == "mamba_ssm" else "blackmamba-2.8b"
    rep.plan([{"key": f"{preset}/suite", "preset": preset, "what": "suite"}])
    import torch
    t0 = time.perf_counter()
    if a.peer == "mamba_ssm":
        import mamba_ssm_peer as mp
        LM, Cfg = mp.import_mamba(a)
        m = mp.model(LM, Cfg, *mp.SHAPES[preset])
        call = lambda ids: m(ids).logits
        name = "mamba_ssm MambaLMHeadModel, lm-eval HFLM batching"
    else:
        import zyphra_peer as zp
        Cfg, Model = zp.import_zyphra(a.src, a.kernels, a.conv)
        m = zp.model(Cfg, Model, *zp.SHAPES[preset])
        call = lambda ids: m(ids)
        name = "Zyphra code + compiled kernels, lm-eval HFLM batching"
    pc.sync()
    build_s = time.perf_counter() - t0
    reqs = load_requests(a.requests)

    def run():
        with torch.no_grad():
            call(torch.zeros(2, 16, dtype=torch.long, device="cuda"))  # first-call setup outside the timing
            pc.sync()
            t = time.perf_counter()
            res, inputs = score(call, reqs, a.batch_size, a.max_length)
            pc.sync()
            s = time.perf_counter() - t
        return {"preset": preset, "what": "suite", "peer": name, "batch": a.batch_size, "requests": len(reqs),
                "model_inputs": inputs, "peer_s": s, "requests_per_s": len(reqs) / s, "model_build_s": build_s,
                "mean_logprob": sum(r[0] for r in res) / len(res)}
    rep.run(f"{preset}/suite", run)


if __name__ == "__main__":
    main()
