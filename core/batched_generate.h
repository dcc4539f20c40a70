// Generation for many prompts of different lengths through one decoder of B slots (continuous batching): each
// slot holds one sequence's recurrent state (conv + SSM state, KV cache); the waiting prompts fill free slots in
// request order, all busy slots advance one token per decoder step, and a slot whose sequence finishes is given
// to the next waiting prompt before the next step. Tokens are chosen by core/sampling.h, whose rule makes each
// request's output independent of the batch it shared.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/language_model.h"
#include "core/sampling.h"

namespace bmh {

struct GenerateRequest {
  std::vector<int64_t> prompt;  // at least one token
  int max_new = 16;             // tokens to generate at most (>= 0)
};

struct GenerateResult {
  std::vector<int64_t> generated;
  std::string finish_reason;    // "length": max_new reached; "eos": the eos id was generated (and is included)
};

struct BatchedGenerateOptions {
  int max_batch = 256;          // slots: the decoder's batch is min(max_batch, the backend's max_decode_batch(),
                                // the number of requests)
  SamplingOptions sampling;
  int64_t eos = -1;             // stop a sequence once it generates this id; -1: never
};

struct BatchedGenerateStats {
  int slots = 0;                // decoder batch
  int64_t prefills = 0, steps = 0, generated_tokens = 0;
  bool batched = false;         // false: the backend has no per-slot decoder, requests ran one at a time
};

// Checks every request first (ids within the vocabulary, at least one prompt token, max_new >= 0, and for models
// with attention prompt + max_new within max_seq_len), naming the request index. Results in request order.
// Backends whose decoder has no per-slot state (Decoder::per_slot() false) run the requests one at a time
// through decoder(1): the same tokens, without the batching.
std::vector<GenerateResult> generate_batched(LanguageModel& model, const std::vector<GenerateRequest>& requests,
                                             const BatchedGenerateOptions& opt, BatchedGenerateStats* stats = nullptr);

}  // namespace bmh
