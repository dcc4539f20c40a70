// torch.save zip archives: the real fixtures (values checked against numbers computed independently with
// Python's zipfile + pickle + numpy, and against the same weights stored as safetensors), hand-built pickles for
// shared storages / strides / nested containers / protocol 4, and one test per kind of damaged archive.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "core/checkpoint.h"
#include "core/half.h"
#include "core/pickle.h"
#include "test_checkpoint_util.h"

using namespace bmh;
using bmh_test::Pickle;
using bmh_test::TempDir;

namespace {

const std::string kFixtures = std::string(BMH_TEST_DIR) + "/fixtures";

double sum_f64(const Tensor& t) {
  auto v = t.to_f64();
  return std::accumulate(v.begin(), v.end(), 0.0);
}

std::string write_torch(const TempDir& dir, const std::string& name, const Pickle& p,
                        const std::vector<std::pair<std::string, std::string>>& storages,
                        const std::string& byteorder = "little") {
  std::string path = dir.file(name);
  bmh_test::write_bytes(path, bmh_test::make_torch_zip(p.b, storages, byteorder));
  return path;
}

std::vector<float> iota_f32(int n) {
  std::vector<float> v(n);
  std::iota(v.begin(), v.end(), 0.f);
  return v;
}

}  // namespace

TEST(TorchZip, BlackMambaTinyBf16Fixture) {
  const std::string path = kFixtures + "/blackmamba-tiny/pytorch_model.bin";
  Checkpoint ck = read_torch_zip(path);
  ASSERT_EQ(ck.tensors.size(), 61u);  // {"model": state_dict} flattened
  for (const auto& [name, t] : ck.tensors) {
    EXPECT_EQ(name.rfind("model.", 0), 0u) << name;
    EXPECT_EQ(t.dtype(), DType::BF16) << name;
    EXPECT_EQ(ck.file_of.at(name), path);
  }
  EXPECT_EQ(ck.tensors.at("model.embedding.word_embeddings.weight").describe(), "BF16 [512, 64]");
  EXPECT_EQ(ck.tensors.at("model.decoder.layers.0.mixer.conv1d.weight").describe(), "BF16 [128, 1, 4]");
  EXPECT_EQ(ck.tensors.at("model.decoder.layers.1.mixer.router.weight").describe(), "BF16 [8, 64]");
  EXPECT_EQ(ck.tensors.at("model.decoder.layers.3.mixer.local_experts.7.linear_fc1.weight").describe(),
            "BF16 [256, 64]");
  EXPECT_EQ(ck.tensors.at("model.decoder.final_layernorm.bias").describe(), "BF16 [64]");

  // Reference numbers: Python zipfile + pickle + numpy on the same file (bf16 bits << 16 viewed as float32).
  const Tensor& a_log = ck.tensors.at("model.decoder.layers.0.mixer.A_log");
  EXPECT_EQ(a_log.describe(), "BF16 [128, 16]");
  EXPECT_EQ(a_log.data<uint16_t>()[0], 0x4011);
  auto v = a_log.to_f32();
  EXPECT_EQ(v[0], 2.265625f);
  EXPECT_EQ(v[1], 2.734375f);
  EXPECT_EQ(v.back(), 1.8203125f);
  EXPECT_DOUBLE_EQ(sum_f64(a_log), 3771.181671142578);
  const Tensor& fc2 = ck.tensors.at("model.decoder.layers.3.mixer.local_experts.7.linear_fc2.weight");
  EXPECT_EQ(fc2.to_f32()[0], -0.04296875f);
  EXPECT_EQ(fc2.to_f32().back(), -0.01806640625f);
  EXPECT_NEAR(sum_f64(fc2), -10.654510259628296, 1e-12);
  const Tensor& emb = ck.tensors.at("model.embedding.word_embeddings.weight");
  EXPECT_EQ(emb.to_f32()[2], -0.390625f);
  EXPECT_NEAR(sum_f64(emb), 141.34663951396942, 1e-10);
  EXPECT_NEAR(sum_f64(ck.tensors.at("model.decoder.final_layernorm.bias")), -1.3318328857421875, 1e-12);
}

