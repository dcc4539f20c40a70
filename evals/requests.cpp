#include "evals/requests.h"

#include "core/error.h"
#include "evals/task_python_text.h"

namespace bmh::eval {

TokenizedRequest encode_request(std::string_view context, std::string_view continuation, const Encoder& encode,
                                int32_t prefix_token) {
  TokenizedRequest r;
  if (context.empty()) {
    std::vector<int32_t> cont = encode(continuation);
    if (cont.empty()) fail("request with an empty context and a continuation that encodes to no tokens");
    if (cont[0] != prefix_token) {
      r.context = {prefix_token};
      r.continuation = std::move(cont);
    } else {
      r.context = {cont[0]};
      r.continuation.assign(cont.begin() + 1, cont.end());
    }
  } else {
    std::string ctx = py_rstrip(context);
    std::string cont = std::string(context.substr(ctx.size())) + std::string(continuation);
    std::vector<int32_t> whole = encode(ctx + cont);
    r.context = encode(ctx);
    if (r.context.size() > whole.size())
      fail("tokenizing \"", ctx, "\": the context has more tokens than context + continuation");
    r.continuation.assign(whole.begin() + std::ptrdiff_t(r.context.size()), whole.end());
  }
  // HFLM._loglikelihood_tokens asserts both are non-empty.
  if (r.context.empty()) fail("request context \"", context, "\" encodes to no tokens");
  if (r.continuation.empty())
    fail("request continuation \"", continuation, "\" encodes to no tokens after context \"", context, "\"");
  return r;
}

ScoreRequest to_score_request(const TokenizedRequest& r, int max_length) {
  if (int64_t(r.continuation.size()) > max_length)
    fail("continuation of ", r.continuation.size(), " tokens is longer than the model's max length ", max_length);
  ScoreRequest s;
  size_t total = r.context.size() + r.continuation.size();
  size_t keep = std::min(total, size_t(max_length) + 1);
  s.tokens.reserve(keep);
  size_t skip = total - keep;  // dropped from the left of the context
  s.tokens.insert(s.tokens.end(), r.context.begin() + std::ptrdiff_t(skip), r.context.end());
  s.tokens.insert(s.tokens.end(), r.continuation.begin(), r.continuation.end());
  s.n_continuation = int(r.continuation.size());
  return s;
}

std::vector<TokenizedRequest> rolling_windows(const std::vector<int32_t>& tokens, int32_t prefix_token,
                                              int max_length) {
  std::vector<TokenizedRequest> out;
  if (tokens.empty()) return out;
  const int64_t n = int64_t(tokens.size()), max_len = max_length;
  const int64_t pred_len = max_len - 1 + 1;  // max_seq_len - context_len + 1 with context_len = 1
  auto slice = [&](int64_t a, int64_t b) { return std::vector<int32_t>(tokens.begin() + a, tokens.begin() + b); };
  // First window: predict the first min(max_len, n) tokens after the prefix token.
  int64_t first = std::min(max_len, n);
  std::vector<int32_t> ctx = {prefix_token};
  std::vector<int32_t> head = slice(0, first - 1);
  ctx.insert(ctx.end(), head.begin(), head.end());
  std::vector<int32_t> pred = slice(0, first);
  int64_t predicted = first;
  auto push_disjoint = [&](std::vector<int32_t> a, std::vector<int32_t> b) {
    a.resize(a.size() - (b.size() - 1));  // make_disjoint_window: a[:len(a) - (len(b) - 1)]
    out.push_back({std::move(a), std::move(b)});
  };
  push_disjoint(std::move(ctx), std::move(pred));
  while (predicted < n) {
    int64_t window_pred_len = std::min(n - predicted, pred_len);
    int64_t window_end = predicted + window_pred_len;
    // window_end - max_len - 1 >= 0 here since predicted >= max_len after the first window.
    push_disjoint(slice(window_end - max_len - 1, window_end - 1), slice(window_end - window_pred_len, window_end));
    predicted += window_pred_len;
  }
  return out;
}

}  // namespace bmh::eval
