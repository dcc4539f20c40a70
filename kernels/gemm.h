// GEMMs through cuBLAS (cublasGemmEx / cublasGemmStridedBatchedEx), always with fp32 accumulation:
// CUBLAS_COMPUTE_32F for every dtype and CUBLAS_DEFAULT_MATH, so fp32 GEMMs never use TF32 (the fixtures were
// computed with TF32 off). bf16/fp16 operands may write a bf16/fp16 or an fp32 output; beta = 1 into an fp32 output
// fuses the residual add.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "kernels/device.h"

namespace bmh::cuda {

class Blas {
 public:
  explicit Blas(cudaStream_t stream = nullptr);
  ~Blas();
  Blas(const Blas&) = delete;
  Blas& operator=(const Blas&) = delete;
  cublasHandle_t handle() const { return h_; }
  cudaStream_t stream() const { return stream_; }
  void set_stream(cudaStream_t s);
  // The math mode and compute type every GEMM of this handle uses; a test asserts they exclude TF32.
  cublasMath_t math_mode() const;
  static cublasComputeType_t compute_type() { return CUBLAS_COMPUTE_32F; }

 private:
  cublasHandle_t h_ = nullptr;
  cudaStream_t stream_ = nullptr;
  DeviceBuffer workspace_;
};

// Row-major linear layer: y [M, N] (row stride ldy) = alpha * x [M, K] (row stride ldx) W^T + beta * y, with
// W [N, K] (row stride ldw) as torch.nn.Linear stores it. x and W have dtype `in`; y has dtype `out`
// (`in` or F32). Bias is not applied here (add_bias in kernels/bias_act.h).
void linear(const Blas& b, Dt in, Dt out, int M, int N, int K, const void* x, int ldx, const void* W, int ldw,
            void* y, int ldy, float alpha = 1.f, float beta = 0.f);

// Column-major pass-through for attention: C = alpha op(A) op(B) + beta C over `batch` strided problems.
void gemm_strided(const Blas& b, Dt in, Dt out, bool transa, bool transb, int m, int n, int k, float alpha,
                  const void* A, int lda, long long strideA, const void* B, int ldb, long long strideB, float beta,
                  void* C, int ldc, long long strideC, int batch);

}  // namespace bmh::cuda
