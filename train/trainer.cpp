// The training loop, logging and resume (see train/trainer.h).
#include "train/trainer.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "core/checkpoint.h"
#include "core/error.h"
#include "core/flops.h"
#include "core/model_weights.h"
#include "evals/routing_stats.h"
#include "train/checkpoint_io.h"
#include "train/routing.h"
#include "train/training_flops.h"

namespace bmh::train {

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

std::string fingerprint(const json& j) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : j.dump()) h = (h ^ ch) * 1099511628211ull;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

void add_into(Tensor& acc, const Tensor& g) {
  if (acc.dtype() == DType::F32)
    for (int64_t i = 0; i < acc.numel(); ++i) acc.data_mut<float>()[i] += g.data<float>()[i];
  else
    for (int64_t i = 0; i < acc.numel(); ++i) acc.data_mut<double>()[i] += g.data<double>()[i];
}

std::string eta(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  char buf[32];
  const int t = int(s + 0.5);
  std::snprintf(buf, sizeof buf, "%d:%02d", t / 60, t % 60);
  return buf;
}

// Held-out loss; hook null = the inference routing (Zyphra switch_mlp.py: argmax of the sigmoid).
double mean_val_loss(TrainableModel& m, const std::vector<Tensor>& val, const RoutingHook* hook = nullptr) {
  double s = 0;
  for (const Tensor& ids : val) s += m.loss(ids, hook);
  return s / double(val.size());
}

}  // namespace

json to_json(const LogRow& r) {
  return {{"step", r.step}, {"tokens", r.tokens}, {"flops", r.flops}, {"lr", r.lr}, {"train_loss", r.train_loss},
          {"grad_norm", r.grad_norm}, {"tokens_per_s", r.tokens_per_s}, {"seconds", r.seconds},
          {"val_loss", r.val_loss}, {"val_loss_train_routing", r.val_loss_train_routing},
          {"expert_counts", r.expert_counts},
          {"sinkhorn_iterations", r.sinkhorn_iterations}, {"sinkhorn_unconverged", r.sinkhorn_unconverged},
          {"aux_loss", r.aux_loss}};
}

LogRow log_row_from_json(const json& j) {
  LogRow r;
  r.step = j.at("step");
  r.tokens = j.at("tokens");
  r.flops = j.at("flops");
  r.lr = j.at("lr");
  r.train_loss = j.at("train_loss");
  r.grad_norm = j.at("grad_norm");
  r.tokens_per_s = j.at("tokens_per_s");
  r.seconds = j.at("seconds");
  r.val_loss = j.at("val_loss");
  r.val_loss_train_routing = j.at("val_loss_train_routing");
  r.expert_counts = j.at("expert_counts").get<std::vector<std::vector<int64_t>>>();
  r.sinkhorn_iterations = j.at("sinkhorn_iterations");
  r.sinkhorn_unconverged = j.at("sinkhorn_unconverged");
  r.aux_loss = j.value("aux_loss", -1.0);  // absent in states written before the load-balancing loss
  return r;
}

