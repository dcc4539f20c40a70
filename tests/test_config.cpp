// Config parsing for every family: the fixtures' configs give the block structure the official loaders build,
// both GPT-NeoX spellings agree, Zyphra's mamba_moe_layers entries parse as create_block reads them, and
// --expert-act changes the experts' activation and nothing else.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/config_json.h"
#include "core/error.h"
#include "core/model_weights.h"
#include "core/presets.h"
#include "evals/model_loader.h"
#include "test_util.h"

namespace bmh {
namespace {

namespace fs = std::filesystem;

fs::path temp_config(const std::string& json) {
  fs::path d = fs::temp_directory_path() / ("bmh_cfg_" + std::to_string(::getpid()) + "_" +
                                            ::testing::UnitTest::GetInstance()->current_test_info()->name());
  fs::create_directories(d);
  std::ofstream(d / "config.json") << json;
  return d;
}

// model_config_from_json(parse_config_json(text)) is load_model_config without the file (what tests/fuzz fuzzes).
TEST(Config, FromJsonIsLoadWithoutTheFile) {
  for (const char* fam : {"blackmamba-tiny", "mamba-tiny-ssm", "mamba-tiny-hf", "pythia-tiny"}) {
    const std::string dir = test::fixture_dir(fam);
    std::ifstream in(dir + "/config.json");
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const ModelConfig a = load_model_config(dir), b = model_config_from_json(parse_config_json(text, "mem"), dir);
    EXPECT_EQ(b.family, a.family) << fam;
    EXPECT_EQ(b.name, a.name) << fam;
    EXPECT_EQ(b.n_blocks(), a.n_blocks()) << fam;
    EXPECT_EQ(b.moe_blocks(), a.moe_blocks()) << fam;
    EXPECT_EQ(count_parameters(b).total, count_parameters(a).total) << fam;
  }
  try {
    (void)parse_config_json("[1, 2]", "mem/config.json");
    ADD_FAILURE() << "a JSON array parsed as a config";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("mem/config.json"), std::string::npos) << e.what();
  }
}

TEST(Config, ZyphraBlackMambaFixture) {
  ModelConfig c = load_model_config(test::fixture_dir("blackmamba-tiny"));
  EXPECT_EQ(c.family, "zyphra-blackmamba");
  ASSERT_EQ(c.n_blocks(), 4);
  EXPECT_EQ(c.blocks[0].mixer, MixerKind::Mamba);
  EXPECT_EQ(c.blocks[0].mlp, MlpKind::None);
  EXPECT_EQ(c.blocks[1].mixer, MixerKind::None);
  EXPECT_EQ(c.blocks[1].mlp, MlpKind::Moe);
  EXPECT_EQ(c.blocks[1].ffn.n_experts, 8);
  EXPECT_TRUE(c.blocks[1].ffn.gated);
  EXPECT_EQ(c.blocks[1].ffn.act, Activation::GeluErf);
  EXPECT_EQ(c.blocks[0].mamba.dt_rank, 4);  // ceil(64 / 16)
  EXPECT_EQ(c.blocks[0].mamba.d_inner, 128);
  EXPECT_EQ(c.final_norm, NormKind::LayerNorm);
  EXPECT_TRUE(c.final_norm_bias);
  EXPECT_TRUE(c.tie_embeddings);
  EXPECT_FALSE(c.lm_head_bias);
  EXPECT_EQ(c.moe_blocks(), (std::vector<int>{1, 3}));
}

TEST(Config, ZyphraVariantWithBiasesDenseLayerAndPlainGelu) {
  ModelConfig c = load_model_config(test::fixture_dir("blackmamba-tiny-variant"));
  EXPECT_EQ(c.blocks[1].ffn.n_experts, 4);
  EXPECT_EQ(c.blocks[3].mlp, MlpKind::Dense);
  EXPECT_FALSE(c.blocks[3].ffn.gated);
  EXPECT_TRUE(c.blocks[3].ffn.bias);
  EXPECT_TRUE(c.blocks[0].mamba.in_proj_bias);
  EXPECT_TRUE(c.blocks[0].mamba.out_proj_bias);
  EXPECT_TRUE(c.lm_head_bias);
}

TEST(Config, ZyphraParallelBlocksAndEmptyLayerList) {
  auto d = temp_config(R"({"num_layers": 3, "hidden_size": 32, "state_size": 8, "conv_dimension": 4,
    "vocab_size": 100, "expansion_factor": 2, "mamba_moe_layers": ["r2", "r1", "r"], "ffn_hidden_size": 64,
    "add_bias_linear": false, "swiglu": true, "max_sequence_length": 512, "bias": false})");
  ModelConfig c = load_model_config(d.string());
  EXPECT_TRUE(c.blocks[0].parallel);
  EXPECT_EQ(c.blocks[0].mixer, MixerKind::Mamba);
  EXPECT_EQ(c.blocks[0].mlp, MlpKind::Moe);
  EXPECT_EQ(c.blocks[0].ffn.n_experts, 2);
  EXPECT_EQ(c.blocks[1].mlp, MlpKind::Dense);
  EXPECT_TRUE(c.blocks[1].parallel);
  EXPECT_FALSE(c.blocks[2].parallel);
  // Canonical names for the parallel block map onto Zyphra's norm_moe / moe modules.
  bool has_mlp_norm = false;
  for (const auto& w : expected_weights(c)) has_mlp_norm |= w.name == "blocks.0.mlp_norm.weight";
  EXPECT_TRUE(has_mlp_norm);
  auto e = temp_config(R"({"num_layers": 2, "hidden_size": 32, "state_size": 8, "conv_dimension": 4,
    "vocab_size": 100, "expansion_factor": 2, "mamba_moe_layers": [], "ffn_hidden_size": 64,
    "add_bias_linear": false, "swiglu": true, "max_sequence_length": 512})");
  ModelConfig all_mamba = load_model_config(e.string());
  EXPECT_EQ(all_mamba.blocks[1].mixer, MixerKind::Mamba);
  fs::remove_all(d);
  fs::remove_all(e);
}

