// The reference TrainableModel (reference/trainable_model.h). The forward runs the whole batch block by block
// (so a RoutingHook sees all B*T rows of an MoE block at once) with the same per-sequence ops, in the same order,
// as RefModel::run (reference/model.cpp), so the loss equals the inference forward's bit for bit under inference
// routing. The backward walks the blocks in reverse: row-wise parts (norms, MLPs, MoE, head) over all rows at
// once, the sequence mixers (Mamba, attention) per sequence in parallel, each sequence into its own gradient
// buffer, summed in sequence order so the result does not depend on the thread count.
#include <algorithm>

#include "core/error.h"
#include "core/model_weights.h"
#include "core/parallel.h"
#include "reference/backward_ops.h"
#include "reference/model.h"
#include "reference/trainable_model.h"

namespace bmh::ref {

namespace {

template <class T> Vec<T> zv(const Vec<T>& v) { return Vec<T>::Zero(v.size()); }

// Row-wise softmax with the max subtracted (torch.softmax), in T.
template <class T> Mat<T> softmax_rows(const Mat<T>& x) {
  Mat<T> p(x.rows(), x.cols());
  for (Eigen::Index r = 0; r < x.rows(); ++r) {
    const T mx = x.row(r).maxCoeff();
    T sum = 0;
    for (Eigen::Index e = 0; e < x.cols(); ++e) sum += (p(r, e) = std::exp(x(r, e) - mx));
    p.row(r) /= sum;
  }
  return p;
}

// What the backward needs of one block: its input and, for a sequential block, the MLP's input.
template <class T> struct BlockTape {
  Mat<T> in, mid;
  std::vector<int64_t> experts;  // MoE: chosen experts [rows * k], slot order
  MlpSpec ffn;                   // MoE: the block's spec as routed this step (softmax_gate swaps the gate)
  Mat<T> probs;                  // MoE, backward only: softmax of the router logits [rows, E] (auxiliary loss)
};

template <class T> struct Grads {
  Mat<T> embed, lm_head;
  Vec<T> lm_head_b, final_norm_w, final_norm_b;
  std::vector<BlockWeights<T>> blocks;
};

template <class T> class RefTrainable final : public TrainableModel {
 public:
  RefTrainable(ModelConfig cfg, const TensorMap& canonical) : cfg_(std::move(cfg)) {
    const DType dt = std::is_same_v<T, float> ? DType::F32 : DType::F64;
    for (const WeightSpec& w : expected_weights(cfg_)) {
      auto it = canonical.find(w.name);
      if (it == canonical.end()) fail("training: canonical weight '", w.name, "' is missing");
      if (it->second.numel() != shape_numel(w.shape))
        fail("training: weight '", w.name, "' is ", it->second.describe(), ", expected ", shape_str(w.shape));
      const std::vector<double> v = it->second.to_f64();
      Tensor t = Tensor::zeros(dt, w.shape);
      T* p = t.data_mut<T>();
      for (size_t i = 0; i < v.size(); ++i) p[i] = T(v[i]);
      params_[w.name] = std::move(t);
    }
  }
  const ModelConfig& config() const override { return cfg_; }
  std::string describe() const override { return std::is_same_v<T, float> ? "cpu fp32" : "cpu fp64"; }
  TensorMap& parameters() override { return params_; }
  LossAndGrad loss_and_grad(const Tensor& ids, const RoutingHook* hook) override {
    LossAndGrad r;
    r.loss = step(ids, hook, &r);
    return r;
  }
  double loss(const Tensor& ids, const RoutingHook* hook) override { return step(ids, hook, nullptr); }

 private:
  double step(const Tensor& ids, const RoutingHook* hook, LossAndGrad* out);
  void export_grads(const Grads<T>& g, TensorMap* grads) const;

  ModelConfig cfg_;
  TensorMap params_;
};

template <class T> double RefTrainable<T>::step(const Tensor& ids_t, const RoutingHook* hook, LossAndGrad* out) {
  check_input_ids(ids_t, cfg_.vocab_size, "input_ids");
  const int B = int(ids_t.dim(0)), Tn = int(ids_t.dim(1)), d = cfg_.d_model, V = cfg_.vocab_size;
  if (Tn < 2) fail("training needs sequences of at least 2 tokens (input_ids is [", B, ", ", Tn, "])");
  const int rows = B * Tn;
  const std::vector<int64_t> ids = ids_t.to_i64();
  const RefModel<T> m(cfg_, params_);  // weights in T, loaded by the inference model's own code
  const std::vector<BlockWeights<T>>& W = m.blocks();
  const int nb = cfg_.n_blocks();
  // Applies f(b, rows of sequence b) -> [Tn, cols] per sequence, in parallel, stacking the results.
  auto per_sequence = [&](const Mat<T>& in, int cols, auto f) {
    Mat<T> res(rows, cols);
    parallel_for(B, [&](int b) { res.middleRows(int64_t(b) * Tn, Tn) = f(b, Mat<T>(in.middleRows(int64_t(b) * Tn, Tn))); });
    return res;
  };

  // ---- forward (reference/model.cpp RefModel::run, block by block over the whole batch) ----
  Mat<T> x(rows, d);
  for (int r = 0; r < rows; ++r) x.row(r) = m.embed().row(ids[r]);
  std::vector<BlockTape<T>> tape(nb);
  int moe_slot = 0;
  for (int i = 0; i < nb; ++i) {
    const BlockConfig& bc = cfg_.blocks[i];
    const BlockWeights<T>& w = W[i];
    auto mixer = [&](const Mat<T>& h) -> Mat<T> {
      Mat<T> hn = norm<T>(cfg_.norm, h, w.norm_w, cfg_.norm_bias ? &w.norm_b : nullptr, cfg_.norm_eps);
      return per_sequence(hn, d, [&](int, const Mat<T>& s) -> Mat<T> {
        if (bc.mixer == MixerKind::Mamba) {
          MambaState<T> st;
          return mamba_mixer<T>(bc.mamba, w.mamba, s, st);
        }
        const int kv_width = bc.attn.kv_heads() * bc.attn.head_dim;
        KvCache<T> kv{Mat<T>(0, kv_width), Mat<T>(0, kv_width)};
        return attention<T>(bc.attn, w.attn, s, kv);
      });
    };
    auto ffn = [&](const Mat<T>& h) -> Mat<T> {
      Mat<T> hn = norm<T>(cfg_.norm, h, w.mlp_norm_w, cfg_.norm_bias ? &w.mlp_norm_b : nullptr, cfg_.norm_eps);
      if (bc.mlp == MlpKind::Dense)
        return per_sequence(hn, d, [&](int, const Mat<T>& s) { return mlp<T>(bc.ffn, w.mlp, s); });
      const int E = bc.ffn.n_experts, k = bc.ffn.top_k;
      std::vector<int64_t> chosen;  // [rows * k] when a hook decides this block (core/trainable.h)
      const bool hooked = hook && (k == 1 ? bool(hook->choose) : bool(hook->choose_topk));
      // switch_mlp.py's non-sinkhorn branch scales by the softmax probability of the chosen expert: the same
      // block as a softmax top-1 router without renormalisation (gate = p_e, gradient through the softmax).
      MlpSpec spec = bc.ffn;
      if (hooked && hook->softmax_gate && bc.ffn.router == RouterKind::SigmoidTop1) {
        spec.router = RouterKind::SoftmaxTopK;
        spec.renormalize = false;
      }
      tape[i].ffn = spec;
      Mat<T> lg;  // the router's logits for every row of the step (as switch_mlp computes them)
      if (hooked || out)
        lg = per_sequence(hn, E, [&](int, const Mat<T>& s) {
          return linear<T>(s, w.moe.router, bc.ffn.router_bias ? &w.moe.router_b : nullptr);
        });
      if (out) tape[i].probs = softmax_rows<T>(lg);
      if (hooked) {
        std::vector<float> lf(size_t(rows) * E);
        for (int r = 0; r < rows; ++r)
          for (int e = 0; e < E; ++e) lf[size_t(r) * E + e] = float(lg(r, e));
        chosen.assign(size_t(rows) * k, -1);
        if (k == 1) hook->choose(moe_slot, rows, E, lf.data(), chosen.data());
        else hook->choose_topk(moe_slot, rows, E, k, lf.data(), chosen.data());
        for (int r = 0; r < rows; ++r)
          for (int j = 0; j < k; ++j) {
            const int64_t e = chosen[size_t(r) * k + j];
            if (e < 0 || e >= E)
              fail("routing hook chose expert ", e, " for row ", r, " slot ", j, " of MoE block ", i, "; expected [0, ", E, ")");
            for (int j2 = 0; j2 < j; ++j2)
              if (chosen[size_t(r) * k + j2] == e)
                fail("routing hook chose expert ", e, " twice for row ", r, " of MoE block ", i);
          }
      }
      std::vector<MoeRoutes> routes(B);
      Mat<T> y = per_sequence(hn, d, [&](int b, const Mat<T>& s) {
        std::vector<int64_t> f;
        if (hooked) f.assign(chosen.begin() + int64_t(b) * Tn * k, chosen.begin() + int64_t(b + 1) * Tn * k);
        return switch_mlp<T>(spec, w.moe, s, &routes[b], hooked ? &f : nullptr);
      });
      RouteRecord rec;
      rec.block = i;
      rec.n_experts = E;
      rec.top_k = k;
      for (const MoeRoutes& r : routes) {
        rec.expert.insert(rec.expert.end(), r.expert.begin(), r.expert.end());
        rec.tie.insert(rec.tie.end(), r.tie.begin(), r.tie.end());
        for (double p : r.prob) rec.prob.push_back(float(p));
        for (double l : r.router_logits) rec.router_logits.push_back(float(l));
      }
      tape[i].experts = rec.expert;
      if (out) out->routes.push_back(std::move(rec));
      ++moe_slot;
      return y;
    };
    if (out) tape[i].in = x;  // the tape is only for the backward
    if (bc.parallel) {
      Mat<T> o = x;
      if (bc.mixer != MixerKind::None) o += mixer(x);
      if (bc.mlp != MlpKind::None) o += ffn(x);
      x = o;
    } else {
      if (bc.mixer != MixerKind::None) x += mixer(x);
      if (out) tape[i].mid = x;
      if (bc.mlp != MlpKind::None) x += ffn(x);
    }
  }
  // Load-balancing loss (core/trainable.h LossAndGrad::aux_loss; transformers modeling_mixtral.py
  // load_balancing_loss_func): over all MoE blocks' rows concatenated, aux = E * sum_e f_e P_e. aux_grad[e] is
  // d(coef * aux) / d p_{n,e} = coef * E * f_e / N, the same for every row n of every MoE block.
  const std::vector<int> moe_ids = cfg_.moe_blocks();
  std::vector<T> aux_grad;
  if (out && !moe_ids.empty()) {
    const int E = cfg_.blocks[moe_ids[0]].ffn.n_experts;
    bool same_e = true;
    for (int b : moe_ids) same_e = same_e && cfg_.blocks[b].ffn.n_experts == E;
    const double coef = hook ? hook->aux_loss_coef : 0.0;
    if (!same_e && coef != 0)
      fail("the load-balancing loss needs one expert count in every MoE block (transformers concatenates the "
           "layers' router logits); this model's differ, so use an auxiliary loss coefficient of 0");
    if (same_e) {
      const double N = double(moe_ids.size()) * rows;
      std::vector<double> f(size_t(E), 0.0), P(size_t(E), 0.0);
      for (int b : moe_ids) {
        for (int64_t e : tape[b].experts) f[size_t(e)] += 1.0;
        for (int r = 0; r < rows; ++r)
          for (int e = 0; e < E; ++e) P[size_t(e)] += double(tape[b].probs(r, e));
      }
      double aux = 0;
      for (int e = 0; e < E; ++e) aux += (f[size_t(e)] / N) * (P[size_t(e)] / N);
      out->aux_loss = aux * E;
      if (coef != 0) {
        aux_grad.resize(size_t(E));
        for (int e = 0; e < E; ++e) aux_grad[size_t(e)] = T(coef * E * (f[size_t(e)] / N) / N);
      }
    }
  }
  const Vec<T>* fnb = cfg_.final_norm_bias ? &m.final_norm_b() : nullptr;
  const Mat<T> hf = norm<T>(cfg_.final_norm, x, m.final_norm_w(), fnb, cfg_.final_norm_eps);
  const Mat<T>& head = cfg_.tie_embeddings ? m.embed() : m.lm_head();
  const Vec<T>* head_b = cfg_.lm_head_bias ? &m.lm_head_b() : nullptr;
  // Loss: mean over B*(T-1) next-token targets (logits[:, :-1] vs ids[:, 1:]); per-sequence sums added in order.
  const double scale = 1.0 / (double(B) * (Tn - 1));
  Mat<T> dlogits;
  if (out) dlogits = Mat<T>::Zero(rows, V);
  std::vector<double> seq_loss(B);
  parallel_for(B, [&](int b) {
    Mat<T> lg = linear<T>(Mat<T>(hf.middleRows(int64_t(b) * Tn, Tn)), head, head_b);
    std::vector<int64_t> target(Tn, -1);
    for (int t = 0; t + 1 < Tn; ++t) target[t] = ids[int64_t(b) * Tn + t + 1];
    Mat<T> dl;
    if (out) dl = Mat<T>::Zero(Tn, V);
    seq_loss[b] = cross_entropy_sum<T>(lg, target, out ? &dl : nullptr, scale);
    if (out) dlogits.middleRows(int64_t(b) * Tn, Tn) = dl;
  });
  double total = 0;
  for (double l : seq_loss) total += l;
  const double loss = total * scale;
  if (!out) return loss;

  // ---- backward ----
  Grads<T> g;
  g.embed = Mat<T>::Zero(m.embed().rows(), m.embed().cols());
  if (!cfg_.tie_embeddings) g.lm_head = Mat<T>::Zero(head.rows(), head.cols());
  g.lm_head_b = zv(m.lm_head_b());
  g.final_norm_w = zv(m.final_norm_w());
  g.final_norm_b = zv(m.final_norm_b());
  Mat<T>& ghead = cfg_.tie_embeddings ? g.embed : g.lm_head;  // tied: one parameter, both uses summed
  Mat<T> dx = linear_backward<T>(dlogits, hf, head, &ghead, head_b ? &g.lm_head_b : nullptr);
  dlogits.resize(0, 0);
  dx = norm_backward<T>(cfg_.final_norm, dx, x, m.final_norm_w(), cfg_.final_norm_eps, &g.final_norm_w,
                        fnb ? &g.final_norm_b : nullptr);
  g.blocks.resize(nb);
  for (int i = nb - 1; i >= 0; --i) {
    const BlockConfig& bc = cfg_.blocks[i];
    const BlockWeights<T>& w = W[i];
    BlockWeights<T>& gb = g.blocks[i];
    gb.norm_w = zv(w.norm_w), gb.norm_b = zv(w.norm_b), gb.mlp_norm_w = zv(w.mlp_norm_w), gb.mlp_norm_b = zv(w.mlp_norm_b);
    // d(mixer(norm(h))) / dh applied to dy.
    auto mixer_back = [&](const Mat<T>& h, const Mat<T>& dy) -> Mat<T> {
      Mat<T> hn = norm<T>(cfg_.norm, h, w.norm_w, cfg_.norm_bias ? &w.norm_b : nullptr, cfg_.norm_eps);
      Mat<T> dhn(rows, d);
      if (bc.mixer == MixerKind::Mamba) {
        std::vector<MambaWeights<T>> gs(B, zeros_like(w.mamba));
        parallel_for(B, [&](int b) {
          dhn.middleRows(int64_t(b) * Tn, Tn) = mamba_mixer_backward<T>(
              bc.mamba, w.mamba, Mat<T>(hn.middleRows(int64_t(b) * Tn, Tn)), Mat<T>(dy.middleRows(int64_t(b) * Tn, Tn)), &gs[b]);
        });
        gb.mamba = std::move(gs[0]);
        for (int b = 1; b < B; ++b) add_into(gb.mamba, gs[b]);
      } else {
        std::vector<AttentionWeights<T>> gs(B, zeros_like(w.attn));
        parallel_for(B, [&](int b) {
          dhn.middleRows(int64_t(b) * Tn, Tn) = attention_backward<T>(
              bc.attn, w.attn, Mat<T>(hn.middleRows(int64_t(b) * Tn, Tn)), Mat<T>(dy.middleRows(int64_t(b) * Tn, Tn)), &gs[b]);
        });
        gb.attn = std::move(gs[0]);
        for (int b = 1; b < B; ++b) add_into(gb.attn, gs[b]);
      }
      return norm_backward<T>(cfg_.norm, dhn, h, w.norm_w, cfg_.norm_eps, &gb.norm_w, cfg_.norm_bias ? &gb.norm_b : nullptr);
    };
    auto ffn_back = [&](const Mat<T>& h, const Mat<T>& dy) -> Mat<T> {
      Mat<T> hn = norm<T>(cfg_.norm, h, w.mlp_norm_w, cfg_.norm_bias ? &w.mlp_norm_b : nullptr, cfg_.norm_eps);
      Mat<T> dhn;
      if (bc.mlp == MlpKind::Dense) {
        gb.mlp = zeros_like(w.mlp);
        dhn = mlp_backward<T>(bc.ffn, w.mlp, hn, dy, &gb.mlp);
      } else {
        gb.moe = zeros_like(w.moe);
        dhn = switch_mlp_backward<T>(tape[i].ffn, w.moe, hn, tape[i].experts, dy, &gb.moe);
        if (!aux_grad.empty()) {
          // coef * aux through P: softmax backward dlogit = p (g - p . g) (torch _softmax_backward_data), then
          // the router Linear.
          const Mat<T>& p = tape[i].probs;
          const Eigen::Map<const Vec<T>> g(aux_grad.data(), Eigen::Index(aux_grad.size()));
          Mat<T> dl(rows, p.cols());
          for (int r = 0; r < rows; ++r) {
            T pg = 0;
            for (Eigen::Index e = 0; e < p.cols(); ++e) pg += p(r, e) * g(e);
            for (Eigen::Index e = 0; e < p.cols(); ++e) dl(r, e) = p(r, e) * (g(e) - pg);
          }
          dhn += linear_backward<T>(dl, hn, w.moe.router, &gb.moe.router, bc.ffn.router_bias ? &gb.moe.router_b : nullptr);
        }
      }
      return norm_backward<T>(cfg_.norm, dhn, h, w.mlp_norm_w, cfg_.norm_eps, &gb.mlp_norm_w,
                              cfg_.norm_bias ? &gb.mlp_norm_b : nullptr);
    };
    if (bc.parallel) {  // out = x + mixer(norm(x)) + mlp(mlp_norm(x))
      Mat<T> d_in = dx;
      if (bc.mixer != MixerKind::None) d_in += mixer_back(tape[i].in, dx);
      if (bc.mlp != MlpKind::None) d_in += ffn_back(tape[i].in, dx);
      dx = std::move(d_in);
    } else {  // mid = x + mixer(norm(x)); out = mid + mlp(mlp_norm(mid))
      if (bc.mlp != MlpKind::None) dx += ffn_back(tape[i].mid, dx);
      if (bc.mixer != MixerKind::None) dx += mixer_back(tape[i].in, dx);
    }
  }
  for (int r = 0; r < rows; ++r) g.embed.row(ids[r]) += dx.row(r);  // nn.Embedding backward: scatter-add
  export_grads(g, &out->grads);
  return loss;
}

template <class T> void RefTrainable<T>::export_grads(const Grads<T>& g, TensorMap* grads) const {
  auto put = [&](const std::string& name, const T* data, int64_t n) {
    auto it = params_.find(name);
    if (it == params_.end()) fail("training: gradient for '", name, "', which is not a parameter");
    if (it->second.numel() != n) fail("training: gradient for '", name, "' has ", n, " elements, parameter ", it->second.describe());
    Tensor t = Tensor::zeros(it->second.dtype(), it->second.shape());
    std::copy(data, data + n, t.data_mut<T>());
    (*grads)[name] = std::move(t);
  };
  auto pm = [&](const std::string& n, const Mat<T>& m) { put(n, m.data(), m.size()); };
  auto pv = [&](const std::string& n, const Vec<T>& v) { put(n, v.data(), v.size()); };
  auto pmlp = [&](const std::string& p, const MlpSpec& s, const MlpWeights<T>& w) {
    pm(p + "fc1.weight", w.fc1), pm(p + "fc2.weight", w.fc2);
    if (s.bias) pv(p + "fc1.bias", w.fc1_b), pv(p + "fc2.bias", w.fc2_b);
  };
  // Names as reference/model.cpp's RefModel constructor reads them (core/model_weights.h).
  pm("embed.weight", g.embed);
  if (!cfg_.tie_embeddings) pm("lm_head.weight", g.lm_head);
  if (cfg_.lm_head_bias) pv("lm_head.bias", g.lm_head_b);
  pv("final_norm.weight", g.final_norm_w);
  if (cfg_.final_norm_bias) pv("final_norm.bias", g.final_norm_b);
  for (int i = 0; i < cfg_.n_blocks(); ++i) {
    const BlockConfig& bc = cfg_.blocks[i];
    const BlockWeights<T>& b = g.blocks[i];
    const std::string p = "blocks." + std::to_string(i) + ".";
    if (bc.mixer != MixerKind::None) {
      pv(p + "norm.weight", b.norm_w);
      if (cfg_.norm_bias) pv(p + "norm.bias", b.norm_b);
    }
    if (bc.mlp != MlpKind::None) {
      pv(p + "mlp_norm.weight", b.mlp_norm_w);
      if (cfg_.norm_bias) pv(p + "mlp_norm.bias", b.mlp_norm_b);
    }
    if (bc.mixer == MixerKind::Mamba) {
      const auto& m = b.mamba;
      const std::string q = p + "mamba.";
      pm(q + "in_proj.weight", m.in_proj);
      if (bc.mamba.in_proj_bias) pv(q + "in_proj.bias", m.in_proj_b);
      pm(q + "conv1d.weight", m.conv_w);
      if (bc.mamba.conv_bias) pv(q + "conv1d.bias", m.conv_b);
      pm(q + "x_proj.weight", m.x_proj), pm(q + "dt_proj.weight", m.dt_proj), pv(q + "dt_proj.bias", m.dt_bias);
      pm(q + "A_log", m.A), pv(q + "D", m.D), pm(q + "out_proj.weight", m.out_proj);
      if (bc.mamba.inner_norms)
        pv(q + "dt_norm.weight", m.dt_norm), pv(q + "b_norm.weight", m.b_norm), pv(q + "c_norm.weight", m.c_norm);
      if (bc.mamba.out_proj_bias) pv(q + "out_proj.bias", m.out_proj_b);
    } else if (bc.mixer == MixerKind::Attention) {
      pm(p + "attn.qkv.weight", b.attn.qkv);
      if (bc.attn.qkv_bias) pv(p + "attn.qkv.bias", b.attn.qkv_b);
      pm(p + "attn.dense.weight", b.attn.dense);
      if (bc.attn.out_bias) pv(p + "attn.dense.bias", b.attn.dense_b);
    }
    if (bc.mlp == MlpKind::Dense) pmlp(p + "mlp.", bc.ffn, b.mlp);
    if (bc.mlp == MlpKind::Moe) {
      pm(p + "moe.router.weight", b.moe.router);
      if (bc.ffn.router_bias) pv(p + "moe.router.bias", b.moe.router_b);
      for (int e = 0; e < bc.ffn.n_experts; ++e)
        pmlp(p + "moe.experts." + std::to_string(e) + ".", bc.ffn, b.moe.experts[e]);
    }
  }
  for (const auto& [name, t] : params_)
    if (!grads->count(name)) fail("training: no gradient computed for parameter '", name, "'");
}

}  // namespace

std::unique_ptr<TrainableModel> make_reference_trainable(const ModelConfig& cfg, const TensorMap& canonical,
                                                         const std::string& dtype) {
  if (dtype == "fp32") return std::make_unique<RefTrainable<float>>(cfg, canonical);
  if (dtype == "fp64") return std::make_unique<RefTrainable<double>>(cfg, canonical);
  fail("the CPU reference trains in fp32 or fp64, not '", dtype, "'");
}

}  // namespace bmh::ref
