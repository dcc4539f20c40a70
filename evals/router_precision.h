// How much the router's arithmetic matters: the same inputs run with exact (fp32) routing and with the model
// dtype's routing (--router-precision model; core/router.h), compared per MoE layer. End to end: a different
// route in one layer changes the inputs of every later one, so later layers' differences include that cascade.
#pragma once
#include <cstdint>
#include <vector>

#include "core/language_model.h"

namespace bmh {

struct PrecisionLayerDiff {
  int block = 0;
  int64_t tokens = 0;
  int64_t differ = 0;       // tokens whose k experts (as a set) differ between the two modes
  int64_t ties_model = 0;   // tokens where the model-dtype mode broke a tie of equal gates by index
  int64_t ties_exact = 0;   // the same under exact routing
};

// Accumulates over batches; `lengths` [B] (optional) excludes right padding.
class RouterPrecisionComparison {
 public:
  RouterPrecisionComparison(LanguageModel& lm, RouterPrecision model_mode);
  void add(const Tensor& ids, const std::vector<int>* lengths = nullptr);
  const std::vector<PrecisionLayerDiff>& layers() const { return layers_; }

 private:
  LanguageModel& lm_;
  RouterPrecision model_mode_;
  std::vector<PrecisionLayerDiff> layers_;
};

}  // namespace bmh
