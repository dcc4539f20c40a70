// safetensors: round trips of every dtype, the reference writer's exact layout, the fixtures, and one test per
// kind of damaged file (each error must name the file and the tensor or the sizes involved).
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <cstring>
#include <random>

#include "core/checkpoint.h"
#include "core/half.h"
#include "test_checkpoint_util.h"

using namespace bmh;
using bmh_test::TempDir;

namespace {

const std::string kFixtures = std::string(BMH_TEST_DIR) + "/fixtures";

// A file from a header string and a data section, with the header length field set to the header's size.
std::string safetensors_bytes(const std::string& header, const std::string& data, int64_t len_override = -1) {
  std::string b;
  bmh_test::put_le(b, len_override >= 0 ? uint64_t(len_override) : header.size(), 8);
  return b + header + data;
}

Tensor random_tensor(DType dt, Shape shape, std::mt19937& rng) {
  Tensor t = Tensor::zeros(dt, shape);
  std::normal_distribution<float> normal(0.f, 3.f);
  std::uniform_int_distribution<int64_t> wide(INT64_MIN, INT64_MAX);
  const int64_t n = t.numel();
  for (int64_t i = 0; i < n; ++i) {
    switch (dt) {
      case DType::F32: t.data_mut<float>()[i] = normal(rng); break;
      case DType::F64: t.data_mut<double>()[i] = double(normal(rng)) * 1e-3 + 1e-9 * i; break;
      case DType::BF16: t.data_mut<uint16_t>()[i] = f32_to_bf16(normal(rng)); break;
      case DType::F16: t.data_mut<uint16_t>()[i] = f32_to_f16(normal(rng)); break;
      case DType::I64: t.data_mut<int64_t>()[i] = wide(rng); break;
      case DType::I32: t.data_mut<int32_t>()[i] = int32_t(wide(rng)); break;
      case DType::I16: t.data_mut<int16_t>()[i] = int16_t(wide(rng)); break;
      case DType::I8: t.data_mut<int8_t>()[i] = int8_t(wide(rng)); break;
      case DType::U8: t.data_mut<uint8_t>()[i] = uint8_t(wide(rng)); break;
      case DType::Bool: t.data_mut<uint8_t>()[i] = uint8_t(wide(rng) & 1); break;
    }
  }
  return t;
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && a.nbytes() == b.nbytes() &&
         (a.nbytes() == 0 || std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0);
}

}  // namespace

TEST(Safetensors, RoundTripsEveryDtypeWithRandomValues) {
  TempDir dir;
  std::mt19937 rng(1234);
  TensorMap tensors;
  const DType all[] = {DType::F32, DType::F64, DType::BF16, DType::F16, DType::I64,
                       DType::I32, DType::I16, DType::I8,   DType::U8,  DType::Bool};
  int k = 0;
  for (DType dt : all) {
    std::string name = std::string("t.") + dtype_name(dt);
    tensors[name] = random_tensor(dt, {3, 5 + k % 3}, rng);
    tensors[name + ".scalar"] = random_tensor(dt, {}, rng);
    tensors[name + ".odd"] = random_tensor(dt, {7, 1, 3}, rng);  // odd byte counts shift later offsets
    ++k;
  }
  tensors["empty"] = Tensor::zeros(DType::F32, {0, 4});
  const std::string path = dir.file("rt.safetensors");
  write_safetensors(path, tensors, {{"format", "pt"}, {"note", "round trip"}});
  Checkpoint ck = read_safetensors(path);
  ASSERT_EQ(ck.tensors.size(), tensors.size());
  for (const auto& [name, t] : tensors) {
    ASSERT_TRUE(ck.tensors.count(name)) << name;
    const Tensor& r = ck.tensors.at(name);
    EXPECT_TRUE(same_bytes(t, r)) << name << ": wrote " << t.describe() << ", read " << r.describe();
    EXPECT_EQ(ck.file_of.at(name), path);
    if (r.numel() > 0) {
      EXPECT_EQ(reinterpret_cast<uintptr_t>(r.raw()) % dtype_size(r.dtype()), 0u) << name;
    }
  }
  // Values, not just bytes: floats through to_f32, ints through to_i64.
  EXPECT_EQ(ck.tensors.at("t.BF16").to_f32(), tensors.at("t.BF16").to_f32());
  EXPECT_EQ(ck.tensors.at("t.I16").to_i64(), tensors.at("t.I16").to_i64());
  // The metadata is in the header but not among the tensors.
  std::string bytes = bmh_test::read_bytes(path);
  EXPECT_NE(bytes.find("\"__metadata__\":{\"format\":\"pt\",\"note\":\"round trip\"}"), std::string::npos);
  EXPECT_FALSE(ck.tensors.count("__metadata__"));
}

