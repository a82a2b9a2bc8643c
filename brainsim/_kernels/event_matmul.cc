// Native CPU kernels for products with a mostly-zero left operand (spike trains as layer input),
// registered as XLA FFI custom calls:
//
//   BrainsimEventMatmul:  y  = x @ W      x: (M, K), W: (K, N)  ->  y: (M, N)
//   BrainsimEventMatmulT: dW = x^T @ g    x: (M, K), g: (M, N)  ->  dW: (K, N)
//
// Both visit only the nonzero entries of x: each costs one pass over x plus N multiply-adds per
// nonzero, instead of M * K * N for the dense product. They are the forward product and the weight
// gradient of a projection fed with spikes; the caller picks the dense XLA product when x is dense.
// Zero blocks of x (kSkipBlock floats, all bits zero) are skipped with one 64-bit OR per two floats.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <thread>

#include "kernel_common.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

using brainsim::axpy;
using brainsim::block_is_zero;
using brainsim::kSkipBlock;

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

// Calls visit(k, x[k]) for every nonzero entry of the length-K row x, skipping all-zero blocks.
template <typename Visit>
static inline void for_each_nonzero(const float* x, int64_t K, Visit visit) {
  int64_t k = 0;
  for (; k + kSkipBlock <= K; k += kSkipBlock) {
    if (block_is_zero(x + k)) continue;
    for (int64_t j = k; j < k + kSkipBlock; ++j) {
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
  std::memset(out, 0, sizeof(float) * K * N);
  // each thread owns a range of columns of dW (and reads the same nonzeros of x)
  split_in_two(N, M * K, [&](int64_t n0, int64_t n1) {
    for (int64_t m = 0; m < M; ++m) {
      const float* g_row = gp + m * N + n0;
      for_each_nonzero(xp + m * K, K, [&](int64_t k, float value) { axpy(out + k * N + n0, value, g_row, n1 - n0); });
    }
  });
  return ffi::Error::Success();
}

XLA_FFI_DEFINE_HANDLER_SYMBOL(BrainsimEventMatmul, EventMatmulImpl,
                              ffi::Ffi::Bind().Arg<ffi::Buffer<ffi::F32>>().Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(BrainsimEventMatmulT, EventMatmulTImpl,
                              ffi::Ffi::Bind().Arg<ffi::Buffer<ffi::F32>>().Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());