// parse_torch_zip is what read_torch_zip runs on the mapped file (and what tests/fuzz fuzzes): on a fixture's
// bytes it yields the same tensors, which own their bytes; damaged bytes are refused naming the path it was given.
TEST(TorchZip, BytesEntryPointReadsWhatThePathVersionReads) {
  for (const char* f : {"/blackmamba-tiny/pytorch_model.bin", "/mamba-tiny-ssm/pytorch_model.bin"}) {
    const std::string path = kFixtures + f;
    std::string bytes = bmh_test::read_bytes(path);
    Checkpoint a = read_torch_zip(path);
    Checkpoint b = parse_torch_zip(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "mem");
    std::fill(bytes.begin(), bytes.end(), '\0');  // nothing borrows from the input
    bmh_test::expect_same_tensors(a, b, "mem", f);
    bytes = bmh_test::read_bytes(path);
    EXPECT_ERROR_MENTIONS(parse_torch_zip(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size() / 2, "mem"),
                          "mem", "not a readable torch.save zip archive");
  }
}

TEST(TorchZip, BlackMambaTinyVariantFp32Fixture) {
  Checkpoint ck = read_torch_zip(kFixtures + "/blackmamba-tiny-variant/pytorch_model.bin");
  ASSERT_EQ(ck.tensors.size(), 52u);
  const Tensor& b = ck.tensors.at("model.decoder.layers.0.mixer.in_proj.bias");
  EXPECT_EQ(b.describe(), "F32 [256]");
  EXPECT_EQ(b.to_f32()[0], -0.05224619060754776f);
  EXPECT_EQ(b.to_f32()[2], 0.04217846319079399f);
  EXPECT_NEAR(sum_f64(b), -2.8073425744951237, 1e-9);
  const Tensor& ob = ck.tensors.at("model.output_layer.bias");
  EXPECT_EQ(ob.describe(), "F32 [512]");
  EXPECT_EQ(ob.to_f32()[1], 0.1323268711566925f);
  EXPECT_NEAR(sum_f64(ob), -4.386657811621262, 1e-9);
  EXPECT_EQ(ck.tensors.at("model.decoder.layers.1.mixer.router.weight").describe(), "F32 [4, 64]");
}

TEST(TorchZip, MambaSsmBinEqualsTheSameWeightsAsSafetensors) {
  // mamba-tiny-ssm/pytorch_model.bin and mamba-tiny-hf/model.safetensors hold the same weights under the two
  // layouts' names (transformers converts `embedding` -> `embeddings`; its lm_head is tied, so not stored).
  Checkpoint bin = read_torch_zip(kFixtures + "/mamba-tiny-ssm/pytorch_model.bin");
  Checkpoint st = read_safetensors(kFixtures + "/mamba-tiny-hf/model.safetensors");
  ASSERT_EQ(bin.tensors.size(), 23u);
  int compared = 0;
  for (const auto& [name, t] : bin.tensors) {
    if (name == "lm_head.weight") continue;
    std::string hf = name == "backbone.embedding.weight" ? "backbone.embeddings.weight" : name;
    ASSERT_TRUE(st.tensors.count(hf)) << hf;
    const Tensor& s = st.tensors.at(hf);
    ASSERT_EQ(t.describe(), s.describe()) << name;
    EXPECT_EQ(std::memcmp(t.raw(), s.raw(), t.nbytes()), 0) << name;
    ++compared;
  }
  EXPECT_EQ(compared, 22);
  EXPECT_EQ(bin.tensors.at("lm_head.weight").describe(), "F32 [512, 64]");
}

TEST(TorchZip, CheckpointDirPicksTheWeightsFile) {
  EXPECT_EQ(load_checkpoint_dir(kFixtures + "/blackmamba-tiny").tensors.size(), 61u);
  Checkpoint hf = load_checkpoint_dir(kFixtures + "/mamba-tiny-hf");
  EXPECT_EQ(hf.file_of.at("backbone.norm_f.weight"), kFixtures + "/mamba-tiny-hf/model.safetensors");
}

