// MT19937 as in CPython Modules/_randommodule.c (itself Matsumoto & Nishimura's mt19937ar.c).
#include "evals/cpython_random.h"

namespace bmh::eval {

void CPythonRandom::init_genrand(uint32_t s) {
  mt_[0] = s;
  for (int i = 1; i < 624; ++i) mt_[i] = 1812433253u * (mt_[i - 1] ^ (mt_[i - 1] >> 30)) + uint32_t(i);
  mti_ = 624;
}

void CPythonRandom::init_by_array(const uint32_t* key, size_t len) {
  init_genrand(19650218u);
  size_t i = 1, j = 0;
  for (size_t k = 624 > len ? 624 : len; k; --k) {
    mt_[i] = (mt_[i] ^ ((mt_[i - 1] ^ (mt_[i - 1] >> 30)) * 1664525u)) + key[j] + uint32_t(j);
    ++i;
    ++j;
    if (i >= 624) { mt_[0] = mt_[623]; i = 1; }
    if (j >= len) j = 0;
  }
  for (size_t k = 623; k; --k) {
    mt_[i] = (mt_[i] ^ ((mt_[i - 1] ^ (mt_[i - 1] >> 30)) * 1566083941u)) - uint32_t(i);
    ++i;
    if (i >= 624) { mt_[0] = mt_[623]; i = 1; }
  }
  mt_[0] = 0x80000000u;
}

void CPythonRandom::seed_u64(uint64_t seed) {
  // random_seed(): the absolute value as 32-bit words, least significant first, at least one word.
  uint32_t key[2] = {uint32_t(seed), uint32_t(seed >> 32)};
  init_by_array(key, key[1] ? 2 : 1);
}

uint32_t CPythonRandom::genrand_uint32() {
  static const uint32_t mag01[2] = {0u, 0x9908b0dfu};
  uint32_t y;
  if (mti_ >= 624) {
    int kk = 0;
    for (; kk < 624 - 397; ++kk) {
      y = (mt_[kk] & 0x80000000u) | (mt_[kk + 1] & 0x7fffffffu);
      mt_[kk] = mt_[kk + 397] ^ (y >> 1) ^ mag01[y & 1u];
    }
    for (; kk < 623; ++kk) {
      y = (mt_[kk] & 0x80000000u) | (mt_[kk + 1] & 0x7fffffffu);
      mt_[kk] = mt_[kk + (397 - 624)] ^ (y >> 1) ^ mag01[y & 1u];
    }
    y = (mt_[623] & 0x80000000u) | (mt_[0] & 0x7fffffffu);
    mt_[623] = mt_[396] ^ (y >> 1) ^ mag01[y & 1u];
    mti_ = 0;
  }
  y = mt_[mti_++];
  y ^= (y >> 11);
  y ^= (y << 7) & 0x9d2c5680u;
  y ^= (y << 15) & 0xefc60000u;
  y ^= (y >> 18);
  return y;
}

double CPythonRandom::random() {
  uint32_t a = genrand_uint32() >> 5, b = genrand_uint32() >> 6;
  return (a * 67108864.0 + b) * (1.0 / 9007199254740992.0);
}

std::vector<size_t> CPythonRandom::choices(size_t n, size_t k) {
  std::vector<size_t> out(k);
  for (size_t i = 0; i < k; ++i) out[i] = choice_index(n);
  return out;
}

}  // namespace bmh::eval
