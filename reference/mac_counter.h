// Counts the multiply-adds the reference really performs, by category, so analytic FLOP formulas
// (core/flops.h) can be checked against what the code does. Thread-local; reset before a measured call.
#pragma once
#include <cstdint>

namespace bmh::ref {

struct MacCounter {
  int64_t linear = 0;            // projections, MLPs, experts, router, LM head: rows * out * in
  int64_t conv = 0;              // depthwise conv: T * Di * K
  int64_t scan = 0;              // selective scan: T * Di * N for each of the update and the C readout
  int64_t attention_scores = 0;  // q.k over the visible context: heads * head_dim * context, per query
  int64_t attention_values = 0;  // p.v, same count
  int64_t total() const { return linear + conv + scan + attention_scores + attention_values; }
};

MacCounter& mac_counter();       // this thread's counter
inline void reset_mac_counter() { mac_counter() = MacCounter{}; }

}  // namespace bmh::ref
