// One small worker pool for the CPU side (preset weights, the reference model's batch rows and backward): fn(i)
// for i in [0, n) on up to hardware_concurrency threads, items taken in order from a shared counter.
#pragma once
#include <algorithm>
#include <atomic>
#include <future>
#include <thread>
#include <vector>

namespace bmh {

template <class I, class Fn>
void parallel_for(I n, Fn fn) {
  const I hw = I(std::max(1u, std::thread::hardware_concurrency()));
  const I workers = std::max(I(1), std::min(n, hw));
  std::atomic<I> next{0};
  std::vector<std::future<void>> jobs;
  for (I w = 0; w < workers; ++w)
    jobs.push_back(std::async(std::launch::async, [&] {
      for (I i = next++; i < n; i = next++) fn(i);
    }));
  for (auto& j : jobs) j.get();  // rethrows the first error (the other jobs finish first: their futures wait)
}

}  // namespace bmh
