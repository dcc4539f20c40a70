#include "reference/model.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/parallel.h"

namespace bmh::ref {

namespace {

template <class T> Mat<T> to_mat(const Tensor& t) {
  std::vector<double> v = t.to_f64();
  Mat<T> m(t.dim(0), t.numel() / t.dim(0));
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = T(v[i]);
  return m;
}
template <class T> Vec<T> to_vec(const Tensor& t) {
  std::vector<double> v = t.to_f64();
  Vec<T> x(v.size());
  for (Eigen::Index i = 0; i < x.size(); ++i) x(i) = T(v[i]);
  return x;
}

struct WeightGetter {
  const TensorMap& w;
  const Tensor& at(const std::string& name) const {
    auto it = w.find(name);
    if (it == w.end()) fail("reference model: canonical weight '", name, "' is missing");
    return it->second;
  }
  bool has(const std::string& name) const { return w.count(name) > 0; }
};

template <class T> MlpWeights<T> load_mlp(const WeightGetter& g, const std::string& p, bool bias) {
  MlpWeights<T> m;
  m.fc1 = to_mat<T>(g.at(p + "fc1.weight"));
  m.fc2 = to_mat<T>(g.at(p + "fc2.weight"));
  if (bias) {
    m.fc1_b = to_vec<T>(g.at(p + "fc1.bias"));
    m.fc2_b = to_vec<T>(g.at(p + "fc2.bias"));
  }
  return m;
}

// NaN/Inf in the residual stream is an error naming where it first appeared (the block, or the final norm/head),
// not all-NaN logits with exit 0. One allFinite() pass per block: O(T*d), nothing next to the matmuls.
template <class T> void require_finite(const Mat<T>& m, int64_t position, const std::string& where) {
  if (m.allFinite()) return;
  for (Eigen::Index r = 0; r < m.rows(); ++r)
    for (Eigen::Index c = 0; c < m.cols(); ++c)
      if (!std::isfinite(m(r, c)))
        fail("non-finite value ", double(m(r, c)), " first produced by ", where, " at token ", position + r,
             ", dim ", c, " (non-finite weights, or an overflow)");
}

}  // namespace

template <class T> RefModel<T>::RefModel(ModelConfig cfg, const TensorMap& canonical) : cfg_(std::move(cfg)) {
  WeightGetter g{canonical};
  embed_ = to_mat<T>(g.at("embed.weight"));
  if (!cfg_.tie_embeddings) lm_head_ = to_mat<T>(g.at("lm_head.weight"));
  if (cfg_.lm_head_bias) lm_head_b_ = to_vec<T>(g.at("lm_head.bias"));
  final_norm_w_ = to_vec<T>(g.at("final_norm.weight"));
  if (cfg_.final_norm_bias) final_norm_b_ = to_vec<T>(g.at("final_norm.bias"));
  for (int i = 0; i < cfg_.n_blocks(); ++i) {
    const BlockConfig& bc = cfg_.blocks[i];
    const std::string p = "blocks." + std::to_string(i) + ".";
    BlockWeights<T> b;
    if (bc.mixer != MixerKind::None) {
      b.norm_w = to_vec<T>(g.at(p + "norm.weight"));
      if (cfg_.norm_bias) b.norm_b = to_vec<T>(g.at(p + "norm.bias"));
    }
    if (bc.mlp != MlpKind::None) {
      b.mlp_norm_w = to_vec<T>(g.at(p + "mlp_norm.weight"));
      if (cfg_.norm_bias) b.mlp_norm_b = to_vec<T>(g.at(p + "mlp_norm.bias"));
    }
    if (bc.mixer == MixerKind::Mamba) {
      auto& m = b.mamba;
      const std::string q = p + "mamba.";
      m.in_proj = to_mat<T>(g.at(q + "in_proj.weight"));
      if ((m.has_in_proj_b = bc.mamba.in_proj_bias)) m.in_proj_b = to_vec<T>(g.at(q + "in_proj.bias"));
      m.conv_w = to_mat<T>(g.at(q + "conv1d.weight"));
      if ((m.has_conv_b = bc.mamba.conv_bias)) m.conv_b = to_vec<T>(g.at(q + "conv1d.bias"));
      m.x_proj = to_mat<T>(g.at(q + "x_proj.weight"));
      m.dt_proj = to_mat<T>(g.at(q + "dt_proj.weight"));
      m.dt_bias = to_vec<T>(g.at(q + "dt_proj.bias"));
      m.A = -to_mat<T>(g.at(q + "A_log")).array().exp().matrix();  // A = -exp(A_log)
      if (bc.mamba.inner_norms) {
        m.dt_norm = to_vec<T>(g.at(q + "dt_norm.weight"));
        m.b_norm = to_vec<T>(g.at(q + "b_norm.weight"));
        m.c_norm = to_vec<T>(g.at(q + "c_norm.weight"));
      }
      m.D = to_vec<T>(g.at(q + "D"));
      m.out_proj = to_mat<T>(g.at(q + "out_proj.weight"));
      if ((m.has_out_proj_b = bc.mamba.out_proj_bias)) m.out_proj_b = to_vec<T>(g.at(q + "out_proj.bias"));
    } else if (bc.mixer == MixerKind::Attention) {
      auto& a = b.attn;
      a.qkv = to_mat<T>(g.at(p + "attn.qkv.weight"));
      if ((a.has_qkv_b = bc.attn.qkv_bias)) a.qkv_b = to_vec<T>(g.at(p + "attn.qkv.bias"));
      a.dense = to_mat<T>(g.at(p + "attn.dense.weight"));
      if ((a.has_dense_b = bc.attn.out_bias)) a.dense_b = to_vec<T>(g.at(p + "attn.dense.bias"));
    }
    if (bc.mlp == MlpKind::Dense) {
      b.mlp = load_mlp<T>(g, p + "mlp.", bc.ffn.bias);
    } else if (bc.mlp == MlpKind::Moe) {
      b.moe.router = to_mat<T>(g.at(p + "moe.router.weight"));
      if (bc.ffn.router_bias) b.moe.router_b = to_vec<T>(g.at(p + "moe.router.bias"));
      for (int e = 0; e < bc.ffn.n_experts; ++e)
        b.moe.experts.push_back(load_mlp<T>(g, p + "moe.experts." + std::to_string(e) + ".", bc.ffn.bias));
    }
    blocks_.push_back(std::move(b));
  }
}

template <class T> std::string RefModel<T>::describe() const {
  return std::is_same_v<T, float> ? "cpu fp32" : "cpu fp64";
}

template <class T> SequenceState<T> RefModel<T>::new_state() const {
  SequenceState<T> s;
  s.mamba.resize(cfg_.n_blocks());
  s.kv.resize(cfg_.n_blocks());
  for (int i = 0; i < cfg_.n_blocks(); ++i) {
    const BlockConfig& b = cfg_.blocks[i];
    if (b.mixer == MixerKind::Mamba) {
      s.mamba[i].conv = Mat<T>::Zero(b.mamba.d_conv - 1, b.mamba.d_inner);
      s.mamba[i].ssm = Mat<T>::Zero(b.mamba.d_inner, b.mamba.d_state);
    } else if (b.mixer == MixerKind::Attention) {
      s.kv[i].k = Mat<T>(0, b.attn.kv_heads() * b.attn.head_dim);
      s.kv[i].v = Mat<T>(0, b.attn.kv_heads() * b.attn.head_dim);
    }
  }
  return s;
}

template <class T>
Mat<T> RefModel<T>::run(const std::vector<int64_t>& tokens, SequenceState<T>& st, SequenceTrace* trace,
                        const std::vector<std::vector<int64_t>>* forced, const RouterPrecision* precision) const {
  return run_rows(tokens, &st, nullptr, trace, forced, nullptr, precision);
}

template <class T>
Mat<T> RefModel<T>::run_packed(const std::vector<int64_t>& tokens, const PackedSegments<T>& segments,
                               const std::vector<int64_t>& head_rows) const {
  return run_rows(tokens, nullptr, &segments, nullptr, nullptr, &head_rows);
}

// One sequence from `st`, or a packed row (`packed`, st null); the LM head at `head_rows` only when given.
template <class T>
Mat<T> RefModel<T>::run_rows(const std::vector<int64_t>& tokens, SequenceState<T>* st, const PackedSegments<T>* packed,
                             SequenceTrace* trace, const std::vector<std::vector<int64_t>>* forced,
                             const std::vector<int64_t>* head_rows, const RouterPrecision* precision) const {
  const int n = int(tokens.size()), d = cfg_.d_model;
  const DType router_half = router_rounding(precision ? *precision : router_precision_,
                                            std::is_same_v<T, float> ? DType::F32 : DType::F64);
  Mat<T> x(n, d);
  for (int t = 0; t < n; ++t) {
    if (tokens[t] < 0 || tokens[t] >= cfg_.vocab_size)
      fail("input id ", tokens[t], " at position ", (st ? st->position : 0) + t, " is outside the vocabulary [0, ",
           cfg_.vocab_size, ")");
    x.row(t) = embed_.row(tokens[t]);
  }
  require_finite(x, (st ? st->position : 0), std::string("the embedding"));
  // Hidden states as the fixtures store them: transformers' GPT-NeoX records each block's input (entry 0 is the
  // embedding); Mamba and BlackMamba record the residual stream after each block. Both end with the final norm.
  const bool neox_convention =
      cfg_.family == "hf-gpt-neox" || cfg_.family == "hf-mixtral" || cfg_.family == "hf-jamba";
  auto record = [&](const Mat<T>& h) {
    if (!trace || !trace->want_hidden) return;
    std::vector<double> v(h.size());
    for (Eigen::Index i = 0; i < h.size(); ++i) v[i] = double(h.data()[i]);
    trace->hidden.push_back(std::move(v));
  };
  if (neox_convention) record(x);
  int moe_index = 0;
  for (int i = 0; i < cfg_.n_blocks(); ++i) {
    const BlockConfig& bc = cfg_.blocks[i];
    const BlockWeights<T>& w = blocks_[i];
    auto mix = [&](const Mat<T>& hn, SequenceState<T>& s) -> Mat<T> {
      if (bc.mixer == MixerKind::Mamba) return mamba_mixer<T>(bc.mamba, w.mamba, hn, s.mamba[i]);
      return attention<T>(bc.attn, w.attn, hn, s.kv[i]);
    };
    auto mixer = [&](const Mat<T>& h) -> Mat<T> {
      Mat<T> hn = norm<T>(cfg_.norm, h, w.norm_w, cfg_.norm_bias ? &w.norm_b : nullptr, cfg_.norm_eps);
      if (!packed) return mix(hn, *st);
      Mat<T> out(hn.rows(), hn.cols());  // segment by segment: nothing mixes across sequences
      for (size_t s = 0; s < packed->start.size(); ++s) {
        const int64_t a = packed->start[s], b = s + 1 < packed->start.size() ? packed->start[s + 1] : n;
        if (b > a) out.middleRows(a, b - a) = mix(Mat<T>(hn.middleRows(a, b - a)), *packed->state[s]);
      }
      return out;
    };
    auto ffn = [&](const Mat<T>& h) -> Mat<T> {
      Mat<T> hn = norm<T>(cfg_.norm, h, w.mlp_norm_w, cfg_.norm_bias ? &w.mlp_norm_b : nullptr, cfg_.norm_eps);
      if (bc.mlp == MlpKind::Dense) return mlp<T>(bc.ffn, w.mlp, hn);
      const std::vector<int64_t>* f = nullptr;
      if (forced && moe_index < int(forced->size()) && !(*forced)[moe_index].empty()) f = &(*forced)[moe_index];
      MoeRoutes r;
      Mat<T> y;
      try {
        y = switch_mlp<T>(bc.ffn, w.moe, hn, &r, f, router_half);
      } catch (const Error& e) {
        fail("block ", i, " (moe): ", e.what());
      }
      if (trace) trace->routes.push_back(std::move(r));
      ++moe_index;
      return y;
    };
    if (bc.parallel) {
      Mat<T> out = x;
      if (bc.mixer != MixerKind::None) out += mixer(x);
      if (bc.mlp != MlpKind::None) out += ffn(x);
      x = out;
    } else {
      if (bc.mixer != MixerKind::None) x += mixer(x);
      if (bc.mlp != MlpKind::None) x += ffn(x);
    }
    require_finite(x, (st ? st->position : 0), "block " + std::to_string(i) + " (" + to_string(bc.mixer) + " + " +
                                       to_string(bc.mlp) + ")");
    if (!neox_convention || i + 1 < cfg_.n_blocks()) record(x);
  }
  Mat<T> h = norm<T>(cfg_.final_norm, x, final_norm_w_, cfg_.final_norm_bias ? &final_norm_b_ : nullptr,
                     cfg_.final_norm_eps);
  require_finite(h, (st ? st->position : 0), std::string("the final norm"));
  record(h);
  if (head_rows) h = Mat<T>(h(*head_rows, Eigen::all));  // scoring: only the rows asked for
  Mat<T> logits = linear<T>(h, cfg_.tie_embeddings ? embed_ : lm_head_, cfg_.lm_head_bias ? &lm_head_b_ : nullptr);
  require_finite(logits, st ? st->position : 0, std::string("the output head (logits)"));
  if (st) st->position += n;
  if (packed)
    for (size_t s = 0; s < packed->start.size(); ++s)
      packed->state[s]->position += (s + 1 < packed->start.size() ? packed->start[s + 1] : n) - packed->start[s];
  return logits;
}

template <class T> ForwardOutput RefModel<T>::forward(const Tensor& ids, const ForwardOptions& opt) {
  check_input_ids(ids, cfg_.vocab_size, "input_ids");
  const int B = int(ids.dim(0)), Tn = int(ids.dim(1)), V = cfg_.vocab_size, d = cfg_.d_model;
  const std::vector<int64_t> all = ids.to_i64();
  const std::vector<int> moe = cfg_.moe_blocks();
  // Forced routes come per block over the whole batch; split them per sequence.
  std::vector<std::vector<std::vector<int64_t>>> forced(B, std::vector<std::vector<int64_t>>(moe.size()));
  if (opt.force_routes)
    for (const auto& [block, experts] : *opt.force_routes) {
      auto it = std::find(moe.begin(), moe.end(), block);
      if (it == moe.end()) fail("forced routes name block ", block, ", which is not an MoE block");
      const int64_t k = cfg_.blocks[block].ffn.top_k, per_seq = int64_t(Tn) * k;
      if (int64_t(experts.size()) != B * per_seq)
        fail("forced routes for block ", block, " have ", experts.size(), " entries; expected B*T*k = ", B * per_seq);
      for (int b = 0; b < B; ++b)
        forced[b][it - moe.begin()].assign(experts.begin() + b * per_seq, experts.begin() + (b + 1) * per_seq);
    }
  std::vector<Mat<T>> logits(B);
  std::vector<SequenceTrace> traces(B);
  parallel_for(B, [&](int b) {
    SequenceState<T> st = new_state();
    traces[b].want_hidden = opt.hidden_states;
    std::vector<int64_t> seq(all.begin() + int64_t(b) * Tn, all.begin() + int64_t(b + 1) * Tn);
    logits[b] = run(seq, st, &traces[b], opt.force_routes ? &forced[b] : nullptr, opt.router_precision);
  });
  ForwardOutput out;
  out.logits = Tensor::zeros(DType::F32, {B, Tn, V});
  float* lp = out.logits.data_mut<float>();
  for (int b = 0; b < B; ++b)
    for (Eigen::Index i = 0; i < logits[b].size(); ++i) lp[int64_t(b) * Tn * V + i] = float(logits[b].data()[i]);
  for (size_t m = 0; m < moe.size(); ++m) {
    RouteRecord r;
    r.block = moe[m];
    r.n_experts = cfg_.blocks[moe[m]].ffn.n_experts;
    r.top_k = cfg_.blocks[moe[m]].ffn.top_k;
    for (int b = 0; b < B; ++b) {
      const MoeRoutes& s = traces[b].routes[m];
      r.expert.insert(r.expert.end(), s.expert.begin(), s.expert.end());
      r.tie.insert(r.tie.end(), s.tie.begin(), s.tie.end());
      for (double p : s.prob) r.prob.push_back(float(p));
      for (double l : s.router_logits) r.router_logits.push_back(float(l));
    }
    out.routes.push_back(std::move(r));
  }
  if (opt.hidden_states) {
    for (size_t k = 0; k < traces[0].hidden.size(); ++k) {
      Tensor h = Tensor::zeros(DType::F32, {B, Tn, d});
      float* hp = h.data_mut<float>();
      for (int b = 0; b < B; ++b)
        for (size_t i = 0; i < traces[b].hidden[k].size(); ++i) hp[int64_t(b) * Tn * d + i] = float(traces[b].hidden[k][i]);
      out.hidden_states.push_back(std::move(h));
    }
  }
  return out;
}

namespace {
template <class T> class RefDecoder final : public Decoder {
 public:
  RefDecoder(const RefModel<T>& m, int batch) : m_(m), states_(batch) {}
  Tensor prefill(const Tensor& ids) override {
    check_input_ids(ids, m_.config().vocab_size, "prompt ids");
    if (ids.dim(0) != int64_t(states_.size()))
      fail("decoder for batch ", states_.size(), " got a prompt batch of ", ids.dim(0));
    const int Tn = int(ids.dim(1));
    if (Tn < 1) fail("prefill needs at least one prompt token");
    const std::vector<int64_t> all = ids.to_i64();
    std::vector<Mat<T>> last(states_.size());
    parallel_for(int(states_.size()), [&](int b) {
      states_[b] = m_.new_state();
      std::vector<int64_t> seq(all.begin() + int64_t(b) * Tn, all.begin() + int64_t(b + 1) * Tn);
      last[b] = m_.run(seq, states_[b], nullptr).bottomRows(1);
    });
    return pack(last);
  }
  Tensor step(const std::vector<int64_t>& tokens) override {
    if (tokens.size() != states_.size()) fail("decode step got ", tokens.size(), " tokens for batch ", states_.size());
    std::vector<Mat<T>> last(states_.size());
    parallel_for(int(states_.size()), [&](int b) { last[b] = m_.run({tokens[b]}, states_[b], nullptr); });
    return pack(last);
  }

  // Slots are independent SequenceStates, so a slot's prefill and steps run exactly the ops the whole-batch
  // prefill/step above run for that sequence: a sequence's logits do not depend on which slots are busy.
  bool per_slot() const override { return true; }
  Tensor prefill_slot(int slot, const Tensor& ids) override {
    check_input_ids(ids, m_.config().vocab_size, "prompt ids");
    if (slot < 0 || slot >= int(states_.size())) fail("decoder for batch ", states_.size(), " has no slot ", slot);
    if (ids.dim(0) != 1 || ids.dim(1) < 1) fail("prefill_slot needs one prompt [1, T >= 1], got ", shape_str(ids.shape()));
    states_[slot] = m_.new_state();
    std::vector<Mat<T>> last{m_.run(ids.to_i64(), states_[slot], nullptr).bottomRows(1)};
    return pack(last);
  }
  Tensor step_slots(const std::vector<int64_t>& tokens, const std::vector<uint8_t>& active) override {
    if (tokens.size() != states_.size() || active.size() != states_.size())
      fail("decode step got ", tokens.size(), " tokens and ", active.size(), " active flags for batch ", states_.size());
    std::vector<int> busy;
    for (size_t b = 0; b < active.size(); ++b)
      if (active[b]) busy.push_back(int(b));
    const int V = m_.config().vocab_size;
    std::vector<Mat<T>> last(busy.size());
    parallel_for(int(busy.size()), [&](int i) { last[i] = m_.run({tokens[busy[i]]}, states_[busy[i]], nullptr); });
    Tensor out = Tensor::zeros(DType::F32, {int64_t(states_.size()), V});
    float* p = out.data_mut<float>();
    for (size_t i = 0; i < busy.size(); ++i)
      for (int v = 0; v < V; ++v) p[int64_t(busy[i]) * V + v] = float(last[i](0, v));
    return out;
  }

 private:
  Tensor pack(const std::vector<Mat<T>>& rows) const {
    const int V = m_.config().vocab_size;
    Tensor out = Tensor::zeros(DType::F32, {int64_t(rows.size()), V});
    float* p = out.data_mut<float>();
    for (size_t b = 0; b < rows.size(); ++b)
      for (int v = 0; v < V; ++v) p[b * V + v] = float(rows[b](0, v));
    return out;
  }
  const RefModel<T>& m_;
  std::vector<SequenceState<T>> states_;
};
}  // namespace

template <class T> std::unique_ptr<Decoder> RefModel<T>::decoder(int batch) {
  return std::make_unique<RefDecoder<T>>(*this, batch);
}

template class RefModel<float>;
template class RefModel<double>;

std::unique_ptr<LanguageModel> make_reference_model(const ModelConfig& cfg, const TensorMap& canonical,
                                                    const std::string& dtype) {
  if (dtype == "fp32") return std::make_unique<RefModel<float>>(cfg, canonical);
  if (dtype == "fp64") return std::make_unique<RefModel<double>>(cfg, canonical);
  fail("the CPU reference runs in fp32 or fp64, not '", dtype, "'");
}

}  // namespace bmh::ref
