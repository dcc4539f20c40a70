// CudaModel: weights, workspace, prefill (forward / score / decoder prefill) over the block list and the LM head;
// each block's mixer and MLP are in cuda_model_blocks.cpp.
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "kernels/bias_act.cuh"
#include "kernels/cuda_backend.h"
#include "kernels/cuda_model.h"
#include "kernels/embedding.cuh"
#include "kernels/gemv.cuh"
#include "kernels/logits.cuh"
#include "kernels/norm.cuh"

namespace bmh {

std::unique_ptr<LanguageModel> make_cuda_model(const ModelConfig& cfg, const TensorMap& canonical,
                                               const std::string& dtype) {
  cuda::Dt dt = cuda::dt_from_string(dtype);
  if (!cuda::device_available()) fail("--backend cuda: no CUDA device is available (cudaGetDeviceCount)");
  return std::make_unique<cuda::CudaModel>(cfg, canonical, dt);
}

namespace cuda {

void DecodeState::allocate(const ModelConfig& cfg, Dt dt, int batch, int S_max, const std::string& what) {
  bufs.clear();
  is_kv.clear();
  ptrs = StatePtrs{};
  const int L = cfg.n_blocks();
  ptrs.conv.assign(L, nullptr);
  ptrs.ssm.assign(L, nullptr);
  ptrs.k.assign(L, nullptr);
  ptrs.v.assign(L, nullptr);
  ptrs.S_max = S_max;
  for (int i = 0; i < L; ++i) {
    const BlockConfig& b = cfg.blocks[i];
    const std::string tag = what + " block " + std::to_string(i);
    if (b.mixer == MixerKind::Mamba) {
      const MambaSpec& m = b.mamba;
      bufs.emplace_back(size_t(batch) * std::max(m.d_conv - 1, 1) * m.d_inner * 4, tag + " conv state");
      ptrs.conv[i] = bufs.back().as<float>();
      bufs.emplace_back(size_t(batch) * m.d_inner * m.d_state * 4, tag + " ssm state");
      ptrs.ssm[i] = bufs.back().as<float>();
      is_kv.insert(is_kv.end(), {0, 0});
    } else if (b.mixer == MixerKind::Attention) {
      const size_t n = size_t(batch) * b.attn.kv_heads() * S_max * b.attn.head_dim * dt_size(dt);
      bufs.emplace_back(n, tag + " key cache (" + std::to_string(S_max) + " positions)");
      ptrs.k[i] = bufs.back().get();
      bufs.emplace_back(n, tag + " value cache (" + std::to_string(S_max) + " positions)");
      ptrs.v[i] = bufs.back().get();
      is_kv.insert(is_kv.end(), {1, 1});
    }
  }
}

void DecodeState::zero(cudaStream_t s) {
  for (auto& b : bufs) BMH_CUDA(cudaMemsetAsync(b.get(), 0, b.bytes(), s));
}

void DecodeState::zero_recurrent(cudaStream_t s) {
  for (size_t i = 0; i < bufs.size(); ++i)
    if (!is_kv[i]) BMH_CUDA(cudaMemsetAsync(bufs[i].get(), 0, bufs[i].bytes(), s));
}

CudaModel::CudaModel(const ModelConfig& cfg, const TensorMap& canonical, Dt dt) : cfg_(cfg) {
  for (int i = 0; i < cfg.n_blocks(); ++i) {
    const BlockConfig& b = cfg.blocks[i];
    if (b.mlp == MlpKind::Moe && (b.ffn.top_k > 8 || (b.ffn.router == RouterKind::SoftmaxTopK && b.ffn.n_experts > 32)))
      fail("cuda backend: block ", i, " routes top-", b.ffn.top_k, " of ", b.ffn.n_experts,
           " experts; the CUDA router handles top-k <= 8 and softmax over <= 32 experts");
    if (b.mixer == MixerKind::Attention && !b.attn.grouped_qkv && b.attn.kv_heads() != b.attn.n_heads)
      fail("cuda backend: block ", i, " has key/value heads but GPT-NeoX's per-head qkv layout");
    if (b.mixer == MixerKind::Attention && b.attn.head_dim > 256)
      fail("cuda backend: block ", i, " head_dim ", b.attn.head_dim, " > 256");
    if (b.mixer == MixerKind::Mamba && b.mamba.d_state > 64)
      fail("cuda backend: block ", i, " d_state ", b.mamba.d_state, " > 64");
  }
  BMH_CUDA(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  blas_ = std::make_unique<Blas>(stream_);
  w_ = upload_weights(cfg, canonical, dt);
}

CudaModel::~CudaModel() {
  side_blas_.clear();
  for (cudaStream_t s : side_) cudaStreamDestroy(s);
  for (cudaEvent_t e : side_done_) cudaEventDestroy(e);
  if (fork_) cudaEventDestroy(fork_);
  blas_.reset();
  if (stream_) cudaStreamDestroy(stream_);
}

void CudaModel::ensure_side_streams() {
  constexpr int kSide = 4;  // 8 experts of ~2k rows: two chains per stream keep every SM busy (op table, H200)
  if (!side_.empty()) return;
  BMH_CUDA(cudaEventCreateWithFlags(&fork_, cudaEventDisableTiming));
  for (int j = 0; j < kSide; ++j) {
    cudaStream_t s = nullptr;
    BMH_CUDA(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    side_.push_back(s);
    side_blas_.push_back(std::make_unique<Blas>(s));
    cudaEvent_t e = nullptr;
    BMH_CUDA(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    side_done_.push_back(e);
  }
}

// Above kGemvMaxRows dense projections run through cuBLAS and MoE experts through the grouped GEMV (gemv.cuh).
int CudaModel::max_decode_batch() const { return 256; }

std::string CudaModel::describe() const { return std::string("cuda ") + dt_name(w_.dt); }

void CudaModel::ensure_workspace(int B, int T) {
  const int R = B * T, d = cfg_.d_model;
  const size_t es = dt_size(w_.dt);
  size_t a = 0, b = 0, c = 0, dd = 0, e = 0, f32 = 0, f32b = 0, ints = 0;
  for (const BlockConfig& bc : cfg_.blocks) {
    if (bc.mixer == MixerKind::Mamba) {
      const MambaSpec& m = bc.mamba;
      a = std::max(a, size_t(R) * 2 * m.d_inner);
      b = std::max(b, size_t(R) * m.d_inner);
      c = std::max(c, size_t(R) * (m.dt_rank + 2 * m.d_state));
      dd = std::max(dd, size_t(R) * m.d_inner);
      e = std::max(e, size_t(R) * m.d_inner);
    } else if (bc.mixer == MixerKind::Attention) {
      const size_t hd = size_t(bc.attn.n_heads) * bc.attn.head_dim;
      a = std::max(a, size_t(R) * (bc.attn.n_heads + 2 * bc.attn.kv_heads()) * bc.attn.head_dim);
      b = std::max(b, size_t(R) * hd);
      dd = std::max(dd, size_t(R) * hd);  // grouped: rotated queries
      if (!use_flash_prefill(bc.attn, T)) {  // the cuBLAS path's [H, T, T] scores (fp32) and probabilities
        c = std::max(c, size_t(bc.attn.n_heads) * T * T);
        f32 = std::max(f32, size_t(bc.attn.n_heads) * T * T);
      }
    }
    if (bc.mlp != MlpKind::None) {
      const int F = bc.ffn.d_ff, F1 = bc.ffn.gated ? 2 * F : F;
      a = std::max(a, size_t(R) * F1);
      b = std::max(b, size_t(R) * F);
    }
    if (bc.mlp == MlpKind::Moe) {
      const int E = bc.ffn.n_experts, k = bc.ffn.top_k;
      if (kernel_variants().moe_prefill == MoePrefillVariant::Streams) {  // every expert's rows at once
        const int F = bc.ffn.d_ff, F1 = bc.ffn.gated ? 2 * F : F;
        a = std::max(a, size_t(R) * k * F1);
        b = std::max(b, size_t(R) * k * F);
      }
      c = std::max(c, size_t(R) * k * d);
      f32 = std::max(f32, size_t(R) * k * d);
      f32b = std::max(f32b, size_t(R) * E + size_t(R) * k);
      // expert, perm, inv [R*k]; tie [R]; offsets [E+1] + flag copy slot; scratch [2E]
      ints = std::max(ints, size_t(3) * R * k + R + 3 * E + 2);
    }
  }
  ws_resid_.ensure(size_t(R) * d * 4, "residual stream [B*T, d] fp32");
  ws_xn_.ensure(size_t(R) * d * es, "normed activations [B*T, d]");
  ws_xn2_.ensure(size_t(R) * d * es, "MLP-normed activations [B*T, d]");
  ws_a_.ensure(a * es, "prefill workspace a (in_proj / qkv / fc1 outputs)");
  ws_b_.ensure(b * es, "prefill workspace b (conv / attention / activation outputs)");
  ws_c_.ensure(c * es, "prefill workspace c (x_proj outputs / attention probabilities / permuted tokens)");
  ws_d_.ensure(dd * es, "prefill workspace d (dt)");
  ws_e_.ensure(e * es, "prefill workspace e (scan outputs)");
  ws_f32_.ensure(f32 * 4, "prefill workspace fp32 (attention scores / expert outputs)");
  ws_f32b_.ensure(f32b * 4, "router logits and gates");
  ws_int_.ensure(ints * 4, "MoE routing indices");
  ws_ids_.ensure(size_t(R) * 8, "input ids");
  if (!ws_flag_.bytes()) {
    ws_flag_.ensure(sizeof(int), "NaN-router flag");
    BMH_CUDA(cudaMemsetAsync(ws_flag_.get(), 0, sizeof(int), stream_));
  }
}

int router_half_mode(const RouterPrecision& p, Dt dt) {
  const DType r = router_rounding(p, dt == Dt::BF16 ? DType::BF16 : dt == Dt::F16 ? DType::F16 : DType::F32);
  return r == DType::BF16 ? 1 : r == DType::F16 ? 2 : 0;
}

void check_router_nan_flag(int flag, const std::string& where) {
  if (flag) fail(where, ": router logits of MoE block ", flag - 1, " are NaN (no expert can be chosen)");
}

void check_sliding_window(const ModelConfig& cfg, int64_t positions, const std::string& where) {
  for (int i = 0; i < cfg.n_blocks(); ++i) {
    const int w = cfg.blocks[i].attn.sliding_window;
    if (cfg.blocks[i].mixer == MixerKind::Attention && w > 0 && positions > w)
      fail(where, ": block ", i, " has sliding_window ", w, ", which binds at ", positions,
           " positions; the CUDA backend does not implement the window (the CPU reference does)");
  }
}

static Tensor download_f32(const void* p, Dt dt, int B, int T, int d, cudaStream_t s) {
  const size_t n = size_t(B) * T * d;
  std::vector<char> raw(n * dt_size(dt));
  download(raw.data(), p, raw.size(), s);
  Tensor t = Tensor::zeros(DType::F32, {B, T, d});
  dt_to_f32(raw.data(), t.data_mut<float>(), dt, n);
  return t;
}

void CudaModel::prefill_from_host(const int64_t* ids_host, int B, int T, const PrefillTrace& trace, const char* what) {
  ensure_workspace(B, T);
  if (scratch_B_ != B || scratch_T_ < T) {
    scratch_state_.allocate(cfg_, w_.dt, B, T, what);
    scratch_B_ = B;
    scratch_T_ = T;
  }
  scratch_state_.zero_recurrent(stream_);
  upload(ws_ids_.get(), ids_host, size_t(B) * T * 8, stream_);
  prefill_rows(ws_ids_.as<int64_t>(), B, T, scratch_state_.ptrs, trace);
}

void CudaModel::prefill_rows(const int64_t* ids_dev, int B, int T, const StatePtrs& st, const PrefillTrace& trace) {
  ensure_workspace(B, T);
  const int R = B * T, d = cfg_.d_model;
  const Dt dt = w_.dt;
  float* resid = ws_resid_.as<float>();
  embedding(dt, w_.embed.get(), ids_dev, R, d, resid, stream_);
  tick("embed");
  const bool neox = cfg_.family == "hf-gpt-neox" || cfg_.family == "hf-mixtral" || cfg_.family == "hf-jamba";
  const int half = router_half_mode(trace.precision ? *trace.precision : router_precision_, dt);
  check_sliding_window(cfg_, T, "cuda prefill");
  auto record = [&](const void* p, Dt t) {
    if (trace.hidden) trace.hidden->push_back(download_f32(p, t, B, T, d, stream_));
  };
  if (neox) record(resid, Dt::F32);
  int moe_index = 0;
  for (int i = 0; i < cfg_.n_blocks(); ++i) {
    const BlockConfig& bc = cfg_.blocks[i];
    const DevBlock& w = w_.blocks[i];
    auto nb = [](const DeviceBuffer& b) { return b.bytes() ? b.as<float>() : nullptr; };
    // Parallel blocks norm both branches from the same residual before either adds into it.
    const bool has_mlp = bc.mlp != MlpKind::None, has_mixer = bc.mixer != MixerKind::None;
    if (has_mixer)
      add_norm(cfg_.norm, dt, resid, nullptr, w.norm_w.as<float>(), nb(w.norm_b), cfg_.norm_eps, R, d, ws_xn_.get(),
               stream_);
    if (has_mlp && bc.parallel)
      add_norm(cfg_.norm, dt, resid, nullptr, w.mlp_norm_w.as<float>(), nb(w.mlp_norm_b), cfg_.norm_eps, R, d,
               ws_xn2_.get(), stream_);
    tick("norm");
    if (bc.mixer == MixerKind::Mamba) mamba_prefill(i, B, T, ws_xn_.get(), st.conv[i], st.ssm[i]);
    if (bc.mixer == MixerKind::Attention) attention_prefill(i, B, T, ws_xn_.get(), st.k[i], st.v[i], st.S_max);
    if (has_mlp) {
      if (!bc.parallel)
        add_norm(cfg_.norm, dt, resid, nullptr, w.mlp_norm_w.as<float>(), nb(w.mlp_norm_b), cfg_.norm_eps, R, d,
                 ws_xn2_.get(), stream_);
      tick("norm");
      if (bc.mlp == MlpKind::Dense) {
        mlp_prefill(i, R, ws_xn2_.get());
      } else {
        const int64_t* forced = trace.forced ? (*trace.forced)[moe_index] : nullptr;
        RouteRecord rec;
        moe_prefill(i, R, ws_xn2_.get(), forced, half, trace.routes ? &rec : nullptr);
        if (trace.routes) trace.routes->push_back(std::move(rec));
        ++moe_index;
      }
    }
    if (!neox || i + 1 < cfg_.n_blocks()) record(resid, Dt::F32);
  }
  add_norm(cfg_.final_norm, dt, resid, nullptr, w_.final_norm_w.as<float>(),
           w_.final_norm_b.bytes() ? w_.final_norm_b.as<float>() : nullptr, cfg_.final_norm_eps, R, d, ws_xn_.get(),
           stream_);
  tick("norm");
  record(ws_xn_.get(), dt);
}

void CudaModel::lm_head_rows(const void* x, int ldx, int M, float* logits, cudaStream_t s) {
  const int V = cfg_.vocab_size, d = cfg_.d_model;
  if (s != blas_->stream()) blas_->set_stream(s);
  linear(*blas_, w_.dt, Dt::F32, M, V, d, x, ldx, w_.head(), d, logits, V);
  add_bias(Dt::F32, logits, V, w_.lm_head_b.bytes() ? w_.lm_head_b.as<float>() : nullptr, M, V, s);
  if (s != stream_) blas_->set_stream(stream_);
  else tick("lm_head");
}

static std::vector<const int64_t*> upload_forced(const ModelConfig& cfg, const ForwardOptions& opt, int B, int T,
                                                 DeviceBuffer& buf, cudaStream_t s) {
  const std::vector<int> moe = cfg.moe_blocks();
  std::vector<const int64_t*> ptrs(moe.size(), nullptr);
  if (!opt.force_routes) return ptrs;
  size_t kmax = 1;
  for (int b : moe) kmax = std::max<size_t>(kmax, cfg.blocks[b].ffn.top_k);
  const size_t Rt = size_t(B) * T, R = Rt * kmax;  // slots per block in the buffer
  buf.ensure(std::max<size_t>(1, moe.size()) * R * 8, "forced routes");
  for (const auto& [block, experts] : *opt.force_routes) {
    auto it = std::find(moe.begin(), moe.end(), block);
    if (it == moe.end()) fail("forced routes name block ", block, ", which is not an MoE block");
    const size_t n = Rt * cfg.blocks[block].ffn.top_k;
    if (experts.size() != n)
      fail("forced routes for block ", block, " have ", experts.size(), " entries; expected B*T*k = ", n);
    const int E = cfg.blocks[block].ffn.n_experts;
    for (size_t r = 0; r < n; ++r)
      if (experts[r] < 0 || experts[r] >= E)
        fail("forced route for block ", block, " at slot ", r, " is expert ", experts[r], ", outside [0, ", E, ")");
    const size_t m = size_t(it - moe.begin());
    int64_t* dst = buf.as<int64_t>() + m * R;
    upload(dst, experts.data(), n * 8, s);
    ptrs[m] = dst;
  }
  BMH_CUDA(cudaStreamSynchronize(s));
  return ptrs;
}

ForwardOutput CudaModel::forward(const Tensor& ids, const ForwardOptions& opt) {
  check_input_ids(ids, cfg_.vocab_size, "input_ids");
  const int B = int(ids.dim(0)), T = int(ids.dim(1)), V = cfg_.vocab_size;
  ForwardOutput out;
  out.logits = Tensor::zeros(DType::F32, {B, T, V});
  if (B * T == 0) return out;
  std::vector<const int64_t*> forced = upload_forced(cfg_, opt, B, T, ws_forced_, stream_);
  PrefillTrace tr;
  tr.routes = &out.routes;
  tr.hidden = opt.hidden_states ? &out.hidden_states : nullptr;
  tr.forced = &forced;
  tr.precision = opt.router_precision;
  prefill_from_host(static_cast<const int64_t*>(ids.raw()), B, T, tr, "forward state");
  const size_t R = size_t(B) * T;
  ws_logits_.ensure(R * V * 4, "logits [B*T, V] fp32");
  lm_head_rows(ws_xn_.get(), cfg_.d_model, int(R), ws_logits_.as<float>(), stream_);
  download(out.logits.data_mut<float>(), ws_logits_.get(), R * V * 4, stream_);
  return out;
}

void CudaModel::forward_device(const Tensor& ids) {
  check_input_ids(ids, cfg_.vocab_size, "input_ids");
  const int B = int(ids.dim(0)), T = int(ids.dim(1)), V = cfg_.vocab_size;
  prefill_from_host(static_cast<const int64_t*>(ids.raw()), B, T, {}, "forward state");
  ws_logits_.ensure(size_t(B) * T * V * 4, "logits [B*T, V] fp32");
  lm_head_rows(ws_xn_.get(), cfg_.d_model, B * T, ws_logits_.as<float>(), stream_);
  BMH_CUDA(cudaStreamSynchronize(stream_));
}

std::vector<ScoreResult> CudaModel::score(const std::vector<ScoreRequest>& requests) {
  std::vector<ScoreResult> out(requests.size());
  const int d = cfg_.d_model, V = cfg_.vocab_size;
  for (size_t q = 0; q < requests.size(); ++q) {
    const ScoreRequest& r = requests[q];
    const int n = int(r.tokens.size());
    if (n < 2 || r.n_continuation < 1 || r.n_continuation >= n)
      fail("score request needs at least one context token and one continuation token (got ", n, " tokens, ",
           r.n_continuation, " to score)");
    // The model sees tokens[0..n-2]; position p predicts tokens[p+1]; only the continuation rows reach the head.
    const int T = n - 1, p0 = n - 1 - r.n_continuation, C = r.n_continuation;
    std::vector<int64_t> ids(r.tokens.begin(), r.tokens.end() - 1);
    Tensor idt = Tensor::from_i64(ids, {1, T});
    check_input_ids(idt, V, "score request");
    if (r.tokens.back() < 0 || r.tokens.back() >= V) fail("score request: id ", r.tokens.back(), " outside vocabulary");
    prefill_from_host(ids.data(), 1, T, {}, "score state");
    const size_t lbytes = (size_t(C) * V * 4 + 255) / 256 * 256;
    ws_logits_.ensure(lbytes + size_t(C) * 16, "score logits [continuation, V] fp32");
    float* logits = ws_logits_.as<float>();
    int64_t* targets = reinterpret_cast<int64_t*>(ws_logits_.as<char>() + lbytes);
    float* lp = reinterpret_cast<float*>(targets + C);
    int* greedy = reinterpret_cast<int*>(lp + C);
    lm_head_rows(ws_xn_.as<char>() + size_t(p0) * d * dt_size(w_.dt), d, C, logits, stream_);
    std::vector<int64_t> tg(r.tokens.begin() + p0 + 1, r.tokens.end());
    upload(targets, tg.data(), size_t(C) * 8, stream_);
    logsoftmax_gather(logits, C, V, targets, lp, greedy, nullptr, stream_);
    std::vector<float> hl(C);
    std::vector<int> hg(C);
    download(hl.data(), lp, sizeof(float) * C, stream_);
    download(hg.data(), greedy, sizeof(int) * C, stream_);
    double sum = 0;
    bool all = true;
    for (int c = 0; c < C; ++c) {
      sum += hl[c];
      all = all && hg[c];
    }
    out[q] = {sum, all};
  }
  return out;
}

}  // namespace cuda
}  // namespace bmh
