// Hugging Face Hub ids offline (core/hub_cache.h): a fake cache laid out as huggingface_hub writes it
// (models--org--name/refs/<rev> -> snapshots/<hash>/ with symlinks into blobs/) resolves `org/name`,
// `org/name@branch` and `org/name@<hash>`, found through HF_HUB_CACHE and HF_HOME; a miss names where it looked
// and how to download; the model loads from the snapshot with the fixture's logits.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/hub_cache.h"
#include "evals/model_loader.h"
#include "test_util.h"

namespace bmh {
namespace {

namespace fs = std::filesystem;

struct FakeCache {
  fs::path root = fs::temp_directory_path() / ("bmh_hub_" + std::to_string(::getpid()));
  fs::path hub = root / "hub";
  std::string main_hash = std::string(40, 'a'), dev_hash = "0123456789abcdef0123456789abcdef01234567";
  FakeCache() {
    fs::remove_all(root);
    const fs::path repo = hub / "models--tiny-org--mixtral-tiny";
    fs::create_directories(repo / "refs");
    fs::create_directories(repo / "blobs");
    for (const auto& h : {main_hash, dev_hash}) {
      const fs::path snap = repo / "snapshots" / h;
      fs::create_directories(snap);
      for (std::string f : {"config.json", "model.safetensors"}) {
        const fs::path blob = repo / "blobs" / (f + "-" + h);
        fs::copy_file(fs::path(test::fixture_dir("mixtral-tiny")) / f, blob);
        fs::create_symlink(fs::relative(blob, snap), snap / f);
      }
    }
    std::ofstream(repo / "refs" / "main") << main_hash;  // no newline, as huggingface_hub writes it
    std::ofstream(repo / "refs" / "dev") << dev_hash << "\n";
  }
  ~FakeCache() { fs::remove_all(root); }
};

std::string error_of(const std::string& arg) {
  try {
    resolve_model_dir(arg);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(HubCache, ResolvesIdsRevisionsAndBothEnvironmentVariables) {
  FakeCache c;
  ::setenv("HF_HUB_CACHE", c.hub.c_str(), 1);
  const fs::path repo = c.hub / "models--tiny-org--mixtral-tiny";
  EXPECT_EQ(resolve_model_dir("tiny-org/mixtral-tiny"), (repo / "snapshots" / c.main_hash).string());
  EXPECT_EQ(resolve_model_dir("tiny-org/mixtral-tiny@dev"), (repo / "snapshots" / c.dev_hash).string());
  EXPECT_EQ(resolve_model_dir("tiny-org/mixtral-tiny@" + c.dev_hash), (repo / "snapshots" / c.dev_hash).string());
  ::unsetenv("HF_HUB_CACHE");
  ::setenv("HF_HOME", c.root.c_str(), 1);  // HF_HOME/hub
  EXPECT_EQ(resolve_model_dir("tiny-org/mixtral-tiny"), (repo / "snapshots" / c.main_hash).string());
  // Local directories and non-ids pass through unchanged.
  EXPECT_EQ(resolve_model_dir(test::fixture_dir("pythia-tiny")), test::fixture_dir("pythia-tiny"));
  EXPECT_FALSE(looks_like_hub_id("/abs/path"));
  EXPECT_FALSE(looks_like_hub_id("a/b/c"));
  EXPECT_TRUE(looks_like_hub_id("Zyphra/BlackMamba-2.8B"));
  EXPECT_TRUE(looks_like_hub_id("Zyphra/BlackMamba-2.8B@main"));
  // The model loads from the snapshot (through the symlinks) with the fixture's logits.
  ModelSpec s;
  s.dir = "tiny-org/mixtral-tiny@dev";
  TensorMap exp = test::expected("mixtral-tiny");
  EXPECT_LT(test::rel_frobenius(load_model(s)->forward(exp.at("input_ids")).logits, exp.at("logits")), 1e-5);
  ::unsetenv("HF_HOME");
}

TEST(HubCache, MissesNameWhereTheyLookedAndHowToDownload) {
  FakeCache c;
  ::setenv("HF_HUB_CACHE", c.hub.c_str(), 1);
  std::string e = error_of("Zyphra/BlackMamba-2.8B");
  EXPECT_NE(e.find((c.hub / "models--Zyphra--BlackMamba-2.8B" / "refs" / "main").string()), std::string::npos) << e;
  EXPECT_NE(e.find("hf download Zyphra/BlackMamba-2.8B"), std::string::npos) << e;
  e = error_of("tiny-org/mixtral-tiny@nope");
  EXPECT_NE(e.find("refs/nope"), std::string::npos) << e;
  EXPECT_NE(e.find("--revision nope"), std::string::npos) << e;
  e = error_of("tiny-org/mixtral-tiny@" + std::string(40, 'b'));
  EXPECT_NE(e.find("no snapshot"), std::string::npos) << e;
  ::unsetenv("HF_HUB_CACHE");
}

}  // namespace
}  // namespace bmh
