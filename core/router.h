// The routing decision of one token, shared by the CPU reference, the tests and the CUDA backend's host checks:
// from the router logits to k (expert, gate weight) slots.
//
// SigmoidTop1 (Zyphra switch_mlp.py): p = sigmoid(logits); expert = first index of the maximal p (torch.max
//   returns the first occurrence); gate = p[expert].
// SoftmaxTopK (transformers modeling_mixtral.py MixtralSparseMoeBlock, modeling_jamba.py JambaSparseMoeBlock):
//   w = softmax(logits) in fp32; the k largest, in descending order; ties go to the LOWER expert index (torch.topk
//   leaves tied order unspecified; this is our rule, stated so that both backends agree); Mixtral then divides
//   the k weights by their sum, Jamba does not.
//
// Precision (--router-precision): `Exact` computes everything in the backend's own type T, which is what bmh
// always did. `Half` reproduces the released code run in bf16/fp16: BlackMamba rounds the logits to the half
// type, computes the sigmoid of that value and rounds it again (torch's half sigmoid), takes the first maximal
// index and uses that rounded value as the gate; Mixtral/Jamba round the logits, run softmax and top-k in fp32
// (F.softmax(..., dtype=torch.float)) and round the weights last (`routing_weights.to(hidden_states.dtype)`).
#pragma once
#include <cstdint>
#include <string>

#include "core/model_config.h"
#include "core/tensor.h"

namespace bmh {

// The user's choice: `fp32` (exact, today's behaviour) or `model` (the model dtype's rounding: on CUDA the
// compute dtype; on the CPU, which computes in fp32/fp64, no rounding unless `half` names bf16/fp16 to emulate).
struct RouterPrecision {
  bool model_dtype = false;
  DType half = DType::F32;  // F32 = no rounding; BF16 / F16 = round as a run in that dtype does
  std::string describe() const;
};
// Parses "fp32", "model", "bf16", "fp16" (the last two: model-dtype semantics in that dtype on any backend).
RouterPrecision parse_router_precision(const std::string& s);
// The rounding a backend computing in `compute` applies under `p`.
DType router_rounding(const RouterPrecision& p, DType compute);

struct TokenRoute {
  int64_t expert[8];
  double weight[8];
  bool tie = false;   // a maximal (top-1) or k-th (top-k) gate value was shared with an expert left out or later
};
constexpr int kMaxTopK = 8;

// Rounds v to the nearest bf16/fp16 value (round-to-nearest-even); F32/F64 leave it as is.
double round_to(DType half, double v);

// One token: `logits` [E] as the backend computed them, in T. `forced` (k entries or null) replaces the choice;
// the weights then are the router's for those experts (renormalised over them when the family renormalises).
template <class T>
TokenRoute route_token(const MlpSpec& s, const T* logits, DType half, const int64_t* forced = nullptr);

}  // namespace bmh
