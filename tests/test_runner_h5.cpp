// The HDF5 result writer (evals/h5_writer.h): datasets and attributes round-trip, files appear only on
// commit, groups copy between files.
#include <gtest/gtest.h>

#include <filesystem>

#include "core/error.h"
#include "evals/h5_writer.h"

namespace bmh {
namespace {

namespace fs = std::filesystem;

std::string temp_dir(const std::string& name) {
  fs::path p = fs::path(testing::TempDir()) / ("bmh_h5_" + name);
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

TEST(H5Writer, RoundTripsDatasetsAndAttributes) {
  const std::string path = temp_dir("rt") + "/a.h5";
  {
    h5::File f(path);
    auto g = f.root().group("model").group("latency");
    g.attr("backend", "cpu");
    g.attr("repeats", 3);
    g.attr("lengths", std::vector<int64_t>{16, 64});
    g.write("ms", std::vector<double>{1.5, 2.5, 3.5, 4.5, 5.5, 6.5}, {2, 3}, {"time", "ms", {"length", "repeat"}});
    g.write("ids", std::vector<int64_t>{7, 8}, h5::DatasetInfo{"ids", "", {"i"}});
    g.write("names", std::vector<std::string>{"α", "beta"}, h5::DatasetInfo{});
    g.write("scalar", std::vector<double>{42}, Shape{});
    g.write("empty", std::vector<double>{}, Shape{0, 4});
    g.write("ms", std::vector<float>{9, 10}, {2});  // replaces the first "ms"
    EXPECT_FALSE(fs::exists(path));                // nothing visible before commit
    f.commit();
  }
  EXPECT_TRUE(fs::exists(path));
  Shape s;
  EXPECT_EQ(h5::read_doubles(path, "/model/latency/ms", &s), (std::vector<double>{9, 10}));
  EXPECT_EQ(s, (Shape{2}));
  EXPECT_EQ(h5::read_doubles(path, "/model/latency/ids"), (std::vector<double>{7, 8}));
  EXPECT_EQ(h5::read_string_attr(path, "/model/latency/ids", "description"), "ids");
  EXPECT_EQ(h5::read_strings(path, "/model/latency/names"), (std::vector<std::string>{"α", "beta"}));
  EXPECT_EQ(h5::read_doubles(path, "/model/latency/scalar", &s), (std::vector<double>{42}));
  EXPECT_TRUE(s.empty());
  EXPECT_TRUE(h5::read_doubles(path, "/model/latency/empty", &s).empty());
  EXPECT_EQ(s, (Shape{0, 4}));
  EXPECT_EQ(h5::read_string_attr(path, "/model/latency", "backend"), "cpu");
  EXPECT_EQ(h5::read_double_attr(path, "/model/latency", "repeats"), 3);
  EXPECT_TRUE(h5::exists(path, "/model/latency/ids"));
  EXPECT_FALSE(h5::exists(path, "/model/nothing/ids"));
  EXPECT_THROW(h5::read_doubles(path, "/model/nothing"), Error);
  EXPECT_THROW(h5::read_string_attr(path, "/model/latency", "missing"), Error);
  for (const auto& e : fs::directory_iterator(fs::path(path).parent_path()))
    EXPECT_EQ(e.path().filename(), "a.h5") << "stray file " << e.path();
}

TEST(H5Writer, UncommittedFileLeavesNothing) {
  const std::string dir = temp_dir("abandon");
  {
    h5::File f(dir + "/b.h5");
    f.root().group("x").write("v", std::vector<double>{1}, Shape{1});
  }
  EXPECT_TRUE(fs::is_empty(dir));
}

TEST(H5Writer, RejectsShapeMismatchAndBadNames) {
  const std::string dir = temp_dir("bad");
  h5::File f(dir + "/c.h5");
  auto g = f.root();
  EXPECT_THROW(g.write("v", std::vector<double>{1, 2, 3}, Shape{2, 2}), Error);
  EXPECT_THROW(g.write("v", std::vector<double>{1, 2}, Shape{2}, {"", "", {"a", "b"}}), Error);
  EXPECT_THROW(g.group("a/b"), Error);
  try {
    g.write("w", std::vector<double>{1, 2, 3}, Shape{2, 2});
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("c.h5"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("[2, 2]"), std::string::npos) << e.what();
  }
}

TEST(H5Writer, CopiesGroupsBetweenFiles) {
  const std::string dir = temp_dir("copy");
  {
    h5::File part(dir + "/part.h5");
    auto g = part.root().group("flops");
    g.attr("unit", "FLOPs");
    g.write("per_token", std::vector<double>{1, 2, 3}, {"FLOPs per token", "FLOPs", {"context"}});
    part.commit();
  }
  {
    h5::File all(dir + "/all.h5");
    all.root().group("tiny").copy_from(dir + "/part.h5", "/flops", "flops");
    EXPECT_THROW(all.root().copy_from(dir + "/part.h5", "/nothing", "x"), Error);
    EXPECT_THROW(all.root().copy_from(dir + "/missing.h5", "/flops", "x"), Error);
    all.commit();
  }
  EXPECT_EQ(h5::read_doubles(dir + "/all.h5", "/tiny/flops/per_token"), (std::vector<double>{1, 2, 3}));
  EXPECT_EQ(h5::read_string_attr(dir + "/all.h5", "/tiny/flops", "unit"), "FLOPs");
  EXPECT_EQ(h5::read_string_attr(dir + "/all.h5", "/tiny/flops/per_token", "units"), "FLOPs");
}

}  // namespace
}  // namespace bmh
