// Bad input at the CLI: each case is a user's broken checkpoint directory or input file. bmh must exit
// non-zero with exactly one line on stderr naming the file and the tensor or field at fault (and the sizes
// where there are any), and never crash (a signal would show as exit >= 128).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/checkpoint.h"
#include "test_util.h"

namespace bmh {
namespace {

namespace fs = std::filesystem;

struct CliRun {
  int exit_code;
  std::string err;
};

class BadInput : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("bmh_bad_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    inputs_ = (dir_ / "inputs.safetensors").string();
    write_safetensors(inputs_, {{"input_ids", test::random_ids(1, 5, 512, 7)}});
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A copy of a fixture's checkpoint directory (config + weights) to break.
  fs::path copy_fixture(const std::string& name) {
    fs::path d = dir_ / name;
    fs::create_directories(d);
    for (auto& e : fs::directory_iterator(test::fixture_dir(name)))
      if (e.path().filename() != "expected.safetensors" && e.path().filename() != "expected.json")
        fs::copy_file(e.path(), d / e.path().filename());
    return d;
  }
  static void truncate(const fs::path& p, double keep) { fs::resize_file(p, uintmax_t(fs::file_size(p) * keep)); }
  static nlohmann::json read_json(const fs::path& p) { return nlohmann::json::parse(std::ifstream(p)); }
  static void write_file(const fs::path& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }

  CliRun forward(const fs::path& model, const std::string& inputs = "") {
    fs::path err = dir_ / "stderr.txt";
    std::string cmd = std::string(BMH_BINARY) + " forward --model " + model.string() + " --inputs " +
                      (inputs.empty() ? inputs_ : inputs) + " --out " + (dir_ / "out.safetensors").string() +
                      " > /dev/null 2> " + err.string();
    int status = std::system(cmd.c_str());
    std::ifstream in(err);
    std::string text((std::istreambuf_iterator<char>(in)), {});
    return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), text};
  }

  void expect_one_line_error(const CliRun& r, std::initializer_list<std::string> must_contain) {
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "exactly one line expected:\n" << r.err;
    EXPECT_EQ(r.err.rfind("bmh: error: ", 0), 0u) << r.err;
    for (const auto& s : must_contain) EXPECT_NE(r.err.find(s), std::string::npos) << "missing '" << s << "' in: " << r.err;
    EXPECT_FALSE(fs::exists(dir_ / "out.safetensors")) << "no output may be written on error";
  }

  fs::path dir_;
  std::string inputs_;
};

TEST_F(BadInput, TruncatedSafetensors) {
  fs::path d = copy_fixture("pythia-tiny");
  truncate(d / "model.safetensors", 0.6);
  expect_one_line_error(forward(d), {"model.safetensors"});
}

TEST_F(BadInput, TruncatedPickle) {
  fs::path d = copy_fixture("blackmamba-tiny");
  truncate(d / "pytorch_model.bin", 0.5);
  expect_one_line_error(forward(d), {"pytorch_model.bin"});
}

TEST_F(BadInput, SafetensorsOffsetsOutOfBounds) {
  fs::path d = copy_fixture("pythia-tiny");
  std::string header = R"({"gpt_neox.embed_in.weight":{"dtype":"F32","shape":[512,64],"data_offsets":[0,131072]}})";
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = char((header.size() >> (8 * i)) & 0xff);
  write_file(d / "model.safetensors", bytes + header + std::string(1024, '\1'));
  expect_one_line_error(forward(d), {"model.safetensors", "gpt_neox.embed_in.weight"});
}

TEST_F(BadInput, UnsupportedDtype) {
  fs::path d = copy_fixture("pythia-tiny");
  std::string header = R"({"gpt_neox.embed_in.weight":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]}})";
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = char((header.size() >> (8 * i)) & 0xff);
  write_file(d / "model.safetensors", bytes + header + "abcd");
  expect_one_line_error(forward(d), {"model.safetensors", "F8_E4M3", "gpt_neox.embed_in.weight"});
}

TEST_F(BadInput, MissingTensor) {
  fs::path d = copy_fixture("pythia-tiny");
  Checkpoint ck = read_safetensors(test::fixture_dir("pythia-tiny") + "/model.safetensors");
  ck.tensors.erase("gpt_neox.layers.1.attention.dense.weight");
  write_safetensors((d / "model.safetensors").string(), ck.tensors);
  expect_one_line_error(forward(d), {"gpt_neox.layers.1.attention.dense.weight", "[64, 64]"});
}

TEST_F(BadInput, TensorShapeDisagreesWithConfig) {
  fs::path d = copy_fixture("pythia-tiny");
  nlohmann::json c = read_json(d / "config.json");
  c["intermediate_size"] = 128;  // the checkpoint's MLP is 256 wide
  write_file(d / "config.json", c.dump());
  expect_one_line_error(forward(d), {"model.safetensors", "gpt_neox.layers.0.mlp.dense_h_to_4h.weight", "[256, 64]", "[128, 64]"});
}

TEST_F(BadInput, UnknownPickleGlobal) {
  expect_one_line_error(forward(fs::path(BMH_TEST_DIR) / "data/bad/unknown_global"), {"pytorch_model.bin", "posix"});
}

TEST_F(BadInput, ConfigMissingRequiredField) {
  fs::path d = copy_fixture("blackmamba-tiny");
  nlohmann::json c = read_json(d / "config.json");
  c.erase("state_size");
  write_file(d / "config.json", c.dump());
  expect_one_line_error(forward(d), {"config.json", "state_size"});
}

TEST_F(BadInput, ZyphraLayerEntryOutsideWhatCreateBlockReads) {
  fs::path d = copy_fixture("blackmamba-tiny");
  nlohmann::json c = read_json(d / "config.json");
  c["mamba_moe_layers"][1] = "16";  // Zyphra would silently build a dense layer
  write_file(d / "config.json", c.dump());
  expect_one_line_error(forward(d), {"config.json", "mamba_moe_layers[1]", "\"16\""});
}

TEST_F(BadInput, UnknownConfigKeyTheOfficialLoaderHonours) {
  fs::path d = copy_fixture("mamba-tiny-hf");
  nlohmann::json c = read_json(d / "config.json");
  c["use_falcon_mambaization"] = true;
  write_file(d / "config.json", c.dump());
  expect_one_line_error(forward(d), {"config.json", "use_falcon_mambaization"});
}

TEST_F(BadInput, InputIdsOutsideVocabulary) {
  std::string in = (dir_ / "bad_ids.safetensors").string();
  write_safetensors(in, {{"input_ids", Tensor::from_i64({1, 2, 600}, {1, 3})}});
  expect_one_line_error(forward(fs::path(test::fixture_dir("pythia-tiny")), in), {"bad_ids.safetensors", "600", "[0, 2]", "512"});
}

TEST_F(BadInput, MalformedConfigJson) {
  fs::path d = copy_fixture("pythia-tiny");
  write_file(d / "config.json", "{\"hidden_size\": 64,");
  expect_one_line_error(forward(d), {"config.json", "not valid JSON"});
}

}  // namespace
}  // namespace bmh
