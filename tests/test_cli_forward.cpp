// `bmh forward` and `bmh generate` end to end on a fixture directory, as a user runs them: the files they write
// carry the fixtures' tensor names and match the oracle (same tolerances as test_fixtures.cpp).
#include <gtest/gtest.h>

#include <filesystem>

#include "test_util.h"

namespace bmh {
namespace {

namespace fs = std::filesystem;

TEST(Cli, ForwardAndGenerateWriteTheFixturesNames) {
  const std::string fx = test::fixture_dir("blackmamba-tiny");
  fs::path dir = fs::temp_directory_path() / ("bmh_cli_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string in = (dir / "in.safetensors").string(), out = (dir / "out.safetensors").string(),
                    gen = (dir / "gen.safetensors").string();
  TensorMap exp = test::expected("blackmamba-tiny");
  write_safetensors(in, {{"input_ids", exp.at("input_ids")}});
  const std::string bmh = BMH_BINARY;
  ASSERT_EQ(std::system((bmh + " forward --model " + fx + " --inputs " + in + " --out " + out + " > /dev/null").c_str()), 0);
  ASSERT_EQ(std::system((bmh + " generate --model " + fx + " --inputs " + in + " --max-new-tokens 6 --out " + gen + " > /dev/null").c_str()), 0);
  TensorMap got = read_safetensors(out).tensors, g = read_safetensors(gen).tensors;
  EXPECT_LT(test::rel_frobenius(got.at("logits"), exp.at("logits")), 1e-4);
  for (std::string k : {"route.1.expert", "route.3.expert"}) EXPECT_EQ(got.at(k).to_i64(), exp.at(k).to_i64()) << k;
  for (std::string k : {"route.1.prob", "route.3.prob", "route.1.router_logits", "route.3.router_logits"})
    EXPECT_LT(test::rel_frobenius(got.at(k), exp.at(k)), 1e-4) << k;
  EXPECT_EQ(g.at("generated_ids").to_i64(), exp.at("generated_ids").to_i64());
  EXPECT_LT(test::rel_frobenius(g.at("generated_logits"), exp.at("generated_logits")), 1e-4);
  // Forcing the recorded routes reproduces them.
  ASSERT_EQ(std::system((bmh + " forward --model " + fx + " --inputs " + in + " --force-routes " + fx +
                         "/expected.safetensors --out " + out + " > /dev/null").c_str()), 0);
  EXPECT_EQ(read_safetensors(out).tensors.at("route.3.expert").to_i64(), exp.at("route.3.expert").to_i64());
  fs::remove_all(dir);
}

TEST(Cli, EveryCommandExplainsItsOptions) {
  const std::string bmh = BMH_BINARY;
  for (std::string cmd : {"", " info", " forward", " generate"})
    EXPECT_EQ(std::system((bmh + cmd + " --help > /dev/null").c_str()), 0) << cmd;
}

}  // namespace
}  // namespace bmh