TrainOutcome run_training(const TrainConfig& c, const TokenData& data, const TrainableFactory& factory,
                          const TrainRunOptions& opt) {
  const auto t_start = Clock::now();
  auto say = [&](const std::string& s) {
    if (opt.say) opt.say(s);
  };
  TrainOutcome out;
  ModelConfig cfg = resolve_model_config(c);
  out.cfg = cfg;
  if (data.max_id() >= cfg.vocab_size)
    fail("data holds token id ", data.max_id(), " but the model's vocabulary has ", cfg.vocab_size,
         " entries (set vocab_size)");
  const int B = c.batch, T = c.seq_len;
  out.flops_per_token = training_flops_per_token(cfg, T);
  const double tokens_per_step = double(B) * T * c.accum, flops_per_step = out.flops_per_token * tokens_per_step;
  const int64_t max_steps = c.steps > 0 ? c.steps : std::max<int64_t>(1, int64_t(std::ceil(c.flops / flops_per_step)));
  out.steps = max_steps;
  json fp_src = c.json;
  fp_src.erase("checkpoint_every");
  const std::string fp = fingerprint(fp_src);

  // Start: a checkpoint of this same run, or the family's initialisation / the given checkpoint.
  int64_t start = 0;
  std::unique_ptr<TrainableModel> model;
  TensorMap optimizer_state;
  json st;
  if (!opt.out_dir.empty() && !opt.fresh && recover_checkpoint(opt.out_dir)) {
    st = read_trainer_state(opt.out_dir);
    if (st.value("fingerprint", "") != fp) {
      if (!opt.restart_on_mismatch)
        fail(checkpoint_dir(opt.out_dir), " belongs to a run with other settings (fingerprint ",
             st.value("fingerprint", "?"), ", this run ", fp, "); use another output directory or --fresh");
      say("starting over: " + checkpoint_dir(opt.out_dir) + " holds a run with other settings");
      st = nullptr;
    }
  }
  if (!st.is_null()) {
    start = st.at("step");
    for (const auto& r : st.at("log")) out.log.push_back(log_row_from_json(r));
    TensorMap w;
    const DType dt = c.dtype == "fp64" ? DType::F64 : DType::F32;
    for (auto& [name, t] : canonicalize_weights(cfg, load_checkpoint_dir(checkpoint_dir(opt.out_dir)))) {
      if (t.dtype() != dt) fail(checkpoint_dir(opt.out_dir), ": tensor ", name, " is ", t.describe());
      Tensor o = Tensor::zeros(dt, t.shape());
      std::memcpy(o.raw_mut(), t.raw(), t.nbytes());
      w[name] = std::move(o);
    }
    model = factory(cfg, w);
    optimizer_state = read_optimizer_state(opt.out_dir);
    out.resumed = true;
    out.resumed_from = start;
    say("resuming from " + checkpoint_dir(opt.out_dir) + " at step " + std::to_string(start));
  } else {
    ModelStart s = resolve_model(c);
    model = factory(s.cfg, s.weights);
  }
  AdamW adam(model->parameters(), c.opt);
  if (out.resumed) adam.load_state(optimizer_state, start);

  const std::vector<Tensor> val = data.val_batches(c.eval_batches, B, T);
  auto stats = std::make_shared<RoutingStats>();
  const double aux_coef = aux_loss_coef_for(c, cfg);
  std::unique_ptr<RoutingHook> hook =
      make_routing_hook(c.routing, sinkhorn_init_from(c.sinkhorn_init), stats, aux_coef);
  const std::vector<int> moe = cfg.moe_blocks();
  // Held-out loss under the training routing only where that routing differs from inference.
  const RoutingHook* train_routing = hook && (hook->choose || hook->choose_topk) && !moe.empty() ? hook.get() : nullptr;
  auto zero_counts = [&] {
    std::vector<std::vector<int64_t>> z;
    for (int b : moe) z.emplace_back(size_t(cfg.blocks[b].ffn.n_experts), 0);
    return z;
  };
  auto save = [&](int64_t step, bool done) {
    if (opt.out_dir.empty()) return;
    json log = json::array();
    for (const auto& r : out.log) log.push_back(to_json(r));
    json st = {{"fingerprint", fp}, {"step", step}, {"max_steps", max_steps}, {"done", done}, {"seed", c.seed},
               {"sampler", "stateless: batch offsets hash (seed, step, micro-batch, row)"},
               {"config", c.json}, {"log", log}};
    save_checkpoint(opt.out_dir, cfg, model->parameters(), adam.state(), st);
  };

  if (start == 0) {  // the curve starts at the initialisation
    LogRow r0;
    r0.train_loss = -1;
    r0.lr = lr_at(c.opt, 0, max_steps);
    r0.val_loss = mean_val_loss(*model, val);
    if (train_routing) r0.val_loss_train_routing = mean_val_loss(*model, val, train_routing);
    r0.expert_counts = zero_counts();
    out.log.push_back(r0);
    *stats = RoutingStats{};
    say("step 0: held-out loss " + std::to_string(r0.val_loss) + " (unigram entropy of the held-out text " +
        std::to_string(data.val_unigram_entropy()) + " nats)");
  }
  auto window_counts = zero_counts();
  double window_loss = 0, window_tokens = 0, window_aux = 0;
  int64_t window_steps = 0;
  auto t_window = Clock::now();
  const auto t_loop = Clock::now();
  const int64_t stop = opt.stop_after > 0 ? std::min(max_steps, start + opt.stop_after) : max_steps;
  for (int64_t step = start; step < stop; ++step) {
    const double lr = lr_at(c.opt, step, max_steps);
    TensorMap grads;
    double loss = 0, aux = 0;
    for (int micro = 0; micro < c.accum; ++micro) {
      const Tensor ids = data.train_batch(c.seed, step, micro, B, T);
      LossAndGrad lg = model->loss_and_grad(ids, hook.get());
      loss += lg.loss;
      aux += lg.aux_loss;
      if (micro == 0) {
        grads = std::move(lg.grads);
      } else {
        for (auto& [name, g] : grads) add_into(g, lg.grads.at(name));
      }
      for (size_t k = 0; k < lg.routes.size() && k < window_counts.size(); ++k)
        for (int64_t e : lg.routes[k].expert) ++window_counts[k].at(size_t(e));
    }
    if (c.accum > 1) scale(grads, 1.0 / c.accum);
    loss /= c.accum;
    aux /= c.accum;
    if (!std::isfinite(loss)) fail("training diverged: loss ", loss, " at step ", step);
    const double gnorm = clip_grad_norm(grads, c.opt.grad_clip);
    adam.step(grads, lr);
    const int64_t s = step + 1;
    window_loss += loss;
    window_aux += aux;
    window_tokens += tokens_per_step;
    ++window_steps;
    const bool ckpt = c.checkpoint_every > 0 && s % c.checkpoint_every == 0 && s < max_steps;
    const bool eval = s % c.eval_every == 0 || s == max_steps;
    if (s % c.log_every == 0 || eval || ckpt || s == max_steps) {
      const double secs = std::chrono::duration<double>(Clock::now() - t_window).count();
      LogRow r;
      r.step = s;
      r.tokens = double(s) * tokens_per_step;
      r.flops = double(s) * flops_per_step;
      r.lr = lr;
      r.train_loss = window_loss / double(window_steps);
      r.grad_norm = gnorm;
      r.tokens_per_s = secs > 0 ? window_tokens / secs : 0;
      r.seconds = std::chrono::duration<double>(Clock::now() - t_start).count();
      r.expert_counts = window_counts;
      r.sinkhorn_iterations = stats->iterations;
      r.sinkhorn_unconverged = stats->unconverged_calls;
      r.aux_loss = moe.empty() ? -1.0 : window_aux / double(window_steps);
      if (eval) r.val_loss = mean_val_loss(*model, val);
      if (eval && train_routing) r.val_loss_train_routing = mean_val_loss(*model, val, train_routing);
      out.log.push_back(r);
      const double per_step = std::chrono::duration<double>(Clock::now() - t_loop).count() / double(s - start);
      char line[256];
      char aux_text[48] = "";
      if (r.aux_loss >= 0) std::snprintf(aux_text, sizeof aux_text, "  aux %.4f", r.aux_loss);
      std::snprintf(line, sizeof line, "step %5lld/%lld  loss %.4f%s%s  lr %.2e  |g| %.3f  %.0f tok/s  ETA %s",
                    (long long)s, (long long)max_steps, r.train_loss,
                    eval ? ("  held-out " + std::to_string(r.val_loss).substr(0, 6)).c_str() : "", aux_text, lr, gnorm,
                    r.tokens_per_s, eta(per_step * double(max_steps - s)).c_str());
      say(line);
      window_counts = zero_counts();
      window_loss = window_tokens = window_aux = 0;
      window_steps = 0;
      *stats = RoutingStats{};
      t_window = Clock::now();
    }
    if (ckpt) save(s, false);
  }
  const int64_t reached = stop;
  if (reached == max_steps && !(out.resumed && start == max_steps)) save(max_steps, true);
  out.seconds = std::chrono::duration<double>(Clock::now() - t_start).count();
  for (const auto& [name, p] : model->parameters()) {
    Tensor copy = Tensor::zeros(p.dtype(), p.shape());
    std::memcpy(copy.raw_mut(), p.raw(), p.nbytes());
    out.parameters[name] = std::move(copy);
  }

  // Summary.
  const ParamBreakdown pb = param_breakdown(cfg);
  double final_val = -1, final_train = -1, final_val_tr = -1;
  for (const auto& r : out.log) {
    if (r.val_loss >= 0) final_val = r.val_loss;
    if (r.val_loss_train_routing >= 0) final_val_tr = r.val_loss_train_routing;
    if (r.train_loss >= 0) final_train = r.train_loss;
  }
  json cv_last = json::array(), cv_all = json::array();
  for (size_t k = 0; k < moe.size(); ++k) {
    std::vector<int64_t> all(size_t(cfg.blocks[moe[k]].ffn.n_experts), 0);
    for (const auto& r : out.log)
      for (size_t e = 0; e < all.size(); ++e) all[e] += r.expert_counts.at(k).at(e);
    cv_all.push_back(load_cv(all));
    cv_last.push_back(load_cv(out.log.back().expert_counts.at(k)));
  }
  const double H = data.val_unigram_entropy();
  out.summary = {{"family", cfg.family}, {"steps", reached}, {"max_steps", max_steps}, {"finished", reached == max_steps},
                 {"tokens", double(reached) * tokens_per_step}, {"training_flops", double(reached) * flops_per_step},
                 {"training_flops_per_token", out.flops_per_token}, {"seq_len", T}, {"batch", B}, {"accum", c.accum},
                 {"final_val_loss", final_val}, {"final_train_loss", final_train},
                 {"final_val_loss_train_routing", final_val_tr},
                 {"val_unigram_entropy", H}, {"val_unigram_cross_entropy", data.val_unigram_cross_entropy()},
                 {"below_unigram_entropy", final_val >= 0 && final_val < H},
                 {"params_total", pb.total}, {"params_active", pb.active},
                 {"params_active_non_embedding", active_non_embedding_params(cfg)}, {"seconds", out.seconds},
                 {"resumed_from", out.resumed ? out.resumed_from : -1}, {"routing", moe.empty() ? "" : c.routing},
                 {"sinkhorn_init", moe.empty() ? "" : c.sinkhorn_init},
                 {"aux_loss_coef", moe.empty() ? 0.0 : aux_coef}, {"final_aux_loss", out.log.back().aux_loss}, {"load_cv_last", cv_last},
                 {"load_cv_all", cv_all}, {"data", data.describe()},
                 {"checkpoint", opt.out_dir.empty() ? "" : checkpoint_dir(opt.out_dir)}};
  return out;
}