TEST(TorchZip, TensorsSharingAStorageWithOffsetsAndStrides) {
  // One FloatStorage of 12 elements (0..11) viewed five ways, as torch.save writes views of one tensor.
  TempDir dir;
  Pickle p;
  p.proto(2).empty_dict().binput(0).mark();
  p.binunicode("full").tensor("FloatStorage", "0", 12, 0, {3, 4}, {4, 1});
  p.binunicode("tail").tensor("FloatStorage", "0", 12, 8, {4}, {1});
  p.binunicode("transposed").tensor("FloatStorage", "0", 12, 0, {4, 3}, {1, 4});
  p.binunicode("every_other").tensor("FloatStorage", "0", 12, 1, {2, 2}, {4, 2});
  p.binunicode("expanded").tensor("FloatStorage", "0", 12, 4, {2, 3}, {0, 1});
  p.binunicode("row_slice").tensor("FloatStorage", "0", 12, 4, {1, 4}, {99, 1});  // size-1 dim: stride irrelevant
  p.binunicode("empty").tensor("FloatStorage", "0", 12, 12, {0, 5}, {5, 1});
  p.setitems().stop();
  const std::string path = write_torch(dir, "shared.bin", p, {{"0", bmh_test::raw_bytes(iota_f32(12))}});
  Checkpoint ck = read_torch_zip(path);
  ASSERT_EQ(ck.tensors.size(), 7u);
  EXPECT_EQ(ck.tensors.at("full").to_f32(), iota_f32(12));
  EXPECT_EQ(ck.tensors.at("tail").to_f32(), (std::vector<float>{8, 9, 10, 11}));
  EXPECT_EQ(ck.tensors.at("transposed").to_f32(), (std::vector<float>{0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11}));
  EXPECT_EQ(ck.tensors.at("transposed").shape(), (Shape{4, 3}));
  EXPECT_EQ(ck.tensors.at("every_other").to_f32(), (std::vector<float>{1, 3, 5, 7}));
  EXPECT_EQ(ck.tensors.at("expanded").to_f32(), (std::vector<float>{4, 5, 6, 4, 5, 6}));
  EXPECT_EQ(ck.tensors.at("row_slice").to_f32(), (std::vector<float>{4, 5, 6, 7}));
  EXPECT_EQ(ck.tensors.at("empty").shape(), (Shape{0, 5}));
  // Contiguous views borrow the one storage buffer: same bytes, not copies.
  auto base = static_cast<const char*>(ck.tensors.at("full").raw());
  EXPECT_EQ(static_cast<const char*>(ck.tensors.at("tail").raw()), base + 8 * 4);
  EXPECT_EQ(static_cast<const char*>(ck.tensors.at("row_slice").raw()), base + 4 * 4);
}

TEST(TorchZip, NestedContainersAreFlattenedAndNonTensorLeavesSkipped) {
  // {"model": OrderedDict(w=<bf16>, tied=<same tensor>) with __dict__ {"_metadata": {"": {"version": 1}}},
  //  "epoch": 3, "lr": 0.5, "name": "run", "flags": [True, None], "opt": {0: {"m": <i64>}}, "neg": -300,
  //  "param": Parameter(<f16>)}
  TempDir dir;
  std::vector<uint16_t> bf = {f32_to_bf16(1.5f), f32_to_bf16(-2.f), f32_to_bf16(0.25f)};
  std::vector<int64_t> i64 = {-7, 1LL << 40};
  std::vector<uint16_t> f16 = {f32_to_f16(0.5f), f32_to_f16(-1.f)};
  Pickle p;
  p.proto(2).empty_dict().binput(0).mark();
  p.binunicode("model").global("collections", "OrderedDict").empty_tuple().reduce().binput(1).mark();
  p.binunicode("w").tensor("BFloat16Storage", "a", 3, 0, {3}, {1}).binput(2);
  p.binunicode("tied").binget(2);
  p.setitems();
  p.empty_dict().binunicode("_metadata").empty_dict().binunicode("").empty_dict().binunicode("version").binint1(1)
      .setitem().setitem().setitem().build();
  p.binunicode("epoch").binint1(3);
  p.binunicode("lr").binfloat(0.5);
  p.binunicode("name").binunicode("run");
  p.binunicode("flags").empty_list().newtrue().append().none().append();
  p.binunicode("opt").empty_dict().binint1(0).empty_dict().binunicode("m");
  p.tensor("LongStorage", "b", 2, 0, {2}, {1}).setitem().setitem();
  p.binunicode("neg").binint(-300);
  p.binunicode("param").global("torch._utils", "_rebuild_parameter");
  p.mark().tensor("HalfStorage", "c", 2, 0, {2, 1}, {1, 1}).newtrue().global("collections", "OrderedDict")
      .empty_tuple().reduce().tuple().reduce();
  p.setitems().stop();
  const std::string path = write_torch(dir, "nested.bin", p,
                                       {{"a", bmh_test::raw_bytes(bf)}, {"b", bmh_test::raw_bytes(i64)},
                                        {"c", bmh_test::raw_bytes(f16)}});
  Checkpoint ck = read_torch_zip(path);
  std::vector<std::string> names;
  for (auto& [n, t] : ck.tensors) names.push_back(n);
  EXPECT_EQ(names, (std::vector<std::string>{"model.tied", "model.w", "opt.0.m", "param"}));
  EXPECT_EQ(ck.tensors.at("model.w").to_f32(), (std::vector<float>{1.5f, -2.f, 0.25f}));
  EXPECT_EQ(ck.tensors.at("model.tied").raw(), ck.tensors.at("model.w").raw());
  EXPECT_EQ(ck.tensors.at("opt.0.m").to_i64(), i64);
  EXPECT_EQ(ck.tensors.at("param").describe(), "F16 [2, 1]");
  EXPECT_EQ(ck.tensors.at("param").to_f32(), (std::vector<float>{0.5f, -1.f}));
}