TEST(Safetensors, WriterMatchesTheReferenceLayout) {
  // safetensors/src/tensor.rs `prepare`: compact JSON, "__metadata__" first, header padded with spaces to a
  // multiple of 8, then the data in header order. The header sizes 64, 72, 8 and 40 below are those the
  // reference's own serialization tests expect for the same inputs.
  TempDir dir;
  std::vector<float> six = {0, 1, 2, 3, 4, 5};
  struct Case { std::string name; Shape shape; std::string json; size_t header_len; };
  for (const Case& c : {Case{"attn.0", {1, 2, 3}, R"({"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}})", 64},
                        Case{"attn0", {1, 1, 2, 3}, R"({"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}})", 72}}) {
    const std::string path = dir.file(c.name + ".safetensors");
    write_safetensors(path, {{c.name, Tensor::from_f32(six, c.shape)}});
    std::string b = bmh_test::read_bytes(path);
    std::string expect;
    bmh_test::put_le(expect, c.header_len, 8);
    expect += c.json + std::string(c.header_len - c.json.size(), ' ') + bmh_test::raw_bytes(six);
    EXPECT_EQ(b, expect) << c.name;
  }
  write_safetensors(dir.file("empty.safetensors"), {});
  EXPECT_EQ(bmh_test::read_bytes(dir.file("empty.safetensors")), std::string("\x08\0\0\0\0\0\0\0{}      ", 16));
  write_safetensors(dir.file("meta.safetensors"), {}, {{"framework", "pt"}});
  std::string m = bmh_test::read_bytes(dir.file("meta.safetensors"));
  ASSERT_EQ(m.size(), 48u);
  EXPECT_EQ(uint8_t(m[0]), 40);
  EXPECT_EQ(m.substr(8), std::string(R"({"__metadata__":{"framework":"pt"}})") + "     ");
  EXPECT_TRUE(read_safetensors(dir.file("empty.safetensors")).tensors.empty());
}