TEST(Config, ZyphraRefusesEntriesCreateBlockWouldMisread) {
  for (std::string bad : {"16", "12", "x", "r0", "0", "rr"}) {
    auto d = temp_config(R"({"num_layers": 2, "hidden_size": 32, "state_size": 8, "conv_dimension": 4,
      "vocab_size": 100, "expansion_factor": 2, "mamba_moe_layers": ["r", ")" + bad + R"("], "ffn_hidden_size": 64,
      "add_bias_linear": false, "swiglu": true, "max_sequence_length": 512})");
    try {
      load_model_config(d.string());
      ADD_FAILURE() << bad << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("mamba_moe_layers[1] = \"" + bad + "\""), std::string::npos) << e.what();
    }
    fs::remove_all(d);
  }
}

TEST(Config, DenseMambaBothLayouts) {
  ModelConfig ssm = load_model_config(test::fixture_dir("mamba-tiny-ssm"));
  ModelConfig hf = load_model_config(test::fixture_dir("mamba-tiny-hf"));
  EXPECT_EQ(ssm.family, "mamba-ssm");
  EXPECT_EQ(hf.family, "hf-mamba");
  for (const ModelConfig* c : {&ssm, &hf}) {
    EXPECT_EQ(c->n_blocks(), 2);
    EXPECT_EQ(c->vocab_size, 512);
    EXPECT_EQ(c->blocks[0].mamba.d_inner, 128);
    EXPECT_EQ(c->blocks[0].mamba.dt_rank, 4);
    EXPECT_EQ(c->final_norm, NormKind::RMSNorm);
    EXPECT_TRUE(c->tie_embeddings);
  }
}

TEST(Config, MambaSsmPadsVocabulary) {
  auto d = temp_config(R"({"d_model": 32, "n_layer": 1, "vocab_size": 50277, "ssm_cfg": {}, "rms_norm": true,
    "residual_in_fp32": true, "fused_add_norm": true, "pad_vocab_size_multiple": 8})");
  EXPECT_EQ(load_model_config(d.string()).vocab_size, 50280);
  fs::remove_all(d);
}

