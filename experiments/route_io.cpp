#include "experiments/route_io.h"

#include "core/checkpoint.h"
#include "core/error.h"

namespace bmh {

Tensor read_input_ids(const std::string& path) { return input_ids_of(read_safetensors(path), path); }

Tensor input_ids_of(const Checkpoint& in, const std::string& path) {
  auto it = in.tensors.find("input_ids");
  if (it == in.tensors.end()) fail(path, ": no tensor 'input_ids'");
  if (it->second.dtype() != DType::I64 || it->second.rank() != 2)
    fail(path, ": input_ids must be int64 [B, T], got ", it->second.describe());
  if (it->second.numel() == 0) fail(path, ": input_ids ", it->second.describe(), " is empty (B and T must be >= 1)");
  return it->second;
}

void add_routes(TensorMap& out, const std::vector<RouteRecord>& routes, int64_t B, int64_t T) {
  for (const RouteRecord& r : routes) {
    const std::string p = "route." + std::to_string(r.block) + ".";
    if (r.top_k == 1) {  // the fixtures' names and shapes
      out[p + "expert"] = Tensor::from_i64(r.expert, {B, T});
      out[p + "prob"] = Tensor::from_f32(r.prob, {B, T});
    } else {
      out[p + "expert"] = Tensor::from_i64(r.expert, {B, T, r.top_k});
      out[p + "weight"] = Tensor::from_f32(r.prob, {B, T, r.top_k});
    }
    out[p + "router_logits"] = Tensor::from_f32(r.router_logits, {B, T, r.n_experts});
  }
}

std::vector<std::pair<int, std::vector<int64_t>>> read_forced_routes(const std::string& path, const ModelConfig& cfg) {
  return forced_routes_of(read_safetensors(path), path, cfg);
}

std::vector<std::pair<int, std::vector<int64_t>>> forced_routes_of(const Checkpoint& ck, const std::string& path,
                                                                   const ModelConfig& cfg) {
  std::vector<std::pair<int, std::vector<int64_t>>> out;
  for (int block : cfg.moe_blocks()) {
    const std::string key = "route." + std::to_string(block) + ".expert";
    auto it = ck.tensors.find(key);
    if (it == ck.tensors.end()) fail(path, ": no tensor '", key, "' for MoE block ", block);
    const Tensor& t = it->second;
    const int k = cfg.blocks[block].ffn.top_k, E = cfg.blocks[block].ffn.n_experts;
    const bool ok = k == 1 ? t.rank() == 2 : t.rank() == 3 && t.dim(2) == k;
    if (!ok || (t.dtype() != DType::I64 && t.dtype() != DType::I32))
      fail(path, ": '", key, "' is ", t.describe(), "; block ", block, " routes top-", k, " and needs int64 ",
           k == 1 ? "[B, T]" : "[B, T, " + std::to_string(k) + "]");
    std::vector<int64_t> v = t.to_i64();
    for (size_t i = 0; i < v.size(); ++i)
      if (v[i] < 0 || v[i] >= E) fail(path, ": '", key, "' entry ", i, " = ", v[i], " is outside [0, ", E, ")");
    out.emplace_back(block, std::move(v));
  }
  return out;
}

}  // namespace bmh