TEST(Safetensors, WriterOrdersByDescendingAlignmentThenName) {
  TempDir dir;
  TensorMap t;
  t["a"] = Tensor::zeros(DType::F32, {2});
  t["b"] = Tensor::zeros(DType::BF16, {3});
  t["c"] = Tensor::zeros(DType::F32, {1});
  t["d"] = Tensor::zeros(DType::U8, {5});
  t["z"] = Tensor::zeros(DType::I64, {1});
  t["y"] = Tensor::zeros(DType::F64, {1});
  const std::string path = dir.file("order.safetensors");
  write_safetensors(path, t);
  std::string b = bmh_test::read_bytes(path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = n << 8 | uint8_t(b[i]);
  auto h = nlohmann::ordered_json::parse(b.substr(8, n));
  std::vector<std::string> order;
  for (auto it = h.begin(); it != h.end(); ++it) order.push_back(it.key());
  // Reference Dtype order: I64 > F64 > F32 > BF16 > U8.
  EXPECT_EQ(order, (std::vector<std::string>{"z", "y", "a", "c", "b", "d"}));
  EXPECT_EQ(h["z"]["data_offsets"], nlohmann::json::parse("[0,8]"));
  EXPECT_EQ(h["a"]["data_offsets"], nlohmann::json::parse("[16,24]"));
  EXPECT_EQ(h["d"]["data_offsets"], nlohmann::json::parse("[34,39]"));
  EXPECT_EQ(b.size(), 8 + n + 39);
}

TEST(Safetensors, WriteReplacesAtomicallyAndLeavesNoTempFiles) {
  TempDir dir;
  const std::string path = dir.file("x.safetensors");
  write_safetensors(path, {{"a", Tensor::from_f32({1, 2}, {2})}});
  write_safetensors(path, {{"b", Tensor::from_f32({3}, {1})}});
  Checkpoint ck = read_safetensors(path);
  ASSERT_EQ(ck.tensors.size(), 1u);
  EXPECT_EQ(ck.tensors.at("b").to_f32(), std::vector<float>{3});
  int files = 0;
  for (auto& e : std::filesystem::directory_iterator(dir.path)) { (void)e; ++files; }
  EXPECT_EQ(files, 1);
  EXPECT_ERROR_MENTIONS(write_safetensors(dir.file("no/such/dir/x.safetensors"), {}), "no/such/dir/x.safetensors");
  EXPECT_ERROR_MENTIONS(write_safetensors(dir.file("m.safetensors"), {{"__metadata__", Tensor::from_f32({1}, {1})}}),
                        "m.safetensors", "__metadata__");
}

TEST(Safetensors, ReadsAMisalignedDataSectionByCopying) {
  // Other writers need not pad the header: a 5-byte header puts F32 data at file offset 13.
  TempDir dir;
  std::vector<float> v = {1.5f, -2.25f};
  std::string hdr = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  hdr += " ";  // 57 bytes: data at file offset 65, not a multiple of 4
  ASSERT_NE((8 + hdr.size()) % 4, 0u);
  bmh_test::write_bytes(dir.file("m.safetensors"), safetensors_bytes(hdr, bmh_test::raw_bytes(v)));
  Checkpoint ck = read_safetensors(dir.file("m.safetensors"));
  EXPECT_EQ(ck.tensors.at("w").to_f32(), v);
}

TEST(Safetensors, ReadsTheFixtures) {
  Checkpoint hf = read_safetensors(kFixtures + "/mamba-tiny-hf/model.safetensors");
  EXPECT_EQ(hf.tensors.size(), 22u);
  EXPECT_EQ(hf.tensors.at("backbone.embeddings.weight").describe(), "F32 [512, 64]");
  EXPECT_EQ(hf.tensors.at("backbone.layers.1.mixer.x_proj.weight").describe(), "F32 [36, 128]");
  EXPECT_EQ(hf.tensors.at("backbone.layers.0.mixer.conv1d.weight").describe(), "F32 [128, 1, 4]");
  Checkpoint pythia = read_safetensors(kFixtures + "/pythia-tiny/model.safetensors");
  EXPECT_GT(pythia.tensors.size(), 10u);
  for (const auto& [name, t] : pythia.tensors) EXPECT_TRUE(t.defined()) << name;
  Checkpoint ex = read_safetensors(kFixtures + "/blackmamba-tiny/expected.safetensors");
  const Tensor& ids = ex.tensors.at("input_ids");
  ASSERT_EQ(ids.dtype(), DType::I64);
  ASSERT_EQ(ids.rank(), 2);
  EXPECT_EQ(ex.tensors.at("logits").shape(), (Shape{ids.dim(0), ids.dim(1), 512}));
  for (int64_t id : ids.to_i64()) EXPECT_TRUE(id >= 0 && id < 512) << id;
  EXPECT_EQ(ex.tensors.at("route.1.router_logits").shape(), (Shape{ids.dim(0), ids.dim(1), 8}));
}

// parse_safetensors is what read_safetensors runs on the mapping (and what tests/fuzz fuzzes): on the bytes of a
// fixture it yields the same tensors; on damaged bytes it names the path it was given.
TEST(Safetensors, BytesEntryPointReadsWhatThePathVersionReads) {
  for (const char* f : {"/mamba-tiny-hf/model.safetensors", "/blackmamba-tiny/expected.safetensors"}) {
    const std::string path = kFixtures + f, bytes = bmh_test::read_bytes(path);
    auto buf = std::make_shared<std::string>(bytes);
    Checkpoint a = read_safetensors(path);
    Checkpoint b = parse_safetensors(reinterpret_cast<const uint8_t*>(buf->data()), buf->size(), buf, "mem");
    buf.reset();  // the tensors keep the bytes alive
    bmh_test::expect_same_tensors(a, b, "mem", f);
    EXPECT_ERROR_MENTIONS(parse_safetensors(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size() - 1,
                                            nullptr, "mem"),
                          "mem", "truncated");
  }
}

// ---- damaged files: one test each ----

class SafetensorsBad : public ::testing::Test {
 protected:
  TempDir dir;
  std::string put(const std::string& name, const std::string& bytes) {
    bmh_test::write_bytes(dir.file(name), bytes);
    return dir.file(name);
  }
  std::string good() {  // two F32 tensors of 2 and 3 elements
    TensorMap t{{"a", Tensor::from_f32({1, 2}, {2})}, {"b", Tensor::from_f32({3, 4, 5}, {3})}};
    write_safetensors(dir.file("good.safetensors"), t);
    return bmh_test::read_bytes(dir.file("good.safetensors"));
  }
};

TEST_F(SafetensorsBad, TruncatedFile) {
  std::string b = good();
  std::string p = put("cut.safetensors", b.substr(0, b.size() - 6));  // last tensor lost 6 of its 12 bytes
  EXPECT_ERROR_MENTIONS(read_safetensors(p), p, "tensor 'b'", "[8, 20]", "14 bytes", "truncated");
}

TEST_F(SafetensorsBad, ShorterThanTheLengthField) {
  std::string p = put("tiny.safetensors", std::string("\x10\0\0", 3));
  EXPECT_ERROR_MENTIONS(read_safetensors(p), p, "3 bytes", "8-byte");
}

TEST_F(SafetensorsBad, HeaderLengthLargerThanFile) {
  std::string b = good();
  std::string p = put("len.safetensors", safetensors_bytes(b.substr(8), "", 5000));
  EXPECT_ERROR_MENTIONS(read_safetensors(p), p, "header length 5000", std::to_string(b.size()) + " bytes");
}

TEST_F(SafetensorsBad, HeaderLengthOverTheLimit) {
  std::string p = put("huge.safetensors", safetensors_bytes("{}", "", 100000001));
  EXPECT_ERROR_MENTIONS(read_safetensors(p), p, "100000001", "100000000");
}

TEST_F(SafetensorsBad, DataOffsetsOutOfBounds) {
  std::string p = put("oob.safetensors",
                      safetensors_bytes(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,1016]}})",
                                        std::string(16, '\0')));
  EXPECT_ERROR_MENTIONS(read_safetensors(p), p, "tensor 'w'", "[0, 1016]", "16 bytes");
  std::string q = put("rev.safetensors",
                      safetensors_bytes(R"({"w":{"dtype":"U8","shape":[0],"data_offsets":[8,4]}})", std::string(8, '\0')));
  EXPECT_ERROR_MENTIONS(read_safetensors(q), q, "tensor 'w'", "[8, 4]");
}

