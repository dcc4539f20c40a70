#include "kernels/variants.h"

#include <cstdlib>
#include <sstream>

#include "core/error.h"

namespace bmh::cuda {

const char* to_string(ScanVariant v) {
  return v == ScanVariant::Pipelined ? "pipelined"
         : v == ScanVariant::States  ? "states"
         : v == ScanVariant::Chunked ? "chunked"
                                     : "staged";
}
const char* to_string(AttnDecodeVariant v) { return v == AttnDecodeVariant::SplitKeys ? "split" : "per_head"; }
const char* to_string(AttnPrefillVariant v) { return v == AttnPrefillVariant::Flash ? "flash" : "gemm"; }
const char* to_string(GemvVariant v) {
  return v == GemvVariant::Stream ? "stream"
         : v == GemvVariant::Mma  ? "mma"
         : v == GemvVariant::Rows ? "rows"
         : v == GemvVariant::Split ? "split"
                                   : "warp";
}
const char* to_string(MoePrefillVariant v) { return v == MoePrefillVariant::Streams ? "streams" : "serial"; }
const char* to_string(PdlVariant v) { return v == PdlVariant::On ? "on" : "off"; }
const char* to_string(DecodeDtVariant v) { return v == DecodeDtVariant::Fused ? "fused" : "gemv"; }
const char* to_string(StateUpdateVariant v) { return v == StateUpdateVariant::Tile ? "tile" : "lanes"; }
const char* to_string(DecodeNormVariant v) { return v == DecodeNormVariant::Fused ? "fused" : "separate"; }

KernelVariants kernel_set_v1() {
  KernelVariants v;
  v.scan = ScanVariant::Staged;
  v.attn_decode = AttnDecodeVariant::PerHead;
  v.attn_prefill = AttnPrefillVariant::Gemm;
  v.gemv = GemvVariant::Warp;
  v.moe_prefill = MoePrefillVariant::Serial;
  v.pdl = PdlVariant::Off;
  v.decode_dt = DecodeDtVariant::Gemv;
  v.state_update = StateUpdateVariant::Lanes;
  v.decode_norm = DecodeNormVariant::Separate;
  return v;
}
KernelVariants kernel_set_v2() { return KernelVariants{}; }

std::string to_string(const KernelVariants& v) {
  return std::string("scan=") + to_string(v.scan) + ",attn_decode=" + to_string(v.attn_decode) +
         ",attn_prefill=" + to_string(v.attn_prefill) + ",gemv=" + to_string(v.gemv) +
         ",moe_prefill=" + to_string(v.moe_prefill) + ",pdl=" + to_string(v.pdl) + ",decode_dt=" +
         to_string(v.decode_dt) + ",state_update=" + to_string(v.state_update) +
         ",decode_norm=" + to_string(v.decode_norm);
}

namespace {
KernelVariants& storage() {
  static KernelVariants v;
  return v;
}

// Applies spec's entries to kv in order (throws on the first bad one, naming it).
void parse_into(const std::string& spec, KernelVariants& kv) {
  std::stringstream ss(spec);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    const size_t eq = item.find('=');
    const std::string op = item.substr(0, eq), name = eq == std::string::npos ? "" : item.substr(eq + 1);
    if (item == "v1" || item == "v2") {
      kv = item == "v1" ? kernel_set_v1() : kernel_set_v2();
    } else if (op == "scan" && (name == "staged" || name == "chunked" || name == "states" || name == "pipelined")) {
      kv.scan = name == "pipelined" ? ScanVariant::Pipelined
                : name == "states"  ? ScanVariant::States
                : name == "chunked" ? ScanVariant::Chunked
                                    : ScanVariant::Staged;
    } else if (op == "attn_decode" && (name == "per_head" || name == "split")) {
      kv.attn_decode = name == "split" ? AttnDecodeVariant::SplitKeys : AttnDecodeVariant::PerHead;
    } else if (op == "attn_prefill" && (name == "gemm" || name == "flash")) {
      kv.attn_prefill = name == "flash" ? AttnPrefillVariant::Flash : AttnPrefillVariant::Gemm;
    } else if (op == "gemv" && (name == "warp" || name == "split" || name == "rows" || name == "mma" || name == "stream")) {
      kv.gemv = name == "stream" ? GemvVariant::Stream
                : name == "mma"  ? GemvVariant::Mma
                : name == "rows" ? GemvVariant::Rows
                : name == "split" ? GemvVariant::Split
                                  : GemvVariant::Warp;
    } else if (op == "moe_prefill" && (name == "serial" || name == "streams")) {
      kv.moe_prefill = name == "streams" ? MoePrefillVariant::Streams : MoePrefillVariant::Serial;
    } else if (op == "pdl" && (name == "off" || name == "on")) {
      kv.pdl = name == "on" ? PdlVariant::On : PdlVariant::Off;
    } else if (op == "decode_dt" && (name == "gemv" || name == "fused")) {
      kv.decode_dt = name == "fused" ? DecodeDtVariant::Fused : DecodeDtVariant::Gemv;
    } else if (op == "state_update" && (name == "lanes" || name == "tile")) {
      kv.state_update = name == "tile" ? StateUpdateVariant::Tile : StateUpdateVariant::Lanes;
    } else if (op == "decode_norm" && (name == "separate" || name == "fused")) {
      kv.decode_norm = name == "fused" ? DecodeNormVariant::Fused : DecodeNormVariant::Separate;
    } else {
      fail("kernel variants: bad entry '", item, "' in '", spec,
           "' (choices: v1, v2, scan=staged|chunked|states|pipelined, attn_decode=per_head|split, attn_prefill=gemm|flash, "
           "gemv=warp|split|rows|mma|stream, moe_prefill=serial|streams, pdl=off|on, decode_dt=gemv|fused, "
           "state_update=lanes|tile, decode_norm=separate|fused)");
    }
  }
}
}  // namespace

// BMH_KERNELS is read first (kernel_variants()), so an explicit choice (bench-gpu --kernels, a test) overrides it; the
// choice changes only when every entry parses: a bad spec changes nothing.
void set_kernel_variants(const std::string& spec) {
  KernelVariants kv = kernel_variants();
  parse_into(spec, kv);
  storage() = kv;
}

KernelVariants& kernel_variants() {
  static const bool from_env = [] {
    if (const char* e = std::getenv("BMH_KERNELS"); e && *e) {
      KernelVariants kv = storage();
      parse_into(e, kv);
      storage() = kv;
    }
    return true;
  }();
  (void)from_env;
  return storage();
}

}  // namespace bmh::cuda
