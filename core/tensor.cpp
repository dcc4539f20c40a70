#include "core/tensor.h"

#include <cmath>
#include <cstring>
#include <sstream>

#include "core/error.h"
#include "core/half.h"

namespace bmh {

float f16_to_f32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ffu, bits;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else {  // subnormal: renormalize
      int e = -1;
      do { ++e; man <<= 1; } while (!(man & 0x400u));
      bits = sign | uint32_t(127 - 15 - e) << 23 | (man & 0x3ffu) << 13;
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | man << 13;
  } else {
    bits = sign | (exp + 112) << 23 | man << 13;
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t f32_to_f16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return uint16_t(sign | 0x7e00u);
  if (ax >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // overflow -> inf
  if (ax < 0x38800000u) {                                   // subnormal or zero in fp16
    float v;
    std::memcpy(&v, &ax, 4);
    return uint16_t(sign | uint32_t(std::nearbyint(v * 16777216.0f)));  // 2^24
  }
  uint32_t r = ax + 0xfffu + ((ax >> 13) & 1u);  // round to nearest even at bit 13
  return uint16_t(sign | ((r - 0x38000000u) >> 13));
}

size_t dtype_size(DType t) {
  switch (t) {
    case DType::F64: case DType::I64: return 8;
    case DType::F32: case DType::I32: return 4;
    case DType::BF16: case DType::F16: case DType::I16: return 2;
    case DType::I8: case DType::U8: case DType::Bool: return 1;
  }
  return 0;
}

static const struct { DType t; const char* name; } kDTypeNames[] = {
    {DType::F32, "F32"}, {DType::F64, "F64"}, {DType::BF16, "BF16"}, {DType::F16, "F16"},
    {DType::I64, "I64"}, {DType::I32, "I32"}, {DType::I16, "I16"}, {DType::I8, "I8"},
    {DType::U8, "U8"},   {DType::Bool, "BOOL"}};

const char* dtype_name(DType t) {
  for (auto& e : kDTypeNames) if (e.t == t) return e.name;
  return "?";
}

bool dtype_from_name(const std::string& name, DType* out) {
  for (auto& e : kDTypeNames)
    if (name == e.name) { *out = e.t; return true; }
  return false;
}

bool dtype_is_float(DType t) {
  return t == DType::F32 || t == DType::F64 || t == DType::BF16 || t == DType::F16;
}

std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << ']';
  return os.str();
}

int64_t shape_numel(const Shape& s) {
  for (auto d : s)
    if (d == 0) return 0;  // [2^40, 2^40, 0] is empty, not an overflow
  int64_t n = 1;
  for (auto d : s)
    if (__builtin_mul_overflow(n, d, &n)) fail("shape ", shape_str(s), " has more elements than int64 can count");
  return n;
}

Tensor Tensor::zeros(DType dtype, Shape shape) {
  for (auto d : shape)
    if (d < 0) fail("negative dimension in shape ", shape_str(shape));
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  size_t bytes;
  if (__builtin_mul_overflow(size_t(t.numel()), dtype_size(dtype), &bytes))
    fail("tensor ", t.describe(), " has more bytes than memory can address");
  auto buf = std::shared_ptr<uint8_t[]>(new uint8_t[bytes ? bytes : 1]());
  t.data_ = buf.get();
  t.owner_ = std::shared_ptr<const void>(buf, buf.get());
  t.owned_ = true;
  return t;
}

Tensor Tensor::borrow(DType dtype, Shape shape, const void* data, std::shared_ptr<const void> owner) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.data_ = data;
  t.owner_ = std::move(owner);
  return t;
}

Tensor Tensor::from_f32(const std::vector<float>& v, Shape shape) {
  if (shape_numel(shape) != int64_t(v.size()))
    fail("from_f32: ", v.size(), " values do not fill shape ", shape_str(shape));
  Tensor t = zeros(DType::F32, std::move(shape));
  if (!v.empty()) std::memcpy(t.raw_mut(), v.data(), v.size() * 4);  // v.data() may be null when empty
  return t;
}

Tensor Tensor::from_i64(const std::vector<int64_t>& v, Shape shape) {
  if (shape_numel(shape) != int64_t(v.size()))
    fail("from_i64: ", v.size(), " values do not fill shape ", shape_str(shape));
  Tensor t = zeros(DType::I64, std::move(shape));
  if (!v.empty()) std::memcpy(t.raw_mut(), v.data(), v.size() * 8);
  return t;
}

void* Tensor::raw_mut() {
  if (!owned_) fail("tensor ", describe(), " is borrowed (read-only)");
  return const_cast<void*>(data_);
}

template <class Out>
static std::vector<Out> convert_float(const Tensor& t) {
  const int64_t n = t.numel();
  std::vector<Out> out(n);
  switch (t.dtype()) {
    case DType::F32: { auto p = t.data<float>(); for (int64_t i = 0; i < n; ++i) out[i] = Out(p[i]); break; }
    case DType::F64: { auto p = t.data<double>(); for (int64_t i = 0; i < n; ++i) out[i] = Out(p[i]); break; }
    case DType::BF16: { auto p = t.data<uint16_t>(); for (int64_t i = 0; i < n; ++i) out[i] = Out(bf16_to_f32(p[i])); break; }
    case DType::F16: { auto p = t.data<uint16_t>(); for (int64_t i = 0; i < n; ++i) out[i] = Out(f16_to_f32(p[i])); break; }
    default: fail("expected a floating-point tensor, got ", t.describe());
  }
  return out;
}

std::vector<float> Tensor::to_f32() const { return convert_float<float>(*this); }
std::vector<double> Tensor::to_f64() const { return convert_float<double>(*this); }

std::vector<int64_t> Tensor::to_i64() const {
  const int64_t n = numel();
  std::vector<int64_t> out(n);
  switch (dtype_) {
    case DType::I64: if (n) std::memcpy(out.data(), data_, n * 8); break;  // data_ may be null when empty
    case DType::I32: { auto p = data<int32_t>(); for (int64_t i = 0; i < n; ++i) out[i] = p[i]; break; }
    case DType::I16: { auto p = data<int16_t>(); for (int64_t i = 0; i < n; ++i) out[i] = p[i]; break; }
    case DType::I8: { auto p = data<int8_t>(); for (int64_t i = 0; i < n; ++i) out[i] = p[i]; break; }
    case DType::U8: case DType::Bool: { auto p = data<uint8_t>(); for (int64_t i = 0; i < n; ++i) out[i] = p[i]; break; }
    default: fail("expected an integer tensor, got ", describe());
  }
  return out;
}

Tensor Tensor::reshaped(Shape shape) const {
  if (shape_numel(shape) != numel()) fail("cannot reshape ", describe(), " to ", shape_str(shape));
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

std::string Tensor::describe() const { return std::string(dtype_name(dtype_)) + " " + shape_str(shape_); }

}  // namespace bmh
