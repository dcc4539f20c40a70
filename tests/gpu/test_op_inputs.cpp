// The op table's input draws (kernels/op_inputs.cpp), host only: no device needed, so these run wherever the GPU
// tests build. time_op (kernels/op_runner.cpp) keeps the last model-sized input set for the next row with the same
// op_inputs_key; that is only sound if every pair of cases with one key draws identical inputs.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "kernels/op_cases.h"

namespace bmh {
namespace {

using cuda::Dt;
using cuda::OpCase;
using cuda::OpKind;

TEST(OpInputs, CasesWithOneKeyDrawTheSameInputs) {
  std::map<std::string, OpCase> first;
  int pairs = 0, scan_pairs = 0;
  for (const OpCase& c : cuda::op_cases()) {
    if (c.perf) continue;  // the same keying rules; model-sized draws take seconds each
    auto [it, fresh] = first.emplace(cuda::op_inputs_key(c), c);
    if (fresh) continue;
    const cuda::OpData a = cuda::make_op_inputs(it->second, 100), b = cuda::make_op_inputs(c, 100);
    EXPECT_EQ(a.in, b.in) << it->second.name() << " vs " << c.name();
    EXPECT_EQ(a.ints, b.ints) << it->second.name() << " vs " << c.name();
    ++pairs;
    scan_pairs += c.op == OpKind::Scan;
  }
  EXPECT_GT(scan_pairs, 5);  // the scan's versions and lane counts share inputs
  EXPECT_EQ(pairs, scan_pairs);  // the table's only other shared keys are model-sized (conv, norm scalar twins):
  for (OpKind op : {OpKind::Conv1d, OpKind::AddNorm}) {  // the same rule on small cases
    OpCase v;
    v.op = op; v.dt = Dt::BF16; v.B = 2; v.T = 9; v.N = 64; v.K = 4; v.flag = true; v.bias = true;
    OpCase scalar = v;
    scalar.variant = 1;
    EXPECT_EQ(cuda::op_inputs_key(v), cuda::op_inputs_key(scalar));
    EXPECT_EQ(cuda::make_op_inputs(v, 100).in, cuda::make_op_inputs(scalar, 100).in) << v.name();
  }
  // A version that changes the inputs keeps its own key: the fused-dt state update draws dt_proj's weight.
  OpCase u;
  u.op = OpKind::StateUpdate; u.dt = Dt::BF16; u.B = 2; u.N = 64; u.K = 16; u.M = 8;
  OpCase f = u;
  f.variant = 1;
  EXPECT_NE(cuda::op_inputs_key(u), cuda::op_inputs_key(f));
  EXPECT_EQ(cuda::make_op_inputs(u, 100).in.count("dt_w"), 0u);
  EXPECT_EQ(cuda::make_op_inputs(f, 100).in.count("dt_w"), 1u);
}

}  // namespace
}  // namespace bmh