TEST(Config, GptNeoxBothSpellingsAgree) {
  ModelConfig v5 = load_model_config(test::fixture_dir("pythia-tiny"));
  // The Hub's Pythia spelling of the same model.
  auto d = temp_config(R"({"architectures": ["GPTNeoXForCausalLM"], "bos_token_id": 0, "eos_token_id": 0,
    "hidden_act": "gelu", "hidden_size": 64, "initializer_range": 0.02, "intermediate_size": 256,
    "layer_norm_eps": 1e-05, "max_position_embeddings": 256, "model_type": "gpt_neox", "num_attention_heads": 4,
    "num_hidden_layers": 2, "rotary_emb_base": 10000, "rotary_pct": 0.25, "tie_word_embeddings": false,
    "torch_dtype": "float16", "transformers_version": "4.24.0", "use_cache": true, "use_parallel_residual": true,
    "vocab_size": 512})");
  ModelConfig hub = load_model_config(d.string());
  ASSERT_EQ(hub.n_blocks(), v5.n_blocks());
  for (int i = 0; i < hub.n_blocks(); ++i) {
    EXPECT_EQ(hub.blocks[i].attn.rotary_dim, v5.blocks[i].attn.rotary_dim);
    EXPECT_EQ(hub.blocks[i].attn.rotary_dim, 4);
    EXPECT_EQ(hub.blocks[i].attn.rope_theta, v5.blocks[i].attn.rope_theta);
    EXPECT_EQ(hub.blocks[i].attn.qkv_bias, v5.blocks[i].attn.qkv_bias);
    EXPECT_EQ(hub.blocks[i].parallel, v5.blocks[i].parallel);
  }
  EXPECT_FALSE(v5.tie_embeddings);
  EXPECT_EQ(v5.norm, NormKind::LayerNorm);
  fs::remove_all(d);
}

TEST(Config, ExpertActChangesTheExpertsActivationAndNothingElse) {
  ConfigOptions silu;
  silu.override_expert_act = true;
  silu.expert_act = Activation::Silu;
  ModelConfig a = load_model_config(test::fixture_dir("blackmamba-tiny"));
  ModelConfig b = load_model_config(test::fixture_dir("blackmamba-tiny"), silu);
  ASSERT_EQ(a.n_blocks(), b.n_blocks());
  for (int i = 0; i < a.n_blocks(); ++i) {
    EXPECT_EQ(b.blocks[i].ffn.act, a.blocks[i].mlp == MlpKind::None ? a.blocks[i].ffn.act : Activation::Silu);
    BlockConfig x = b.blocks[i];
    x.ffn.act = a.blocks[i].ffn.act;
    EXPECT_EQ(x.ffn.gated, a.blocks[i].ffn.gated);
    EXPECT_EQ(x.mixer, a.blocks[i].mixer);
    EXPECT_EQ(x.mlp, a.blocks[i].mlp);
  }
  // Outputs: the Mamba blocks before the first MoE layer are untouched (hidden_states.0 equal), the logits move.
  ModelSpec sa, sb;
  sa.dir = sb.dir = test::fixture_dir("blackmamba-tiny");
  sb.config = silu;
  TensorMap exp = test::expected("blackmamba-tiny");
  ForwardOptions opt;
  opt.hidden_states = true;
  ForwardOutput fa = load_model(sa)->forward(exp.at("input_ids"), opt);
  ForwardOutput fb = load_model(sb)->forward(exp.at("input_ids"), opt);
  EXPECT_EQ(test::rel_frobenius(fa.hidden_states[0], fb.hidden_states[0]), 0.0);
  EXPECT_GT(test::rel_frobenius(fa.hidden_states[1], fb.hidden_states[1]), 1e-3);
  EXPECT_EQ(fa.routes[0].expert, fb.routes[0].expert);  // the first router sees identical inputs
}

