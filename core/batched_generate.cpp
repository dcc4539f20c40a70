#include "core/batched_generate.h"

#include <algorithm>

#include "core/error.h"

namespace bmh {
namespace {

void check_requests(const ModelConfig& cfg, const std::vector<GenerateRequest>& requests) {
  for (size_t r = 0; r < requests.size(); ++r) {
    const GenerateRequest& q = requests[r];
    const std::string what = "request " + std::to_string(r);
    if (q.prompt.empty()) fail(what, ": the prompt has no tokens (generation needs at least one)");
    Tensor ids = Tensor::from_i64(q.prompt, {1, int64_t(q.prompt.size())});
    check_input_ids(ids, cfg.vocab_size, what + ": prompt");
    check_sequence_bounds(cfg, 1, int64_t(q.prompt.size()), q.max_new, what);
  }
}

Tensor prompt_tensor(const GenerateRequest& q) { return Tensor::from_i64(q.prompt, {1, int64_t(q.prompt.size())}); }

}  // namespace

std::vector<GenerateResult> generate_batched(LanguageModel& model, const std::vector<GenerateRequest>& requests,
                                             const BatchedGenerateOptions& opt, BatchedGenerateStats* stats) {
  check_sampling_options(opt.sampling);
  if (opt.max_batch < 1 || opt.max_batch > 256) fail("--max-batch ", opt.max_batch, " must be in [1, 256]");
  const int64_t V = model.config().vocab_size;
  if (opt.eos < -1 || opt.eos >= V) fail("--eos ", opt.eos, " is outside the vocabulary [0, ", V, ") (-1: none)");
  check_requests(model.config(), requests);
  BatchedGenerateStats st;
  std::vector<GenerateResult> out(requests.size());
  // Appends request r's next token; returns whether r is finished.
  auto take_token = [&](size_t r, int64_t tok) {
    GenerateResult& res = out[r];
    res.generated.push_back(tok);
    ++st.generated_tokens;
    if (tok == opt.eos) res.finish_reason = "eos";
    else if (int(res.generated.size()) >= requests[r].max_new) res.finish_reason = "length";
    return !res.finish_reason.empty();
  };
  // ... chosen from its logits row.
  auto take = [&](size_t r, const float* row) {
    return take_token(r, choose_token(row, V, opt.sampling, r, out[r].generated.size()));
  };
  // Greedy steps take the argmax where the logits are (Decoder::step_greedy): only the ids move.
  const bool greedy = opt.sampling.greedy();
  size_t next = 0;  // the next waiting request
  // Requests with max_new = 0 finish without running the model (as generate_greedy does).
  auto skip_empty = [&] {
    while (next < requests.size() && requests[next].max_new == 0) out[next++].finish_reason = "length";
  };
  skip_empty();
  if (next == requests.size()) {
    if (stats) *stats = st;
    return out;
  }
  const int B = int(std::min<size_t>(size_t(std::min(opt.max_batch, model.max_decode_batch())), requests.size()));
  std::unique_ptr<Decoder> dec = model.decoder(B);
  if (!dec->per_slot()) {
    // One at a time: the whole-batch interface at B = 1 is the per-slot interface for a single slot.
    dec.reset();
    st.slots = 1;
    for (; next < requests.size(); ++next, skip_empty()) {
      if (requests[next].max_new == 0) continue;
      auto one = model.decoder(1);
      Tensor logits = one->prefill(prompt_tensor(requests[next]));
      ++st.prefills;
      bool done = take(next, logits.data<float>());
      while (!done) {
        const int64_t last = out[next].generated.back();
        if (greedy) {
          done = take_token(next, one->step_greedy({last})[0]);
        } else {
          logits = one->step({last});
          done = take(next, logits.data<float>());
        }
        ++st.steps;
      }
    }
    if (stats) *stats = st;
    return out;
  }
  st.slots = B;
  st.batched = true;
  std::vector<int64_t> owner(size_t(B), -1);  // request in each slot, -1 when free
  std::vector<int64_t> tokens(size_t(B), 0);
  std::vector<uint8_t> active(size_t(B), 0);
  // Gives free slot s to waiting requests until one needs a decode step (or none is left).
  auto fill = [&](int s) {
    while (next < requests.size()) {
      const size_t r = next++;
      Tensor logits = dec->prefill_slot(s, prompt_tensor(requests[r]));
      ++st.prefills;
      const bool done = take(r, logits.data<float>());
      skip_empty();
      if (!done) {
        owner[s] = int64_t(r);
        tokens[s] = out[r].generated.back();
        active[s] = 1;
        return;
      }
    }
    owner[s] = -1;
    active[s] = 0;
  };
  for (int s = 0; s < B; ++s) fill(s);
  while (std::any_of(active.begin(), active.end(), [](uint8_t a) { return a != 0; })) {
    Tensor logits;
    std::vector<int64_t> chosen;
    if (greedy) chosen = dec->step_slots_greedy(tokens, active);
    else logits = dec->step_slots(tokens, active);
    ++st.steps;
    for (int s = 0; s < B; ++s) {
      if (!active[s]) continue;
      const size_t r = size_t(owner[s]);
      const bool done = greedy ? take_token(r, chosen[size_t(s)]) : take(r, logits.data<float>() + int64_t(s) * V);
      if (done) fill(s);
      else tokens[s] = out[r].generated.back();
    }
  }
  if (stats) *stats = st;
  return out;
}

}  // namespace bmh
