// The training-time interface: a model whose parameters the optimizer owns and updates in place, with the
// loss and every parameter's exact gradient at the current parameters. The reference backend implements it
// (reference/backward_model.cpp); evals/model_loader.h's make_trainable builds one.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/language_model.h"
#include "core/model_config.h"
#include "core/tensor.h"

namespace bmh {

// Training-time routing: given one MoE block's fp32 router logits for all rows of the step, choose experts.
// moe_slot: index among the model's MoE blocks (in block order); logits: [rows * n_experts] row-major.
// Null hook = inference routing (Zyphra sigmoid-argmax, switch_mlp.py; Mixtral/Jamba softmax top-k, core/router.h).
//   choose        blocks with top_k == 1 (BlackMamba's sigmoid router, or a softmax router with k = 1): fills
//                 expert[rows].
//   choose_topk   blocks with top_k > 1 (Mixtral/Jamba): fills expert[rows * k], k distinct experts per row in
//                 slot order. When it is empty those blocks keep inference routing (softmax top-k), whatever
//                 `choose` does: a one-expert choice has no meaning for a k-slot block.
// The gate values stay the router's for the chosen experts, with gradient: the sigmoid of the chosen logit
// (Zyphra), the softmax weights of the k chosen experts, renormalised over them for Mixtral (as forced routes,
// core/router.h). An expert outside [0, E) or a repeated expert within a row is an error.
//   softmax_gate  sigmoid top-1 blocks (Zyphra's router) decided by `choose`: the gate is instead the softmax probability of the chosen
//                 expert over all E logits, with gradient through the softmax (Zyphra switch_mlp.py, the
//                 non-sinkhorn branch: `route = torch.softmax(route, dim=1); max_prob, max_ind = torch.max(route,
//                 dim=1)`; output * max_prob).
//   aux_loss_coef the Switch Transformer load-balancing loss (transformers modeling_mixtral.py
//                 load_balancing_loss_func, see LossAndGrad::aux_loss) enters the gradient with this weight
//                 (MixtralForCausalLM: loss += router_aux_loss_coef * aux_loss); 0 = not differentiated.
// A hook with neither function set keeps inference routing everywhere (it may still carry aux_loss_coef).
struct RoutingHook {
  std::function<void(int moe_slot, int rows, int n_experts, const float* logits, int64_t* expert)> choose;
  std::function<void(int moe_slot, int rows, int n_experts, int k, const float* logits, int64_t* expert)> choose_topk =
      nullptr;  // initialised so that RoutingHook{choose} stays warning-free
  bool softmax_gate = false;
  double aux_loss_coef = 0;
};

struct LossAndGrad {
  double loss = 0;                   // mean next-token cross-entropy of logits[:, :-1] vs ids[:, 1:]
  TensorMap grads;                   // canonical name (core/model_weights.h) -> same dtype/shape as the parameter
  std::vector<RouteRecord> routes;   // experts chosen per MoE block this step, k per row (for load statistics)
  // Switch Transformer load-balancing loss (transformers modeling_mixtral.py load_balancing_loss_func, no
  // attention mask): the router logits of every MoE block concatenated over all B*T rows (N = n_moe * B * T
  // rows), p = softmax(logits), f_e = (slots routed to e) / N (k slots per row, so sum_e f_e = k; transformers
  // means its one-hot [N, k, E] over rows and sums over k), P_e = mean_n p_{n,e}; aux_loss = E * sum_e f_e P_e
  // (1 per slot when balanced: k for top-k). f is a constant (top-k is not differentiated); the gradient holds
  // aux_loss_coef * d aux_loss through P only. -1 when the model has no MoE block or its blocks differ in E
  // (transformers concatenates the layers' logits, which needs one E). Not included in `loss`.
  double aux_loss = -1;
};

class TrainableModel {
 public:
  virtual ~TrainableModel() = default;
  virtual const ModelConfig& config() const = 0;
  virtual std::string describe() const = 0;             // "cpu fp32"
  // Parameters by canonical name (F32 for fp32, F64 for fp64), owned; the optimizer updates them in place.
  virtual TensorMap& parameters() = 0;
  // ids int64 [B, T]; forward + backward at the current parameters.
  virtual LossAndGrad loss_and_grad(const Tensor& ids, const RoutingHook* hook = nullptr) = 0;
  // Same loss without gradients (held-out evaluation).
  virtual double loss(const Tensor& ids, const RoutingHook* hook = nullptr) = 0;
};

}  // namespace bmh
