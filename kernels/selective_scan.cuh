// Selective scan (mamba_ssm ops/selective_scan_interface.py selective_scan_ref), B sequences of T tokens, parallel
// over batch x channel, chunked over length (any T), fp32 state:
//   dt = softplus(delta + delta_bias);  h = exp(dt * A) h + dt * B_t * u;  y = C_t . h + D * u;  y *= silu(z)
// u, delta, z [B*T, Di] dtype (row strides ldu, ldd, ldz; z may be null); Bm, Cm [B*T, N] dtype (row stride ldbc);
// A [Di, N] fp32 (= -exp(A_log)); D, delta_bias [Di] fp32 (either may be null);
// state [B, Di, N] fp32: the state before the first token on entry, the last state on return;
// y [B*T, Di] dtype (row stride ldy). N <= 64.
#pragma once
#include "kernels/device.h"
#include "kernels/variants.h"

namespace bmh::cuda {

struct ScanArgs {
  const void* u; int ldu;
  const void* delta; int ldd;
  const void* z; int ldz;
  const void* Bm; const void* Cm; int ldbc;
  const float* A; const float* D; const float* delta_bias;
  float* state;
  void* y; int ldy;
  int B, T, Di, N;
  // Lanes per channel; 0 picks from the shape. Chunked: splitting time (1, 2, 4, 8 or 16); states and pipelined:
  // splitting the states (a power of two from d_state's padding / 16 to 8).
  int lanes = 0;
  // selective_state_update only (DecodeDtVariant::Fused): with dt_w set, delta is not read; instead
  // delta[b, c] = dt_w[c, :] . dt_x[b, :Rk] (fp32 sum, rounded to the dtype as the dt_proj GEMV stores it), before
  // delta_bias and softplus as usual. dt_w [Di, Rk] dtype (dt_proj.weight), dt_x dtype row stride ldx_dt (x_proj's
  // output: its first Rk columns).
  const void* dt_w = nullptr;
  const void* dt_x = nullptr;
  int ldx_dt = 0, Rk = 0;
};

// Runs the process-wide variant (kernel_variants().scan).
void selective_scan(Dt t, const ScanArgs& a, cudaStream_t s);
void selective_scan(Dt t, const ScanArgs& a, ScanVariant v, cudaStream_t s);
// The two versions (selective_scan.cu, selective_scan_chunked.cu).
void selective_scan_staged(Dt t, const ScanArgs& a, cudaStream_t s);
void selective_scan_chunked(Dt t, const ScanArgs& a, cudaStream_t s);
// Version 3 (selective_scan_states.cu); a.lanes: lanes per channel splitting the states (0: scan_states_lanes).
void selective_scan_states(Dt t, const ScanArgs& a, cudaStream_t s);
int scan_states_lanes(int B, int Di, int N);
// Version 4 (selective_scan_pipelined.cu): version 3's layout with its phases software-pipelined; same lanes.
void selective_scan_pipelined(Dt t, const ScanArgs& a, cudaStream_t s);
// Shared by versions 3 and 4: a.lanes checked (fails naming the version) and resolved (0: nothing to do), and
// whether the automatic choice hands the shape to the chunked version (one long sequence).
int scan_states_check_lanes(const ScanArgs& a, const char* version);
bool scan_states_prefers_chunked(const ScanArgs& a);
// Decode: one token per sequence (T = 1), parallel over batch x channel x state (mamba_ssm selective_state_update);
// with a.dt_w set it also does dt_proj (see ScanArgs). Runs kernel_variants().state_update.
void selective_state_update(Dt t, const ScanArgs& a, cudaStream_t s);
// Tile runs only where state_update_tile_fits (d_state a multiple of 4 up to 64, 16-byte aligned state and A);
// elsewhere the lanes version runs.
void selective_state_update(Dt t, const ScanArgs& a, StateUpdateVariant v, cudaStream_t s);
// The two versions: one state per lane, 16 lanes per channel (selective_scan.cu); 4 states per lane in 16-byte
// loads, 2 batch rows per thread (selective_state_update_tile.cu).
void selective_state_update_lanes(Dt t, const ScanArgs& a, cudaStream_t s);
void selective_state_update_tile(Dt t, const ScanArgs& a, cudaStream_t s);
bool state_update_tile_fits(const ScanArgs& a);

}  // namespace bmh::cuda