TEST(TorchZip, Protocol4FramesMemoizeAndStackGlobal) {
  TempDir dir;
  std::vector<uint8_t> flags = {1, 0, 1, 1};
  std::vector<int8_t> i8 = {-128, 127};
  Pickle body;
  body.empty_dict().memoize().mark();
  body.short_binunicode("mask");
  body.short_binunicode("torch._utils").memoize().short_binunicode("_rebuild_tensor_v2").memoize().stack_global()
      .memoize();
  body.mark().mark().short_binunicode("storage").short_binunicode("torch").short_binunicode("BoolStorage").stack_global()
      .short_binunicode("k0").short_binunicode("cuda:0").long1(4, 1).tuple().binpersid();
  body.binint1(0).binint1(2).binint1(2).tuple2().binint1(2).binint1(1).tuple2().newfalse();
  body.short_binunicode("collections").short_binunicode("OrderedDict").stack_global().empty_tuple().reduce();
  body.tuple().reduce().memoize();
  body.short_binunicode("big").binget(3);  // memo 3 is the _rebuild_tensor_v2 global (1, 2: its names)
  body.mark().mark().short_binunicode("storage").global("torch", "CharStorage").short_binunicode("k1")
      .short_binunicode("cpu").long1(2, 2).tuple().binpersid();
  body.long1(0, 0).mark().long1(2, 8).tuple().mark().long1(1, 3).tuple().newfalse().empty_dict().tuple().reduce();
  body.setitems().stop();
  Pickle p;
  p.proto(4).frame(body.b.size()).b += body.b;
  const std::string path = write_torch(dir, "p4.bin", p, {{"k0", bmh_test::raw_bytes(flags)}, {"k1", bmh_test::raw_bytes(i8)}});
  Checkpoint ck = read_torch_zip(path);
  EXPECT_EQ(ck.tensors.at("mask").describe(), "BOOL [2, 2]");
  EXPECT_EQ(ck.tensors.at("mask").to_i64(), (std::vector<int64_t>{1, 0, 1, 1}));
  EXPECT_EQ(ck.tensors.at("big").describe(), "I8 [2]");
  EXPECT_EQ(ck.tensors.at("big").to_i64(), (std::vector<int64_t>{-128, 127}));
}

TEST(Unpickler, ScalarsAndContainers) {
  Pickle p;
  p.proto(2).mark().binint(-5).binint1(200).binint2(65535).long1(-2, 1).long1(-1LL << 40, 6).long1(0, 0)
      .binfloat(-0.125).binunicode("h\xc3\xa9").newtrue().none().empty_list().binint1(1).append().tuple()
      .stop();
  pickle::Ref r = pickle::unpickle(reinterpret_cast<const uint8_t*>(p.b.data()), p.b.size(), "test", {});
  ASSERT_TRUE(r->is(pickle::Kind::Tuple));
  ASSERT_EQ(r->items.size(), 11u);
  EXPECT_EQ(r->items[0]->i, -5);
  EXPECT_EQ(r->items[1]->i, 200);
  EXPECT_EQ(r->items[2]->i, 65535);
  EXPECT_EQ(r->items[3]->i, -2);
  EXPECT_EQ(r->items[4]->i, -(1LL << 40));
  EXPECT_EQ(r->items[5]->i, 0);
  EXPECT_EQ(r->items[6]->f, -0.125);
  EXPECT_EQ(r->items[7]->s, "h\xc3\xa9");
  EXPECT_TRUE(r->items[8]->is(pickle::Kind::Bool) && r->items[8]->i == 1);
  EXPECT_TRUE(r->items[9]->is(pickle::Kind::None));
  EXPECT_EQ(r->items[10]->items.size(), 1u);
  EXPECT_EQ(pickle::repr(*r), "(-5, 200, 65535, -2, -1099511627776, 0, -0.125, 'h\xc3\xa9', True, None, [1])");
}

