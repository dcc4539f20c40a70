// Analytic compute, parameter and memory model of any ModelConfig, per block type.
//
// Conventions (stated once, used everywhere):
//  * A MAC is one multiply-add in a product of two operands (weight matrix, conv tap, scan state, q.k, p.v).
//    FLOPs = 2 * MACs + elementwise ops (norms, activations, gates, softplus/exp, softmax, rotary, residual
//    adds; one op per arithmetic operation, one per transcendental call). Only the MACs are checked against the
//    reference (tests/test_flops*.cpp counts them with bmh::ref::MacCounter); the elementwise ops are the
//    documented estimate below and are a few percent of the total.
//  * Per token: the cost of one new token given `context` positions in total (its own included), i.e. a decode
//    step at position context-1. Attention's score and value terms grow with context; Mamba's do not.
//  * A sequence of T tokens starting after `pos0` cached positions costs the sum of the per-token costs at
//    contexts pos0+1 .. pos0+T (causal: token t attends to pos0+t+1 keys).
//  * Training FLOPs = 3 x forward (backward = 2 x forward: gradients w.r.t. activations and weights).
//  * MoE: the router for every token plus only the top_k experts a token is routed to.
//  * The embedding lookup costs nothing; the LM head is d x V MACs.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/model_config.h"

namespace bmh {

// What an operation multiplies; matches bmh::ref::MacCounter's categories.
enum class MacKind { Linear, Conv, Scan, AttentionScores, AttentionValues };
constexpr int kMacKinds = 5;
const char* to_string(MacKind k);

// One named term of a block's cost, e.g. {"mamba.in_proj", Linear, 2*Di*d MACs, 0 ops}.
struct FlopTerm {
  std::string name;
  MacKind kind = MacKind::Linear;
  double macs = 0;        // multiply-adds
  double elementwise = 0; // other floating-point ops
  double flops() const { return 2 * macs + elementwise; }
};

struct BlockFlops {
  int block = -1;         // index in the family's layer list; -1 for the head (final norm + LM head)
  std::string kind;       // "mamba+moe", "attention+dense", "head", ...
  std::vector<FlopTerm> terms;
  double macs() const;
  double elementwise() const;
  double flops() const { return 2 * macs() + elementwise(); }
  double macs_of(MacKind k) const;
};

struct ModelFlops {
  std::vector<BlockFlops> blocks;  // every block in order, then the head
  double macs() const;
  double flops() const;
  double macs_of(MacKind k) const;
  double training_flops() const { return 3 * flops(); }
  // Sums of the same-named terms over all blocks (e.g. "mamba.scan"), in first-seen order.
  std::vector<FlopTerm> by_term() const;
};

// Block kind string: "<mixer>+<mlp>" with "parallel" appended for parallel blocks, e.g. "mamba+moe".
std::string block_kind(const BlockConfig& b);

// One token at the given context (>= 1).
BlockFlops block_flops_per_token(const ModelConfig& cfg, int block, int64_t context);
BlockFlops head_flops_per_token(const ModelConfig& cfg);
ModelFlops flops_per_token(const ModelConfig& cfg, int64_t context);
// T tokens after pos0 cached positions (prefill: pos0 = 0). Linear in T except the attention terms.
ModelFlops flops_sequence(const ModelConfig& cfg, int64_t T, int64_t pos0 = 0);

// Parameters, counted from the formulas (independent of core/model_weights.cpp's count, which tests compare).
struct ParamBreakdown {
  int64_t total = 0;
  int64_t active = 0;          // per token: top_k experts of each MoE block; tied embedding counted once
  int64_t embedding = 0;       // embed (and an untied head's weight counted separately in `head`)
  int64_t head = 0;            // untied lm_head weight + its bias; 0 when tied and bias-free
  int64_t mixer = 0;           // all Mamba / attention mixers incl. their norms
  int64_t mlp_dense = 0;       // dense MLPs incl. their norms
  int64_t moe_total = 0;       // all experts + routers incl. their norms
  int64_t moe_active = 0;      // top_k experts + routers incl. their norms
  int64_t final_norm = 0;
};
ParamBreakdown param_breakdown(const ModelConfig& cfg);

// Memory of one inference setting, in bytes.
struct MemoryEstimate {
  int64_t context = 0;
  int batch = 1;
  double weights = 0;          // total parameters x bytes per weight
  double mamba_state = 0;      // conv state (K-1)*Di + SSM state Di*N per Mamba block per sequence: constant
  double kv_cache = 0;         // 2 * n_heads * head_dim * context per attention block per sequence
  double total() const { return weights + mamba_state + kv_cache; }
};
// weight_bytes: bytes per weight (4 fp32, 2 bf16); state_bytes: bytes per state/cache element.
MemoryEstimate memory_estimate(const ModelConfig& cfg, int64_t context, int batch, int weight_bytes,
                               int state_bytes);

}  // namespace bmh
