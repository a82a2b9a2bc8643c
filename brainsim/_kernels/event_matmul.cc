// Native CPU kernels for products with a mostly-zero left operand (spike trains as layer input),
// registered as XLA FFI custom calls:
//
//   BrainsimEventMatmul:  y  = x @ W      x: (M, K), W: (K, N)  ->  y: (M, N)
//   BrainsimEventMatmulT: dW = x^T @ g    x: (M, K), g: (M, N)  ->  dW: (K, N)
//
// Both visit only the nonzero entries of x: each costs one pass over x plus N multiply-adds per
// nonzero, instead of M * K * N for the dense product. They are the forward product and the weight
// gradient of a projection fed with spikes. When a strided sample of x has more than max_density
// nonzero entries they compute the dense product instead (register-blocked), so any input is exact.
// The nonzero entries of a row of x are collected first (sixteen at a time with AVX-512); the
// forward product then sums the selected rows of W in registers, 256 columns at a time, and the weight
// gradient adds the row of g, held in registers, to the selected rows of dW.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernel_common.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

using brainsim::accumulate_rows;
using brainsim::collect_nonzero;
using brainsim::gemm;
using brainsim::sampled_density;
using brainsim::scatter_rows;

// Runs body(begin, end) over [0, n), split between this thread and the kernels' worker when there is
// enough work (the products are independent per row of the output).
template <typename Body>
void split_in_two(int64_t n, int64_t work, Body body) {
  if (n < 2 || work < (1 << 21)) {
    body(int64_t{0}, n);
    return;
  }
  const int64_t half = n / 2;
  brainsim::PairWorker::run([&] { body(int64_t{0}, half); }, [&] { body(half, n); });
}

static ffi::Error EventMatmulImpl(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> w, float max_density,
                                  ffi::ResultBuffer<ffi::F32> y) {
  const auto xd = x.dimensions();
  const auto wd = w.dimensions();
  if (xd.size() != 2 || wd.size() != 2 || xd[1] != wd[0]) {
    return ffi::Error::InvalidArgument("event_matmul: need x (M, K) and W (K, N)");
  }
  const int64_t M = xd[0], K = xd[1], N = wd[1];
  const float* xp = x.typed_data();
  const float* wp = w.typed_data();
  float* yp = y->typed_data();
  if (sampled_density(xp, M * K) > max_density) {  // dense input: a register-blocked dense product
    split_in_two(M, M * K * 8, [&](int64_t m0, int64_t m1) { gemm(xp + m0 * K, K, 1, m1 - m0, wp, K, N, yp + m0 * N, N); });
    return ffi::Error::Success();
  }
  split_in_two(M, M * K, [&](int64_t m0, int64_t m1) {  // rows of y
    std::vector<int32_t> idx(K);
    std::vector<float> vals(K);
    for (int64_t m = m0; m < m1; ++m) {  // y[m] = sum over nonzero x[m, k] of x[m, k] W[k]
      const int64_t count = collect_nonzero(xp + m * K, K, idx.data(), vals.data());
      accumulate_rows(yp + m * N, nullptr, idx.data(), vals.data(), count, wp, N, N);
    }
  });
  return ffi::Error::Success();
}

static ffi::Error EventMatmulTImpl(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> g, float max_density,
                                   ffi::ResultBuffer<ffi::F32> dw) {
  const auto xd = x.dimensions();
  const auto gd = g.dimensions();
  if (xd.size() != 2 || gd.size() != 2 || xd[0] != gd[0]) {
    return ffi::Error::InvalidArgument("event_matmul_t: need x (M, K) and g (M, N)");
  }
  const int64_t M = xd[0], K = xd[1], N = gd[1];
  const float* xp = x.typed_data();
  const float* gp = g.typed_data();
  float* out = dw->typed_data();
  if (sampled_density(xp, M * K) > max_density) {  // dense input: dW = x^T g, register-blocked, rows of dW split
    split_in_two(K, M * K * 8, [&](int64_t k0, int64_t k1) { gemm(xp + k0, 1, K, k1 - k0, gp, M, N, out + k0 * N, N); });
    return ffi::Error::Success();
  }
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
    std::vector<int32_t> idx(K);
    std::vector<float> vals(K);
    for (int64_t m = m0; m < m1; ++m) {  // dW[k] += x[m, k] g[m] for the nonzero x[m, k]
      const int64_t count = collect_nonzero(xp + m * K, K, idx.data(), vals.data());
      scatter_rows(acc, N, idx.data(), vals.data(), count, gp + m * N, N);
    }
  });
  if (!partial.empty()) {
    for (int64_t j = 0; j < K * N; ++j) out[j] += partial[j];
  }
  return ffi::Error::Success();
}

XLA_FFI_DEFINE_HANDLER_SYMBOL(BrainsimEventMatmul, EventMatmulImpl,
                              ffi::Ffi::Bind().Arg<ffi::Buffer<ffi::F32>>().Arg<ffi::Buffer<ffi::F32>>()
                                  .Attr<float>("max_density").Ret<ffi::Buffer<ffi::F32>>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(BrainsimEventMatmulT, EventMatmulTImpl,
                              ffi::Ffi::Bind().Arg<ffi::Buffer<ffi::F32>>().Arg<ffi::Buffer<ffi::F32>>()
                                  .Attr<float>("max_density").Ret<ffi::Buffer<ffi::F32>>());
