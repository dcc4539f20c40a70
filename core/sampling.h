// Choosing the next token from one logits row: greedy (argmax) or sampling with temperature, top-k and top-p.
//
// Reproducibility rule: the uniform draw behind the n-th new token (n = 0, 1, ...) of request r (its 0-based index
// in the request list) is counter_uniform(seed, r, n), a pure function of those three numbers. A request's sample
// therefore depends only on its own logits, the options and (seed, r, n): never on which other requests share its
// batch, the batch size, or the order in which slots are filled. (Given identical logits; the CPU reference gives
// bit-identical logits per sequence whatever the batch.)
#pragma once
#include <cstdint>

namespace bmh {

struct SamplingOptions {
  double temperature = 0;  // 0: greedy (the first maximum, as torch.argmax); > 0: sample from softmax(logits / T)
  int top_k = 0;           // keep the k most likely tokens (0: all); needs temperature > 0
  double top_p = 1;        // keep the smallest most-likely set whose probability reaches top_p, in (0, 1]
  uint64_t seed = 0;
  bool greedy() const { return temperature == 0; }
};

// Fails naming the option for values outside the ranges above (negative or non-finite temperature, top_k < 0,
// top_p outside (0, 1], top-k/top-p given with temperature 0 where they would be silently ignored).
void check_sampling_options(const SamplingOptions& o);

// A uniform double in [0, 1) from (seed, request, token index): splitmix64's finalizer applied along the counter
// (Steele, Lea & Flood 2014, "Fast splittable pseudorandom number generators"), 53 bits kept.
double counter_uniform(uint64_t seed, uint64_t request, uint64_t token);

// The next token from logits[0..V). Sampling follows HF transformers' warper order (generation/logits_process.py:
// TemperatureLogitsWarper, then TopKLogitsWarper, then TopPLogitsWarper keeping the token that crosses top_p):
//   1. p_i = exp(logits_i / T - max_j logits_j / T) in double; tokens ordered by logit descending, equal logits by
//      id ascending;
//   2. the tokens whose logit is at least the k-th largest are kept (all when top_k = 0): ties with the k-th token
//      are kept too, as TopKLogitsWarper's `scores < topk(scores, k)[..., -1]` removes only smaller ones;
//   3. of those, the shortest prefix of that order whose sum of p reaches top_p * (their sum of p) is kept;
//   4. with u = counter_uniform(seed, request, token), the chosen token is the first kept token in ascending id
//      order whose running sum of p exceeds u * (the kept tokens' sum of p).
// As T -> 0 every token whose logit is below the maximum gets p = 0 (exp underflows), so the draw is uniform over
// the tokens tied at the maximum: the greedy token when the maximum is unique. top_k = 1 is greedy when the maximum
// is unique; tied maxima are all kept and drawn from (as HF), where greedy takes the first (torch.argmax).
int64_t choose_token(const float* logits, int64_t V, const SamplingOptions& o, uint64_t request, uint64_t token);

}  // namespace bmh
