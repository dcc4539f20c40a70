#include "evals/router_precision.h"

#include <algorithm>

#include "core/error.h"

namespace bmh {

RouterPrecisionComparison::RouterPrecisionComparison(LanguageModel& lm, RouterPrecision model_mode)
    : lm_(lm), model_mode_(model_mode) {
  if (!model_mode_.model_dtype) fail("router precision comparison: the second mode must be a model-dtype mode");
  for (int b : lm.config().moe_blocks()) layers_.push_back({b});
  if (layers_.empty()) fail("router precision comparison: ", lm.config().name, " has no MoE blocks");
}

void RouterPrecisionComparison::add(const Tensor& ids, const std::vector<int>* lengths) {
  const RouterPrecision exact;
  ForwardOptions a, m;
  a.router_precision = &exact;
  m.router_precision = &model_mode_;
  const ForwardOutput fa = lm_.forward(ids, a), fm = lm_.forward(ids, m);
  const int64_t B = ids.dim(0), T = ids.dim(1);
  for (size_t l = 0; l < layers_.size(); ++l) {
    const RouteRecord &ra = fa.routes.at(l), &rm = fm.routes.at(l);
    const int k = ra.top_k;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0, n = lengths ? std::min<int64_t>((*lengths)[b], T) : T; t < n; ++t) {
        const int64_t i = b * T + t;
        std::vector<int64_t> ea(ra.expert.begin() + i * k, ra.expert.begin() + (i + 1) * k);
        std::vector<int64_t> em(rm.expert.begin() + i * k, rm.expert.begin() + (i + 1) * k);
        std::sort(ea.begin(), ea.end());
        std::sort(em.begin(), em.end());
        PrecisionLayerDiff& d = layers_[l];
        ++d.tokens;
        d.differ += ea != em;
        if (!rm.tie.empty()) d.ties_model += rm.tie[i];
        if (!ra.tie.empty()) d.ties_exact += ra.tie[i];
      }
  }
}

}  // namespace bmh
