// A checkpoint directory as downloaded: model.safetensors, model.safetensors.index.json,
// pytorch_model.bin or pytorch_model.bin.index.json, tried in that order (the names and the index layout
// {"metadata": {...}, "weight_map": {tensor: shard file}} are those of transformers modeling_utils.py).
// Like transformers, every tensor of every shard named in weight_map is loaded; the index must agree with
// the shards (each listed tensor present in its shard, no tensor in two shards).
#include <sys/stat.h>

#include <nlohmann/json.hpp>
#include <set>

#include "core/checkpoint.h"
#include "core/error.h"
#include "core/json_bounded.h"

namespace bmh {

namespace {

bool is_file(const std::string& p) {
  struct stat st {};
  return stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

Checkpoint load_sharded(const std::string& dir, const std::string& index_name, bool safetensors) {
  const std::string index_path = dir + "/" + index_name;
  const nlohmann::json index = read_json_file_bounded(index_path);
  if (!index.is_object() || !index.contains("weight_map") || !index.at("weight_map").is_object())
    fail(index_path, ": no \"weight_map\" object");
  std::map<std::string, std::string> shard_of;  // tensor -> shard file name
  std::set<std::string> shards;
  for (auto it = index.at("weight_map").begin(); it != index.at("weight_map").end(); ++it) {
    if (!it.value().is_string()) fail(index_path, ": weight_map[\"", it.key(), "\"] is not a file name");
    std::string shard = it.value().get<std::string>();
    if (shard.empty() || shard[0] == '/' || shard.find("..") != std::string::npos)
      fail(index_path, ": weight_map[\"", it.key(), "\"] = \"", shard, "\" is not a file inside ", dir);
    shard_of[it.key()] = shard;
    shards.insert(shard);
  }
  if (shards.empty()) fail(index_path, ": weight_map is empty");

  Checkpoint all;
  for (const auto& shard : shards) {
    const std::string shard_path = dir + "/" + shard;
    if (!is_file(shard_path)) fail(index_path, ": shard ", shard_path, " does not exist");
    Checkpoint part = safetensors ? read_safetensors(shard_path) : read_torch_zip(shard_path);
    for (auto& [name, t] : part.tensors) {
      auto prev = all.file_of.find(name);
      if (prev != all.file_of.end())
        fail(index_path, ": tensor '", name, "' is in both ", prev->second, " and ", shard_path);
      auto listed = shard_of.find(name);
      if (listed != shard_of.end() && listed->second != shard)
        fail(index_path, ": tensor '", name, "' is listed in shard ", listed->second, " but found in ", shard_path);
      all.tensors.emplace(name, std::move(t));
      all.file_of.emplace(name, shard_path);
    }
  }
  for (const auto& [name, shard] : shard_of)
    if (!all.tensors.count(name))
      fail(index_path, ": tensor '", name, "' is listed in weight_map but missing from shard ", dir + "/" + shard);
  return all;
}

}  // namespace

Checkpoint load_checkpoint_dir(const std::string& dir) {
  struct stat st {};
  if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) fail("checkpoint directory ", dir, " does not exist");
  if (is_file(dir + "/model.safetensors")) return read_safetensors(dir + "/model.safetensors");
  if (is_file(dir + "/model.safetensors.index.json")) return load_sharded(dir, "model.safetensors.index.json", true);
  if (is_file(dir + "/pytorch_model.bin")) return read_torch_zip(dir + "/pytorch_model.bin");
  if (is_file(dir + "/pytorch_model.bin.index.json")) return load_sharded(dir, "pytorch_model.bin.index.json", false);
  fail(dir, ": no weights found (looked for model.safetensors, model.safetensors.index.json, pytorch_model.bin, "
       "pytorch_model.bin.index.json)");
}

}  // namespace bmh
