// bmh bench-gpu: the CUDA backend's benchmark. Measures its own floors first (device copy bandwidth, bytes read +
// written; bf16 8192^3 cuBLAS GEMM rate), then times the op table's model-sized cases (kernels/op_cases.h, shared
// with the correctness test), one MoE layer (top-1 of 8, BlackMamba-2.8B expert shape) against a dense GEMM of
// equal FLOPs, and per preset (seeded random bf16 weights) batch-1 decode ms/token and an 8 x 2048 forward,
// each as a ratio to its floor. Writes everything as JSON for scripts/gpu_peers/table.py.
#if defined(BMH_HAVE_CUDA)
#include <cuda_runtime_api.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
#include <regex>

#include "core/error.h"
#include "core/flops.h"
#include "core/model_weights.h"
#include "core/presets.h"
#include "evals/results_writer.h"
#include "experiments/command.h"
#include "kernels/cuda_backend.h"
#include "kernels/device.h"
#include "kernels/gemm.h"
#include "kernels/op_cases.h"
#include "kernels/variants.h"

namespace bmh {
namespace {

using Clock = std::chrono::steady_clock;
using cuda::Dt;

struct BenchArgs {
  std::string json = "bench_gpu.json";
  std::vector<std::string> presets = {"blackmamba-2.8b", "mamba-2.8b", "pythia-1.4b"};
  int decode_tokens = 64, prompt = 64, fwd_batch = 8, fwd_len = 2048, moe_tokens = 16384;
  bool skip_models = false;
  std::string ops;      // regex over op case names: only those model-sized cases are timed (empty = all)
  std::string kernels;  // kernel variants for the MoE layer and the presets (op=name,...; see kernels/variants.h)
  // Named kernel sets ("v1", "v2") each preset is timed with, as adjacent rows (empty = the current variants only).
  std::vector<std::string> kernels_ab;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// Median wall time of `reps` forward_device calls after one warm-up (which also sizes the workspaces).
double forward_device_ms(cuda::CudaModel& m, const Tensor& ids, int reps) {
  m.forward_device(ids);
  std::vector<double> ms;
  for (int i = 0; i < reps; ++i) {
    auto t0 = Clock::now();
    m.forward_device(ids);
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  return median(ms);
}

// Prints op timer rows largest first after "  HEAD, T ms in all):" and returns them as [{op, ms, count}].
nlohmann::json print_op_rows(std::vector<cuda::OpTimer::Row> rows, const std::string& head) {
  double total = 0;
  for (const auto& r : rows) total += r.ms;
  std::stable_sort(rows.begin(), rows.end(), [](const auto& x, const auto& y) { return x.ms > y.ms; });
  std::printf("  %s, %.3f ms in all):", head.c_str(), total);
  nlohmann::json out = nlohmann::json::array();
  for (const auto& r : rows) {
    std::printf(" %s %.3f ms (%.0f%%, x%d);", r.op.c_str(), r.ms, 100 * r.ms / total, r.count);
    out.push_back({{"op", r.op}, {"ms", r.ms}, {"count", r.count}});
  }
  std::printf("\n");
  return out;
}

// One more forward with an op timer attached (kernels/op_timer.h): GPU ms per op, printed largest first and
// returned as [{op, ms, count}]. Its total exceeds the timed forward by the events' own cost.
nlohmann::json forward_breakdown(cuda::CudaModel& m, const Tensor& ids, const std::string& what) {
  cuda::OpTimer timer(m.stream());
  m.set_op_timer(&timer);
  try {
    m.forward_device(ids);
  } catch (...) {
    m.set_op_timer(nullptr);
    throw;
  }
  m.set_op_timer(nullptr);
  return print_op_rows(timer.totals(), what + " per op (one forward with events between ops");
}

// Times fn on the default stream with events: median of `iters` after 2 warm-ups.
template <class F> double time_events(F fn, int iters) {
  cudaEvent_t a, b;
  BMH_CUDA(cudaEventCreate(&a));
  BMH_CUDA(cudaEventCreate(&b));
  fn(); fn();
  std::vector<double> ms;
  for (int i = 0; i < iters; ++i) {
    BMH_CUDA(cudaEventRecord(a));
    fn();
    BMH_CUDA(cudaEventRecord(b));
    BMH_CUDA(cudaEventSynchronize(b));
    float t;
    BMH_CUDA(cudaEventElapsedTime(&t, a, b));
    ms.push_back(t);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return median(ms);
}

// Prints and returns the per-op GPU times of one decode step at prompt's batch (CudaModel::decode_breakdown).
nlohmann::json decode_breakdown(cuda::CudaModel& m, const Tensor& prompt, const std::string& what) {
  return print_op_rows(m.decode_breakdown(prompt), what + " per op (one step outside the graph, events between ops");
}

// B random prompts of `prompt` tokens.
Tensor random_prompts(int B, int prompt, int64_t V) {
  std::mt19937_64 rng(5 + uint64_t(B));
  std::vector<int64_t> ids(size_t(B) * prompt);
  for (auto& x : ids) x = int64_t(rng() % uint64_t(V));
  return Tensor::from_i64(ids, {B, prompt});
}

double decode_tokens_per_s_or_throw(LanguageModel& m, int B, int prompt, int steps) {
  auto dec = m.decoder(B);
  std::vector<int64_t> next = argmax_rows(dec->prefill(random_prompts(B, prompt, m.config().vocab_size)));
  std::vector<double> ms;
  for (int s = 0; s < steps + 4; ++s) {
    auto t0 = std::chrono::steady_clock::now();
    next = dec->step_greedy(next);
    if (s >= 4) ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return 1e3 * B / median(ms);
}

// Decode throughput at batch B: B random prompts of `prompt` tokens, then median per-step wall time over `steps`
// of greedy steps whose argmax runs on the device (Decoder::step_greedy: B ids to the host, not B x V logits, as
// the peer, mamba_ssm's generate(cg=True), samples on the GPU); tokens/s = B / step time. null where B exceeds the decoder's batch (max_decode_batch).
// A batch whose decoder does not fit in device memory (the KV caches are sized for max_seq_len positions: pythia-1.4b
// at 256 rows needs ~100 GB) is also null, with the error in `errors[B]`.
// `breakdown[B]` gets that batch's per-op step times.
nlohmann::json decode_tokens_per_s(cuda::CudaModel& m, int B, int prompt, int steps, nlohmann::json& errors,
                                   nlohmann::json& breakdown, const std::string& name) {
  if (B > m.max_decode_batch()) return nullptr;
  try {
    const double tps = decode_tokens_per_s_or_throw(m, B, prompt, steps);
    try {
      breakdown[std::to_string(B)] = decode_breakdown(m, random_prompts(B, prompt, m.config().vocab_size),
                                                      name + " decode b=" + std::to_string(B));
    } catch (const Error& e) {
      errors[std::to_string(B) + " breakdown"] = e.what();
    }
    return tps;
  } catch (const Error& e) {
    errors[std::to_string(B)] = e.what();
    std::printf("decode at batch %d: %s\n", B, e.what());
    return nullptr;
  }
}

// Random bf16 bits (finite, |x| < 2): never zeros, which can run faster than real data.
void fill_random_bf16(void* p, size_t n, uint64_t seed) {
  std::vector<uint16_t> h(n);
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.f, 0.5f);
  std::vector<float> f(n);
  for (auto& x : f) x = d(rng);
  cuda::f32_to_dt(f.data(), h.data(), Dt::BF16, n);
  cuda::upload(p, h.data(), n * 2);
}

double gemm_ms(cuda::Blas& blas, int M, int N, int K, int iters) {
  cuda::DeviceBuffer x(size_t(M) * K * 2, "bench GEMM x"), w(size_t(N) * K * 2, "bench GEMM W"),
      y(size_t(M) * N * 2, "bench GEMM y");
  fill_random_bf16(x.get(), size_t(M) * K, 1);
  fill_random_bf16(w.get(), size_t(N) * K, 2);
  return time_events([&] { cuda::linear(blas, Dt::BF16, Dt::BF16, M, N, K, x.get(), K, w.get(), K, y.get(), N); },
                     iters);
}

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

void write_json(const std::string& path, const nlohmann::json& j) { eval::write_file_atomic(path, j.dump(1) + "\n"); }

// A --kernels-ab set as a set_kernel_variants spec: "v2+pdl=on" -> "v2,pdl=on".
std::string ab_spec(std::string set) {
  std::replace(set.begin(), set.end(), '+', ',');
  return set;
}

void run_bench(const BenchArgs& a) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // each row reaches a log as it is measured, even if the run is cut short
  const auto t_start = Clock::now();
  if (!cuda::device_available()) fail("bench-gpu: no CUDA device");
  if (!a.kernels.empty()) cuda::set_kernel_variants(a.kernels);
  nlohmann::json out;
  const cuda::KernelVariants& kv = cuda::kernel_variants();
  out["kernel_variants"] = cuda::to_string(kv);  // every op's choice, as set_kernel_variants reads it back
  std::printf("kernel variants for the MoE layer%s: %s\n", a.kernels_ab.empty() ? " and presets" : "",
              cuda::to_string(kv).c_str());
  cudaDeviceProp prop;
  BMH_CUDA(cudaGetDeviceProperties(&prop, 0));
  out["device"] = prop.name;
  std::printf("device: %s, %d SMs, %.1f GiB\n", prop.name, prop.multiProcessorCount, prop.totalGlobalMem / 1073741824.0);

  // Floors.
  const size_t copy_bytes = size_t(1) << 30;
  cuda::DeviceBuffer src(copy_bytes, "copy floor source"), dst(copy_bytes, "copy floor destination");
  BMH_CUDA(cudaMemset(src.get(), 0x3c, copy_bytes));
  const double copy_ms = time_events([&] { BMH_CUDA(cudaMemcpyAsync(dst.get(), src.get(), copy_bytes, cudaMemcpyDeviceToDevice)); }, 20);
  const double copy_Bps = 2.0 * copy_bytes / (copy_ms * 1e-3);
  src.release();
  dst.release();
  cuda::Blas blas;
  const double g_ms = gemm_ms(blas, 8192, 8192, 8192, 20);
  const double gemm_flops = 2.0 * 8192.0 * 8192 * 8192 / (g_ms * 1e-3);
  out["floors"] = {{"copy_GBps", copy_Bps / 1e9}, {"gemm_bf16_TFLOPs", gemm_flops / 1e12}};
  std::printf("floors: device copy %.0f GB/s (read + write), bf16 GEMM 8192^3 %.0f TFLOP/s\n", copy_Bps / 1e9,
              gemm_flops / 1e12);

  // Op table: model-sized cases.
  std::printf("\n%-52s %9s %9s %7s %9s %7s\n", "op case", "ms", "GB/s", "%copy", "TFLOP/s", "%gemm");
  const std::regex ops_re(a.ops.empty() ? std::string(".*") : a.ops);
  for (const cuda::OpCase& c : cuda::op_cases()) {
    if (!c.perf || !std::regex_search(c.name(), ops_re)) continue;
    cuda::OpTiming t = cuda::time_op(c, 30);
    const double gbs = t.bytes / (t.ms * 1e-3) / 1e9, tf = t.flops / (t.ms * 1e-3) / 1e12;
    std::printf("%-52s %9.4f %9.0f %6.1f%% %9.2f %6.1f%%\n", c.name().c_str(), t.ms, gbs, 100 * gbs * 1e9 / copy_Bps,
                tf, 100 * tf * 1e12 / gemm_flops);
    out["ops"].push_back({{"name", c.name()}, {"op", cuda::to_string(c.op)}, {"ms", t.ms}, {"bytes", t.bytes},
                          {"flops", t.flops}, {"floor_ms", 1e3 * std::max(t.bytes / copy_Bps, t.flops / gemm_flops)}});
    if (c.op == cuda::OpKind::Scan) {
      // Issue 11's scan floor: max(copy floor, one ex2 per (t, channel, state) at 16 per clock per SM).
      int khz = 0;
      BMH_CUDA(cudaDeviceGetAttribute(&khz, cudaDevAttrClockRate, 0));
      const double exps = double(c.rows()) * c.N * c.K;
      const double exp_ms = 1e3 * exps / (double(prop.multiProcessorCount) * 16.0 * khz * 1e3);
      const double floor_ms = std::max(exp_ms, 1e3 * t.bytes / copy_Bps);
      std::printf("%-52s exp floor %.4f ms (%d SMs x 16/clk x %.2f GHz); %.0f%% of max(copy, exp) floor\n", "",
                  exp_ms, prop.multiProcessorCount, khz / 1e6, 100 * floor_ms / t.ms);
      out["ops"].back()["exp_floor_ms"] = exp_ms;
    }
  }

  // One MoE layer (BlackMamba-2.8B expert shape, top-1 of 8) vs a dense GEMM of equal FLOPs.
  std::printf("\n[MoE layer at %.0f s]\n", seconds_since(t_start));
  {
    ModelConfig bm = preset_config("blackmamba-2.8b");
    int moe_block = bm.moe_blocks().at(0);
    ModelConfig cfg;
    cfg.family = "preset";
    cfg.name = "one-moe-layer";
    cfg.d_model = bm.d_model;
    cfg.vocab_size = 64;
    cfg.norm = bm.norm;
    cfg.final_norm = NormKind::RMSNorm;
    BlockConfig b = bm.blocks[moe_block];
    b.mixer = MixerKind::None;
    cfg.blocks.push_back(b);
    cuda::CudaModel m(cfg, random_weights(cfg, 5, DType::BF16), Dt::BF16);
    const int R = a.moe_tokens, d = cfg.d_model, F = b.ffn.d_ff, F1 = b.ffn.gated ? 2 * F : F, E = b.ffn.n_experts;
    std::vector<int64_t> ids(R);
    std::mt19937_64 rng(9);
    for (auto& x : ids) x = int64_t(rng() % 64);
    Tensor idt = Tensor::from_i64(ids, {1, R});
    const double moe_ms = forward_device_ms(m, idt, 10);
    // Both expert schedules in the same run (the choice above is the current variant's).
    nlohmann::json by_variant = nlohmann::json::object();
    const cuda::KernelVariants moe_base = cuda::kernel_variants();
    for (const char* v : {"serial", "streams"}) {
      cuda::set_kernel_variants(std::string("moe_prefill=") + v);
      by_variant[v] = forward_device_ms(m, idt, 10);
    }
    cuda::kernel_variants() = moe_base;
    nlohmann::json moe_ops = forward_breakdown(m, idt, "MoE layer");
    const double flops = 2.0 * R * (double(F1) * d + double(F) * d + double(E) * d);
    const double dense_ms = gemm_ms(blas, R, F1 + F + E, d, 20);
    ForwardOutput fo = m.forward(Tensor::from_i64(std::vector<int64_t>(ids.begin(), ids.begin() + 4096), {1, 4096}));
    std::vector<int> per(E);
    for (int64_t e : fo.routes.at(0).expert) per[e]++;
    std::printf("\nMoE layer top-1 of %d, %d tokens, d %d, F %d%s: %.3f ms (%.0f TFLOP/s); dense GEMM of equal FLOPs "
                "[%d x %d x %d]: %.3f ms; ratio %.2f\n",
                E, R, d, F, b.ffn.gated ? " gated" : "", moe_ms, flops / (moe_ms * 1e-3) / 1e12, R, F1 + F + E, d,
                dense_ms, moe_ms / dense_ms);
    std::printf("MoE layer by expert schedule: %s\n", by_variant.dump().c_str());
    out["moe"] = {{"tokens", R}, {"experts", E}, {"ms", moe_ms}, {"dense_ms", dense_ms}, {"flops", flops},
                  {"floor_ms", 1e3 * flops / gemm_flops}, {"tokens_per_expert_of_4096", per},
                  {"ms_by_moe_prefill", by_variant}, {"ops", moe_ops},
                  {"kernel_variants", cuda::to_string(cuda::kernel_variants())}};
  }

  // Kernel sets for the preset rows: each set is applied as a whole (then --kernels on top) before its decoder is
  // made and its forward runs; one model (same weights) serves every set, so the rows of one preset are an A/B.
  const cuda::KernelVariants base = cuda::kernel_variants();
  std::vector<std::string> sets = a.kernels_ab.empty() ? std::vector<std::string>{""} : a.kernels_ab;
  write_json(a.json, out);
  for (const std::string& name : a.skip_models ? std::vector<std::string>{} : a.presets) {
    std::printf("\n[%s at %.0f s]\n", name.c_str(), seconds_since(t_start));
    ModelConfig cfg = preset_config(name);
    auto t_load = Clock::now();
    cuda::CudaModel m(cfg, random_weights(cfg, 1, DType::BF16), Dt::BF16);
    const double load_s = std::chrono::duration<double>(Clock::now() - t_load).count();
    ParamBreakdown p = param_breakdown(cfg);
    for (const std::string& set : sets) {
      if (set.empty()) {
        cuda::kernel_variants() = base;
      } else {
        cuda::set_kernel_variants(ab_spec(set));
        if (!a.kernels.empty()) cuda::set_kernel_variants(a.kernels);
      }
      const std::string spec = cuda::to_string(cuda::kernel_variants());
      // Decode: batch 1, random prompt, per-step wall time (H2D ids, graph replay, D2H logits, sync).
      std::mt19937_64 rng(3);
      std::vector<int64_t> prompt(a.prompt);
      for (auto& x : prompt) x = int64_t(rng() % uint64_t(cfg.vocab_size));
      auto dec = m.decoder(1);
      Tensor logits = dec->prefill(Tensor::from_i64(prompt, {1, a.prompt}));
      std::vector<double> steps;
      for (int s = 0; s < a.decode_tokens + 4; ++s) {
        const float* l = logits.data<float>();
        int64_t next = std::max_element(l, l + cfg.vocab_size) - l;
        auto t0 = Clock::now();
        logits = dec->step({next});
        if (s >= 4) steps.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
      }
      const double dec_ms = median(steps);
      // Throughput by batch, with the first kernel set only (the A/B rows compare batch-1 latency).
      nlohmann::json tps = nullptr, decode_errors = nlohmann::json::object(), decode_ops = nlohmann::json::object();
      if (&set == &sets.front()) {
        tps = nlohmann::json::object();
        for (int B : {1, 8, 64, 256})
          tps[std::to_string(B)] = decode_tokens_per_s(m, B, a.prompt, a.decode_tokens, decode_errors, decode_ops, name);
        std::printf("\n%s decode tokens/s by batch: %s (null: over the CUDA decoder's batch of %d)\n", name.c_str(),
                    tps.dump().c_str(), m.max_decode_batch());
      }
      const double dec_bytes = 2.0 * double(p.active);
      const double dec_floor_ms = 1e3 * dec_bytes / copy_Bps;
      // Forward B x T.
      std::vector<int64_t> fids(size_t(a.fwd_batch) * a.fwd_len);
      for (auto& x : fids) x = int64_t(rng() % uint64_t(cfg.vocab_size));
      Tensor ft = Tensor::from_i64(fids, {a.fwd_batch, a.fwd_len});
      const double fwd_ms = forward_device_ms(m, ft, 3);
      nlohmann::json fwd_ops = forward_breakdown(m, ft, name + " forward");
      const double fwd_flops = a.fwd_batch * flops_sequence(cfg, a.fwd_len).flops();
      const double fwd_floor_ms = 1e3 * fwd_flops / gemm_flops;
      std::printf("\n%s%s (%.2fB params, %.0fM active; upload %.1f s): decode %.3f ms/token (floor %.3f ms: %.2f GB "
                  "active bf16 weights at copy bandwidth; %.0f%% of floor speed); forward %dx%d %.1f ms (%.1f TFLOP, "
                  "floor %.1f ms at the GEMM rate; %.0f%%) [kernels %s]\n",
                  name.c_str(), set.empty() ? "" : (" (" + set + " kernels)").c_str(), p.total / 1e9, p.active / 1e6,
                  load_s, dec_ms, dec_floor_ms, dec_bytes / 1e9, 100 * dec_floor_ms / dec_ms, a.fwd_batch, a.fwd_len,
                  fwd_ms, fwd_flops / 1e12, fwd_floor_ms, 100 * fwd_floor_ms / fwd_ms, spec.c_str());
      out["models"].push_back({{"preset", name}, {"params", p.total}, {"active", p.active}, {"decode_ms", dec_ms},
                               {"decode_floor_ms", dec_floor_ms}, {"prompt", a.prompt}, {"decode_tokens_per_s", tps},
                               {"forward_ms", fwd_ms}, {"forward_flops", fwd_flops}, {"forward_floor_ms", fwd_floor_ms},
                               {"forward_shape", {a.fwd_batch, a.fwd_len}}, {"kernel_variants", spec},
                               {"forward_ops", fwd_ops}});
      if (!set.empty()) out["models"].back()["kernels"] = set;
      if (!decode_errors.empty()) out["models"].back()["decode_errors"] = decode_errors;
      if (!decode_ops.empty()) out["models"].back()["decode_ops"] = decode_ops;
      write_json(a.json, out);  // after every preset: a run cut short keeps what it measured
    }
  }
  cuda::kernel_variants() = base;
  out["complete"] = true;
  write_json(a.json, out);
  std::printf("\nwrote %s (%.0f s)\n", a.json.c_str(), seconds_since(t_start));
}

void add_bench_gpu_command(CLI::App& app) {
  auto args = std::make_shared<BenchArgs>();
  auto* sub = app.add_subcommand("bench-gpu", "CUDA backend benchmark: floors, op table, MoE layer, preset decode/forward");
  sub->add_option("--json", args->json, "write the results here");
  sub->add_option("--presets", args->presets, "presets to time (seeded random bf16 weights), comma-separated")->delimiter(',');
  sub->add_option("--decode-tokens", args->decode_tokens, "timed decode steps")->default_val(64);
  sub->add_option("--prompt", args->prompt, "prompt tokens before decoding")->default_val(64);
  sub->add_option("--forward-batch", args->fwd_batch, "forward batch")->default_val(8);
  sub->add_option("--forward-len", args->fwd_len, "forward length")->default_val(2048);
  sub->add_option("--moe-tokens", args->moe_tokens, "tokens through the MoE layer")->default_val(16384);
  sub->add_option("--ops", args->ops, "time only the op table's model-sized cases whose name matches this regex");
  sub->add_flag("--skip-models", args->skip_models, "floors, ops and the MoE layer only");
  sub->add_option("--kernels", args->kernels,
                  "kernel variants for the MoE layer and presets, e.g. scan=chunked,attn_decode=split (the op table "
                  "times every variant regardless)");
  sub->add_option("--kernels-ab", args->kernels_ab,
                  "time each preset with each of these named kernel sets (v1, v2 = the default), comma-separated, as "
                  "adjacent rows; a set may carry entries joined by '+' (v2,v2+pdl=on); --kernels then applies on top "
                  "of each")
      ->delimiter(',')
      ->check([](const std::string& set) -> std::string {  // parses as set_kernel_variants would; changes nothing
        if (set.rfind("v1", 0) != 0 && set.rfind("v2", 0) != 0) return "a kernel set starts with v1 or v2: " + set;
        const cuda::KernelVariants saved = cuda::kernel_variants();
        std::string err;
        try {
          cuda::set_kernel_variants(ab_spec(set));
        } catch (const Error& e) {
          err = e.what();
        }
        cuda::kernel_variants() = saved;
        return err;
      });
  sub->callback([args] { run_bench(*args); });
}

const bool registered = register_command(&add_bench_gpu_command);

}  // namespace
}  // namespace bmh
#endif  // BMH_HAVE_CUDA