TEST_F(SafetensorsBad, OffsetsThatDisagreeWithShape) {
  std::string p = put("size.safetensors",
                      safetensors_bytes(R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,16]}})",
                                        std::string(16, '\0')));
  EXPECT_ERROR_MENTIONS(read_safetensors(p), p, "tensor 'w'", "F32 [2, 3]", "24 bytes", "16 bytes");
}

TEST_F(SafetensorsBad, OverlapGapAndTrailingBytes) {
  std::string data(16, '\0');
  std::string p = put("overlap.safetensors",
                      safetensors_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                        R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", data));
  EXPECT_ERROR_MENTIONS(read_safetensors(p), p, "tensor 'b'", "[4, 12]", "begin at byte 8", "overlaps");
  std::string q = put("gap.safetensors",
                      safetensors_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                                        R"("b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", data));
  EXPECT_ERROR_MENTIONS(read_safetensors(q), q, "tensor 'b'", "begin at byte 4", "gap");
  std::string r = put("tail.safetensors",
                      safetensors_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", data));
  EXPECT_ERROR_MENTIONS(read_safetensors(r), r, "cover 8 bytes", "16-byte data section");
}

TEST_F(SafetensorsBad, UnsupportedDtype) {
  std::string p = put("f8.safetensors",
                      safetensors_bytes(R"({"w":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]}})",
                                        std::string(4, '\0')));
  EXPECT_ERROR_MENTIONS(read_safetensors(p), p, "tensor 'w'", "unsupported dtype F8_E4M3");
  std::string q = put("q7.safetensors",
                      safetensors_bytes(R"({"w":{"dtype":"Q7","shape":[4],"data_offsets":[0,4]}})", std::string(4, '\0')));
  EXPECT_ERROR_MENTIONS(read_safetensors(q), q, "tensor 'w'", "unknown dtype Q7");
}

TEST_F(SafetensorsBad, MalformedHeader) {
  std::string p = put("json.safetensors", safetensors_bytes(R"({"w":{"dtype":"F32",)", ""));
  EXPECT_ERROR_MENTIONS(read_safetensors(p), p, "not valid JSON");
  std::string q = put("field.safetensors", safetensors_bytes(R"({"w":{"dtype":"F32","shape":[1]}})", std::string(4, 0)));
  EXPECT_ERROR_MENTIONS(read_safetensors(q), q, "tensor 'w'", "data_offsets");
  std::string r = put("neg.safetensors",
                      safetensors_bytes(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", std::string(4, 0)));
  EXPECT_ERROR_MENTIONS(read_safetensors(r), r, "tensor 'w'", "shape", "-1");
  std::string s = put("arr.safetensors", safetensors_bytes("[1,2]", ""));
  EXPECT_ERROR_MENTIONS(read_safetensors(s), s, "not a JSON object");
  std::string t = put("ovf.safetensors",
                      safetensors_bytes(R"({"w":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,0]}})", ""));
  EXPECT_ERROR_MENTIONS(read_safetensors(t), t, "tensor 'w'");
}

TEST_F(SafetensorsBad, MissingFile) {
  EXPECT_ERROR_MENTIONS(read_safetensors(dir.file("absent.safetensors")), dir.file("absent.safetensors"),
                        "No such file");
  EXPECT_ERROR_MENTIONS(read_safetensors(dir.path), dir.path, "not a regular file");
}
