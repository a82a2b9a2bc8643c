// Counter-based binomial counts (XLA FFI, CPU): out[i] ~ Binomial(n[i], p[i]), one independent draw per element.
//
// The uniform of element i is the first word of Threefry-2x32 (20 rounds, Salmon et al. 2011) of the counter
// (i, stream) under the 2-word key, rounded to 24 bits: u = ((x >> 8) + 0.5) / 2^24, exactly what the pure-JAX
// path of brainsim.counts computes. The count is found by inversion in double precision: from the mode m (0 for
// means <= 30) with P(X = m) and P(X <= m) (the incomplete beta function), walk down while u <= P(X <= k - 1), else
// up while u > P(X <= k), with P(k + 1) / P(k) = (n - k) / (k + 1) * p / (1 - p); a walk also stops on the far side
// of the mean where the probabilities fall below 1e-10 (far beyond the 24-bit uniform's resolution). Expected work O(1 + |X - m|).
// The start is computed once per run of elements with equal parameters. n and p have either one element per output
// (stride 1) or one for all (stride 0).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernel_common.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

// Regularized incomplete beta function I_x(a, b) by its continued fraction (DLMF 8.17.22), modified Lentz.
double incomplete_beta(double a, double b, double x) {
  if (x <= 0.0) return 0.0;
  if (x >= 1.0) return 1.0;
  if (x > (a + 1.0) / (a + b + 2.0)) return 1.0 - incomplete_beta(b, a, 1.0 - x);
  const double front = std::exp(std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) +
                                b * std::log1p(-x)) / a;
  constexpr double kTinyValue = 1e-300, kEps = 1e-15;
  double c = 1.0, d = 1.0 - (a + b) * x / (a + 1.0);
  d = 1.0 / (std::fabs(d) < kTinyValue ? kTinyValue : d);
  double f = d;
  for (int m = 1; m < 10000; ++m) {
    for (int half = 0; half < 2; ++half) {
      const double coefficient = half == 0 ? m * (b - m) * x / ((a + 2.0 * m - 1.0) * (a + 2.0 * m))
                                           : -(a + m) * (a + b + m) * x / ((a + 2.0 * m) * (a + 2.0 * m + 1.0));
      d = 1.0 + coefficient * d;
      d = 1.0 / (std::fabs(d) < kTinyValue ? kTinyValue : d);
      c = 1.0 + coefficient / c;
      if (std::fabs(c) < kTinyValue) c = kTinyValue;
      f *= c * d;
      if (half == 1 && std::fabs(c * d - 1.0) < kEps) return front * f;
    }
  }
  return front * f;
}

// Where the inversion starts for Binomial(n, p): the mode m (0 for means <= kCenteredAbove), P(X = m), P(X <= m).
struct Start {
  double k, pk, c;
};
constexpr double kCenteredAbove = 30.0;  // brainsim.counts.CENTERED_ABOVE
constexpr double kNegligible = 1e-10;    // brainsim.counts.NEGLIGIBLE: a walk stops at probabilities below this

Start start(double n, double p) {
  const double log_q = std::log1p(-p);
  if (n * p <= kCenteredAbove) {
    const double p0 = std::exp(n * log_q);
    return {0.0, p0, p0};
  }
  const double m = std::fmin(std::floor((n + 1.0) * p), n);
  const double pm = std::exp(std::lgamma(n + 1.0) - std::lgamma(m + 1.0) - std::lgamma(n - m + 1.0) +
                             m * std::log(p) + (n - m) * log_q);
  return {m, pm, m < n ? incomplete_beta(n - m, m + 1.0, 1.0 - p) : 1.0};
}

// The count of a draw with uniform u, walking from `first` (the contract in the file's header).
inline double walk(double u, double trials, double odds, double mean, Start first) {
  double k = first.k, pk = first.pk, c = first.c;
  if (u <= c) {  // X <= k: move down while X <= k - 1
    while (k > 0.0 && u <= c - pk && (pk >= kNegligible || k > mean)) {
      c -= pk;
      pk *= k / ((trials - k + 1.0) * odds);
      k -= 1.0;
    }
  } else {  // X > k
    while (u > c && k < trials && (pk >= kNegligible || k < mean)) {
      pk *= (trials - k) / (k + 1.0) * odds;
      k += 1.0;
      c += pk;
    }
  }
  return k;
}

