#include "core/weight_finite.h"

#include <cstdio>
#include <cstring>

#include "core/error.h"

namespace bmh {

namespace {
// An IEEE value is NaN or Inf exactly when its exponent bits are all ones.
template <class Bits>
int64_t scan(const void* data, int64_t n, Bits exp_mask, int64_t* first) {
  int64_t count = 0;
  *first = -1;
  const auto* p = static_cast<const uint8_t*>(data);
  for (int64_t i = 0; i < n; ++i) {
    Bits b;
    std::memcpy(&b, p + size_t(i) * sizeof(Bits), sizeof(Bits));  // borrowed data may be unaligned
    if ((b & exp_mask) == exp_mask) {
      if (count++ == 0) *first = i;
    }
  }
  return count;
}
}  // namespace

int64_t count_nonfinite(const Tensor& t, int64_t* first) {
  *first = -1;
  if (t.numel() == 0) return 0;
  switch (t.dtype()) {
    case DType::F32: return scan<uint32_t>(t.raw(), t.numel(), 0x7f800000u, first);
    case DType::F64: return scan<uint64_t>(t.raw(), t.numel(), 0x7ff0000000000000ull, first);
    case DType::BF16: return scan<uint16_t>(t.raw(), t.numel(), uint16_t(0x7f80), first);
    case DType::F16: return scan<uint16_t>(t.raw(), t.numel(), uint16_t(0x7c00), first);
    default: return 0;  // integer tensors cannot hold NaN
  }
}

void check_finite_weights(const Checkpoint& ckpt, bool allow) {
  for (const auto& [name, t] : ckpt.tensors) {
    int64_t first = -1;
    const int64_t bad = count_nonfinite(t, &first);
    if (!bad) continue;
    const auto f = ckpt.file_of.find(name);
    const std::string file = f == ckpt.file_of.end() ? std::string("checkpoint") : f->second;
    const auto* at = static_cast<const uint8_t*>(t.raw()) + size_t(first) * dtype_size(t.dtype());
    const double v = Tensor::borrow(t.dtype(), {1}, at, nullptr).to_f64()[0];
    if (!allow)
      fail(file, ": tensor '", name, "' ", t.describe(), " holds ", bad, " non-finite values (first: ", v,
           " at flat index ", first, "); --allow-nonfinite loads it anyway");
    std::fprintf(stderr, "bmh: warning: %s: tensor '%s' %s holds %lld non-finite values (first: %g at flat index %lld)\n",
                 file.c_str(), name.c_str(), t.describe().c_str(), (long long)bad, v, (long long)first);
  }
}

}  // namespace bmh