void write_training_h5(const TrainOutcome& t, h5::Group g) {
  g.attr("description", "training run: loss, learning rate, gradient norm, throughput and expert load per log row");
  g.attr("family", t.cfg.family);
  for (const char* k : {"val_unigram_entropy", "val_unigram_cross_entropy", "training_flops_per_token"})
    g.attr(k, t.summary.value(k, 0.0));
  std::vector<int64_t> step;
  std::vector<double> tokens, flops, lr, loss, gnorm, tps, secs, es, ef, el, elt, aux;
  for (const auto& r : t.log) {
    step.push_back(r.step);
    tokens.push_back(r.tokens);
    flops.push_back(r.flops);
    lr.push_back(r.lr);
    loss.push_back(r.train_loss);
    gnorm.push_back(r.grad_norm);
    tps.push_back(r.tokens_per_s);
    secs.push_back(r.seconds);
    aux.push_back(r.aux_loss);
    if (r.val_loss >= 0) {
      es.push_back(double(r.step));
      ef.push_back(r.flops);
      el.push_back(r.val_loss);
      elt.push_back(r.val_loss_train_routing);
    }
  }
  g.write("step", step, {"optimizer steps done at each log row", "steps", {"row"}});
  g.write("tokens", tokens, {"training tokens seen", "tokens", {"row"}});
  g.write("flops", flops, {"training FLOPs spent (3 x forward, train/training_flops.h)", "FLOPs", {"row"}});
  g.write("lr", lr, {"learning rate of the row's last step", "", {"row"}});
  g.write("train_loss", loss, {"mean training loss over the steps since the previous row (-1: none)", "nats", {"row"}});
  g.write("grad_norm", gnorm, {"global gradient norm before clipping, last step of the row", "", {"row"}});
  g.write("tokens_per_s", tps, {"training throughput since the previous row", "tokens/s", {"row"}});
  g.write("seconds", secs, {"wall time since this invocation started", "s", {"row"}});
  g.write("eval_step", es, {"steps at which the held-out loss was measured", "steps", {"eval"}});
  g.write("eval_flops", ef, {"training FLOPs at those evaluations", "FLOPs", {"eval"}});
  g.write("eval_loss", el, {"held-out next-token loss (inference routing)", "nats", {"eval"}});
  g.write("eval_loss_train_routing", elt,
          {"held-out loss with the training routing (MoE; -1 otherwise)", "nats", {"eval"}});
  const std::vector<int> moe = t.cfg.moe_blocks();
  if (moe.empty()) return;
  const int64_t R = int64_t(t.log.size()), L = int64_t(moe.size()), E = t.cfg.blocks[moe[0]].ffn.n_experts;
  std::vector<double> frac, cv;
  for (const auto& r : t.log)
    for (int64_t k = 0; k < L; ++k) {
      const auto& cnt = r.expert_counts.at(size_t(k));
      double sum = 0;
      for (int64_t x : cnt) sum += double(x);
      for (int64_t e = 0; e < E; ++e) frac.push_back(sum > 0 && e < int64_t(cnt.size()) ? double(cnt[size_t(e)]) / sum : 0);
      cv.push_back(sum > 0 ? load_cv(cnt) : 0);
    }
  g.write("expert_load", frac, {R, L, E},
          {"fraction of training tokens routed to each expert since the previous row", "fraction",
           {"row", "moe_layer", "expert"}});
  g.write("load_cv", cv, {R, L}, {"coefficient of variation of the expert load (std/mean)", "", {"row", "moe_layer"}});
  std::vector<int64_t> blocks(moe.begin(), moe.end());
  g.write("moe_blocks", blocks, {"block index of each MoE layer", "", {"moe_layer"}});
  g.write("aux_loss", aux,
          {"Switch load-balancing loss E sum_e f_e P_e over all MoE layers' rows (transformers "
           "load_balancing_loss_func; unweighted), mean over the row's steps (-1: none)", "", {"row"}});
}

}  // namespace bmh::train
