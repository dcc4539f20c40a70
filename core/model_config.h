// One model description for every family: a list of blocks, each a mixer {none, mamba, attention} and an MLP
// {none, dense, moe}, run in sequence or in parallel, plus embedding, final norm and head. Parsed from each
// family's own config.json (core/config_*.cpp) or built by a preset (core/presets.cpp).
//
// Residual scheme (pre-norm, residual stream kept in fp32 in every backend):
//   sequential: h = x + mixer(norm(x));  out = h + mlp(mlp_norm(h))      (a missing part is skipped)
//   parallel:   out = x + mixer(norm(x)) + mlp(mlp_norm(x))             (GPT-NeoX use_parallel_residual,
//                                                                         Zyphra "rN" MambaBlockParallelMoe)
// Zyphra's add->norm->mixer ordering (mamba_block.py) and mamba_ssm's Block are this same recurrence.
#pragma once
#include <string>
#include <vector>

namespace bmh {

enum class MixerKind { None, Mamba, Attention };
enum class MlpKind { None, Dense, Moe };
enum class NormKind { RMSNorm, LayerNorm };
enum class Activation { GeluErf, GeluTanh, Silu, Relu };
// SigmoidTop1: Zyphra switch_mlp.py (sigmoid of router logits, argmax, output scaled by that sigmoid value).
// SoftmaxTopK: Mixtral/Jamba (softmax over experts in fp32, top-k; Mixtral then renormalises the k weights to sum
// to 1 (modeling_mixtral.py MixtralSparseMoeBlock), Jamba does not (modeling_jamba.py JambaSparseMoeBlock): see
// MlpSpec::renormalize. Ties go to the lower expert index (core/router.h).
enum class RouterKind { SigmoidTop1, SoftmaxTopK };

const char* to_string(MixerKind);
const char* to_string(MlpKind);
const char* to_string(NormKind);
const char* to_string(Activation);
const char* to_string(RouterKind);
bool activation_from_string(const std::string& s, Activation* out);  // "gelu", "gelu_new", "silu", "relu"

struct MambaSpec {
  int d_inner = 0;   // expand * d_model
  int d_state = 0;   // N
  int d_conv = 0;    // K
  int dt_rank = 0;   // R
  bool in_proj_bias = false;
  bool out_proj_bias = false;
  bool conv_bias = true;
  // Jamba (modeling_jamba.py JambaMambaMixer): RMSNorms on dt [R], B [N] and C [N] after x_proj.
  bool inner_norms = false;
  double inner_norm_eps = 1e-6;
};

struct AttentionSpec {
  int n_heads = 0;
  int head_dim = 0;
  int rotary_dim = 0;        // leading dims of each head that rotate (GPT-NeoX rotary_pct * head_dim)
  double rope_theta = 10000;
  bool qkv_bias = false;     // fused query_key_value, GPT-NeoX per-head [q|k|v] layout
  bool out_bias = false;
  // Grouped-query attention (Mixtral/Jamba num_key_value_heads): key/value heads, each shared by
  // n_heads / n_kv_heads query heads (transformers repeat_kv). 0 = n_heads.
  int n_kv_heads = 0;
  // qkv rows: false = GPT-NeoX per-head [q|k|v]; true = [q (n_heads*head_dim) | k (n_kv*head_dim) |
  // v (n_kv*head_dim)], separate q/k/v projections fused at load (Mixtral, Jamba).
  bool grouped_qkv = false;
  int sliding_window = 0;    // Mistral/Mixtral: a query sees keys at most sliding_window-1 positions back; 0 = all
  int kv_heads() const { return n_kv_heads > 0 ? n_kv_heads : n_heads; }
};

struct MlpSpec {
  int d_ff = 0;              // hidden width of one expert / the dense MLP (fc1 has 2*d_ff rows when gated)
  bool gated = false;        // act(first half of fc1) * second half (Zyphra glu, mlp.py)
  Activation act = Activation::GeluErf;
  bool bias = false;         // fc1/fc2 biases
  int n_experts = 0;         // moe only
  int top_k = 1;
  RouterKind router = RouterKind::SigmoidTop1;
  bool renormalize = false;  // SoftmaxTopK: divide the k weights by their sum (Mixtral yes, Jamba no)
  bool router_bias = true;   // Zyphra's router is nn.Linear with bias, always
};

struct BlockConfig {
  MixerKind mixer = MixerKind::None;
  MlpKind mlp = MlpKind::None;
  bool parallel = false;
  MambaSpec mamba;
  AttentionSpec attn;
  MlpSpec ffn;
  bool is_moe() const { return mlp == MlpKind::Moe; }
};

struct ModelConfig {
  std::string family;        // "zyphra-blackmamba", "mamba-ssm", "hf-mamba", "hf-gpt-neox", "hf-mixtral",
                             // "hf-jamba", "preset"
  std::string name;          // directory or preset name, for printing
  int d_model = 0;
  int vocab_size = 0;        // rows of the embedding (padded vocab); logits have this width
  int max_seq_len = 2048;
  NormKind norm = NormKind::RMSNorm;       // block norms
  bool norm_bias = false;                  // block norms carry a bias (LayerNorm in GPT-NeoX)
  double norm_eps = 1e-5;
  NormKind final_norm = NormKind::RMSNorm;
  bool final_norm_bias = false;            // Zyphra: LayerNorm with bias (mamba_block.py MambaDecoder)
  double final_norm_eps = 1e-5;
  bool tie_embeddings = true;              // lm_head.weight == embed.weight
  bool lm_head_bias = false;               // Zyphra add_bias_linear: output_layer.bias
  std::vector<BlockConfig> blocks;         // index = the family's own layer index
  std::vector<std::string> ignored_keys;   // config keys the official loader ignores (Zyphra), for `bmh info`

  int n_blocks() const { return int(blocks.size()); }
  std::vector<int> moe_blocks() const;     // indices of blocks with an MoE MLP
};

// Parses <dir>/config.json of any supported family (detected from its keys) and applies the options.
struct ConfigOptions {
  bool override_expert_act = false;        // --expert-act
  Activation expert_act = Activation::GeluErf;
  bool allow_nonfinite = false;            // --allow-nonfinite: NaN/Inf weights warn instead of failing the load
};
ModelConfig load_model_config(const std::string& dir, const ConfigOptions& opt = {});
struct ConfigJson;
// What load_model_config does with dir/config.json once read: detects the family and parses it; name = the dir.
ModelConfig model_config_from_json(const ConfigJson& c, const std::string& name, const ConfigOptions& opt = {});

}  // namespace bmh
