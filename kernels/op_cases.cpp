// The op-case table (see op_cases.h): every kernel case the GPU test checks against reference/ and the benchmark
// times; op_runner.cpp makes their inputs and runs them.
#include <sstream>
#include <utility>

#include "kernels/op_cases.h"
#include "kernels/variants.h"

namespace bmh::cuda {

const char* to_string(OpKind k) {
  switch (k) {
    case OpKind::Linear: return "linear";
    case OpKind::AddNorm: return "add_norm";
    case OpKind::MlpAct: return "mlp_act";
    case OpKind::Conv1d: return "conv1d";
    case OpKind::Conv1dUpdate: return "conv1d_update";
    case OpKind::Scan: return "selective_scan";
    case OpKind::StateUpdate: return "state_update";
    case OpKind::Gemv: return "gemv";
    case OpKind::MoeRoute: return "moe_route";
    case OpKind::Rotary: return "rotary";
    case OpKind::Softmax: return "causal_softmax";
    case OpKind::AttnDecode: return "attention_decode";
    case OpKind::LogSoftmax: return "logsoftmax_gather";
    case OpKind::Embedding: return "embedding";
    case OpKind::AttnPrefill: return "attention_prefill";
    case OpKind::NormGemv: return "norm_gemv";
    case OpKind::RouterTopK: return "router_topk";
    case OpKind::AttnGqa: return "attention_gqa";
  }
  return "?";
}

std::string OpCase::name() const {
  std::ostringstream os;
  os << to_string(op) << "_" << dt_name(dt);
  auto put = [&](const char* k, int v) { if (v) os << "_" << k << v; };
  put("B", B == 1 ? 0 : B); put("T", T == 1 ? 0 : T);
  put("M", M); put("N", N); put("K", K); put("E", E); put("H", H); put("hd", hd); put("rd", rd); put("S", S);
  put("V", V);
  if (flag) os << "_flag";
  if (bias) os << "_bias";
  if (op == OpKind::AddNorm || op == OpKind::NormGemv) os << (norm == NormKind::RMSNorm ? "_rms" : "_ln");
  if (op == OpKind::MlpAct) os << "_" << bmh::to_string(act);
  if (variant != 0 && op == OpKind::Scan) os << "_" << to_string(ScanVariant(variant));
  if (variant != 0 && op == OpKind::AttnDecode) os << "_" << to_string(AttnDecodeVariant(variant));
  if (variant != 0 && op == OpKind::AttnPrefill) os << "_" << to_string(AttnPrefillVariant(variant));
  if (variant == kGemvGroupedCase && op == OpKind::Gemv) os << "_grouped";
  else if (variant != 0 && op == OpKind::Gemv) os << "_" << to_string(GemvVariant(variant));
  if (variant != 0 && op == OpKind::NormGemv) os << (variant == 2 ? "_stream" : "_fused");
  if ((variant & 1) && op == OpKind::StateUpdate) os << "_dt_" << to_string(DecodeDtVariant::Fused);
  if ((variant & 2) && op == OpKind::StateUpdate) os << "_" << to_string(StateUpdateVariant::Tile);
  if (variant != 0 && (op == OpKind::AddNorm || op == OpKind::Conv1d)) os << "_scalar";
  return os.str();
}

std::vector<OpCase> op_cases() {
  std::vector<OpCase> v;
  for (Dt dt : {Dt::F32, Dt::BF16, Dt::F16}) {
    auto C = [&](OpKind k) { OpCase c; c.op = k; c.dt = dt; return c; };
    // GEMMs: odd sizes, a long K (fp32 must stay fp32: TF32 would miss 1e-5), fp32 accumulate into the residual.
    for (auto [M, N, K, acc] : std::vector<std::tuple<int, int, int, bool>>{
             {1, 1, 1, false}, {7, 33, 65, false}, {129, 250, 96, true}, {64, 96, 4096, false}, {3, 2944, 1472, true}}) {
      OpCase c = C(OpKind::Linear); c.M = M; c.N = N; c.K = K; c.flag = acc; v.push_back(c);
    }
    { OpCase c = C(OpKind::Linear); c.M = 4096; c.N = 5888; c.K = 1472; c.perf = true; v.push_back(c); }
    for (NormKind nk : {NormKind::RMSNorm, NormKind::LayerNorm})
      for (bool delta : {false, true}) {
        OpCase c = C(OpKind::AddNorm); c.T = 37; c.N = 97; c.norm = nk; c.flag = delta; c.bias = nk == NormKind::LayerNorm;
        v.push_back(c);
      }
    { OpCase c = C(OpKind::AddNorm); c.T = 300; c.N = 2560; c.flag = true; v.push_back(c); }
    // 16-byte path (d % 4 == 0) at 512 threads with a partial last pass (1472 = 368 float4s) and at 128 threads
    { OpCase c = C(OpKind::AddNorm); c.T = 37; c.N = 1472; c.norm = NormKind::LayerNorm; c.flag = true; c.bias = true; v.push_back(c); }
    { OpCase c = C(OpKind::AddNorm); c.T = 21; c.N = 200; v.push_back(c); }
    for (Activation a : {Activation::GeluErf, Activation::GeluTanh, Activation::Silu, Activation::Relu}) {
      OpCase c = C(OpKind::MlpAct); c.T = 19; c.N = 75; c.act = a; c.flag = a == Activation::GeluErf; c.bias = a != Activation::Relu;
      v.push_back(c);
      // F = 96: 16-byte accesses (8 bf16/fp16 or 4 fp32 per thread), gated and not, with and without bias.
      c.N = 96;
      for (bool gated : {false, true}) {
        c.flag = gated;
        c.bias = gated != (a == Activation::Relu);
        v.push_back(c);
      }
    }
    { OpCase c = C(OpKind::Conv1d); c.B = 2; c.T = 37; c.N = 65; c.K = 4; c.bias = true; v.push_back(c); }
    { OpCase c = C(OpKind::Conv1d); c.B = 1; c.T = 2; c.N = 33; c.K = 4; v.push_back(c); }
    { OpCase c = C(OpKind::Conv1d); c.B = 2; c.T = 11; c.N = 40; c.K = 3; c.bias = true; v.push_back(c); }  // generic K
    // 16-byte path (channels and row strides multiples of 8 / of 4 in fp32): a partial second channel block and a
    // partial last run; T = 2 < K - 1 (the window's first rows all from the state); 68 channels (16-byte path in
    // fp32 only); an odd row stride (M = 1 extra column per xz row: the scalar kernel in every dtype).
    { OpCase c = C(OpKind::Conv1d); c.B = 2; c.T = 37; c.N = 1096; c.K = 4; c.bias = true; v.push_back(c); }
    { OpCase c = C(OpKind::Conv1d); c.B = 3; c.T = 2; c.N = 128; c.K = 4; c.bias = true; v.push_back(c); }
    { OpCase c = C(OpKind::Conv1d); c.B = 1; c.T = 20; c.N = 68; c.K = 4; v.push_back(c); }
    { OpCase c = C(OpKind::Conv1d); c.B = 2; c.T = 37; c.N = 72; c.K = 4; c.M = 1; c.bias = true; v.push_back(c); }
    { OpCase c = C(OpKind::Conv1dUpdate); c.B = 3; c.N = 65; c.K = 4; c.bias = true; v.push_back(c); }
    // the register path's largest d_conv (8), and the loop past it (12)
    { OpCase c = C(OpKind::Conv1dUpdate); c.B = 2; c.N = 33; c.K = 8; v.push_back(c); }
    { OpCase c = C(OpKind::Conv1dUpdate); c.B = 2; c.N = 40; c.K = 12; c.bias = true; v.push_back(c); }
    for (ScanVariant sv : {ScanVariant::Staged, ScanVariant::Chunked, ScanVariant::States, ScanVariant::Pipelined}) {
      auto S = [&] { OpCase c = C(OpKind::Scan); c.variant = int(sv); return c; };
      { OpCase c = S(); c.B = 2; c.T = 70; c.N = 130; c.K = 16; c.flag = true; c.bias = true; v.push_back(c); }
      { OpCase c = S(); c.B = 1; c.T = 5; c.N = 33; c.K = 5; v.push_back(c); }
      { OpCase c = S(); c.B = 1; c.T = 33; c.N = 64; c.K = 40; c.flag = true; c.bias = true; v.push_back(c); }
      { OpCase c = S(); c.B = 4; c.T = 20; c.N = 8200; c.K = 16; c.flag = true; c.bias = true; v.push_back(c); }  // staged: G = 2 lanes per channel
    }
    // Chunked scan at each lanes-per-channel count: several chunks of 12 * G steps (the carry), a partial last
    // chunk, a partial channel block, odd d_state.
    // 16-byte staging paths (channels, strides and B/C columns multiples of 8), 2 and 16 lanes per channel
    for (int G : {2, 16}) {
      OpCase c = C(OpKind::Scan); c.variant = int(ScanVariant::Chunked); c.E = G;
      c.B = 2; c.T = 12 * 16 + 29; c.N = 64; c.K = 16; c.M = 8; c.flag = true; c.bias = true; v.push_back(c);
    }
    for (int G : {1, 2, 4, 8, 16}) {
      OpCase c = C(OpKind::Scan); c.variant = int(ScanVariant::Chunked); c.E = G;
      c.B = 2; c.T = 12 * G * 2 + 7; c.N = 37; c.K = 16; c.flag = true; c.bias = true; v.push_back(c);
      c.B = 1; c.T = 12 * G + 1; c.N = 130; c.K = 7; c.flag = false; c.bias = false; v.push_back(c);
    }
    // States and pipelined scans at each lanes-per-channel count its d_state allows (states padded to 16, 32, 64;
    // NS = P / L per lane): several 8-step chunks and a partial one, a full channel block beside a partial one (69
    // channels: the unchecked path in the first block where d_state == P; the pipelined version's steady intervals
    // need 4 full chunks past the first), B / C inside [dt_rank | B | C] rows; then 1 and 2 chunks (T 9, 16: its
    // prologue and epilogue without a steady interval).
    for (ScanVariant sv : {ScanVariant::States, ScanVariant::Pipelined})
      for (auto [N, L] : std::vector<std::pair<int, int>>{{16, 1}, {16, 2}, {16, 4}, {16, 8}, {20, 2}, {20, 8},
                                                         {32, 4}, {37, 4}, {64, 8}, {5, 1}}) {
        OpCase c = C(OpKind::Scan); c.variant = int(sv); c.E = L;
        c.B = 2; c.T = 8 * 6 + 5; c.N = 69; c.K = N; c.M = 8; c.flag = true; c.bias = true; v.push_back(c);
        c.B = 1; c.T = 9; c.N = 70; c.M = 0; c.flag = false; c.bias = false; v.push_back(c);
        c.B = 3; c.T = 16; c.N = 64; c.flag = true; v.push_back(c);
      }
    // Both versions (variant bit 1: tile). Tile's lanes per channel: d_state 4 -> 1, 8 -> 2, 16 -> 4 (Mamba's),
    // 20 -> 8 with 3 idle lanes, 40 -> 16 with 6 idle, 64 -> 16; up to 16 rows a thread serves 2 batch rows, above
    // 4: odd batch sizes leave a block's last row empty (9: 5 blocks of rows; 19: 5 blocks of 4, the last with 3),
    // 67 and 37 channels a partial block. d_state 6 is not a multiple of 4: tile falls back to lanes there.
    for (int tile : {0, 2}) {
      auto S = [&] { OpCase c = C(OpKind::StateUpdate); c.variant = tile; return c; };
      { OpCase c = S(); c.B = 3; c.N = 67; c.K = 16; c.flag = true; c.bias = true; v.push_back(c); }
      { OpCase c = S(); c.B = 1; c.N = 20; c.K = 40; v.push_back(c); }
      if (tile) {
        for (auto [B, Di, N] : std::vector<std::tuple<int, int, int>>{
                 {5, 37, 4}, {2, 129, 8}, {4, 33, 20}, {3, 70, 64}, {2, 11, 6}, {9, 70, 16}, {19, 45, 16}}) {
          OpCase c = S(); c.B = B; c.N = Di; c.K = N; c.flag = B % 2 == 1; c.bias = true; v.push_back(c);
        }
      }
      // dt_proj folded in (decode_dt=fused): dt_rank M = 37 and 5 (not multiples of the lanes), and 92
      // (BlackMamba-2.8B's); delta is then dt_proj [Di, M] times the first M columns of the bc rows
      for (auto [B, Di, N, Rk, z] : std::vector<std::tuple<int, int, int, int, bool>>{
               {3, 67, 16, 37, true}, {1, 20, 40, 5, false}, {2, 40, 16, 92, true}}) {
        OpCase c = S(); c.variant = tile + int(DecodeDtVariant::Fused);
        c.B = B; c.N = Di; c.K = N; c.M = Rk; c.flag = z; c.bias = true; v.push_back(c);
      }
    }
    for (GemvVariant gv :
         {GemvVariant::Warp, GemvVariant::Split, GemvVariant::Rows, GemvVariant::Mma, GemvVariant::Stream}) {
      auto G = [&] { OpCase c = C(OpKind::Gemv); c.variant = int(gv); return c; };
      { OpCase c = G(); c.B = 1; c.N = 67; c.K = 72; c.bias = true; v.push_back(c); }
      { OpCase c = G(); c.B = 3; c.N = 130; c.K = 1472; v.push_back(c); }
      { OpCase c = G(); c.B = 2; c.N = 33; c.K = 40; c.E = 4; c.flag = true; c.bias = true; v.push_back(c); }
      // split: 8-byte loads (K = 92), 4 warps per row (19 rows of 5120), scalar loads (K = 1001), 4 lanes per row
      { OpCase c = G(); c.B = 2; c.N = 300; c.K = 92; c.bias = true; v.push_back(c); }
      { OpCase c = G(); c.B = 1; c.N = 19; c.K = 5120; c.E = 3; c.flag = true; v.push_back(c); }
      { OpCase c = G(); c.B = 3; c.N = 45; c.K = 1001; v.push_back(c); }
      { OpCase c = G(); c.B = 1; c.N = 70; c.K = 16; c.bias = true; v.push_back(c); }
      // rows: 8 rows with shared weights split over 8 warps (37 = 9 groups of 4 rows + 1), 5 rows with per-row
      // experts over 4 warps, 8 lanes per group on short rows (K = 64), 6 rows with a bias and no split; mma: the
      // same shapes (a partial 16-row tile, K = 64 in two 32-steps, 2050 rows), plus K = 1000 (a partial last
      // 32-step: 8-element vectors beyond K are zero) at 2 rows
      { OpCase c = G(); c.B = 8; c.N = 37; c.K = 2048; c.bias = true; v.push_back(c); }
      { OpCase c = G(); c.B = 5; c.N = 19; c.K = 5120; c.E = 3; c.flag = true; c.bias = true; v.push_back(c); }
      { OpCase c = G(); c.B = 4; c.N = 70; c.K = 64; v.push_back(c); }
      { OpCase c = G(); c.B = 6; c.N = 2050; c.K = 512; c.bias = true; v.push_back(c); }
      { OpCase c = G(); c.B = 2; c.N = 45; c.K = 1000; c.bias = true; v.push_back(c); }
      // stream (one row, K >= 128 16-byte vectors; every version runs them): 129 vectors (2 warps per row, the
      // second slice one vector long), 368 (2 warps, 4 rows per block, a partial last block), 640 with per-row
      // experts (8 warps per row), 2500 (two rounds of loads per warp), fp32 K = 14000 (56 KB of staged row: the
      // dynamic shared memory attribute)
      { OpCase c = G(); c.B = 1; c.N = 37; c.K = 1032; c.bias = true; v.push_back(c); }
      { OpCase c = G(); c.B = 1; c.N = 301; c.K = 2944; v.push_back(c); }
      { OpCase c = G(); c.B = 1; c.N = 19; c.K = 5120; c.E = 3; c.flag = true; c.bias = true; v.push_back(c); }
      { OpCase c = G(); c.B = 1; c.N = 3; c.K = 20000; v.push_back(c); }
      if (dt == Dt::F32) { OpCase c = G(); c.B = 1; c.N = 2; c.K = 14000; c.bias = true; v.push_back(c); }
    }
    // Grouped per-row experts (batched MoE decoding above 8 rows): 150 rows over 3 experts (~50 each: two passes of
    // 32 rows), 12 rows over 40 experts (most empty: their blocks exit), 70 rows with K = 1000 (a partial last
    // 32-step) and a partial 16-row tile; fp32 runs gemv_warp.
    for (auto [B, N, K, E] : std::vector<std::tuple<int, int, int, int>>{
             {150, 37, 72, 3}, {12, 40, 256, 40}, {70, 45, 1000, 5}}) {
      OpCase c = C(OpKind::Gemv); c.variant = kGemvGroupedCase; c.B = B; c.N = N; c.K = K; c.E = E; c.flag = true;
      c.bias = true; v.push_back(c);
    }
    { OpCase c = C(OpKind::Gemv); c.B = 1; c.N = 10240; c.K = 2560; c.perf = true; v.push_back(c); }
    // B x K normalized rows, then W [N, K]; bias: LayerNorm bias and GEMV bias. Variant 2 (gemv_stream_norm) takes
    // one row of >= 128 16-byte vectors: the last two cases.
    for (int fused : {0, 1, 2}) {
      OpCase c = C(OpKind::NormGemv); c.variant = fused;
      if (fused < 2) {
        c.B = 3; c.N = 37; c.K = 200; c.norm = NormKind::RMSNorm; v.push_back(c);
        c.B = 2; c.N = 70; c.K = 97; c.norm = NormKind::LayerNorm; c.bias = true; v.push_back(c);
      }
      c.B = 1; c.N = 19; c.K = 1472; c.norm = NormKind::RMSNorm; c.bias = true; c.E = 4; c.flag = true; v.push_back(c);
      {
        c.B = 1; c.N = 70; c.K = 2048; c.norm = NormKind::LayerNorm; c.bias = true; c.E = 0; c.flag = false;
        v.push_back(c);
      }
    }
    { OpCase c = C(OpKind::MoeRoute); c.T = 37; c.N = 24; c.E = 8; c.bias = true; v.push_back(c); }
    { OpCase c = C(OpKind::MoeRoute); c.B = 2; c.T = 9; c.N = 24; c.E = 4; c.flag = true; v.push_back(c); }
    { OpCase c = C(OpKind::Rotary); c.B = 2; c.T = 5; c.H = 3; c.hd = 16; c.rd = 4; c.S = 9; v.push_back(c); }
    { OpCase c = C(OpKind::Rotary); c.B = 1; c.T = 7; c.H = 2; c.hd = 64; c.rd = 64; c.S = 7; v.push_back(c); }
    { OpCase c = C(OpKind::Softmax); c.H = 3; c.T = 17; c.S = 21; v.push_back(c); }
    for (AttnDecodeVariant av : {AttnDecodeVariant::PerHead, AttnDecodeVariant::SplitKeys}) {
      auto A = [&] { OpCase c = C(OpKind::AttnDecode); c.variant = int(av); return c; };
      { OpCase c = A(); c.B = 2; c.H = 3; c.hd = 36; c.S = 21; v.push_back(c); }
      { OpCase c = A(); c.B = 1; c.H = 2; c.hd = 128; c.S = 300; v.push_back(c); }
      // split: 16-byte chunks with 8 and 32 lanes per key (fp32 hd 256 takes the scalar path), keys over 8 blocks
      { OpCase c = A(); c.B = 3; c.H = 4; c.hd = 64; c.S = 1000; v.push_back(c); }
      { OpCase c = A(); c.B = 1; c.H = 2; c.hd = 256; c.S = 77; v.push_back(c); }
      // a long cache with only 21 positions filled: split's later cluster blocks get no keys
      { OpCase c = A(); c.B = 1; c.H = 2; c.hd = 128; c.S = 1024; c.K = 21; v.push_back(c); }
    }
    for (AttnPrefillVariant pv : {AttnPrefillVariant::Gemm, AttnPrefillVariant::Flash}) {
      auto A = [&] { OpCase c = C(OpKind::AttnPrefill); c.variant = int(pv); return c; };
      // flash: partial 64-row tiles (head_dim 64), 3 query tiles x 3 key tiles through the double buffer (128),
      // the row-wise fallback (36; and every fp32 case)
      { OpCase c = A(); c.B = 2; c.T = 37; c.H = 3; c.hd = 64; v.push_back(c); }
      { OpCase c = A(); c.B = 1; c.T = 150; c.H = 2; c.hd = 128; v.push_back(c); }
      { OpCase c = A(); c.B = 2; c.T = 20; c.H = 2; c.hd = 36; v.push_back(c); }
      { OpCase c = A(); c.B = 1; c.T = 700; c.H = 1; c.hd = 128; v.push_back(c); }  // 11 tiles, heaviest first
    }
    // Grouped-query layout (K = key/value heads; qkv rows [q heads | k heads | v heads], Mixtral/Jamba), flash only
    // (the model's GQA gemm path is checked by the fixtures): 4 query heads per kv head on tensor cores (hd 64,
    // partial tiles; hd 128, 3 key tiles), 2 per kv head on the row-wise fallback (hd 16, fp32 and half).
    for (auto [B, T, H, K, hd] : std::vector<std::tuple<int, int, int, int, int>>{
             {2, 37, 8, 2, 64}, {1, 150, 4, 2, 128}, {2, 21, 4, 2, 16}}) {
      OpCase c = C(OpKind::AttnPrefill); c.variant = int(AttnPrefillVariant::Flash);
      c.B = B; c.T = T; c.H = H; c.K = K; c.hd = hd; v.push_back(c);
    }
    { OpCase c = C(OpKind::LogSoftmax); c.T = 5; c.V = 1000; v.push_back(c); }
    { OpCase c = C(OpKind::Embedding); c.T = 9; c.V = 50; c.N = 33; v.push_back(c); }
    // Routers: BlackMamba sigmoid top-1, Mixtral top-2 of 8 renormalised, Jamba top-2 of 16 not, a top-3.
    { OpCase c = C(OpKind::RouterTopK); c.T = 41; c.N = 0; c.K = 1; c.E = 8; v.push_back(c); }
    { OpCase c = C(OpKind::RouterTopK); c.T = 41; c.N = 1; c.K = 2; c.E = 8; c.flag = true; v.push_back(c); }
    { OpCase c = C(OpKind::RouterTopK); c.B = 2; c.T = 19; c.N = 1; c.K = 2; c.E = 16; v.push_back(c); }
    { OpCase c = C(OpKind::RouterTopK); c.T = 7; c.N = 1; c.K = 3; c.E = 5; c.flag = true; v.push_back(c); }
    // Grouped-query decode: Mixtral-like (RoPE on all dims, 4 query heads per kv head), Jamba-like (no RoPE).
    { OpCase c = C(OpKind::AttnGqa); c.B = 2; c.H = 8; c.K = 2; c.hd = 32; c.rd = 32; c.S = 23; v.push_back(c); }
    { OpCase c = C(OpKind::AttnGqa); c.B = 1; c.H = 6; c.K = 3; c.hd = 64; c.rd = 0; c.S = 70; v.push_back(c); }
  }
  // Model-sized cases for the benchmark (bf16).
  auto P = [&](OpKind k) { OpCase c; c.op = k; c.dt = Dt::BF16; c.perf = true; return c; };
  { OpCase c = P(OpKind::Scan); c.B = 8; c.T = 2048; c.N = 5120; c.K = 16; c.flag = true; c.bias = true; v.push_back(c); }
  // The scan's versions side by side: 8 x 2048 and one 16384-token sequence (Mamba-2.8B / BlackMamba-2.8B d_inner).
  for (auto [B, T] : std::vector<std::pair<int, int>>{{8, 2048}, {1, 16384}})
    for (ScanVariant sv : {ScanVariant::Staged, ScanVariant::Chunked}) {
      if (B == 8 && sv == ScanVariant::Staged) continue;  // the case above
      OpCase c = P(OpKind::Scan); c.variant = int(sv); c.B = B; c.T = T; c.N = 5120; c.K = 16; c.flag = true;
      c.bias = true; c.M = 160; v.push_back(c);  // B, C inside [dt_rank 160 | B | C] rows, as Mamba-2.8B's x_proj
      // fixed lanes per channel beside the automatic choice (G = 2 at 8 x 2048, 16 at 1 x 16384)
      if (sv == ScanVariant::Chunked)
        for (int G : B == 8 ? std::vector<int>{1, 4} : std::vector<int>{8}) { c.E = G; v.push_back(c); }
    }
  // Version 3 (states) at the same shapes: 8 x 2048 at automatic lanes (2) and 1; 1 x 16384 at 8 lanes (its
  // automatic choice there is the chunked version).
  for (auto [B, T] : std::vector<std::pair<int, int>>{{8, 2048}, {1, 16384}})
    for (int L : B == 8 ? std::vector<int>{0, 1} : std::vector<int>{8}) {
      OpCase c = P(OpKind::Scan); c.variant = int(ScanVariant::States); c.B = B; c.T = T; c.N = 5120; c.K = 16;
      c.flag = true; c.bias = true; c.M = 160; c.E = L; v.push_back(c);
    }
  // Version 4 (pipelined) beside it at 8 x 2048, automatic lanes, Mamba-2.8B's and BlackMamba-2.8B's channels.
  for (auto [Di, Rk] : std::vector<std::pair<int, int>>{{5120, 160}, {2944, 92}}) {
    OpCase c = P(OpKind::Scan); c.variant = int(ScanVariant::Pipelined); c.B = 8; c.T = 2048; c.N = Di; c.K = 16;
    c.flag = true; c.bias = true; c.M = Rk; v.push_back(c);
  }
  // BlackMamba-2.8B's scan (2944 channels, dt_rank 92) at 8 x 2048: 0.55x the channels of Mamba-2.8B's but 0.9x its
  // time inside the model (op timing of 197b1ef), so the automatic lanes per channel (G = 2 there) beside G = 1, 4, 8.
  for (int G : {0, 1, 4, 8}) {
    OpCase c = P(OpKind::Scan); c.variant = int(ScanVariant::Chunked); c.B = 8; c.T = 2048; c.N = 2944; c.K = 16;
    c.flag = true; c.bias = true; c.M = 92; c.E = G; v.push_back(c);
  }
  for (int L : {0, 4}) {  // states: automatic (2 lanes) and 4
    OpCase c = P(OpKind::Scan); c.variant = int(ScanVariant::States); c.B = 8; c.T = 2048; c.N = 2944; c.K = 16;
    c.flag = true; c.bias = true; c.M = 92; c.E = L; v.push_back(c);
  }
  // Mamba-2.8B and BlackMamba-2.8B d_inner; each beside the scalar kernel (variant 1, timing only).
  for (int Di : {5120, 2944})
    for (int scalar : {0, 1}) {
      OpCase c = P(OpKind::Conv1d); c.B = 8; c.T = 2048; c.N = Di; c.K = 4; c.bias = true; c.variant = scalar;
      v.push_back(c);
    }
  // Decode's conv update at Mamba-2.8B's 5120 channels, 8 and 256 rows.
  for (int B : {8, 256}) {
    OpCase c = P(OpKind::Conv1dUpdate); c.B = B; c.N = 5120; c.K = 4; c.bias = true; v.push_back(c);
  }
  // Decode's state update: one row, and the batched decode's 8, 64 and 256 rows of Mamba-2.8B (5120 channels), each
  // in both versions (the fp32 state is 327 KB per row, read and written).
  for (int B : {1, 8, 64, 256})
    for (int tile : {0, 2}) {
      OpCase c = P(OpKind::StateUpdate); c.B = B; c.N = 5120; c.K = 16; c.flag = true; c.bias = true; c.variant = tile;
      v.push_back(c);
    }
  // Prefill elementwise passes at 8 x 2048: pythia-1.4b's GELU (erf) with fc1 bias over [16384, 8192]; one
  // BlackMamba-2.8B expert's gated GELU over its ~2048 rows of [2 x 3872]; pythia-1.4b's rotary (32 of 128 dims)
  // with the k/v copy into the cache.
  { OpCase c = P(OpKind::MlpAct); c.T = 16384; c.N = 8192; c.bias = true; v.push_back(c); }
  { OpCase c = P(OpKind::MlpAct); c.T = 2048; c.N = 3872; c.flag = true; v.push_back(c); }
  { OpCase c = P(OpKind::Rotary); c.B = 8; c.T = 2048; c.H = 16; c.hd = 128; c.rd = 32; c.S = 2048; v.push_back(c); }
  // With dt_proj inside: Mamba-2.8B (dt_rank 160) and BlackMamba-2.8B (2944 channels, dt_rank 92); compare with the
  // row above plus the gemv rows N5120_K160 / N2944_K92.
  for (auto [Di, Rk] : std::vector<std::pair<int, int>>{{5120, 160}, {2944, 92}}) {
    OpCase c = P(OpKind::StateUpdate); c.variant = int(DecodeDtVariant::Fused); c.B = 1; c.N = Di; c.K = 16; c.M = Rk;
    c.flag = true; c.bias = true; v.push_back(c);
  }
  { OpCase c = P(OpKind::AddNorm); c.T = 16384; c.N = 2560; c.flag = true; v.push_back(c); }
  // The prefill's norms (no delta: the residual adds come from the GEMMs): Pythia-1.4B LayerNorm, BlackMamba-2.8B
  // RMSNorm; each beside the scalar kernel (variant 1, timing only).
  for (int d : {2048, 1472})
    for (int scalar : {0, 1}) {
      OpCase c = P(OpKind::AddNorm); c.T = 16384; c.N = d; c.variant = scalar;
      c.norm = d == 2048 ? NormKind::LayerNorm : NormKind::RMSNorm; c.bias = d == 2048; v.push_back(c);
    }
  { OpCase c = P(OpKind::Gemv); c.B = 1; c.N = 7744; c.K = 1472; c.E = 8; c.flag = true; v.push_back(c); }
  // Decode GEMV versions on the thin shapes: BlackMamba-2.8B x_proj, dt_proj, router, one expert's fc1 / fc2 (top-1
  // of 8, scaled into the fp32 residual); Mamba-2.8B x_proj, dt_proj.
  for (auto [N, K, E] : std::vector<std::tuple<int, int, int>>{
           {124, 2944, 0}, {2944, 92, 0}, {8, 1472, 0}, {7744, 1472, 8}, {1472, 3872, 8}, {192, 5120, 0}, {5120, 160, 0}})
    for (GemvVariant gv : {GemvVariant::Warp, GemvVariant::Split, GemvVariant::Stream}) {
      if (N == 7744 && gv == GemvVariant::Warp) continue;  // the case above
      OpCase c = P(OpKind::Gemv); c.variant = int(gv); c.B = 1; c.N = N; c.K = K; c.E = E; c.flag = E > 0;
      v.push_back(c);
    }
  // Batch-1 decoding's large GEMVs, versions 2 (split) and 5 (stream): Mamba-2.8B in_proj (version 1 above) and
  // out_proj, Mamba-1.4B in_proj (= Pythia-1.4B fc1) / out_proj, BlackMamba-2.8B in_proj / out_proj, Pythia-1.4B
  // qkv / dense / fc2, the 2.8B models' LM head (50280 x 2560).
  for (auto [N, K] : std::vector<std::pair<int, int>>{{10240, 2560}, {2560, 5120}, {8192, 2048}, {2048, 4096},
                                                      {5888, 1472}, {1472, 2944}, {6144, 2048}, {2048, 2048},
                                                      {2048, 8192}, {50280, 2560}})
    for (GemvVariant gv : {GemvVariant::Split, GemvVariant::Stream}) {
      OpCase c = P(OpKind::Gemv); c.variant = int(gv); c.B = 1; c.N = N; c.K = K;
      v.push_back(c);
    }
  // Batched MoE decoding above 8 rows: BlackMamba-2.8B's expert fc1 and fc2 (top-1 of 8) at 64 and 256 rows, grouped.
  for (int B : {64, 256})
    for (auto [N, K] : std::vector<std::pair<int, int>>{{7744, 1472}, {1472, 3872}}) {
      OpCase c = P(OpKind::Gemv); c.variant = kGemvGroupedCase; c.B = B; c.N = N; c.K = K; c.E = 8; c.flag = true;
      v.push_back(c);
    }
  // Batched decode (8 rows), each GEMV version: Mamba-2.8B in_proj, x_proj, out_proj; BlackMamba-2.8B one
  // expert's fc1 (top-1 of 8: each row its own expert).
  for (auto [N, K, E] : std::vector<std::tuple<int, int, int>>{{10240, 2560, 0}, {192, 5120, 0}, {2560, 5120, 0},
                                                               {7744, 1472, 8}})
    for (GemvVariant gv : {GemvVariant::Warp, GemvVariant::Split, GemvVariant::Rows, GemvVariant::Mma}) {
      OpCase c = P(OpKind::Gemv); c.variant = int(gv); c.B = 8; c.N = N; c.K = K; c.E = E; c.flag = E > 0;
      v.push_back(c);
    }
  { OpCase c = P(OpKind::AttnDecode); c.B = 1; c.H = 16; c.hd = 128; c.S = 2048; v.push_back(c); }
  // Decode attention's versions side by side, pythia-1.4b heads, batch 1, 2k..32k cached positions.
  for (int S : {2048, 8192, 32768})
    for (AttnDecodeVariant av : {AttnDecodeVariant::PerHead, AttnDecodeVariant::SplitKeys}) {
      if (S == 2048 && av == AttnDecodeVariant::PerHead) continue;  // the case above
      OpCase c = P(OpKind::AttnDecode); c.variant = int(av); c.B = 1; c.H = 16; c.hd = 128; c.S = S; v.push_back(c);
    }
  // Norm + GEMV, two kernels vs one: Mamba-2.8B and BlackMamba-2.8B in_proj, BlackMamba-2.8B router.
  for (auto [N, K] : std::vector<std::pair<int, int>>{{10240, 2560}, {5888, 1472}, {8, 1472}})
    for (int fused : {0, 1, 2}) {
      if (fused == 2 && N == 8) continue;  // 184 vectors fit gemv_stream, but 8 rows is the router: version 2's shape
      OpCase c = P(OpKind::NormGemv); c.variant = fused; c.B = 1; c.N = N; c.K = K; v.push_back(c);
    }
  // Prefill attention's versions side by side, pythia-1.4b heads (16 x 128): 1 x 2048, 8 x 2048, and 1 x 32768
  // (flash only: the cuBLAS path's fp32 scores would take 64 GiB).
  for (auto [B, T] : std::vector<std::pair<int, int>>{{1, 2048}, {8, 2048}, {1, 32768}})
    for (AttnPrefillVariant pv : {AttnPrefillVariant::Gemm, AttnPrefillVariant::Flash}) {
      if (T > 2048 && pv == AttnPrefillVariant::Gemm) continue;
      OpCase c = P(OpKind::AttnPrefill); c.variant = int(pv); c.B = B; c.T = T; c.H = 16; c.hd = 128; v.push_back(c);
    }
  return v;
}

}  // namespace bmh::cuda
