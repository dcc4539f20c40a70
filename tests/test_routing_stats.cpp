// Routing statistics on hand-made routes whose answers are known in closed form.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "core/error.h"
#include "evals/h5_writer.h"
#include "evals/routing_stats.h"

namespace bmh {
namespace {

// Blocks: 0 mamba, 1 moe (E experts), 2 mamba, 3 moe (E experts).
ModelConfig two_moe_layers(int E, RouterKind router = RouterKind::SigmoidTop1) {
  ModelConfig c;
  c.name = "hand-made";
  c.d_model = 8;
  c.vocab_size = 100;
  for (int i = 0; i < 4; ++i) {
    BlockConfig b;
    if (i % 2 == 0) {
      b.mixer = MixerKind::Mamba;
    } else {
      b.mlp = MlpKind::Moe;
      b.ffn.n_experts = E;
      b.ffn.router = router;
    }
    c.blocks.push_back(b);
  }
  return c;
}

// A record with the given experts; logits put `hi` on the chosen expert and 0 elsewhere.
RouteRecord record(int block, int E, const std::vector<int64_t>& experts, float hi = 2.0f) {
  RouteRecord r;
  r.block = block;
  r.n_experts = E;
  r.expert = experts;
  for (auto e : experts) {
    r.prob.push_back(float(1.0 / (1.0 + std::exp(-hi))));
    for (int k = 0; k < E; ++k) r.router_logits.push_back(k == e ? hi : 0.0f);
  }
  return r;
}

Tensor ids_of(const std::vector<int64_t>& v, int64_t B, int64_t T) { return Tensor::from_i64(v, {B, T}); }

TEST(RoutingStats, BalancedAndCollapsedLayers) {
  const int E = 4;
  RoutingAccumulator acc(two_moe_layers(E));
  // B=2, T=4. Layer 1: each expert twice, in pairs. Layer 3: everything on expert 1.
  acc.add({record(1, E, {0, 0, 1, 1, 2, 2, 3, 3}), record(3, E, {1, 1, 1, 1, 1, 1, 1, 1})},
          ids_of({10, 11, 12, 13, 10, 11, 12, 13}, 2, 4), "text");
  RoutingStats s = acc.finish();
  ASSERT_EQ(s.layers.size(), 2u);
  const auto& a = s.layers[0];
  EXPECT_EQ(a.block, 1);
  EXPECT_EQ(a.tokens, 8);
  EXPECT_EQ(a.counts, (std::vector<int64_t>{2, 2, 2, 2}));
  EXPECT_DOUBLE_EQ(a.fraction[3], 0.25);
  EXPECT_DOUBLE_EQ(a.cv, 0.0);
  EXPECT_DOUBLE_EQ(a.max_over_mean, 1.0);
  EXPECT_NEAR(a.entropy, 1.0, 1e-12);
  // Adjacent pairs per row: (0,0) same, (0,1) not, (1,1) same -> 4 of 6.
  EXPECT_EQ(a.adjacent_pairs, 6);
  EXPECT_NEAR(a.same_expert, 4.0 / 6.0, 1e-12);
  EXPECT_NEAR(a.same_chance, 0.25, 1e-12);

  const auto& b = s.layers[1];
  EXPECT_EQ(b.counts, (std::vector<int64_t>{0, 8, 0, 0}));
  EXPECT_NEAR(b.cv, std::sqrt(3.0), 1e-12);  // mean 2, deviations 2,6,2,2 -> var 12, std 2*sqrt(3)
  EXPECT_DOUBLE_EQ(b.max_over_mean, 4.0);
  EXPECT_DOUBLE_EQ(b.entropy, 0.0);
  EXPECT_DOUBLE_EQ(b.same_expert, 1.0);
  EXPECT_DOUBLE_EQ(b.same_chance, 1.0);

  // Transition 1 -> 3: every expert goes to expert 1; nothing is learned about the next layer: MI = 0.
  ASSERT_EQ(s.transitions.size(), 1u);
  const auto& t = s.transitions[0];
  EXPECT_EQ(t.from_block, 1);
  EXPECT_EQ(t.to_block, 3);
  for (int i = 0; i < E; ++i)
    for (int j = 0; j < E; ++j) {
      EXPECT_EQ(t.counts[i * E + j], j == 1 ? 2 : 0);
      EXPECT_DOUBLE_EQ(t.prob[i * E + j], j == 1 ? 1.0 : 0.0);
    }
  EXPECT_NEAR(t.mutual_information, 0.0, 1e-12);
}

TEST(RoutingStats, PermutationTransitionCarriesTwoBits) {
  const int E = 4;
  RoutingAccumulator acc(two_moe_layers(E));
  // Layer 3's expert is a fixed permutation of layer 1's: (e + 1) mod 4; uniform over 4 -> 2 bits.
  acc.add({record(1, E, {0, 1, 2, 3}), record(3, E, {1, 2, 3, 0})}, ids_of({1, 2, 3, 4}, 1, 4), "x");
  RoutingStats s = acc.finish();
  const auto& t = s.transitions[0];
  EXPECT_NEAR(t.mutual_information, 2.0, 1e-12);
  EXPECT_DOUBLE_EQ(t.prob[0 * E + 1], 1.0);
  EXPECT_DOUBLE_EQ(t.prob[3 * E + 0], 1.0);
  EXPECT_DOUBLE_EQ(s.layers[0].same_expert, 0.0);
  EXPECT_EQ(s.layers[0].adjacent_pairs, 3);
}

TEST(RoutingStats, GateHistogramAndSigmoidMargin) {
  const int E = 4;
  RoutingAccumulator acc(two_moe_layers(E));
  // Logits [ln 3, 0, -ln 3, -ln 3]: sigmoids 0.75, 0.5, 0.25, 0.25. Chosen 0 -> margin 0.25, gate 0.75.
  RouteRecord r1;
  r1.block = 1;
  r1.n_experts = E;
  const float l3 = float(std::log(3.0));
  r1.expert = {0, 1};  // the second token is forced onto expert 1: margin 0.5 - 0.75 < 0
  r1.prob = {0.75f, 0.5f};
  r1.router_logits = {l3, 0, -l3, -l3, l3, 0, -l3, -l3};
  acc.add({r1, record(3, E, {2, 2})}, ids_of({5, 6}, 1, 2), "x");
  RoutingStats s = acc.finish();
  const auto& a = s.layers[0];
  EXPECT_NEAR(a.gate_mean, 0.625, 1e-7);
  EXPECT_EQ(a.gate_hist[15], 1);  // 0.75 * 20 bins
  EXPECT_EQ(a.gate_hist[10], 1);  // 0.5
  EXPECT_NEAR(a.margin_mean, (0.25 - 0.25) / 2, 1e-7);
  EXPECT_EQ(a.margin_negative, 1);
  EXPECT_EQ(a.margin_hist[5], 1);  // 0.25 * 20
  int64_t in_hist = 0;
  for (auto c : a.margin_hist) in_hist += c;
  EXPECT_EQ(in_hist, 1);
}

TEST(RoutingStats, SoftmaxRouterMargin) {
  const int E = 3;
  RoutingAccumulator acc(two_moe_layers(E, RouterKind::SoftmaxTopK));
  // Logits [ln 3, 0, 0]: softmax 3/5, 1/5, 1/5 -> margin 2/5.
  RouteRecord r;
  r.block = 1;
  r.n_experts = E;
  r.expert = {0};
  r.prob = {0.6f};
  r.router_logits = {float(std::log(3.0)), 0, 0};
  acc.add({r, record(3, E, {1})}, ids_of({7}, 1, 1), "x");
  EXPECT_NEAR(acc.finish().layers[0].margin_mean, 0.4, 1e-7);
}

TEST(RoutingStats, PositionsSourcesPaddingAndTokens) {
  const int E = 2;
  RoutingOptions opt;
  opt.top_tokens = 2;
  opt.min_specific_count = 2;
  RoutingAccumulator acc(two_moe_layers(E), opt);
  // Row 0: positions 0..3 -> buckets 0,1,2,2 (edges 0,1,2,4,...). Row 1 is padded after 2 tokens.
  std::vector<int> lengths = {4, 2};
  acc.add({record(1, E, {0, 1, 1, 1, 0, 0, 1, 1}), record(3, E, {0, 0, 0, 0, 1, 1, 1, 1})},
          ids_of({50, 60, 60, 70, 50, 50, 99, 99}, 2, 4), "wiki", &lengths);
  acc.add({record(1, E, {1, 1}), record(3, E, {0, 1})}, ids_of({50, 60}, 1, 2), "piqa");
  RoutingStats s = acc.finish();
  const auto& a = s.layers[0];
  // Counted tokens: row0 (0,1,1,1), row1 (0,0), piqa (1,1): 8 tokens, 3 on expert 0 and 5 on expert 1.
  EXPECT_EQ(a.tokens, 8);
  EXPECT_EQ(a.counts, (std::vector<int64_t>{3, 5}));
  EXPECT_EQ(s.position_edges[0], 0);
  EXPECT_EQ(s.position_edges[2], 2);
  // bucket 0 (pos 0): wiki row0 e0, row1 e0, piqa e1; bucket 1 (pos 1): row0 e1, row1 e0, piqa e1;
  // bucket 2 (pos 2, 3): row0 e1, e1.
  auto pc = [&](int bucket, int e) { return a.position_counts[bucket * E + e]; };
  EXPECT_EQ(pc(0, 0), 2);
  EXPECT_EQ(pc(0, 1), 1);
  EXPECT_EQ(pc(1, 0), 1);
  EXPECT_EQ(pc(1, 1), 2);
  EXPECT_EQ(pc(2, 0), 0);
  EXPECT_EQ(pc(2, 1), 2);
  EXPECT_EQ(s.sources, (std::vector<std::string>{"wiki", "piqa"}));
  EXPECT_EQ(a.source_counts, (std::vector<int64_t>{3, 3, 0, 2}));
  EXPECT_DOUBLE_EQ(a.source_cv[1], 1.0);  // [0, 2]: mean 1, std 1
  EXPECT_DOUBLE_EQ(a.source_entropy[0], 1.0);
  // Pairs: row0 3 (0-1 no, 1-1 yes, 1-1 yes), row1 1 (0-0 yes), piqa 1 (yes): 4 of 5.
  EXPECT_EQ(a.adjacent_pairs, 5);
  EXPECT_DOUBLE_EQ(a.same_expert, 0.8);
  // Tokens of layer 1: expert 0 got 50 (x3: row0, row1 twice); expert 1 got 60 (x3), 70 (x1), 50 (x1).
  ASSERT_EQ(a.top_tokens[0].size(), 1u);
  EXPECT_EQ(a.top_tokens[0][0].token, 50);
  EXPECT_EQ(a.top_tokens[0][0].count, 3);
  EXPECT_EQ(a.top_tokens[0][0].total, 4);
  ASSERT_EQ(a.top_tokens[1].size(), 2u);
  EXPECT_EQ(a.top_tokens[1][0].token, 60);
  EXPECT_EQ(a.top_tokens[1][0].count, 3);
  EXPECT_EQ(a.top_tokens[1][1].token, 50);  // tie 50 vs 70 at count 1: smaller id first
  // Specific (total >= 2): expert 1 -> 60 (3/3) before 50 (1/4); 70 (total 1) excluded.
  ASSERT_EQ(a.specific_tokens[1].size(), 2u);
  EXPECT_EQ(a.specific_tokens[1][0].token, 60);
  EXPECT_EQ(a.specific_tokens[1][1].token, 50);
  // Padding tokens 99 never appear.
  for (const auto& v : s.layers[1].top_tokens)
    for (const auto& tc : v) EXPECT_NE(tc.token, 99);
  EXPECT_EQ(s.sequences, 3);
}

TEST(RoutingStats, BadRecordsAreRejectedBeforeCounting) {
  const int E = 4;
  RoutingAccumulator acc(two_moe_layers(E));
  auto ids = ids_of({1, 2}, 1, 2);
  EXPECT_THROW(acc.add({record(1, E, {0, 1})}, ids, "x"), Error);                             // one record short
  EXPECT_THROW(acc.add({record(1, E, {0, 1}), record(3, E, {0, 4})}, ids, "x"), Error);      // expert 4 of 4
  EXPECT_THROW(acc.add({record(1, E, {0, 1}), record(2, E, {0, 1})}, ids, "x"), Error);      // wrong block
  EXPECT_THROW(acc.add({record(1, E, {0, 1, 2}), record(3, E, {0, 1})}, ids, "x"), Error);   // wrong size
  try {
    acc.add({record(1, E, {0, 1}), record(3, E, {0, 7})}, ids, "x");
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("expert 7"), std::string::npos) << e.what();
  }
  RoutingStats s = acc.finish();
  EXPECT_EQ(s.layers[0].tokens, 0);
  EXPECT_EQ(s.sequences, 0);
  EXPECT_TRUE(s.sources.empty());
  ModelConfig dense = two_moe_layers(E);
  dense.blocks[1].mlp = dense.blocks[3].mlp = MlpKind::Dense;
  EXPECT_THROW(RoutingAccumulator{dense}, Error);
}

TEST(RoutingStats, WritesSelfDescribingHdf5) {
  const int E = 4;
  RoutingAccumulator acc(two_moe_layers(E));
  acc.add({record(1, E, {0, 0, 1, 1, 2, 2, 3, 3}), record(3, E, {1, 1, 1, 1, 1, 1, 1, 1})},
          ids_of({10, 11, 12, 13, 10, 11, 12, 13}, 2, 4), "text");
  RoutingStats s = acc.finish();
  const std::string path = testing::TempDir() + "/routing_test.h5";
  {
    h5::File f(path);
    write_routing_h5(s, f.root().group("routing"), [](int64_t id) { return "tok" + std::to_string(id); });
    f.commit();
  }
  Shape shape;
  auto counts = h5::read_doubles(path, "/routing/tokens_per_expert", &shape);
  EXPECT_EQ(shape, (Shape{2, 4}));
  EXPECT_EQ(counts, (std::vector<double>{2, 2, 2, 2, 0, 8, 0, 0}));
  EXPECT_EQ(h5::read_string_attr(path, "/routing/tokens_per_expert", "units"), "tokens");
  auto cv = h5::read_doubles(path, "/routing/cv");
  EXPECT_NEAR(cv[1], std::sqrt(3.0), 1e-12);
  auto text = h5::read_strings(path, "/routing/layer_3/top_tokens_text");
  EXPECT_EQ(text[1 * 10 + 0], "tok10");  // expert 1's most frequent token: 10 (count 2, smallest id)
  auto prob = h5::read_doubles(path, "/routing/transition_1_3/prob", &shape);
  EXPECT_EQ(shape, (Shape{4, 4}));
  EXPECT_DOUBLE_EQ(prob[2 * 4 + 1], 1.0);
  nlohmann::json j = routing_summary_json(s, nullptr);
  EXPECT_EQ(j["layers"][1]["counts"][1], 8);
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace bmh
