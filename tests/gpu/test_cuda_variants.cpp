// Kernel variants that must not change a single bit of the model's output: only the schedule differs.
//   moe_prefill=streams runs each expert's fc1 -> activation -> fc2 chain on its own side stream and rows of the
//   workspace; every GEMM keeps its shape, operands and handle configuration, so logits and routes are identical
//   to the serial schedule's.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/presets.h"
#include "gpu_test_util.h"
#include "kernels/cuda_model.h"
#include "model_test_util.h"

namespace bmh {
namespace {

using gpu_test::ids_for;
using gpu_test::KernelSetGuard;

ForwardOutput forward_with(LanguageModel& m, const Tensor& ids, const std::string& spec) {
  KernelSetGuard g(spec);
  return m.forward(ids);
}

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.raw(), b.raw(), size_t(a.numel()) * 4) == 0;
}

// Every MoE preset kind: BlackMamba (top-1 sigmoid, Zyphra), a MoE transformer, Mixtral (top-2 softmax) and Jamba.
// 3 x 400 tokens put a few hundred rows on each expert, so the side streams really overlap.
TEST(CudaMoePrefill, SideStreamsEqualSerialBitwise) {
  BMH_REQUIRE_GPU();
  for (std::string preset : {"tiny-blackmamba-50k", "tiny-transformer-moe-50k", "tiny-mixtral-50k", "tiny-jamba-50k"})
    for (std::string dtype : {"fp32", "bf16"}) {
      ModelConfig cfg = preset_config(preset);
      auto m = make_cuda_model(cfg, random_weights(cfg, 41), dtype);
      const Tensor ids = ids_for(3, 400, cfg.vocab_size, 43);
      const ForwardOutput serial = forward_with(*m, ids, "moe_prefill=serial");
      const ForwardOutput streams = forward_with(*m, ids, "moe_prefill=streams");
      EXPECT_TRUE(bitwise_equal(serial.logits, streams.logits)) << preset << " " << dtype;
      ASSERT_EQ(serial.routes.size(), streams.routes.size()) << preset;
      ASSERT_FALSE(serial.routes.empty()) << preset << " has no MoE block";
      for (size_t r = 0; r < serial.routes.size(); ++r) {
        EXPECT_EQ(serial.routes[r].expert, streams.routes[r].expert) << preset << " " << dtype << " MoE " << r;
        std::vector<int> load(serial.routes[r].n_experts, 0);
        for (int64_t e : serial.routes[r].expert) load[e]++;
        int used = 0;
        for (int n : load) used += n > 0;
        EXPECT_GE(used, 2) << preset << " MoE " << r << ": one expert took every token, nothing ran concurrently";
      }
    }
}

