// Kernel versions kept side by side in one build (llm.c's dev/cuda ladder): every op with more than one version
// has a variant enum here. The op table (op_cases.h) lists a case per variant, so the GPU test checks each against
// reference/ and `bmh bench-gpu` times them in the same run. The model's entry points (the .cuh functions
// cuda_model / cuda_decoder call) use the process-wide choice below; BMH_KERNELS (or bench-gpu --kernels) overrides
// it, e.g. BMH_KERNELS=scan=staged,attn_decode=per_head or BMH_KERNELS=v1 (every op's version 1).
#pragma once
#include <string>

namespace bmh::cuda {

enum class ScanVariant : int {
  Staged = 0,   // parallel over batch x channel (G lanes split the states), sequential 16-step chunks over time
  Chunked = 1,  // G lanes per channel split time; states looped, (decay, state) pairs scanned across the lanes
  States = 2,   // a thread keeps NS states of one channel in registers over time; L lanes split the states only
                // when B * Di is small (selective_scan_states.cu)
  Pipelined = 3,  // States with its phases software-pipelined: one barrier interval holds chunk i's state steps,
                  // chunk i - 1's outputs and chunk i + 1's inputs (selective_scan_pipelined.cu)
};
enum class AttnDecodeVariant : int {
  PerHead = 0,    // one block per (b, h) over all keys
  SplitKeys = 1,  // flash-decoding: a thread-block cluster per (b, h) splits the keys, merged in distributed smem
};

enum class AttnPrefillVariant : int {
  Gemm = 0,   // cuBLAS scores [H, T, T] fp32, causal softmax to P, cuBLAS P V (cuda_model.cpp attention_prefill)
  Flash = 1,  // attention_prefill_flash: no T x T scores in memory (tensor cores for bf16/fp16, head_dim 64/128)
};

enum class GemvVariant : int {
  Warp = 0,   // one warp per output row (gemv.cu)
  Split = 1,  // LPR lanes per row (short rows) or WPR warps splitting K (few long rows) (gemv_split.cu)
  Rows = 2,   // batched decode: all rows b in one pass over the weights, 4 weight rows per lane group (gemv_rows.cu)
  Mma = 3,    // batched decode, shared bf16/fp16 weights: tensor-core tiles of 16 weight rows x 8 batch rows (gemv_mma.cu)
  Stream = 4,  // one row: a round of 8 loads per lane in flight, split K by shape, no L2 prefetch (gemv_stream.cu);
               // 2..8 rows and the shapes it does not take run mma
};

enum class MoePrefillVariant : int {
  Serial = 0,   // experts one after another on the model's stream (fc1 GEMM, activation, fc2 GEMM per expert)
  Streams = 1,  // each expert's chain on one of 4 side streams, so small experts' GEMMs fill the GPU together
};

enum class PdlVariant : int {
  Off = 0,  // the decode graph's kernels each wait for the previous one to finish and drain (plain launches)
  On = 1,   // programmatic dependent launch in the decode graph (kernels/launch.cuh): a kernel is scheduled while
            // its predecessor runs, reads weights, then waits (griddepcontrol.wait) before touching its inputs
};

enum class DecodeDtVariant : int {
  Gemv = 0,   // decode: dt_proj as its own GEMV writing delta [B, Di], then the state update reads it
  Fused = 1,  // decode: the state update computes delta = dt_proj[c] . x_dbl[b, :dt_rank] itself (one kernel fewer)
};

enum class DecodeNormVariant : int {
  Separate = 0,  // decode: each pre-norm its own kernel (add_norm) writing the normed row, then the projections
  Fused = 1,     // one row: the mixer's pre-norm computed inside its first projection (gemv_stream_norm), where
                 // gemv=stream takes that projection's shape; everything else as separate
};

enum class StateUpdateVariant : int {
  Lanes = 0,  // decode state update: 16 lanes per (row, channel), one state each (selective_scan.cu)
  Tile = 1,   // 4 states per lane in 16-byte loads, N / 4 lanes per channel, 2 batch rows per thread
              // (selective_state_update_tile.cu); d_state not a multiple of 4 runs Lanes
};

// Defaults: the version-2 kernels, each faster on the H200 op table of 2026-12-02 and within its op-table
// tolerance there (kernels/NOTES.md): chunked scan (since replaced by states, below), split-key decode attention,
// flash prefill, split GEMV; and,
// from the in-run A/B of 197b1ef (same weights, one process): MoE experts on side streams (MoE layer 1.728 ->
// 1.663 ms, bit-identical) and PDL in the decode graph (blackmamba-2.8b 1.148 -> 0.964 ms/token, mamba-2.8b
// 3.047 -> 3.046, pythia-1.4b 1.509 -> 1.541: a 2% loss there, a 16% gain on the model this harness is for).
// decode_dt=fused stays off: no gain measured (0.964 -> 0.975, 3.046 -> 3.091).
// gemv=mma (2026-12-03): batched decode's dense GEMVs on tensor cores. The op table of e4b002e (H200) measured the
// row-by-row split GEMV at 67.7 us for 8 rows of Mamba-2.8B's in_proj (20.3 us for one) and the one-pass CUDA-core
// version (rows) at 61.5 us, bound by its per-row conversions and FMAs, not by the 52 MB of weights; mma does 16 x 8
// x 16 products per instruction. One row, fp32 and per-row experts run as before (mma -> rows -> split for one
// row; rows for experts). Its own timing is the A/B of the first call that carries it (kernels/NOTES.md).
// gemv=stream (2026-12-03, H200, 63e90b4, same weights in one process): mamba-2.8b batch-1 decode 2.853 -> 2.404
// ms/token against gemv=mma (which hands one row to version 2); version 2's whole-row L2 prefetch thrashed L2
// under PDL (kernels/NOTES.md, "Batch-1 GEMV version 5"). decode_norm=fused stays off: measured only before
// 63e90b4's fix of the stream kernel's shared-memory reads (then 3.74 against 3.25 ms/token), not since.
// The version-1 set stays selectable as a whole ("v1") or per op.
struct KernelVariants {
  ScanVariant scan = ScanVariant::States;
  AttnDecodeVariant attn_decode = AttnDecodeVariant::SplitKeys;
  AttnPrefillVariant attn_prefill = AttnPrefillVariant::Flash;  // cuda_model's attention_prefill, per layer
  GemvVariant gemv = GemvVariant::Stream;  // one row: stream; 2..8 rows sharing bf16/fp16 weights: mma (see below)
  MoePrefillVariant moe_prefill = MoePrefillVariant::Streams;
  PdlVariant pdl = PdlVariant::On;  // CudaDecoder::record_step only; prefill never uses it
  DecodeDtVariant decode_dt = DecodeDtVariant::Gemv;  // CudaDecoder's mamba_step only
  StateUpdateVariant state_update = StateUpdateVariant::Tile;
  DecodeNormVariant decode_norm = DecodeNormVariant::Separate;  // CudaDecoder::record_step only
};
// state_update=tile (2026-12-03): the lanes version moved batched decode's state at 0.81 TB/s (13.2 of 19.1 ms of a
// 256-row Mamba-2.8B step, kernels/NOTES.md); tile's timing is the A/B of the first call that carries it.
// scan=states (2026-12-03, H200 op table of c0c1ed1): 8 x 2048 x 5120 0.871 ms vs chunked 0.997, 8 x 2048 x 2944
// 0.739 vs 1.038; model forward 8x2048: mamba-2.8b 209.6 -> 204.7 ms, blackmamba-2.8b 62.0 -> 55.7 ms. One long
// sequence (B * Di < 8192, T >= 512) still runs chunked inside it.
// scan=pipelined (2026-12-03) is not the default: in the op table of de13293 (H200, same run) it ran 8 x 2048 x 5120
// in 0.698 ms against states' 0.618, and 8 x 2048 x 2944 in 0.437 against 0.392 (kernels/NOTES.md).
// The two named sets: "v1" (staged, per_head, gemm, warp, serial MoE, pdl off, decode_dt gemv, state_update lanes: the kernels before
// 2026-12-02) and "v2" (the defaults).
KernelVariants kernel_set_v1();
KernelVariants kernel_set_v2();

// The process-wide choice (read from BMH_KERNELS once, on first use).
KernelVariants& kernel_variants();
// Applies "op=name,op=name" (ops: scan, attn_decode, attn_prefill, gemv, moe_prefill, pdl, decode_dt, state_update,
// decode_norm) left to
// right; an entry "v1" or "v2" sets every op to that named set first (e.g. "v1,scan=chunked"). Throws bmh::Error naming the bad entry and the choices,
// changing nothing. BMH_KERNELS is applied before the first call, so this overrides it.
void set_kernel_variants(const std::string& spec);
const char* to_string(ScanVariant v);         // "staged", "chunked"
const char* to_string(AttnDecodeVariant v);   // "per_head", "split"
const char* to_string(AttnPrefillVariant v);  // "gemm", "flash"
const char* to_string(GemvVariant v);         // "warp", "split", "rows", "mma", "stream"
const char* to_string(MoePrefillVariant v);   // "serial", "streams"
const char* to_string(PdlVariant v);          // "off", "on"
const char* to_string(DecodeDtVariant v);     // "gemv", "fused"
const char* to_string(StateUpdateVariant v);  // "lanes", "tile"
const char* to_string(DecodeNormVariant v);   // "separate", "fused"
// "scan=chunked,attn_decode=split,attn_prefill=flash,gemv=split,moe_prefill=serial,pdl=off,decode_dt=gemv,
// state_update=tile": the
// spec set_kernel_variants reads back.
std::string to_string(const KernelVariants& v);

}  // namespace bmh::cuda
