#include "core/language_model.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace bmh {

void check_input_ids(const Tensor& ids, int vocab_size, const std::string& what) {
  if (ids.dtype() != DType::I64) fail(what, ": expected int64 ids, got ", ids.describe());
  if (ids.rank() != 2) fail(what, ": expected shape [B, T], got ", shape_str(ids.shape()));
  const int64_t* p = ids.data<int64_t>();
  for (int64_t i = 0; i < ids.numel(); ++i)
    if (p[i] < 0 || p[i] >= vocab_size)
      fail(what, ": id ", p[i], " at [", i / ids.dim(1), ", ", i % ids.dim(1), "] is outside the vocabulary [0, ",
           vocab_size, ")");
}

void check_sequence_bounds(const ModelConfig& cfg, int64_t B, int64_t T, int64_t n_new, const std::string& what) {
  constexpr int64_t kMaxLogitBytes = int64_t(8) << 30;
  if (n_new < 0) fail(what, ": --max-new-tokens ", n_new, " must be >= 0");
  const bool attention = std::any_of(cfg.blocks.begin(), cfg.blocks.end(),
                                     [](const BlockConfig& b) { return b.mixer == MixerKind::Attention; });
  if (attention && T + n_new > cfg.max_seq_len)
    fail(what, ": ", T, " prompt tokens", n_new ? " + " + std::to_string(n_new) + " new tokens" : std::string(),
         " exceed the model's ", cfg.max_seq_len, " positions (max_position_embeddings)");
  const int64_t rows = n_new ? n_new : T;  // generate keeps [B, n_new, V], forward [B, T, V]
  const double bytes = double(B) * double(rows) * double(cfg.vocab_size) * 4.0;
  if (bytes > double(kMaxLogitBytes))
    fail(what, ": [", B, ", ", rows, ", ", cfg.vocab_size, "] float logits would take ", bytes / double(1 << 30),
         " GiB, over the 8 GiB bound", n_new ? "; lower --max-new-tokens" : "; split the batch");
}

std::vector<ScoreResult> LanguageModel::score(const std::vector<ScoreRequest>& requests) {
  std::vector<ScoreResult> out(requests.size());
  if (requests.empty()) return out;
  // The model sees tokens[0..n-2]; position p predicts tokens[p+1]. Right-pad with id 0 to the longest.
  int64_t Tmax = 0;
  for (const auto& r : requests) {
    if (r.tokens.size() < 2 || r.n_continuation < 1 || r.n_continuation >= int(r.tokens.size()))
      fail("score request needs at least one context token and one continuation token (got ", r.tokens.size(),
           " tokens, ", r.n_continuation, " to score)");
    Tmax = std::max<int64_t>(Tmax, int64_t(r.tokens.size()) - 1);
  }
  const int64_t B = int64_t(requests.size());
  Tensor ids = Tensor::zeros(DType::I64, {B, Tmax});
  int64_t* ip = ids.data_mut<int64_t>();
  for (int64_t b = 0; b < B; ++b)
    for (size_t t = 0; t + 1 < requests[b].tokens.size(); ++t) ip[b * Tmax + t] = requests[b].tokens[t];
  ForwardOutput f = forward(ids);
  const int64_t V = f.logits.dim(2);
  const float* lp = f.logits.data<float>();
  for (int64_t b = 0; b < B; ++b) {
    const auto& r = requests[b];
    const int64_t n = int64_t(r.tokens.size());
    double sum = 0;
    bool greedy = true;
    for (int64_t p = n - 1 - r.n_continuation; p < n - 1; ++p) {
      auto [lp_t, is_max] = log_softmax_at(lp + (b * Tmax + p) * V, V, r.tokens[p + 1]);
      sum += lp_t;
      greedy = greedy && is_max;
    }
    out[b] = {sum, greedy};
  }
  return out;
}