// The pdl, decode_dt, moe_prefill, gemv, state_update, decode_norm and scan entries of a kernel spec (no device needed): parsed,
// read back by to_string, the named sets' choices (v2: pdl on, streams; v1: pdl off, serial; decode_dt gemv in
// both), and a bad value changes nothing.
TEST(KernelVariants, EntriesParseAndRoundTrip) {
  KernelSetGuard g("v2");
  EXPECT_EQ(cuda::kernel_variants().pdl, cuda::PdlVariant::On);
  EXPECT_EQ(cuda::kernel_variants().moe_prefill, cuda::MoePrefillVariant::Streams);
  cuda::set_kernel_variants("pdl=off");
  EXPECT_EQ(cuda::kernel_variants().pdl, cuda::PdlVariant::Off);
  cuda::set_kernel_variants("pdl=on,moe_prefill=serial");
  EXPECT_EQ(cuda::kernel_variants().pdl, cuda::PdlVariant::On);
  EXPECT_EQ(cuda::to_string(cuda::kernel_variants()),
            "scan=states,attn_decode=split,attn_prefill=flash,gemv=stream,moe_prefill=serial,pdl=on,decode_dt=gemv,"
            "state_update=tile,decode_norm=separate");
  EXPECT_THROW(cuda::set_kernel_variants("gemv=warp,pdl=maybe"), Error);
  EXPECT_EQ(cuda::kernel_variants().gemv, cuda::GemvVariant::Stream);
  EXPECT_EQ(cuda::kernel_variants().pdl, cuda::PdlVariant::On);
  cuda::set_kernel_variants("v1");
  EXPECT_EQ(cuda::kernel_variants().pdl, cuda::PdlVariant::Off);
  cuda::set_kernel_variants(cuda::to_string(cuda::kernel_variants()) + ",pdl=on");
  EXPECT_EQ(cuda::to_string(cuda::kernel_variants()),
            "scan=staged,attn_decode=per_head,attn_prefill=gemm,gemv=warp,moe_prefill=serial,pdl=on,decode_dt=gemv,"
            "state_update=lanes,decode_norm=separate");
  cuda::set_kernel_variants("decode_dt=fused");
  EXPECT_EQ(cuda::kernel_variants().decode_dt, cuda::DecodeDtVariant::Fused);
  EXPECT_THROW(cuda::set_kernel_variants("decode_dt=gemm"), Error);
  cuda::set_kernel_variants("v2");
  EXPECT_EQ(cuda::kernel_variants().decode_dt, cuda::DecodeDtVariant::Gemv);
  cuda::set_kernel_variants("moe_prefill=streams");
  EXPECT_EQ(cuda::kernel_variants().moe_prefill, cuda::MoePrefillVariant::Streams);
  EXPECT_THROW(cuda::set_kernel_variants("moe_prefill=grouped"), Error);
  EXPECT_EQ(cuda::kernel_variants().moe_prefill, cuda::MoePrefillVariant::Streams);
  cuda::set_kernel_variants("v1");
  EXPECT_EQ(cuda::kernel_variants().moe_prefill, cuda::MoePrefillVariant::Serial);
  cuda::set_kernel_variants("gemv=rows");
  EXPECT_EQ(cuda::kernel_variants().gemv, cuda::GemvVariant::Rows);
  EXPECT_NE(cuda::to_string(cuda::kernel_variants()).find(",gemv=rows,"), std::string::npos);
  EXPECT_THROW(cuda::set_kernel_variants("gemv=row"), Error);
  EXPECT_EQ(cuda::kernel_variants().gemv, cuda::GemvVariant::Rows);
  cuda::set_kernel_variants("gemv=mma");
  EXPECT_EQ(cuda::kernel_variants().gemv, cuda::GemvVariant::Mma);
  EXPECT_NE(cuda::to_string(cuda::kernel_variants()).find(",gemv=mma,"), std::string::npos);
  cuda::set_kernel_variants("gemv=stream,decode_norm=fused");
  EXPECT_EQ(cuda::kernel_variants().gemv, cuda::GemvVariant::Stream);
  EXPECT_EQ(cuda::kernel_variants().decode_norm, cuda::DecodeNormVariant::Fused);
  EXPECT_THROW(cuda::set_kernel_variants("decode_norm=folded"), Error);
  EXPECT_EQ(cuda::kernel_variants().decode_norm, cuda::DecodeNormVariant::Fused);
  cuda::set_kernel_variants("decode_norm=separate");
  EXPECT_EQ(cuda::kernel_variants().decode_norm, cuda::DecodeNormVariant::Separate);
  cuda::set_kernel_variants("v2");
  EXPECT_EQ(cuda::kernel_variants().state_update, cuda::StateUpdateVariant::Tile);
  cuda::set_kernel_variants("state_update=lanes");
  EXPECT_EQ(cuda::kernel_variants().state_update, cuda::StateUpdateVariant::Lanes);
  EXPECT_THROW(cuda::set_kernel_variants("state_update=tiles"), Error);
  EXPECT_EQ(cuda::kernel_variants().state_update, cuda::StateUpdateVariant::Lanes);
  cuda::set_kernel_variants("v1,state_update=tile");
  EXPECT_EQ(cuda::kernel_variants().state_update, cuda::StateUpdateVariant::Tile);
  EXPECT_EQ(cuda::kernel_variants().gemv, cuda::GemvVariant::Warp);
  // Every scan version by name, and back.
  for (const char* name : {"staged", "chunked", "states", "pipelined"}) {
    cuda::set_kernel_variants(std::string("scan=") + name);
    EXPECT_EQ(cuda::to_string(cuda::kernel_variants().scan), std::string(name));
  }
  EXPECT_THROW(cuda::set_kernel_variants("scan=pipeline"), Error);
  EXPECT_EQ(cuda::kernel_variants().scan, cuda::ScanVariant::Pipelined);
}

}  // namespace
}  // namespace bmh