TEST(Presets, PublishedShapesHaveThePapersParameterCounts) {
  // BlackMamba 2.8B: 2.8B total, 630M active (paper Table 1; 629M per ../shared/README.md's floor).
  ParamCount p = count_parameters(preset_config("blackmamba-2.8b"));
  EXPECT_NEAR(p.total / 1e9, 2.78, 0.05);
  EXPECT_NEAR(p.active / 1e6, 629, 3);
  ParamCount q = count_parameters(preset_config("blackmamba-1.5b"));
  EXPECT_NEAR(q.total / 1e9, 1.46, 0.05);
  EXPECT_NEAR(q.active / 1e6, 343, 5);
  EXPECT_NEAR(count_parameters(preset_config("pythia-1.4b")).total / 1e9, 1.41, 0.01);
  EXPECT_NEAR(count_parameters(preset_config("mamba-2.8b")).total / 1e9, 2.77, 0.01);
}

TEST(Presets, RandomWeightsAreSeededAndComplete) {
  ModelConfig c = preset_config("tiny-transformer-moe-50k");
  TensorMap a = random_weights(c, 1), b = random_weights(c, 1), other = random_weights(c, 2);
  EXPECT_EQ(a.size(), expected_weights(c).size());
  EXPECT_EQ(a.at("blocks.0.attn.qkv.weight").to_f32(), b.at("blocks.0.attn.qkv.weight").to_f32());
  EXPECT_NE(a.at("blocks.0.attn.qkv.weight").to_f32(), other.at("blocks.0.attn.qkv.weight").to_f32());
  EXPECT_THROW(preset_config("blackmamba-9b"), Error);
}

// The weights are generated in slices on every thread; a slice starts its tensor's stream at its first element, so
// the values are the same whatever the slice size: one element, 1000, or a whole tensor per slice (one stream
// walked from the start, as the weights were made before slicing), in every dtype and every init kind (a
// BlackMamba preset has all of them: norms, A_log, D, dt bias, conv and dt_proj fan-in, biases, residual outputs).
TEST(Presets, RandomWeightsDoNotDependOnTheSliceSize) {
  ModelConfig c = preset_config("tiny-blackmamba-50k");
  for (DType dt : {DType::F32, DType::BF16}) {
    TensorMap whole = random_weights(c, 3, dt, int64_t(1) << 40);
    for (int64_t chunk : {int64_t(1), int64_t(1000), int64_t(1) << 20}) {
      TensorMap sliced = random_weights(c, 3, dt, chunk);
      ASSERT_EQ(sliced.size(), whole.size());
      for (const auto& [name, t] : whole) {
        const Tensor& u = sliced.at(name);
        ASSERT_EQ(u.nbytes(), t.nbytes()) << name;
        EXPECT_EQ(std::memcmp(u.raw(), t.raw(), t.nbytes()), 0) << name << " chunk " << chunk;
      }
    }
  }
  EXPECT_THROW(random_weights(c, 3, DType::F32, 0), Error);
}

}  // namespace
}  // namespace bmh

namespace bmh {
namespace {

TEST(Config, ZyphraIgnoresKeysFromPretrainedNeverReads) {
  auto d = temp_config(R"({"num_layers": 2, "hidden_size": 32, "state_size": 8, "conv_dimension": 4,
    "vocab_size": 100, "expansion_factor": 2, "mamba_moe_layers": ["r", "8"], "ffn_hidden_size": 64,
    "add_bias_linear": false, "swiglu": true, "max_sequence_length": 512, "bias": true, "rms_norm": false})");
  ModelConfig c = load_model_config(d.string());
  EXPECT_EQ(c.norm, NormKind::RMSNorm) << "rms_norm in the JSON never reaches Zyphra's MambaConfig";
  EXPECT_FALSE(c.blocks[0].mamba.in_proj_bias) << "bias is overwritten by add_bias_linear";
  EXPECT_EQ(c.ignored_keys, (std::vector<std::string>{"bias", "rms_norm"}));
  fs::remove_all(d);
}

}  // namespace
}  // namespace bmh
