// CPython's random.Random, bit for bit, for what lm-eval's bootstrap uses (lm_eval/api/metrics.py
// bootstrap_stderr: `rnd = random.Random(i)` per chunk, then `rnd.choices(xs, k=len(xs))`):
//   seeding from an int   Modules/_randommodule.c random_seed: init_by_array with |seed| as little-endian
//                         32-bit words ([0] for 0)
//   random()              genrand_res53: (a*67108864 + b) / 2**53, a = next>>5, b = next>>6
//   choices(k=...)        Lib/random.py, no weights: population[floor(random() * n)] for k draws
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace bmh::eval {

class CPythonRandom {
 public:
  explicit CPythonRandom(uint64_t seed) { seed_u64(seed); }
  void seed_u64(uint64_t seed);                    // random.seed(n) for 0 <= n < 2**64
  uint32_t genrand_uint32();
  double random();                                 // random.random()
  size_t choice_index(size_t n) {                  // one draw of choices(): floor(random() * float(n))
    return size_t(random() * double(n));           // random() * n >= 0, so truncation is floor
  }
  // choices(range(n), k=k)
  std::vector<size_t> choices(size_t n, size_t k);

 private:
  void init_genrand(uint32_t s);
  void init_by_array(const uint32_t* key, size_t len);
  std::array<uint32_t, 624> mt_{};
  int mti_ = 625;
};

}  // namespace bmh::eval
