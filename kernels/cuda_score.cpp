// Batched scoring on CUDA (CudaModel::score_groups, declared in cuda_backend.h): requests sorted by length, right-
// padded and run several per prefill_rows() call, as lm-eval's HFLM._loglikelihood_tokens batches them (a causal
// model's padding after a sequence cannot change it); only the scored rows are gathered through the LM head and the
// fused log-softmax. Shared prefixes are not reused here yet (each request runs whole): see evals/score_plan.h and
// reference/score.cpp for the semantics a prefix-reusing path must keep.
// --deterministic runs score() (one request per forward: fixed shapes, so results never depend on the packing).
// Why right padding is exact here: every layer is causal or per token (causal conv1d and the scan from a zero
// state at position 0, causal attention from position 0 with no padding mask needed, per-token MLP/MoE routing),
// so rows after a request's last token cannot reach its rows; only the scored rows (positions n-1-C .. n-2 of
// each row, the same ones score() sends to the head) are read back.
// Reviewed before its first GPU run (2026-12-02): row/target alignment (row p0 + j predicts tokens[p0 + 1 + j] =
// the j-th continuation token), the staging buffer's layout inside ws_logits_ (re-derived after each ensure, which
// may reallocate), the host buffers read only after download()'s stream synchronization, and the scratch state
// (allocated for B rows, S_max >= T, zeroed per call).
#include <algorithm>
#include <numeric>

#include "core/error.h"
#include "kernels/cuda_backend.h"
#include "kernels/logits.cuh"

namespace bmh::cuda {

namespace {
constexpr int64_t kPaddedTokens = 8192;  // B x T of one prefill_rows() call (the longest request may exceed it)
constexpr int kMaxRows = 64;             // sequences per call
constexpr int kHeadRows = 4096;          // scored rows per LM-head GEMM: logits [rows, V] fp32
size_t align256(size_t n) { return (n + 255) / 256 * 256; }
}  // namespace

std::vector<ScoreResult> CudaModel::score_groups(const std::vector<ScoreGroup>& groups, const ScoreBatchOptions& opt) {
  std::vector<ScoreRequest> reqs;
  for (const ScoreGroup& g : groups) {
    check_score_group(g, cfg_.vocab_size);
    reqs.insert(reqs.end(), g.requests.begin(), g.requests.end());
  }
  if (opt.deterministic) return score(reqs);
  std::vector<size_t> order(reqs.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return reqs[a].tokens.size() > reqs[b].tokens.size(); });
  std::vector<ScoreResult> out(reqs.size());
  const int d = cfg_.d_model, V = cfg_.vocab_size;
  const size_t es = dt_size(w_.dt);
  for (size_t start = 0; start < order.size();) {
    // The model sees tokens[:-1]; the first (longest) request sets T.
    const int T = int(reqs[order[start]].tokens.size()) - 1;
    int B = 1;
    while (start + B < order.size() && B < kMaxRows && int64_t(B + 1) * T <= kPaddedTokens) ++B;
    std::vector<int64_t> ids(size_t(B) * T, 0);  // right padding with id 0
    std::vector<int64_t> targets;
    std::vector<int> first_row(size_t(B) + 1, 0);
    for (int b = 0; b < B; ++b) {
      const ScoreRequest& r = reqs[order[start + size_t(b)]];
      const int C = r.n_continuation;
      std::copy(r.tokens.begin(), r.tokens.end() - 1, ids.begin() + int64_t(b) * T);
      targets.insert(targets.end(), r.tokens.end() - C, r.tokens.end());
      first_row[size_t(b) + 1] = first_row[size_t(b)] + C;
    }
    prefill_from_host(ids.data(), B, T, {}, "score state");
    // Scored rows of each request (positions n-1-C .. n-2 of its row), gathered in chunks through the head.
    const int M = first_row.back();
    std::vector<float> lp(static_cast<size_t>(M));
    std::vector<int> greedy(static_cast<size_t>(M));
    for (int m0 = 0; m0 < M; m0 += kHeadRows) {
      const int Mc = std::min(kHeadRows, M - m0);
      const size_t logit_bytes = align256(size_t(Mc) * V * 4), hidden_bytes = align256(size_t(Mc) * d * es);
      ws_logits_.ensure(logit_bytes + hidden_bytes + size_t(Mc) * 16, "score logits [rows, V] fp32");
      float* logits = ws_logits_.as<float>();
      char* hidden = ws_logits_.as<char>() + logit_bytes;
      int64_t* tg = reinterpret_cast<int64_t*>(hidden + hidden_bytes);
      float* lpd = reinterpret_cast<float*>(tg + Mc);
      int* gd = reinterpret_cast<int*>(lpd + Mc);
      for (int b = 0; b < B; ++b) {
        const ScoreRequest& r = reqs[order[start + size_t(b)]];
        const int p0 = int(r.tokens.size()) - 1 - r.n_continuation;
        // rows [first_row[b], first_row[b+1]) of the scored list are positions p0.. of sequence b
        const int lo = std::max(first_row[size_t(b)], m0), hi = std::min(first_row[size_t(b) + 1], m0 + Mc);
        if (lo >= hi) continue;
        const size_t src_row = size_t(b) * T + size_t(p0 + lo - first_row[size_t(b)]);
        BMH_CUDA(cudaMemcpyAsync(hidden + size_t(lo - m0) * d * es, ws_xn_.as<char>() + src_row * d * es,
                                 size_t(hi - lo) * d * es, cudaMemcpyDeviceToDevice, stream_));
      }
      lm_head_rows(hidden, d, Mc, logits, stream_);
      upload(tg, targets.data() + m0, size_t(Mc) * 8, stream_);
      logsoftmax_gather(logits, Mc, V, tg, lpd, gd, nullptr, stream_);
      download(lp.data() + m0, lpd, size_t(Mc) * 4, stream_);
      download(greedy.data() + m0, gd, size_t(Mc) * 4, stream_);
    }
    for (int b = 0; b < B; ++b) {
      double sum = 0;
      bool all = true;
      for (int k = first_row[size_t(b)]; k < first_row[size_t(b) + 1]; ++k) {
        sum += lp[size_t(k)];
        all = all && greedy[size_t(k)];
      }
      out[order[start + size_t(b)]] = {sum, all};
    }
    start += size_t(B);
  }
  return out;
}

}  // namespace bmh::cuda
