# Largest input per libFuzzer target (sourced by scripts/fuzz.sh and scripts/fuzz_speed.sh): about four times the
# largest seed and at least 16 KB, so mutations can grow structure (nesting, more tensors, longer lines) while
# one execution stays cheap; the torch_zip seeds are 22 KB archives. FUZZ_MAX_LEN overrides it for every target.
max_len() {
  case "$1" in
    torch_zip) echo "${FUZZ_MAX_LEN:-65536}" ;;
    *) echo "${FUZZ_MAX_LEN:-16384}" ;;
  esac
}