void check_score_group(const ScoreGroup& g, int vocab_size) {
  for (size_t k = 0; k < g.requests.size(); ++k) {
    const ScoreRequest& r = g.requests[k];
    const int n = int(r.tokens.size());
    if (n < 2 || r.n_continuation < 1 || r.n_continuation >= n)
      fail("score request needs at least one context token and one continuation token (got ", n, " tokens, ",
           r.n_continuation, " to score)");
    for (int t = 0; t < n; ++t)
      if (r.tokens[t] < 0 || r.tokens[t] >= vocab_size)
        fail("score request: id ", r.tokens[t], " at position ", t, " is outside the vocabulary [0, ", vocab_size, ")");
    if (g.prefix < 0 || g.prefix > n - r.n_continuation)
      fail("score group: shared prefix of ", g.prefix, " tokens does not fit request ", k, " (", n, " tokens, ",
           r.n_continuation, " scored)");
    for (int t = 0; t < g.prefix; ++t)
      if (r.tokens[t] != g.requests[0].tokens[t])
        fail("score group: request ", k, " differs from request 0 at position ", t, " inside the shared prefix of ",
             g.prefix, " tokens");
  }
}

std::vector<ScoreResult> LanguageModel::score_groups(const std::vector<ScoreGroup>& groups,
                                                     const ScoreBatchOptions& opt) {
  if (opt.deterministic && !batch_invariant())
    fail("--deterministic: backend ", describe(), " does not guarantee batch-invariant scores");
  std::vector<ScoreRequest> all;
  for (const ScoreGroup& g : groups) {
    check_score_group(g, config().vocab_size);
    all.insert(all.end(), g.requests.begin(), g.requests.end());
  }
  return score(all);
}

Tensor Decoder::prefill_slot(int, const Tensor&) {
  fail("this backend's decoder has no per-slot state (Decoder::per_slot() is false)");
}
Tensor Decoder::step_slots(const std::vector<int64_t>&, const std::vector<uint8_t>&) {
  fail("this backend's decoder has no per-slot state (Decoder::per_slot() is false)");
}

std::vector<int64_t> argmax_rows(const Tensor& logits) {
  const int64_t B = logits.dim(0), V = logits.dim(1);
  std::vector<int64_t> out(size_t(B), 0);
  for (int64_t b = 0; b < B; ++b) {
    const float* row = logits.data<float>() + b * V;
    out[size_t(b)] = std::max_element(row, row + V) - row;
  }
  return out;
}
std::vector<int64_t> Decoder::step_greedy(const std::vector<int64_t>& tokens) { return argmax_rows(step(tokens)); }
std::vector<int64_t> Decoder::step_slots_greedy(const std::vector<int64_t>& tokens, const std::vector<uint8_t>& active) {
  std::vector<int64_t> out = argmax_rows(step_slots(tokens, active));
  for (size_t b = 0; b < out.size() && b < active.size(); ++b)
    if (!active[b]) out[b] = -1;
  return out;
}

Tensor generate_greedy(LanguageModel& model, const Tensor& ids, int n_new, Tensor* generated_logits) {
  check_input_ids(ids, model.config().vocab_size, "prompt ids");
  const int64_t B = ids.dim(0), T = ids.dim(1), V = model.config().vocab_size;
  check_sequence_bounds(model.config(), B, T, n_new, "generate");
  Tensor out = Tensor::zeros(DType::I64, {B, T + n_new});
  int64_t* op = out.data_mut<int64_t>();
  const int64_t* ip = ids.data<int64_t>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) op[b * (T + n_new) + t] = ip[b * T + t];
  if (generated_logits) *generated_logits = Tensor::zeros(DType::F32, {B, n_new, V});
  if (n_new == 0) return out;
  auto dec = model.decoder(int(B));
  Tensor logits = dec->prefill(ids);
  for (int s = 0; s < n_new; ++s) {
    std::vector<int64_t> next(B);
    const float* lp = logits.data<float>();
    for (int64_t b = 0; b < B; ++b) {
      const float* row = lp + b * V;
      next[b] = std::max_element(row, row + V) - row;  // first maximum, as torch.argmax
      op[b * (T + n_new) + T + s] = next[b];
      if (generated_logits)
        std::copy(row, row + V, generated_logits->data_mut<float>() + (b * n_new + s) * V);
    }
    if (s + 1 < n_new) logits = dec->step(next);
  }
  return out;
}

}  // namespace bmh