// ---- damaged archives: one test each ----

class TorchZipBad : public ::testing::Test {
 protected:
  TempDir dir;
  static Pickle one_tensor(const std::string& type, int64_t numel, int64_t offset, std::vector<int64_t> size,
                           std::vector<int64_t> stride, const std::string& key = "0") {
    Pickle p;
    p.proto(2).empty_dict().binunicode("layer.weight").tensor(type, key, numel, offset, size, stride).setitem().stop();
    return p;
  }
};

TEST_F(TorchZipBad, TruncatedZip) {
  std::string b = bmh_test::read_bytes(kFixtures + "/mamba-tiny-ssm/pytorch_model.bin");
  std::string path = dir.file("cut.bin");
  bmh_test::write_bytes(path, b.substr(0, b.size() / 2));
  EXPECT_ERROR_MENTIONS(read_torch_zip(path), path, "not a readable torch.save zip archive");
}

TEST_F(TorchZipBad, TruncatedPickle) {
  Pickle full = one_tensor("FloatStorage", 4, 0, {4}, {1});
  Pickle cut;
  cut.b = full.b.substr(0, 40);  // stops inside the GLOBAL operand of _rebuild_tensor_v2
  std::string path = write_torch(dir, "cutpkl.bin", cut, {{"0", std::string(16, '\0')}});
  EXPECT_ERROR_MENTIONS(read_torch_zip(path), path, "archive/data.pkl", "truncated pickle", "40 bytes");
  Pickle nostop;
  nostop.b = full.b.substr(0, full.b.size() - 1);
  std::string q = write_torch(dir, "nostop.bin", nostop, {{"0", std::string(16, '\0')}});
  EXPECT_ERROR_MENTIONS(read_torch_zip(q), q, "truncated pickle", "no STOP");
}

TEST_F(TorchZipBad, UnknownPickleGlobal) {
  Pickle p;
  p.proto(2).empty_dict().binunicode("args").global("argparse", "Namespace").empty_tuple().reduce().setitem().stop();
  std::string path = write_torch(dir, "ns.bin", p, {});
  EXPECT_ERROR_MENTIONS(read_torch_zip(path), "unknown pickle global 'argparse.Namespace' in " + path);
  Pickle q;
  q.proto(2).global("os", "system").binunicode("rm -rf /").tuple1().reduce().stop();
  std::string path2 = write_torch(dir, "os.bin", q, {});
  EXPECT_ERROR_MENTIONS(read_torch_zip(path2), "unknown pickle global 'os.system' in " + path2);
  Pickle r;  // STACK_GLOBAL goes through the same check
  r.proto(4).short_binunicode("builtins").short_binunicode("eval").stack_global().stop();
  std::string path3 = write_torch(dir, "eval.bin", r, {});
  EXPECT_ERROR_MENTIONS(read_torch_zip(path3), "unknown pickle global 'builtins.eval' in " + path3);
}

TEST_F(TorchZipBad, StorageShorterThanTheTensorNeeds) {
  std::string path = write_torch(dir, "short.bin", one_tensor("FloatStorage", 12, 2, {4, 3}, {3, 1}),
                                 {{"0", std::string(48, '\0')}});
  EXPECT_ERROR_MENTIONS(read_torch_zip(path), path, "tensor 'layer.weight'", "size [4, 3]", "stride [3, 1]",
                        "offset 2", "index 13", "only 12");
  // The record itself is smaller than the storage's declared element count.
  std::string q = write_torch(dir, "record.bin", one_tensor("FloatStorage", 12, 0, {12}, {1}),
                              {{"0", std::string(40, '\0')}});
  EXPECT_ERROR_MENTIONS(read_torch_zip(q), q, "archive/data/0", "40 bytes", "12 elements", "48 bytes");
}

TEST_F(TorchZipBad, MissingStorageRecord) {
  std::string path = write_torch(dir, "missing.bin", one_tensor("FloatStorage", 4, 0, {4}, {1}, "7"),
                                 {{"0", std::string(16, '\0')}});
  EXPECT_ERROR_MENTIONS(read_torch_zip(path), path, "missing record 'archive/data/7'");
}

