// Central finite differences in fp64 for the backward tests.
//
// Step h = 1e-6: truncation error h^2 |f'''| / 6 ~ 1e-13 and rounding ~ 1e-16 |f| / h ~ 1e-10 for the O(1)
// losses used here, so |fd - analytic| stays well below the allowed 1e-7 + 1e-6 |analytic|.
// Each test prints its worst |fd - analytic| / (0.1 + |analytic|); seen 2026-12-02: <= 7.2e-8 over the op tests
// (selective scan), <= 2.2e-8 over the whole-model tests.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <string>

#include "reference/ops.h"

namespace bmh::test {

using M = ref::Mat<double>;
using Vd = ref::Vec<double>;

inline std::mt19937_64& fd_rng() {
  static std::mt19937_64 rng(20261202);
  return rng;
}
inline M rand_mat(Eigen::Index r, Eigen::Index c, double scale = 1.0) {
  std::normal_distribution<double> n(0.0, scale);
  M m(r, c);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = n(fd_rng());
  return m;
}
inline Vd rand_vec(Eigen::Index n, double scale = 1.0) { return rand_mat(n, 1, scale); }

// <R, Y>: a scalar loss whose gradient with respect to Y is R.
inline double dot(const M& R, const M& Y) { return R.cwiseProduct(Y).sum(); }

// Checks the analytic gradient g of f with respect to every entry of p (n values) by central differences.
// Returns the worst |fd - g| / (1e-1 + |g|) seen, for the printout.
inline double fd_check(const std::string& what, double* p, const double* g, Eigen::Index n,
                       const std::function<double()>& f, double h = 1e-6) {
  double worst = 0;
  for (Eigen::Index i = 0; i < n; ++i) {
    const double old = p[i];
    p[i] = old + h;
    const double up = f();
    p[i] = old - h;
    const double down = f();
    p[i] = old;
    const double fd = (up - down) / (2 * h);
    EXPECT_LE(std::abs(fd - g[i]), 1e-7 + 1e-6 * std::abs(g[i])) << what << "[" << i << "]: fd " << fd << " analytic " << g[i];
    worst = std::max(worst, std::abs(fd - g[i]) / (1e-1 + std::abs(g[i])));
  }
  return worst;
}
inline double fd_check(const std::string& what, M& p, const M& g, const std::function<double()>& f) {
  EXPECT_EQ(p.rows(), g.rows()) << what;
  EXPECT_EQ(p.cols(), g.cols()) << what;
  return fd_check(what, p.data(), g.data(), p.size(), f);
}
inline double fd_check(const std::string& what, Vd& p, const Vd& g, const std::function<double()>& f) {
  EXPECT_EQ(p.size(), g.size()) << what;
  return fd_check(what, p.data(), g.data(), p.size(), f);
}

}  // namespace bmh::test
