#include "kernels/device.h"

#include <cstring>

#include "core/error.h"
#include "core/half.h"

namespace bmh::cuda {

size_t dt_size(Dt t) { return t == Dt::F32 ? 4 : 2; }

const char* dt_name(Dt t) {
  switch (t) {
    case Dt::F32: return "fp32";
    case Dt::BF16: return "bf16";
    case Dt::F16: return "fp16";
  }
  return "?";
}

Dt dt_from_string(const std::string& s) {
  if (s == "fp32") return Dt::F32;
  if (s == "bf16") return Dt::BF16;
  if (s == "fp16") return Dt::F16;
  fail("cuda backend: unknown dtype '", s, "' (expected fp32, bf16 or fp16)");
}

void check(cudaError_t e, const char* what, const char* file, int line) {
  if (e == cudaSuccess) return;
  cudaGetLastError();  // clear a sticky non-fatal error so the next call is not blamed for it
  fail("CUDA error in ", what, ": ", cudaGetErrorName(e), " (", cudaGetErrorString(e), ") at ", file, ":", line);
}

bool device_available() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return n > 0;
}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  if (this != &o) {
    release();
    p_ = o.p_; n_ = o.n_;
    o.p_ = nullptr; o.n_ = 0;
  }
  return *this;
}

static std::string mib(size_t b) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f MiB", double(b) / (1024.0 * 1024.0));
  return buf;
}

void DeviceBuffer::alloc(size_t bytes, const std::string& what) {
  release();
  if (bytes == 0) return;
  cudaError_t e = cudaMalloc(&p_, bytes);
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    p_ = nullptr;
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    fail("CUDA out of memory allocating ", what, ": asked ", bytes, " bytes (", mib(bytes), "), ", free_b,
         " bytes (", mib(free_b), ") free of ", mib(total_b),
         "; hint: use a smaller batch or sequence length, or --dtype bf16 to halve weights and activations");
  }
  check(e, ("cudaMalloc for " + what).c_str(), __FILE__, __LINE__);
  n_ = bytes;
}

void DeviceBuffer::ensure(size_t bytes, const std::string& what) {
  if (bytes > n_) alloc(bytes, what);
}

void DeviceBuffer::release() {
  if (p_) cudaFree(p_);
  p_ = nullptr;
  n_ = 0;
}

void upload(void* dst, const void* src, size_t bytes, cudaStream_t s) {
  if (bytes == 0) return;
  if (s) BMH_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, s));
  else BMH_CUDA(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
}

void download(void* dst, const void* src, size_t bytes, cudaStream_t s) {
  if (bytes == 0) return;
  if (s) {
    BMH_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, s));
    BMH_CUDA(cudaStreamSynchronize(s));
  } else {
    BMH_CUDA(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
  }
}

void fill_nan(void* p, Dt t, size_t n, cudaStream_t s) {
  // 0xFF bytes are a NaN in fp32 (0xFFFFFFFF), bf16 (0xFFFF) and fp16 (0xFFFF).
  BMH_CUDA(cudaMemsetAsync(p, 0xFF, n * dt_size(t), s));
}

void fill_nan_f32(float* p, size_t n, cudaStream_t s) { fill_nan(p, Dt::F32, n, s); }

void f32_to_dt(const float* src, void* dst, Dt t, size_t n) {
  switch (t) {
    case Dt::F32: std::memcpy(dst, src, n * 4); break;
    case Dt::BF16: { auto* d = static_cast<uint16_t*>(dst); for (size_t i = 0; i < n; ++i) d[i] = f32_to_bf16(src[i]); break; }
    case Dt::F16: { auto* d = static_cast<uint16_t*>(dst); for (size_t i = 0; i < n; ++i) d[i] = f32_to_f16(src[i]); break; }
  }
}

void dt_to_f32(const void* src, float* dst, Dt t, size_t n) {
  switch (t) {
    case Dt::F32: std::memcpy(dst, src, n * 4); break;
    case Dt::BF16: { auto* s = static_cast<const uint16_t*>(src); for (size_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(s[i]); break; }
    case Dt::F16: { auto* s = static_cast<const uint16_t*>(src); for (size_t i = 0; i < n; ++i) dst[i] = f16_to_f32(s[i]); break; }
  }
}

int sm_count() {
  static const int n = [] {
    int dev = 0, v = 0;
    BMH_CUDA(cudaGetDevice(&dev));
    BMH_CUDA(cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, dev));
    return v;
  }();
  return n;
}

}  // namespace bmh::cuda
