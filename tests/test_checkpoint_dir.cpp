// Checkpoint directories: which weights file wins, sharded *.index.json for safetensors and torch zips, and
// the errors for an index that disagrees with its shards.
#include <gtest/gtest.h>

#include "core/checkpoint.h"
#include "test_checkpoint_util.h"

using namespace bmh;
using bmh_test::Pickle;
using bmh_test::TempDir;

namespace {

std::string index_json(const std::vector<std::pair<std::string, std::string>>& map) {
  std::string s = R"({"metadata": {"total_size": 0}, "weight_map": {)";
  for (size_t i = 0; i < map.size(); ++i) s += (i ? ", " : "") + ("\"" + map[i].first + "\": \"" + map[i].second + "\"");
  return s + "}}";
}

// A torch zip holding a plain state dict {name: F32 tensor of `values`}.
std::string torch_shard(const std::vector<std::pair<std::string, std::vector<float>>>& tensors) {
  Pickle p;
  p.proto(2).empty_dict().mark();
  std::vector<std::pair<std::string, std::string>> storages;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, v] = tensors[i];
    p.binunicode(name).tensor("FloatStorage", std::to_string(i), int64_t(v.size()), 0, {int64_t(v.size())}, {1});
    storages.emplace_back(std::to_string(i), bmh_test::raw_bytes(v));
  }
  p.setitems().stop();
  return bmh_test::make_torch_zip(p.b, storages, "little", "pytorch_model-00001");
}

}  // namespace

TEST(CheckpointDir, ShardedSafetensors) {
  TempDir dir;
  write_safetensors(dir.file("model-00001-of-00002.safetensors"),
                    {{"a.weight", Tensor::from_f32({1, 2}, {2})}, {"b.weight", Tensor::from_f32({3}, {1})}});
  write_safetensors(dir.file("model-00002-of-00002.safetensors"), {{"c.weight", Tensor::from_f32({4, 5, 6}, {3})}});
  bmh_test::write_bytes(dir.file("model.safetensors.index.json"),
                        index_json({{"a.weight", "model-00001-of-00002.safetensors"},
                                    {"b.weight", "model-00001-of-00002.safetensors"},
                                    {"c.weight", "model-00002-of-00002.safetensors"}}));
  Checkpoint ck = load_checkpoint_dir(dir.path);
  ASSERT_EQ(ck.tensors.size(), 3u);
  EXPECT_EQ(ck.tensors.at("c.weight").to_f32(), (std::vector<float>{4, 5, 6}));
  EXPECT_EQ(ck.file_of.at("a.weight"), dir.file("model-00001-of-00002.safetensors"));
  EXPECT_EQ(ck.file_of.at("c.weight"), dir.file("model-00002-of-00002.safetensors"));
}

TEST(CheckpointDir, ShardedTorchZips) {
  TempDir dir;
  bmh_test::write_bytes(dir.file("pytorch_model-00001-of-00002.bin"), torch_shard({{"x", {1, 2}}, {"y", {3}}}));
  bmh_test::write_bytes(dir.file("pytorch_model-00002-of-00002.bin"), torch_shard({{"z", {7, 8, 9}}}));
  bmh_test::write_bytes(dir.file("pytorch_model.bin.index.json"),
                        index_json({{"x", "pytorch_model-00001-of-00002.bin"},
                                    {"y", "pytorch_model-00001-of-00002.bin"},
                                    {"z", "pytorch_model-00002-of-00002.bin"}}));
  Checkpoint ck = load_checkpoint_dir(dir.path);
  ASSERT_EQ(ck.tensors.size(), 3u);
  EXPECT_EQ(ck.tensors.at("x").to_f32(), (std::vector<float>{1, 2}));
  EXPECT_EQ(ck.tensors.at("z").to_f32(), (std::vector<float>{7, 8, 9}));
  EXPECT_EQ(ck.file_of.at("z"), dir.file("pytorch_model-00002-of-00002.bin"));
}

TEST(CheckpointDir, PrefersSafetensorsOverTorchZip) {
  TempDir dir;
  bmh_test::write_bytes(dir.file("pytorch_model.bin"), torch_shard({{"from_bin", {1}}}));
  EXPECT_TRUE(load_checkpoint_dir(dir.path).tensors.count("from_bin"));
  write_safetensors(dir.file("model.safetensors"), {{"from_st", Tensor::from_f32({1}, {1})}});
  Checkpoint ck = load_checkpoint_dir(dir.path);
  EXPECT_TRUE(ck.tensors.count("from_st"));
  EXPECT_FALSE(ck.tensors.count("from_bin"));
}

TEST(CheckpointDir, NoWeightsOrNoDirectory) {
  TempDir dir;
  EXPECT_ERROR_MENTIONS(load_checkpoint_dir(dir.path), dir.path, "no weights found", "model.safetensors",
                        "pytorch_model.bin");
  EXPECT_ERROR_MENTIONS(load_checkpoint_dir(dir.file("nope")), dir.file("nope"), "does not exist");
}

TEST(CheckpointDir, IndexThatDisagreesWithItsShards) {
  TempDir dir;
  write_safetensors(dir.file("s1.safetensors"), {{"a", Tensor::from_f32({1}, {1})}});
  write_safetensors(dir.file("s2.safetensors"), {{"a", Tensor::from_f32({2}, {1})}, {"b", Tensor::from_f32({3}, {1})}});
  const std::string index = dir.file("model.safetensors.index.json");

  bmh_test::write_bytes(index, index_json({{"a", "s1.safetensors"}, {"missing", "s1.safetensors"}}));
  EXPECT_ERROR_MENTIONS(load_checkpoint_dir(dir.path), index, "'missing'", dir.file("s1.safetensors"));

  bmh_test::write_bytes(index, index_json({{"a", "s1.safetensors"}, {"b", "s2.safetensors"}}));
  EXPECT_ERROR_MENTIONS(load_checkpoint_dir(dir.path), index, "'a'", dir.file("s1.safetensors"),
                        dir.file("s2.safetensors"));

  bmh_test::write_bytes(index, index_json({{"a", "gone.safetensors"}}));
  EXPECT_ERROR_MENTIONS(load_checkpoint_dir(dir.path), index, dir.file("gone.safetensors"), "does not exist");

  bmh_test::write_bytes(index, index_json({{"a", "../s1.safetensors"}}));
  EXPECT_ERROR_MENTIONS(load_checkpoint_dir(dir.path), index, "../s1.safetensors", "not a file inside");

  bmh_test::write_bytes(index, R"({"metadata": {}})");
  EXPECT_ERROR_MENTIONS(load_checkpoint_dir(dir.path), index, "weight_map");

  bmh_test::write_bytes(index, "{not json");
  EXPECT_ERROR_MENTIONS(load_checkpoint_dir(dir.path), index, "not valid JSON");
}
