// From (context, continuation) strings to the token sequences lm-eval scores, as a decoder-only HF model does:
//   lm_eval/api/model.py TemplateLM.loglikelihood / _encode_pair:
//     - an empty context scores the continuation after the prefix token (<|endoftext|>, id 0 for GPT-NeoX-20B;
//       HFLM.prefix_token_id = bos_token_id, which is <|endoftext|> there); if the continuation's first token
//       is the prefix token itself it becomes the context instead
//     - otherwise the context's trailing whitespace (str.rstrip) moves to the front of the continuation, and the
//       continuation tokens are encode(context + continuation) minus the first len(encode(context)) tokens
//     - no BOS is added (GPT-NeoX's tokenizer adds no special tokens)
//   lm_eval/models/huggingface.py HFLM._loglikelihood_tokens: the model sees
//     (context_enc + continuation_enc)[-(max_length + 1):][:-1], i.e. truncation from the left, and the last
//     len(continuation_enc) positions are scored (log-softmax over the whole vocabulary; is_greedy = every
//     continuation token is its position's argmax)
//   lm_eval/utils.py get_rolling_token_windows + make_disjoint_window (context_len 1): loglikelihood_rolling.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/language_model.h"

namespace bmh::eval {

using Encoder = std::function<std::vector<int32_t>(std::string_view)>;

struct TokenizedRequest {
  std::vector<int32_t> context;
  std::vector<int32_t> continuation;
};

// TemplateLM.loglikelihood for one request. Fails if the continuation encodes to no tokens (lm-eval asserts).
TokenizedRequest encode_request(std::string_view context, std::string_view continuation, const Encoder& encode,
                                int32_t prefix_token);

// The ScoreRequest the model runs: the last max_length + 1 tokens of context + continuation. Fails if the
// continuation alone is longer than max_length (lm-eval asserts).
ScoreRequest to_score_request(const TokenizedRequest& r, int max_length);

// get_rolling_token_windows(tokens, prefix, max_length, context_len=1) with make_disjoint_window applied.
std::vector<TokenizedRequest> rolling_windows(const std::vector<int32_t>& tokens, int32_t prefix_token,
                                              int max_length);

}  // namespace bmh::eval