TEST_F(TorchZipBad, DamagedStorageBytes) {
  std::string zip = bmh_test::make_torch_zip(one_tensor("FloatStorage", 4, 0, {4}, {1}).b,
                                             {{"0", bmh_test::raw_bytes(iota_f32(4))}});
  size_t at = zip.find(bmh_test::raw_bytes(iota_f32(4)));
  ASSERT_NE(at, std::string::npos);
  zip[at + 5] ^= 0x40;  // flip a bit in the stored data: the CRC no longer matches
  std::string path = dir.file("crc.bin");
  bmh_test::write_bytes(path, zip);
  EXPECT_ERROR_MENTIONS(read_torch_zip(path), path, "archive/data/0", "damaged");
}

TEST_F(TorchZipBad, BigEndianAndLegacyFormats) {
  std::string path = write_torch(dir, "be.bin", one_tensor("FloatStorage", 4, 0, {4}, {1}),
                                 {{"0", std::string(16, '\0')}}, "big");
  EXPECT_ERROR_MENTIONS(read_torch_zip(path), path, "big-endian");
  std::string legacy = dir.file("legacy.bin");
  bmh_test::write_bytes(legacy, std::string("\x80\x02\x8a\x0a", 4) + std::string(60, '\0'));
  EXPECT_ERROR_MENTIONS(read_torch_zip(legacy), legacy, "legacy");
  EXPECT_ERROR_MENTIONS(read_torch_zip(dir.file("absent.bin")), dir.file("absent.bin"));
}

TEST_F(TorchZipBad, UnsupportedOpcodeAndMalformedStructures) {
  Pickle inst;  // INST ('i') runs arbitrary constructors in protocol 0: not understood
  inst.proto(2).mark().op('i').b += "os\nsystem\n";
  inst.stop();
  std::string p1 = write_torch(dir, "inst.bin", inst, {});
  EXPECT_ERROR_MENTIONS(read_torch_zip(p1), p1, "unsupported opcode ('i')", "byte 3");

  Pickle badpid;  // persistent id that is not ('storage', type, key, location, numel)
  badpid.proto(2).empty_dict().binunicode("w").binunicode("storage").binpersid().setitem().stop();
  std::string p2 = write_torch(dir, "pid.bin", badpid, {});
  EXPECT_ERROR_MENTIONS(read_torch_zip(p2), p2, "persistent id 'storage'");

  Pickle cycle;  // d = {}; d["self"] = d  -> refused as a cycle (and not leaked), not walked until depth 64
  cycle.proto(2).empty_dict().binput(0).binunicode("self").binget(0).setitem().stop();
  std::string p3 = write_torch(dir, "cycle.bin", cycle, {});
  EXPECT_ERROR_MENTIONS(read_torch_zip(p3), p3, "reference cycle");

  Pickle dup;  // {"a.b": t, "a": {"b": t}}
  dup.proto(2).empty_dict().binunicode("a.b").tensor("FloatStorage", "0", 1, 0, {1}, {1}).binput(1).setitem();
  dup.binunicode("a").empty_dict().binunicode("b").binget(1).setitem().setitem().stop();
  std::string p4 = write_torch(dir, "dup.bin", dup, {{"0", std::string(4, '\0')}});
  EXPECT_ERROR_MENTIONS(read_torch_zip(p4), p4, "'a.b' occurs twice");

  Pickle scalar;
  scalar.proto(2).binint1(7).stop();
  std::string p5 = write_torch(dir, "scalar.bin", scalar, {});
  EXPECT_ERROR_MENTIONS(read_torch_zip(p5), p5, "holds a int (7)");

  Pickle mixed;  // one storage key used with two dtypes
  mixed.proto(2).empty_dict().mark().binunicode("x").tensor("FloatStorage", "0", 2, 0, {2}, {1});
  mixed.binunicode("y").tensor("HalfStorage", "0", 4, 0, {4}, {1}).setitems().stop();
  std::string p6 = write_torch(dir, "mixed.bin", mixed, {{"0", std::string(8, '\0')}});
  EXPECT_ERROR_MENTIONS(read_torch_zip(p6), p6, "storage '0'", "F32", "F16");

  Pickle underflow;
  underflow.proto(2).setitem().stop();
  std::string p7 = write_torch(dir, "underflow.bin", underflow, {});
  EXPECT_ERROR_MENTIONS(read_torch_zip(p7), p7, "stack underflow");

  Pickle memo;
  memo.proto(2).binget(9).stop();
  std::string p8 = write_torch(dir, "memo.bin", memo, {});
  EXPECT_ERROR_MENTIONS(read_torch_zip(p8), p8, "memo index 9");
}