// For means <= kCenteredAbove, the walk from 0 passes k exactly when u > P(X <= k), for k below the first k above
// the mean with P(X = k) < kNegligible (or n). The thresholds are those P(X <= k), each rounded down to float32: for a
// float32 u, u > threshold is then the same test as u > P(X <= k) in double. False if the walk would start
// elsewhere or the table would be longer than kTableMax.
constexpr int64_t kTableFrom = 64, kTableMax = 128;

bool distribution_table(double trials, double prob, std::vector<float>& thresholds) {
  const Start first = start(trials, prob);
  if (first.k != 0.0) return false;
  thresholds.clear();
  const double odds = prob / (1.0 - prob);
  double k = 0.0, pk = first.pk, c = first.c;
  while (k < trials && (pk >= kNegligible || k < trials * prob)) {
    if (static_cast<int64_t>(thresholds.size()) == kTableMax) return false;
    float below = static_cast<float>(c);
    if (static_cast<double>(below) > c) below = std::nextafter(below, 0.0f);
    thresholds.push_back(below);
    pk *= (trials - k) / (k + 1.0) * odds;
    k += 1.0;
    c += pk;
  }
  return true;
}

// values[i] <- the number of thresholds below values[i] (vectorised across elements, in blocks that stay in L1).
void count_below(float* values, int64_t size, const std::vector<float>& thresholds) {
  constexpr int64_t kBlock = 512;
  alignas(64) float counts[kBlock];
  for (int64_t base = 0; base < size; base += kBlock) {
    const int64_t m = std::min(kBlock, size - base);
    float* u = values + base;
    for (int64_t i = 0; i < m; ++i) counts[i] = 0.0f;
    for (const float t : thresholds) {
#pragma omp simd
      for (int64_t i = 0; i < m; ++i) counts[i] += u[i] > t ? 1.0f : 0.0f;
    }
    std::copy(counts, counts + m, u);
  }
}

ffi::Error CountsImpl(ffi::Buffer<ffi::U32> key, ffi::Buffer<ffi::F32> n, ffi::Buffer<ffi::F32> p, int64_t stream,
                      ffi::ResultBuffer<ffi::F32> out) {
  const int64_t size = static_cast<int64_t>(out->element_count());
  if (key.element_count() != 2) return ffi::Error::InvalidArgument("counts: key must have 2 uint32 words");
  const int64_t n_count = static_cast<int64_t>(n.element_count()), p_count = static_cast<int64_t>(p.element_count());
  if ((n_count != 1 && n_count != size) || (p_count != 1 && p_count != size))
    return ffi::Error::InvalidArgument("counts: n and p must have 1 or size elements");
  const int64_t n_stride = n_count == 1 ? 0 : 1, p_stride = p_count == 1 ? 0 : 1;
  const uint32_t k0 = key.typed_data()[0], k1 = key.typed_data()[1];
  const uint32_t s = static_cast<uint32_t>(stream);
  float* result = out->typed_data();
  // the uniforms first (a loop of 32-bit integer operations the compiler vectorises), kept in `result`
  for (int64_t i = 0; i < size; ++i) {
    uint32_t x0 = static_cast<uint32_t>(i), x1 = s;
    brainsim::threefry2x32(k0, k1, x0, x1);
    result[i] = (static_cast<float>(x0 >> 8) + 0.5f) * (1.0f / 16777216.0f);
  }
  const float *n_ = n.typed_data(), *p_ = p.typed_data();
  std::vector<float> thresholds;
  for (int64_t begin = 0; begin < size;) {
    // a run of elements with equal parameters shares the start of its walk (and, if long, a table)
    const float trials_f = n_[begin * n_stride], prob_f = p_[begin * p_stride];
    int64_t end = begin + 1;
    while (end < size && n_[end * n_stride] == trials_f && p_[end * p_stride] == prob_f) ++end;
    if (!(prob_f > 0.0f) || !(prob_f < 1.0f)) {
      std::fill(result + begin, result + end, prob_f > 0.0f ? trials_f : 0.0f);
    } else if (end - begin < kTableFrom || !distribution_table(trials_f, prob_f, thresholds)) {
      const Start first = start(trials_f, prob_f);
      const double odds = static_cast<double>(prob_f) / (1.0 - static_cast<double>(prob_f));
      const double mean = static_cast<double>(trials_f) * prob_f;
      for (int64_t i = begin; i < end; ++i) result[i] = static_cast<float>(walk(result[i], trials_f, odds, mean, first));
    } else {
      count_below(result + begin, end - begin, thresholds);
    }
    begin = end;
  }
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(BrainsimBinomialCounts, CountsImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::U32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Attr<int64_t>("stream")
                                  .Ret<ffi::Buffer<ffi::F32>>());
