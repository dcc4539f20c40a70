// CudaDecoder: prefill through the model's prefill path into owned recurrent state, then one token per sequence
// per step through GEMV kernels (the MoE expert chosen on the device), captured once into a CUDA graph. The token
// ids and the position live in device memory that each replay reads, so the graph never changes.
#include <algorithm>
#include <cmath>
#include <optional>

#include "core/error.h"
#include "kernels/attention.cuh"
#include "kernels/attention_gqa.cuh"
#include "kernels/inner_norm.cuh"
#include "kernels/router.cuh"
#include "kernels/bias_act.cuh"
#include "kernels/conv1d.cuh"
#include "kernels/cuda_backend.h"
#include "kernels/embedding.cuh"
#include "kernels/gemv.cuh"
#include "kernels/launch.cuh"
#include "kernels/logits.cuh"
#include "kernels/moe.cuh"
#include "kernels/norm.cuh"
#include "kernels/op_timer.h"
#include "kernels/selective_scan.cuh"

namespace bmh::cuda {
namespace {

class CudaDecoder final : public Decoder {
 public:
  CudaDecoder(CudaModel& m, int batch) : m_(m), cfg_(m.config()), B_(batch) {
    if (batch < 1 || batch > m.max_decode_batch())
      fail("cuda decoder: batch ", batch, " outside [1, ", m.max_decode_batch(), "]");
    BMH_CUDA(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    if (batch > kGemvMaxRows) blas_ = std::make_unique<Blas>(stream_);
    const Dt dt = m.dt();
    const size_t es = dt_size(dt);
    const int d = cfg_.d_model, V = cfg_.vocab_size;
    size_t a = 0, b = 0, c = 0, e = 0, E = 1, K = 1;
    for (const BlockConfig& bc : cfg_.blocks) {
      if (bc.mixer == MixerKind::Mamba) {
        a = std::max(a, size_t(2) * bc.mamba.d_inner);
        b = std::max(b, size_t(bc.mamba.d_inner));
        c = std::max(c, size_t(bc.mamba.dt_rank + 2 * bc.mamba.d_state));
        e = std::max(e, size_t(bc.mamba.d_inner) * 2);  // dt and y
      } else if (bc.mixer == MixerKind::Attention) {
        a = std::max(a, size_t(bc.attn.n_heads + 2 * bc.attn.kv_heads()) * bc.attn.head_dim);
        b = std::max(b, size_t(bc.attn.n_heads) * bc.attn.head_dim);
        c = std::max(c, size_t(bc.attn.n_heads) * bc.attn.head_dim);  // grouped: rotated queries
        H_max_ = std::max(H_max_, bc.attn.n_heads);
      }
      if (bc.mlp != MlpKind::None) {
        a = std::max(a, size_t(bc.ffn.gated ? 2 : 1) * bc.ffn.d_ff);
        b = std::max(b, size_t(bc.ffn.d_ff));
      }
      if (bc.mlp == MlpKind::Moe) {
        E = std::max(E, size_t(bc.ffn.n_experts));
        K = std::max(K, size_t(bc.ffn.top_k));
      }
    }
    ids_.alloc(size_t(B_) * 8, "decoder token ids");
    pos_.alloc(sizeof(int), "decoder position");
    resid_.alloc(size_t(B_) * d * 4, "decoder residual");
    xn_.alloc(size_t(B_) * d * es, "decoder normed activations");
    xn2_.alloc(size_t(B_) * d * es, "decoder MLP-normed activations");
    a_.alloc(std::max<size_t>(a, 1) * B_ * es, "decoder workspace a");
    b_.alloc(std::max<size_t>(b, 1) * B_ * es, "decoder workspace b");
    c_.alloc(std::max<size_t>(c, 1) * B_ * es, "decoder workspace c");
    e_.alloc(std::max<size_t>(e, 1) * B_ * es, "decoder workspace e");
    // logits [B, E], gates [B, k] token-major and [k, B] slot-major; experts likewise; ties [B]; NaN flag.
    router_.alloc(size_t(B_) * (E + 2 * K) * 4, "decoder router logits and gates");
    expert_.alloc(size_t(B_) * (2 * K + 1) * 4 + 4, "decoder experts, ties and NaN flag");
    // Above kGemvMaxRows: each expert's rows, listed on the device per slot (gemv.cuh group_rows_by_expert).
    if (B_ > kGemvMaxRows) group_.alloc((E + 1 + size_t(B_)) * 4, "decoder rows grouped by expert");
    BMH_CUDA(cudaMemset(expert_.get(), 0, expert_.bytes()));
    K_ = int(K);
    E_ = int(E);
    logits_.alloc(size_t(B_) * V * 4, "decoder logits [B, V] fp32");
    BMH_CUDA(cudaMallocHost(reinterpret_cast<void**>(&host_ids_), size_t(B_) * 8));
    BMH_CUDA(cudaMallocHost(reinterpret_cast<void**>(&host_pos_), sizeof(int)));
    BMH_CUDA(cudaMallocHost(reinterpret_cast<void**>(&host_flag_), sizeof(int)));
    BMH_CUDA(cudaMallocHost(reinterpret_cast<void**>(&host_logits_), size_t(B_) * V * 4));
    greedy_.alloc(size_t(B_) * 12, "decoder greedy ids [B] int64 and NaN rows [B] int");
    BMH_CUDA(cudaMallocHost(reinterpret_cast<void**>(&host_greedy_), greedy_.bytes()));
  }

  ~CudaDecoder() override {
    if (exec_) cudaGraphExecDestroy(exec_);
    if (graph_) cudaGraphDestroy(graph_);
    if (host_ids_) cudaFreeHost(host_ids_);
    if (host_pos_) cudaFreeHost(host_pos_);
    if (host_flag_) cudaFreeHost(host_flag_);
    if (host_logits_) cudaFreeHost(host_logits_);
    if (host_greedy_) cudaFreeHost(host_greedy_);
    blas_.reset();  // the cuBLAS handle before the stream it is bound to
    if (stream_) cudaStreamDestroy(stream_);
  }

  Tensor prefill(const Tensor& ids) override {
    check_input_ids(ids, cfg_.vocab_size, "prompt ids");
    if (ids.dim(0) != B_) fail("cuda decoder for batch ", B_, " got a prompt batch of ", ids.dim(0));
    const int T = int(ids.dim(1)), d = cfg_.d_model, V = cfg_.vocab_size;
    if (T < 1) fail("prefill needs at least one prompt token");
    check_sliding_window(cfg_, T, "cuda decoder prefill");
    const int S_max = std::max(cfg_.max_seq_len, T + 256);
    if (S_max != state_.ptrs.S_max || state_.bufs.empty()) {
      if (exec_) { cudaGraphExecDestroy(exec_); exec_ = nullptr; }
      if (graph_) { cudaGraphDestroy(graph_); graph_ = nullptr; }
      state_.allocate(cfg_, m_.dt(), B_, S_max, "decoder state");
      if (H_max_ > 0) scores_.alloc(size_t(B_) * H_max_ * S_max * 4, "decoder attention scores [B, H, S_max]");
    }
    cudaStream_t ms = m_.stream();
    state_.zero(ms);
    DeviceBuffer pid(size_t(B_) * T * 8, "prompt ids");
    upload(pid.get(), ids.raw(), size_t(B_) * T * 8, ms);
    m_.prefill_rows(pid.as<int64_t>(), B_, T, state_.ptrs, {});
    // Logits of each sequence's last position: rows b*T + T-1 (row stride T*d).
    const char* last = static_cast<const char*>(m_.final_hidden()) + size_t(T - 1) * d * dt_size(m_.dt());
    m_.lm_head_rows(last, T * d, B_, logits_.as<float>(), ms);
    Tensor out = Tensor::zeros(DType::F32, {B_, V});
    download(out.data_mut<float>(), logits_.get(), size_t(B_) * V * 4, ms);
    pos_host_ = T;
    return out;
  }

  Tensor step(const std::vector<int64_t>& tokens) override {
    enqueue_step(tokens);
    const int V = cfg_.vocab_size;
    BMH_CUDA(cudaMemcpyAsync(host_logits_, logits_.get(), size_t(B_) * V * 4, cudaMemcpyDeviceToHost, stream_));
    finish_step();
    Tensor out = Tensor::zeros(DType::F32, {B_, V});
    std::copy(host_logits_, host_logits_ + size_t(B_) * V, out.data_mut<float>());
    return out;
  }

  // The argmax on the device (kernels/logits.cuh): B ids come back instead of B x V logits. A row holding a NaN
  // is taken on the host from its logits, with the host's rule.
  std::vector<int64_t> step_greedy(const std::vector<int64_t>& tokens) override {
    enqueue_step(tokens);
    const int V = cfg_.vocab_size;
    argmax_rows(logits_.as<float>(), B_, V, greedy_.as<int64_t>(), greedy_nan(), stream_);
    BMH_CUDA(cudaMemcpyAsync(host_greedy_, greedy_.get(), greedy_.bytes(), cudaMemcpyDeviceToHost, stream_));
    finish_step();
    std::vector<int64_t> out(host_greedy_, host_greedy_ + B_);
    const int* nan = reinterpret_cast<const int*>(host_greedy_ + B_);
    for (int b = 0; b < B_; ++b) {
      if (!nan[b]) continue;
      std::vector<float> row(static_cast<size_t>(V));
      download(row.data(), logits_.as<float>() + size_t(b) * V, size_t(V) * 4, stream_);
      out[size_t(b)] = std::max_element(row.begin(), row.end()) - row.begin();
    }
    return out;
  }

  // One step's kernels run once outside the graph with events between ops (kernels/op_timer.h): GPU ms per op.
  // The state advances as in step(); the events add a few microseconds per op, so this is a breakdown, not a time.
  std::vector<OpTimer::Row> timed_step(const std::vector<int64_t>& tokens) {
    upload_step(tokens);
    OpTimer timer(stream_);
    timer_ = &timer;
    try {
      record_step();
    } catch (...) {
      timer_ = nullptr;
      throw;
    }
    timer_ = nullptr;
    finish_step();
    return timer.totals();
  }

  // Continuous batching (core/batched_generate.h) for models without attention: a Mamba step reads no position,
  // so slots at different positions can share the graph; attention would need a position per row in the rotary
  // and decode-attention kernels (the graph reads one).
  bool per_slot() const override {
    return std::none_of(cfg_.blocks.begin(), cfg_.blocks.end(),
                        [](const BlockConfig& b) { return b.mixer == MixerKind::Attention; });
  }
  // The prompt runs alone through the prefill path into a one-row state, whose row is then copied into the slot.
  Tensor prefill_slot(int slot, const Tensor& ids) override {
    if (!per_slot()) Decoder::prefill_slot(slot, ids);
    check_input_ids(ids, cfg_.vocab_size, "prompt ids");
    if (slot < 0 || slot >= B_) fail("cuda decoder for batch ", B_, " has no slot ", slot);
    if (ids.dim(0) != 1 || ids.dim(1) < 1) fail("prefill_slot needs one prompt [1, T >= 1], got ", shape_str(ids.shape()));
    const int T = int(ids.dim(1)), d = cfg_.d_model, V = cfg_.vocab_size;
    cudaStream_t ms = m_.stream();
    if (state_.bufs.empty()) {  // allocated once: the captured graph holds these pointers
      state_.allocate(cfg_, m_.dt(), B_, std::max(cfg_.max_seq_len, 1), "decoder state");
      state_.zero(ms);
    }
    if (slot_state_.bufs.empty()) slot_state_.allocate(cfg_, m_.dt(), 1, std::max(cfg_.max_seq_len, 1), "decoder slot prefill state");
    slot_state_.zero(ms);
    DeviceBuffer pid(size_t(T) * 8, "prompt ids");
    upload(pid.get(), ids.raw(), size_t(T) * 8, ms);
    m_.prefill_rows(pid.as<int64_t>(), 1, T, slot_state_.ptrs, {});
    copy_mamba_state_row(cfg_, slot_state_.ptrs, 0, state_.ptrs, slot, ms);
    const char* last = static_cast<const char*>(m_.final_hidden()) + size_t(T - 1) * d * dt_size(m_.dt());
    m_.lm_head_rows(last, T * d, 1, logits_.as<float>(), ms);
    Tensor out = Tensor::zeros(DType::F32, {1, V});
    download(out.data_mut<float>(), logits_.get(), size_t(V) * 4, ms);
    BMH_CUDA(cudaStreamSynchronize(ms));  // the state rows are in place before step_slots' stream reads them
    return out;
  }
  // Every row steps (a free slot's row advances on token 0 and is overwritten by its next prefill_slot); only the
  // active rows are returned.
  Tensor step_slots(const std::vector<int64_t>& tokens, const std::vector<uint8_t>& active) override {
    if (!per_slot()) Decoder::step_slots(tokens, active);
    Tensor out = step(slot_tokens(tokens, active));
    float* p = out.data_mut<float>();
    for (int b = 0; b < B_; ++b)
      if (!active[b]) std::fill(p + size_t(b) * cfg_.vocab_size, p + size_t(b + 1) * cfg_.vocab_size, 0.f);
    return out;
  }
  std::vector<int64_t> step_slots_greedy(const std::vector<int64_t>& tokens, const std::vector<uint8_t>& active) override {
    if (!per_slot()) return Decoder::step_slots_greedy(tokens, active);
    std::vector<int64_t> out = step_greedy(slot_tokens(tokens, active));
    for (int b = 0; b < B_; ++b)
      if (!active[b]) out[size_t(b)] = -1;
    return out;
  }

 private:
  // The tokens a per-slot step feeds: free slots advance on token 0.
  std::vector<int64_t> slot_tokens(const std::vector<int64_t>& tokens, const std::vector<uint8_t>& active) {
    if (int(tokens.size()) != B_ || int(active.size()) != B_)
      fail("cuda decoder for batch ", B_, " got ", tokens.size(), " tokens and ", active.size(), " active flags");
    if (state_.bufs.empty()) fail("cuda decoder: step_slots before prefill_slot");
    std::vector<int64_t> fed(tokens);
    for (int b = 0; b < B_; ++b)
      if (!active[b]) fed[b] = 0;
    pos_host_ = 0;  // read only by attention, which per-slot models have none of
    return fed;
  }

  // Checks the tokens and uploads them and the position for the next step.
  void upload_step(const std::vector<int64_t>& tokens) {
    if (pos_host_ < 0) fail("cuda decoder: step before prefill");
    if (int(tokens.size()) != B_) fail("cuda decoder for batch ", B_, " got ", tokens.size(), " tokens");
    for (size_t b = 0; b < tokens.size(); ++b)
      if (tokens[b] < 0 || tokens[b] >= cfg_.vocab_size)
        fail("decoder step: id ", tokens[b], " for sequence ", b, " is outside the vocabulary [0, ", cfg_.vocab_size,
             ")");
    if (pos_host_ >= state_.ptrs.S_max)
      fail("cuda decoder: position ", pos_host_, " exceeds the KV cache of ", state_.ptrs.S_max, " positions");
    check_sliding_window(cfg_, pos_host_ + 1, "cuda decoder step");
    std::copy(tokens.begin(), tokens.end(), host_ids_);
    *host_pos_ = pos_host_;
    BMH_CUDA(cudaMemcpyAsync(ids_.get(), host_ids_, size_t(B_) * 8, cudaMemcpyHostToDevice, stream_));
    BMH_CUDA(cudaMemcpyAsync(pos_.get(), host_pos_, sizeof(int), cudaMemcpyHostToDevice, stream_));
  }

  // upload_step, then the step graph's replay (captured on first use).
  void enqueue_step(const std::vector<int64_t>& tokens) {
    upload_step(tokens);
    if (!exec_) {
      BMH_CUDA(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
      try {
        record_step();
      } catch (...) {
        cudaGraph_t g = nullptr;
        cudaStreamEndCapture(stream_, &g);
        if (g) cudaGraphDestroy(g);
        throw;
      }
      BMH_CUDA(cudaStreamEndCapture(stream_, &graph_));
      BMH_CUDA(cudaGraphInstantiate(&exec_, graph_, 0));
    }
    BMH_CUDA(cudaGraphLaunch(exec_, stream_));
  }

  // After the step's downloads are enqueued: waits for them, reports a NaN router logit, advances the position.
  void finish_step() {
    BMH_CUDA(cudaMemcpyAsync(host_flag_, flag(), sizeof(int), cudaMemcpyDeviceToHost, stream_));
    BMH_CUDA(cudaStreamSynchronize(stream_));
    if (*host_flag_) {
      BMH_CUDA(cudaMemset(flag(), 0, sizeof(int)));
      check_router_nan_flag(*host_flag_, "cuda decoder step at position " + std::to_string(pos_host_));
    }
    ++pos_host_;
  }

  void tick(const char* op) {
    if (timer_) timer_->mark(op);
  }

  int* greedy_nan() const { return reinterpret_cast<int*>(greedy_.as<int64_t>() + B_); }

  // One decode step for B_ rows, enqueued on stream_ (captured into the graph). With pdl=on every kernel below is
  // launched as a programmatic dependent of the one before (kernels/launch.cuh): each waits (griddepcontrol.wait)
  // before reading activations or writing, so the results are the same bits; only the launch gaps overlap.
  void record_step() {
    const PdlScope pdl(kernel_variants().pdl == PdlVariant::On);
    const DevWeights& W = m_.weights();
    const Dt dt = m_.dt();
    const int d = cfg_.d_model, V = cfg_.vocab_size;
    cudaStream_t s = stream_;
    float* resid = resid_.as<float>();
    embedding(dt, W.embed.get(), ids_.as<int64_t>(), B_, d, resid, s);
    tick("embed");
    auto nb = [](const DeviceBuffer& b) { return b.bytes() ? b.as<float>() : nullptr; };
    for (int i = 0; i < cfg_.n_blocks(); ++i) {
      const BlockConfig& bc = cfg_.blocks[i];
      const DevBlock& w = W.blocks[i];
      const bool has_mixer = bc.mixer != MixerKind::None, has_mlp = bc.mlp != MlpKind::None;
      // Parallel blocks: both norms read the residual before either branch adds into it.
      // One "norm" op per norm kernel launched (decode_breakdown counts them).
      void* xn2 = nullptr;
      if (has_mixer && folds_mixer_norm(bc, w)) {
        mixer_norm_ = NormIn{cfg_.norm, resid, d, w.norm_w.as<float>(), nb(w.norm_b), float(cfg_.norm_eps)};
      } else if (has_mixer) {
        add_norm(cfg_.norm, dt, resid, nullptr, w.norm_w.as<float>(), nb(w.norm_b), cfg_.norm_eps, B_, d, xn_.get(), s);
        tick("norm");
      }
      if (has_mlp && bc.parallel) {
        xn2 = xn2_.get();
        add_norm(cfg_.norm, dt, resid, nullptr, w.mlp_norm_w.as<float>(), nb(w.mlp_norm_b), cfg_.norm_eps, B_, d, xn2, s);
        tick("norm");
      }
      if (bc.mixer == MixerKind::Mamba) mamba_step(i, w);
      if (bc.mixer == MixerKind::Attention) attention_step(i, w);
      if (has_mlp) {
        if (!bc.parallel) {
          add_norm(cfg_.norm, dt, resid, nullptr, w.mlp_norm_w.as<float>(), nb(w.mlp_norm_b), cfg_.norm_eps, B_, d,
                   xn_.get(), s);
          xn2 = xn_.get();
          tick("norm");
        }
        mlp_step(i, w, xn2);
      }
    }
    add_norm(cfg_.final_norm, dt, resid, nullptr, W.final_norm_w.as<float>(), nb(W.final_norm_b), cfg_.final_norm_eps,
             B_, d, xn_.get(), s);
    tick("norm");
    GemvArgs g{};
    g.B = B_; g.N = V; g.K = d; g.W = W.head(); g.x = xn_.get(); g.ldx = d;
    g.bias = nb(W.lm_head_b); g.y = logits_.get(); g.ldy = V;
    project(Dt::F32, g);
    tick("lm_head");
  }

  int* flag() const { return expert_.as<int>() + size_t(B_) * (2 * K_ + 1); }

  // decode_norm=fused: one row, and the mixer's first projection (Mamba in_proj, attention qkv) is a shape
  // gemv_stream takes under gemv=stream; then that projection computes the norm itself (mixer_in_step) and no
  // add_norm kernel runs for the mixer.
  bool folds_mixer_norm(const BlockConfig& bc, const DevBlock& w) const {
    const KernelVariants& kv = kernel_variants();
    if (B_ != 1 || kv.decode_norm != DecodeNormVariant::Fused || kv.gemv != GemvVariant::Stream) return false;
    const DevLinear* first = bc.mixer == MixerKind::Mamba       ? &w.in_proj
                             : bc.mixer == MixerKind::Attention ? &w.qkv
                                                                : nullptr;
    if (!first) return false;
    GemvArgs g{};
    g.B = 1; g.N = first->out; g.K = first->in; g.W = first->w.get();
    return first->in == cfg_.d_model && gemv_stream_fits(m_.dt(), g);
  }

  // The mixer's first projection of the normed row xn_: with the norm folded in when record_step chose that.
  void mixer_in_step(const DevLinear& l, void* y, int ldy) {
    if (!mixer_norm_) return linear_step(m_.dt(), l, xn_.get(), cfg_.d_model, y, ldy, false);
    GemvArgs g{};
    g.B = 1; g.N = l.out; g.K = l.in; g.W = l.w.get(); g.bias = l.bias(); g.y = y; g.ldy = ldy;
    gemv_stream_norm(m_.dt(), m_.dt(), g, *mixer_norm_, stream_);
    mixer_norm_.reset();
  }

  void linear_step(Dt out, const DevLinear& l, const void* x, int ldx, void* y, int ldy, bool accumulate,
                   bool with_bias = true) {
    GemvArgs g{};
    g.B = B_; g.N = l.out; g.K = l.in; g.W = l.w.get(); g.x = x; g.ldx = ldx;
    g.bias = with_bias ? l.bias() : nullptr; g.accumulate = accumulate; g.y = y; g.ldy = ldy;
    project(out, g);
  }

  // y = x W^T (+ bias) (+ y): the decode GEMV up to 8 rows; above, a cuBLAS GEMM (fp32 accumulate, beta = 1 for the
  // residual add) then add_bias, as prefill computes it; per-row experts above 8 rows: the grouped GEMV over the
  // lists group_rows_by_expert wrote for g.expert (n_experts > 0).
  void project(Dt out, const GemvArgs& g, int n_experts = 0) {
    if (B_ <= kGemvMaxRows) return gemv(m_.dt(), out, g, stream_);
    if (g.expert) {
      if (n_experts < 1) fail("cuda decoder: a per-row expert projection at batch ", B_, " without its row lists");
      const int* offsets = group_.as<int>();
      return gemv_grouped(m_.dt(), out, g, n_experts, offsets, offsets + n_experts + 1, stream_);
    }
    if (g.scale) fail("cuda decoder: a per-row scale without experts at batch ", B_);
    linear(*blas_, m_.dt(), out, B_, g.N, g.K, g.x, g.ldx, g.W, g.K, g.y, g.ldy, 1.f, g.accumulate ? 1.f : 0.f);
    add_bias(out, g.y, g.ldy, g.bias, B_, g.N, stream_);
  }

  void mamba_step(int i, const DevBlock& w) {
    const MambaSpec& m = cfg_.blocks[i].mamba;
    const Dt dt = m_.dt();
    const size_t es = dt_size(dt);
    const int Di = m.d_inner, N = m.d_state, Rk = m.dt_rank, Wx = Rk + 2 * N, d = cfg_.d_model;
    char* xz = a_.as<char>();
    mixer_in_step(w.in_proj, xz, 2 * Di);
    tick("mamba.in_proj");
    causal_conv1d_silu_update(dt, xz, 2 * Di, w.conv_w.as<float>(), w.conv_b.bytes() ? w.conv_b.as<float>() : nullptr,
                              state_.ptrs.conv[i], B_, Di, m.d_conv, b_.get(), Di, stream_);
    tick("mamba.conv");
    linear_step(dt, w.x_proj, b_.get(), Di, c_.get(), Wx, false);
    tick("mamba.x_proj");
    char* dtb = e_.as<char>();
    char* y = dtb + size_t(B_) * Di * es;
    if (m.inner_norms) {  // Jamba: RMSNorm dt, B and C in place (modeling_jamba.py JambaMambaMixer)
      const float eps = float(m.inner_norm_eps);
      rms_norm_rows_inplace(dt, c_.get(), Wx, B_, Rk, w.dt_norm.as<float>(), eps, stream_);
      rms_norm_rows_inplace(dt, c_.as<char>() + size_t(Rk) * es, Wx, B_, N, w.b_norm.as<float>(), eps, stream_);
      rms_norm_rows_inplace(dt, c_.as<char>() + size_t(Rk + N) * es, Wx, B_, N, w.c_norm.as<float>(), eps, stream_);
    }
    const bool fused_dt = kernel_variants().decode_dt == DecodeDtVariant::Fused;
    if (!fused_dt) linear_step(dt, w.dt_proj, c_.get(), Wx, dtb, Di, false, /*with_bias=*/false);
    tick("mamba.dt_proj");
    ScanArgs sa{};
    sa.u = b_.get(); sa.ldu = Di;
    sa.delta = dtb; sa.ldd = Di;
    if (fused_dt) {  // the state update computes delta = dt_proj . x_dbl[:, :Rk] itself
      sa.delta = nullptr;
      sa.dt_w = w.dt_proj.w.get(); sa.dt_x = c_.get(); sa.ldx_dt = Wx; sa.Rk = Rk;
    }
    sa.z = xz + size_t(Di) * es; sa.ldz = 2 * Di;
    sa.Bm = c_.as<char>() + size_t(Rk) * es; sa.Cm = c_.as<char>() + size_t(Rk + N) * es; sa.ldbc = Wx;
    sa.A = w.A.as<float>(); sa.D = w.D.as<float>(); sa.delta_bias = w.dt_proj.bias();
    sa.state = state_.ptrs.ssm[i];
    sa.y = y; sa.ldy = Di;
    sa.B = B_; sa.T = 1; sa.Di = Di; sa.N = N;
    selective_state_update(dt, sa, stream_);
    tick("mamba.state_update");
    linear_step(Dt::F32, w.out_proj, y, Di, resid_.get(), d, true);
    tick("mamba.out_proj");
  }

  void attention_step(int i, const DevBlock& w) {
    const AttentionSpec& a = cfg_.blocks[i].attn;
    const Dt dt = m_.dt();
    const int H = a.n_heads, hd = a.head_dim, dh = H * hd, d = cfg_.d_model;
    if (a.grouped_qkv) {  // Mixtral/Jamba grouped-query attention
      const int Hkv = a.kv_heads(), W = (H + 2 * Hkv) * hd;
      mixer_in_step(w.qkv, a_.get(), W);
      tick("attn.qkv");
      gqa_rotary_split(dt, a_.get(), B_, 1, H, Hkv, hd, a.rotary_dim, float(a.rope_theta), 0, pos_.as<int>(), c_.get(),
                       state_.ptrs.k[i], state_.ptrs.v[i], state_.ptrs.S_max, stream_);
      tick("attn.rotary");
      gqa_attention_decode(dt, c_.get(), B_, H, Hkv, hd, state_.ptrs.k[i], state_.ptrs.v[i], state_.ptrs.S_max,
                           pos_.as<int>(), 1.f / std::sqrt(float(hd)), scores_.as<float>(), b_.get(), stream_);
      tick("attn.core");
      linear_step(Dt::F32, w.dense, b_.get(), dh, resid_.get(), d, true);
      tick("attn.dense");
      return;
    }
    mixer_in_step(w.qkv, a_.get(), 3 * dh);
    tick("attn.qkv");
    rotary_qkv_to_cache(dt, a_.get(), B_, 1, H, hd, a.rotary_dim, float(a.rope_theta), 0, pos_.as<int>(),
                        state_.ptrs.k[i], state_.ptrs.v[i], state_.ptrs.S_max, stream_);
    tick("attn.rotary");
    attention_decode(dt, a_.get(), B_, H, hd, state_.ptrs.k[i], state_.ptrs.v[i], state_.ptrs.S_max, pos_.as<int>(),
                     1.f / std::sqrt(float(hd)), b_.get(), stream_);
    tick("attn.core");
    linear_step(Dt::F32, w.dense, b_.get(), dh, resid_.get(), d, true);
    tick("attn.dense");
  }

  void mlp_step(int i, const DevBlock& w, const void* xn) {
    const MlpSpec& f = cfg_.blocks[i].ffn;
    const Dt dt = m_.dt();
    const int d = cfg_.d_model, F = f.d_ff, F1 = f.gated ? 2 * F : F;
    GemvArgs g1{}, g2{};
    g1.B = g2.B = B_;
    g1.N = F1; g1.K = d; g1.W = w.fc1.w.get(); g1.x = xn; g1.ldx = d; g1.bias = w.fc1.bias();
    g1.y = a_.get(); g1.ldy = F1;
    g2.N = d; g2.K = F; g2.W = w.fc2.w.get(); g2.x = b_.get(); g2.ldx = F; g2.bias = w.fc2.bias();
    g2.accumulate = true; g2.y = resid_.get(); g2.ldy = d;
    if (f.n_experts > 0 && cfg_.blocks[i].mlp == MlpKind::Moe) {
      const int E = f.n_experts, k = f.top_k;
      float* logits = router_.as<float>();
      float* gate = logits + size_t(B_) * E_;
      float* gate_sm = gate + size_t(B_) * K_;
      int* expert = expert_.as<int>();
      int* expert_sm = expert + size_t(B_) * K_;
      int* tie = expert_sm + size_t(B_) * K_;
      linear_step(Dt::F32, w.router, xn, d, logits, E, false, /*with_bias=*/false);
      RouterArgs ra;
      ra.logits = logits; ra.bias = w.router.bias(); ra.R = B_; ra.E = E; ra.k = k;
      ra.softmax = f.router == RouterKind::SoftmaxTopK; ra.renormalize = f.renormalize;
      ra.half = router_half_mode(m_.router_precision(), dt);
      ra.expert = expert; ra.gate = gate; ra.expert_sm = expert_sm; ra.gate_sm = gate_sm; ra.tie = tie;
      ra.nan_flag = flag(); ra.tag = i + 1;
      router_topk(ra, stream_);
      tick("moe.router");
      g1.w_expert_stride = int64_t(F1) * d; g1.bias_expert_stride = F1;
      g2.w_expert_stride = int64_t(d) * F; g2.bias_expert_stride = d;
      // One pass per slot, in slot order: the expert output (with its bias) times its gate, added to the residual.
      // Above kGemvMaxRows each slot's rows are first listed per expert on the device (timed with fc1).
      for (int j = 0; j < k; ++j) {
        g1.expert = g2.expert = expert_sm + size_t(j) * B_;
        g2.scale = gate_sm + size_t(j) * B_;
        const int grouped = B_ > kGemvMaxRows ? E : 0;
        if (grouped) {
          int* offsets = group_.as<int>();
          group_rows_by_expert(g1.expert, B_, E, offsets, offsets + E + 1, stream_);
        }
        project(dt, g1, grouped);
        tick("moe.fc1");
        mlp_act(dt, f.act, f.gated, a_.get(), F1, nullptr, B_, F, b_.get(), F, stream_);
        tick("moe.act");
        project(Dt::F32, g2, grouped);
        tick("moe.fc2");
      }
      return;
    }
    project(dt, g1);
    tick("mlp.fc1");
    mlp_act(dt, f.act, f.gated, a_.get(), F1, nullptr, B_, F, b_.get(), F, stream_);
    tick("mlp.act");
    project(Dt::F32, g2);
    tick("mlp.fc2");
  }

  CudaModel& m_;
  const ModelConfig& cfg_;
  int B_;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<Blas> blas_;  // batches above kGemvMaxRows: cuBLAS on stream_ (its own workspace, capture-safe)
  DecodeState state_;
  DecodeState slot_state_;  // one row: prefill_slot's scratch
  DeviceBuffer ids_, pos_, resid_, xn_, xn2_, a_, b_, c_, e_, router_, expert_, group_, logits_, scores_, greedy_;
  int K_ = 1, E_ = 1, H_max_ = 0;
  int* host_flag_ = nullptr;
  int64_t* host_ids_ = nullptr;
  int* host_pos_ = nullptr;
  float* host_logits_ = nullptr;
  int64_t* host_greedy_ = nullptr;  // pinned: greedy_'s ids then NaN flags
  int pos_host_ = -1;
  OpTimer* timer_ = nullptr;  // timed_step only (never while capturing the graph)
  std::optional<NormIn> mixer_norm_;  // set by record_step when the mixer's first projection folds its norm
  cudaGraph_t graph_ = nullptr;
  cudaGraphExec_t exec_ = nullptr;
};

}  // namespace

std::unique_ptr<Decoder> CudaModel::decoder(int batch) { return std::make_unique<CudaDecoder>(*this, batch); }

std::vector<OpTimer::Row> CudaModel::decode_breakdown(const Tensor& prompt) {
  CudaDecoder dec(*this, int(prompt.dim(0)));
  const std::vector<int64_t> first = bmh::argmax_rows(dec.prefill(prompt));
  dec.step(first);  // the graph and every lazily made resource exist before the timed step
  return dec.timed_step(first);
}

}  // namespace bmh::cuda
