// Recurrent decoding (prefill, then one token a step through conv/SSM state and KV cache) against the full
// forward pass at prompt lengths 1, 2, 3, d_conv and 50. Both run the same reference ops, so in fp64 they agree
// to rounding (1e-9 relative); the short prompts exercise the zero-padded conv history.
#include <gtest/gtest.h>

#include "evals/model_loader.h"
#include "test_util.h"

namespace bmh {
namespace {

void check_parity(const std::string& fixture, int prompt_len) {
  ModelSpec s;
  s.dir = test::fixture_dir(fixture);
  s.dtype = "fp64";
  auto model = load_model(s);
  const int V = model->config().vocab_size, n_new = 5, B = 2;
  Tensor prompt = test::random_ids(B, prompt_len, V, 1234 + prompt_len);
  Tensor logits;
  Tensor ids = generate_greedy(*model, prompt, n_new, &logits);
  // The full forward over prompt + generated tokens must give the same next-token logits at each step.
  Tensor full_in = Tensor::from_i64(
      [&] {
        std::vector<int64_t> v = ids.to_i64(), out;
        for (int b = 0; b < B; ++b)
          out.insert(out.end(), v.begin() + b * (prompt_len + n_new), v.begin() + b * (prompt_len + n_new) + prompt_len + n_new - 1);
        return out;
      }(),
      {B, prompt_len + n_new - 1});
  ForwardOutput f = model->forward(full_in);
  for (int b = 0; b < B; ++b)
    for (int k = 0; k < n_new; ++k) {
      std::vector<double> dec = test::row(logits, b, k), full = test::row(f.logits, b, prompt_len - 1 + k);
      EXPECT_LT(test::rel_frobenius(dec, full), 1e-9) << fixture << " prompt " << prompt_len << " b " << b << " step " << k;
    }
}

class DecodeParity : public ::testing::TestWithParam<std::tuple<std::string, int>> {};

TEST_P(DecodeParity, RecurrentEqualsFullForward) {
  check_parity(std::get<0>(GetParam()), std::get<1>(GetParam()));
}

INSTANTIATE_TEST_SUITE_P(Fixtures, DecodeParity,
                         ::testing::Combine(::testing::Values("blackmamba-tiny", "blackmamba-tiny-variant",
                                                              "mamba-tiny-hf", "pythia-tiny", "mixtral-tiny",
                                                              "jamba-tiny"),
                                            ::testing::Values(1, 2, 3, 4, 50)),
                         [](const auto& info) {
                           std::string s = std::get<0>(info.param) + "_T" + std::to_string(std::get<1>(info.param));
                           for (char& c : s)
                             if (c == '-') c = '_';
                           return s;
                         });

}  // namespace
}  // namespace bmh
