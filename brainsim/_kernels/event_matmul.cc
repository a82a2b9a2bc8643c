// Native CPU kernels for products with a mostly-zero left operand (spike trains as layer input),
// registered as XLA FFI custom calls:
//
//   BrainsimEventMatmul:  y  = x @ W      x: (M, K), W: (K, N)  ->  y: (M, N)
//   BrainsimEventMatmulT: dW = x^T @ g    x: (M, K), g: (M, N)  ->  dW: (K, N)
//
// Both visit only the nonzero entries of x: each costs one pass over x plus N multiply-adds per
// nonzero, instead of M * K * N for the dense product. They are the forward product and the weight
// gradient of a projection fed with spikes; the caller picks the dense XLA product when x is dense.
// Groups of 16 zero floats of x are skipped with one 64-bit OR per two floats.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "kernel_common.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

using brainsim::axpy;

// Runs body(begin, end) over [0, n), split between two threads when there is enough work (the products
// are independent per row of the output).
template <typename Body>
void split_in_two(int64_t n, int64_t work, Body body) {
  if (n < 2 || work < (1 << 21) || std::thread::hardware_concurrency() < 2) {
    body(int64_t{0}, n);
    return;
  }
  const int64_t half = n / 2;
  std::thread other(body, half, n);
  body(int64_t{0}, half);
  other.join();
}

// Calls visit(k, x[k]) for every nonzero entry of the length-K row x, in increasing k. Groups of 16
// floats whose bits are all zero are skipped with two 64-byte loads and ORs (spike inputs at a few
// percent density leave most groups empty); only the remaining groups are tested entry by entry.
template <typename Visit>
static inline void for_each_nonzero(const float* x, int64_t K, Visit visit) {
  constexpr int64_t kGroup = 16;
  int64_t k = 0;
  for (; k + kGroup <= K; k += kGroup) {
    uint64_t words[kGroup / 2];
    std::memcpy(words, x + k, sizeof(words));
    uint64_t any = 0;
    for (int i = 0; i < kGroup / 2; ++i) any |= words[i];
    if (any == 0) continue;
    for (int64_t j = k; j < k + kGroup; ++j) {
      if (x[j] != 0.0f) visit(j, x[j]);
    }
  }
  for (; k < K; ++k) {
    if (x[k] != 0.0f) visit(k, x[k]);
  }
}

static ffi::Error EventMatmulImpl(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> w, ffi::ResultBuffer<ffi::F32> y) {
  const auto xd = x.dimensions();
  const auto wd = w.dimensions();
  if (xd.size() != 2 || wd.size() != 2 || xd[1] != wd[0]) {
    return ffi::Error::InvalidArgument("event_matmul: need x (M, K) and W (K, N)");
  }
  const int64_t M = xd[0], K = xd[1], N = wd[1];
  const float* xp = x.typed_data();
  const float* wp = w.typed_data();
  float* yp = y->typed_data();
  split_in_two(M, M * K, [&](int64_t m0, int64_t m1) {  // rows of y
    std::memset(yp + m0 * N, 0, sizeof(float) * (m1 - m0) * N);
    for (int64_t m = m0; m < m1; ++m) {
      float* out = yp + m * N;
      for_each_nonzero(xp + m * K, K, [&](int64_t k, float value) { axpy(out, value, wp + k * N, N); });
    }
  });
  return ffi::Error::Success();
}

static ffi::Error EventMatmulTImpl(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> g, ffi::ResultBuffer<ffi::F32> dw) {
  const auto xd = x.dimensions();
  const auto gd = g.dimensions();
  if (xd.size() != 2 || gd.size() != 2 || xd[0] != gd[0]) {
    return ffi::Error::InvalidArgument("event_matmul_t: need x (M, K) and g (M, N)");
  }
  const int64_t M = xd[0], K = xd[1], N = gd[1];
  const float* xp = x.typed_data();
  const float* gp = g.typed_data();
  float* out = dw->typed_data();
  // each thread scans its own half of the rows of x into its own partial dW; the halves are summed
  std::vector<float> partial;
  split_in_two(M, M * K, [&](int64_t m0, int64_t m1) {
    float* acc = out;
    if (m0 > 0) {
      partial.assign(K * N, 0.0f);
      acc = partial.data();
    } else {
      std::memset(out, 0, sizeof(float) * K * N);
    }
    for (int64_t m = m0; m < m1; ++m) {
      const float* g_row = gp + m * N;
      for_each_nonzero(xp + m * K, K, [&](int64_t k, float value) { axpy(acc + k * N, value, g_row, N); });
    }
  });
  if (!partial.empty()) {
    for (int64_t j = 0; j < K * N; ++j) out[j] += partial[j];
  }
  return ffi::Error::Success();
}

XLA_FFI_DEFINE_HANDLER_SYMBOL(BrainsimEventMatmul, EventMatmulImpl,
                              ffi::Ffi::Bind().Arg<ffi::Buffer<ffi::F32>>().Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(BrainsimEventMatmulT, EventMatmulTImpl,
                              ffi::Ffi::Bind().Arg<ffi::Buffer<ffi::F32>>().Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());
