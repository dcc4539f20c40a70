// FLOP, parameter and memory formulas (core/flops.h): hand-computed cases, agreement with the weight list
// (core/model_weights.h), and the multiply-adds the reference really performs (reference/mac_counter.h).
#include <gtest/gtest.h>

#include "core/error.h"
#include "core/flops.h"
#include "core/model_weights.h"
#include "core/presets.h"
#include "reference/mac_counter.h"
#include "reference/model.h"
#include "train/train_config.h"
#include "train/training_flops.h"

namespace bmh {
namespace {

const FlopTerm& term(const BlockFlops& b, const std::string& name) {
  for (const auto& t : b.terms)
    if (t.name == name) return t;
  ADD_FAILURE() << "no term " << name << " in block " << b.block;
  static FlopTerm none;
  return none;
}

ModelConfig hand_config() {
  ModelConfig c;
  c.name = "hand";
  c.d_model = 8;
  c.vocab_size = 10;
  BlockConfig m;
  m.mixer = MixerKind::Mamba;
  m.mamba = {16, 4, 3, 2, false, false, true};  // Di 16, N 4, K 3, R 2
  m.mlp = MlpKind::Moe;
  m.ffn.d_ff = 6;
  m.ffn.gated = true;
  m.ffn.n_experts = 5;
  m.ffn.top_k = 1;
  BlockConfig a;
  a.mixer = MixerKind::Attention;
  a.attn.n_heads = 2;
  a.attn.head_dim = 4;
  a.attn.rotary_dim = 1;
  a.mlp = MlpKind::Dense;
  a.ffn.d_ff = 12;
  c.blocks = {m, a};
  return c;
}

TEST(Flops, HandComputedTerms) {
  ModelConfig c = hand_config();
  BlockFlops m = block_flops_per_token(c, 0, 7);
  EXPECT_EQ(m.kind, "mamba+moe");
  EXPECT_DOUBLE_EQ(term(m, "mamba.in_proj").macs, 2 * 16 * 8);
  EXPECT_DOUBLE_EQ(term(m, "mamba.conv").macs, 16 * 3);
  EXPECT_DOUBLE_EQ(term(m, "mamba.x_proj").macs, (2 + 2 * 4) * 16);
  EXPECT_DOUBLE_EQ(term(m, "mamba.dt_proj").macs, 2 * 16);
  EXPECT_DOUBLE_EQ(term(m, "mamba.scan").macs, 2 * 16 * 4);
  EXPECT_DOUBLE_EQ(term(m, "mamba.out_proj").macs, 8 * 16);
  EXPECT_DOUBLE_EQ(term(m, "moe.router").macs, 5 * 8);
  EXPECT_DOUBLE_EQ(term(m, "moe.expert.fc1").macs, 2 * 6 * 8);  // gated: 2F rows, one expert active
  EXPECT_DOUBLE_EQ(term(m, "moe.expert.fc2").macs, 6 * 8);
  EXPECT_DOUBLE_EQ(m.macs_of(MacKind::Scan), 128);
  // Mamba does not depend on the context.
  EXPECT_DOUBLE_EQ(block_flops_per_token(c, 0, 1000).macs(), m.macs());

  BlockFlops a = block_flops_per_token(c, 1, 7);
  EXPECT_EQ(a.kind, "attention+dense");
  EXPECT_DOUBLE_EQ(term(a, "attention.qkv").macs, 3 * 8 * 8);
  EXPECT_DOUBLE_EQ(term(a, "attention.scores").macs, 2 * 4 * 7);
  EXPECT_DOUBLE_EQ(term(a, "attention.values").macs, 2 * 4 * 7);
  EXPECT_DOUBLE_EQ(term(a, "attention.dense").macs, 8 * 8);
  EXPECT_DOUBLE_EQ(term(a, "mlp.fc1").macs, 12 * 8);
  EXPECT_DOUBLE_EQ(term(a, "mlp.fc2").macs, 12 * 8);

  ModelFlops f = flops_per_token(c, 7);
  ASSERT_EQ(f.blocks.size(), 3u);
  EXPECT_DOUBLE_EQ(f.blocks[2].macs(), 10 * 8);  // head
  EXPECT_DOUBLE_EQ(f.macs(), m.macs() + a.macs() + 80);
  EXPECT_DOUBLE_EQ(f.flops(), 2 * f.macs() + m.elementwise() + a.elementwise() + f.blocks[2].elementwise());
  EXPECT_DOUBLE_EQ(f.training_flops(), 3 * f.flops());

  // A sequence of T = 5 after 3 cached positions: contexts 4..8, scores sum 2*4*(4+5+6+7+8).
  ModelFlops s = flops_sequence(c, 5, 3);
  EXPECT_DOUBLE_EQ(s.macs_of(MacKind::AttentionScores), 2 * 4 * 30);
  EXPECT_DOUBLE_EQ(s.macs_of(MacKind::Linear), 5 * f.macs_of(MacKind::Linear));
  double sum = 0;
  for (int ctx = 4; ctx <= 8; ++ctx) sum += flops_per_token(c, ctx).flops();
  EXPECT_NEAR(s.flops(), sum, 1e-9 * sum);
  // by_term merges the same names over blocks.
  double by = 0;
  for (const auto& t : s.by_term()) by += t.flops();
  EXPECT_NEAR(by, s.flops(), 1e-9 * sum);

  EXPECT_THROW(block_flops_per_token(c, 2, 1), Error);
  EXPECT_THROW(flops_per_token(c, 0), Error);
  EXPECT_THROW(flops_sequence(c, 0), Error);
}

TEST(Flops, ParamsAndMemoryByHand) {
  ModelConfig c = hand_config();
  ParamBreakdown p = param_breakdown(c);
  const int64_t mamba = 8 + 2 * 16 * 8 + 16 * 3 + 16 + (2 + 8) * 16 + 16 * 2 + 16 + 16 * 4 + 16 + 8 * 16;
  const int64_t expert = 2 * 6 * 8 + 8 * 6;
  const int64_t attn = 8 + 3 * 8 * 8 + 8 * 8;
  const int64_t dense = 8 + 2 * 12 * 8;
  EXPECT_EQ(p.mixer, mamba + attn);
  EXPECT_EQ(p.moe_total, 8 + 5 * 8 + 5 + 5 * expert);
  EXPECT_EQ(p.moe_active, 8 + 5 * 8 + 5 + expert);
  EXPECT_EQ(p.mlp_dense, dense);
  EXPECT_EQ(p.embedding, 80);
  EXPECT_EQ(p.total, 80 + 8 + mamba + attn + dense + p.moe_total);
  EXPECT_EQ(p.total - p.active, 4 * expert);

  MemoryEstimate m = memory_estimate(c, 100, 2, 2, 4);
  EXPECT_DOUBLE_EQ(m.weights, 2.0 * p.total);
  EXPECT_DOUBLE_EQ(m.mamba_state, 2 * 4 * ((3 - 1) * 16 + 16 * 4));
  EXPECT_DOUBLE_EQ(m.kv_cache, 2 * 4 * 2.0 * 2 * 4 * 100);
  EXPECT_DOUBLE_EQ(memory_estimate(c, 200, 2, 2, 4).kv_cache, 2 * m.kv_cache);
  EXPECT_DOUBLE_EQ(memory_estimate(c, 200, 2, 2, 4).mamba_state, m.mamba_state);
}

// Every preset: the formula count equals the count over the weight list the loaders check.
TEST(Flops, ParamsAgreeWithWeightList) {
  for (const auto& name : preset_names()) {
    ModelConfig c = preset_config(name);
    ParamBreakdown p = param_breakdown(c);
    ParamCount q = count_parameters(c);
    EXPECT_EQ(p.total, q.total) << name;
    EXPECT_EQ(p.active, q.active) << name;
    EXPECT_EQ(p.embedding + (c.tie_embeddings ? 0 : int64_t(c.vocab_size) * c.d_model), q.embedding) << name;
  }
}

// The equal-FLOPs study's models (experiments/models/, loaded as bmh train --config loads them) are matched in
// active non-embedding parameters. Mixtral and Jamba counted by hand: a token uses the router and top_k = 2 of
// the 8 SwiGLU experts of an MoE block (3*F*d each), all of a dense MLP, attention with 2 key/value heads.
TEST(Flops, EqualFlopsModelsAreMatchedInActiveParams) {
  auto load = [](const std::string& file) {
    train::TrainConfig t;
    t.config = std::string(BMH_TEST_DIR) + "/../experiments/models/" + file;
    return train::resolve_model_config(t);
  };
  const int64_t d = 64, norm = d;
  const int64_t attn = norm + (4 + 2 * 2) * 16 * d + d * 4 * 16;
  const int64_t router = 8 * d;
  // mixtral-d64: 2 x (attention + top-2 of 8 experts, F 117), final RMSNorm.
  const ModelConfig mx = load("mixtral-d64.json");
  const int64_t mx_moe = norm + router + 2 * (3 * 117 * d);
  EXPECT_EQ(train::active_non_embedding_params(mx), 2 * (attn + mx_moe) + norm);
  EXPECT_EQ(param_breakdown(mx).moe_total - param_breakdown(mx).moe_active, 2 * 6 * (3 * 117 * d));
  // jamba-d64: Mamba + dense MLP, then attention + top-2 of 8 experts (F 122); the Mamba mixer's dt/B/C norms.
  const ModelConfig jb = load("jamba-d64.json");
  const int64_t Di = 128, N = 16, K = 4, R = 4;
  const int64_t mamba = norm + 2 * Di * d + Di * K + Di + (R + 2 * N) * Di + R * Di + Di + Di * N + Di + d * Di +
                        (R + 2 * N);
  EXPECT_EQ(train::active_non_embedding_params(jb),
            mamba + norm + 3 * 122 * d + attn + norm + router + 2 * 3 * 122 * d + norm);
  // Per token the MoE block's expert FLOPs are those of 2 experts, not 8 (nor 1).
  const BlockFlops b = block_flops_per_token(mx, 0, 1);
  EXPECT_EQ(term(b, "moe.expert.fc1").macs, 2.0 * (2 * 117 * d));
  EXPECT_EQ(term(b, "moe.expert.fc2").macs, 2.0 * (117 * d));
  // Every model of the study within 2% of BlackMamba's count.
  const double bm = double(train::active_non_embedding_params(load("blackmamba-d64.json")));
  for (const char* f : {"mamba-d60.json", "transformer-d64.json", "transformer-moe-d64.json", "mixtral-d64.json",
                        "jamba-d64.json"})
    EXPECT_NEAR(double(train::active_non_embedding_params(load(f))) / bm, 1.0, 0.02) << f;
}

std::vector<ModelConfig> counted_configs() {
  std::vector<ModelConfig> out;
  for (const char* dir : {"blackmamba-tiny", "blackmamba-tiny-variant", "mamba-tiny-hf", "pythia-tiny", "mixtral-tiny",
                          "jamba-tiny"})
    out.push_back(load_model_config(std::string(BMH_TEST_DIR) + "/fixtures/" + dir));
  for (const char* name : {"tiny-transformer-moe-50k", "tiny-transformer-50k"}) {
    ModelConfig c = preset_config(name);
    c.vocab_size = 300;  // the head dominates otherwise; the formulas take any vocabulary
    out.push_back(c);
  }
  return out;
}

void expect_counts(const ref::MacCounter& got, const ModelFlops& f, const std::string& what) {
  EXPECT_GT(got.total(), 0) << what;
  EXPECT_EQ(double(got.linear), f.macs_of(MacKind::Linear)) << what;
  EXPECT_EQ(double(got.conv), f.macs_of(MacKind::Conv)) << what;
  EXPECT_EQ(double(got.scan), f.macs_of(MacKind::Scan)) << what;
  EXPECT_EQ(double(got.attention_scores), f.macs_of(MacKind::AttentionScores)) << what;
  EXPECT_EQ(double(got.attention_values), f.macs_of(MacKind::AttentionValues)) << what;
  EXPECT_EQ(double(got.total()), f.macs()) << what;
}

// The reference's own multiply-add count, by category: a sequence from the empty state, one decode step, then a
// chunk of tokens after cached positions. RefModel::run works on the calling thread, whose counter we read.
TEST(Flops, FormulasMatchTheCountedReference) {
  for (const ModelConfig& c : counted_configs()) {
    ref::RefModel<float> model(c, random_weights(c, 7));
    auto state = model.new_state();
    const int64_t T = 9;
    std::vector<int64_t> ids(T);
    for (int64_t i = 0; i < T; ++i) ids[i] = (i * 37 + 5) % c.vocab_size;
    ref::reset_mac_counter();
    model.run(ids, state, nullptr);
    expect_counts(ref::mac_counter(), flops_sequence(c, T), c.name + " sequence T=9");

    ref::reset_mac_counter();
    model.run({3}, state, nullptr);
    expect_counts(ref::mac_counter(), flops_per_token(c, T + 1), c.name + " decode step at context 10");

    ref::reset_mac_counter();
    model.run({4, 5, 6}, state, nullptr);
    expect_counts(ref::mac_counter(), flops_sequence(c, 3, T + 1), c.name + " 3 tokens after 10 cached");
  }
}

}  // namespace
}  // namespace bmh
