// Fused forward and backward pass of a (recurrent) layer of LIF neurons over a whole sequence,
// registered as XLA FFI custom calls. They compute exactly what brainsim.neurons.LIF.step computes
// step by step (current input, exponential Euler, refractory period, "value" or "subtract" reset,
// surrogate spike derivative), for a batch of B independent sequences sharing the parameters:
//
//   I_t     = I_ext[t] + s_{t-1} W                        (pA; W only for recurrent layers)
//             I_ext[t] = b_in + x_t W_in                  (pA; "projected": the input projection fused in)
//   frozen  = max(ref - dt, 0) > dt / 2                   (refractory)
//   g_L     = C_m / tau_m                                 (nS)
//   v_inf   = (g_L v_rest + I_t) / g_L                    (mV)
//   v_new   = frozen ? v : v_inf + (v - v_inf) exp(-(g_L / C_m) dt)
//   s_t     = H((v_new - v_th) / |v_th - v_reset|)        surrogate derivative in the backward pass
//   v       = v_new - s_t (v_th - v_reset)                ("subtract")  or  v_new + s_t (v_reset - v_new)
//   ref     = s_t > 0 ? t_ref : max(ref - dt, 0)
//
// The forward pass returns S, V, the refractory mask (one byte per entry) and a bit mask of S. The backward
// pass is one reverse sweep that recomputes I_t (only rows of W for neurons that spiked) and v_new from V,
// the bits of S and the refractory mask, so that it reads about 4 bytes per neuron and step instead of the
// 20 that storing every intermediate would take. Per step of the reverse sweep: an
// elementwise adjoint update (four examples per pass over the neurons), the dense recurrent adjoint
// dI_t W^T (a register-blocked product shared by the examples of a thread) and the weight gradient
// s_{t-1}^T dI_t (only rows of neurons that spiked).
// With the input projection fused in ("projected"), x (B, T, K) is read instead of I_ext (B, T, H): the
// rows of W_in of its nonzero entries are summed per step (spike inputs make this a few rows), I_ext never
// reaches memory, and the backward pass accumulates dW_in = sum_t x_t^T dI_t and db_in = sum_t dI_t over
// the same nonzero entries; dI itself is written only when asked for (the input's own gradient). The
// forward pass first makes a bit mask of x's nonzero entries and, per example, whether they are all 1
// (spikes), in one streaming pass over x: its sweep and the backward pass then read the mask (22 words for
// 700 inputs) instead of x, and x's megabytes are not in the cache while the sweep sums rows of W_in. S and V
// are written with non-temporal stores (read again only by the backward pass). A second flag per
// example says that no neuron can ever be refractory (t_ref and the initial counters below 1.5 dt): its
// refractory mask is then neither written nor read.
// With a leaky-integrator readout fused in ("readout"), the layer's spikes also drive O non-spiking
// output neurons in the same sweep (the readout's projection and integration, brainsim.train.LeakyReadout):
//   I_out,t = b_out + s_t W_out                                         (pA; rows of W_out of spiking neurons)
//   u_t     = v_inf + (u_{t-1} - v_inf) a,   v_inf = tau I_out,t / C_m,   a = exp(-dt / tau)   (mV, C_m = 1 pF)
// and the backward sweep takes the cotangent of u (B, T, O) instead of a dense one of the spikes: the
// spikes' cotangent dI_out W_out^T is formed per step in cache (in the recurrent adjoint's product,
// [dI_{t+1}, dI_out,t] [W^T; W_out^T]) and never reaches memory.
// Parameters are packed as P = [tau_m, C_m, v_rest, v_th, v_reset, t_ref], each of length H; the
// readout's as R = [W_out (H rows); b_out; tau], shape (H + 2, O).
// With "adaptive" the neurons are brainsim.neurons.AdaptiveLIF (exponential Euler): P has five more rows
// [a, b, tau_w, delta_theta, tau_theta] and each neuron two more state variables, the adaptation current w
// (pA) and the threshold increase theta (mV), from z0 = [w_0; theta_0] (B, 2, H):
//   v_new   = frozen ? v : v_inf + (v - v_inf) exp(-dt / tau_m),   v_inf = v_rest + (I_t - w) tau_m / C_m
//   w_mid   = w_inf + (w - w_inf) exp(-dt / tau_w),                w_inf = a (v - v_rest)   (v before the step)
//   th_mid  = theta exp(-dt / tau_theta),  thr = v_th + th_mid
//   s_t     = H((v_new - thr) / |thr - v_reset|)
//   v       = v_new - s_t (thr - v_reset)  ("subtract")  or  v_new + s_t (v_reset - v_new)
//   w       = w_mid + s_t b,   theta = th_mid + s_t delta_theta
// w and theta after every step are outputs (W, Theta: (B, T, H)), read back by the backward pass, which
// then carries the adjoints of v, w and theta.
// With "synaptic" the input current reaches the membrane through a current-based exponential synapse
// (brainsim.synapses.Exponential, the receptor of SpikingLayer(tau_syn=...); snnTorch's Synaptic, NIR's CubaLIF):
//   G_t = G_{t-1} exp(-dt / tau_syn) + I_t,   G_{-1} = 0 (what is already at the synapse comes in as i0)
// and the neurons integrate G_t instead of I_t. P then ends in one more row, tau_syn (ms); G after every step is
// an output (B, T, H), read back by the backward pass, which carries dL/dG.
// Up to two threads share the batch (examples are independent). In the forward pass they claim examples one
// at a time, so that a thread slowed down by other work on its CPU runs fewer; the backward pass splits the
// batch in two fixed halves (its shared-parameter gradients are summed per thread, in a fixed order, so that
// the results do not depend on timing).
#include <algorithm>
#include <array>
#include <atomic>
#include <memory>
#include <utility>
#if defined(__SSE__)
#include <xmmintrin.h>
#endif
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "kernel_common.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

using brainsim::AlignedVector;
using brainsim::axpy;

using brainsim::accumulate_rows;
using brainsim::collect_nonzero;
using brainsim::gemm;
using brainsim::prefetch_range;
using brainsim::scatter_rows;

// Surrogate derivatives sigma'(x) of the spike function, in the order of brainsim.spikes.SURROGATES
// (a template parameter, so that the adjoint loop is compiled and vectorised once per surrogate).
template <int kKind>
[[gnu::always_inline]] inline float surrogate(float x, float k) {
  if (kKind == 0) {  // fast sigmoid / SuperSpike
    const float d = 1.0f + k * std::fabs(x);
    return k / (2.0f * d * d);
  } else if (kKind == 1) {  // arctan
    const float a = 3.14159265358979f * k * x / 2.0f;
    return k / (2.0f * (1.0f + a * a));
  } else if (kKind == 2) {  // sigmoid
    const float s = 1.0f / (1.0f + std::exp(-k * x));
    return k * s * (1.0f - s);
  } else if (kKind == 3) {  // triangle
    return k * std::max(0.0f, 1.0f - k * std::fabs(x));
  } else if (kKind == 4) {  // rectangular
    return std::fabs(x) < 0.5f / k ? k : 0.0f;
  } else if (kKind == 5) {  // gaussian
    return k / 2.50662827463100f * std::exp(-0.5f * (k * x) * (k * x));
  } else {  // exponential
    return 0.5f * k * std::exp(-k * std::fabs(x));
  }
}
constexpr int kSurrogates = 7;

struct Params {
  const float *tau, *cm, *vrest, *vth, *vreset, *tref;
  explicit Params(const float* p, int64_t H)
      : tau(p), cm(p + H), vrest(p + 2 * H), vth(p + 3 * H), vreset(p + 4 * H), tref(p + 5 * H) {}
};

// Flush denormals to zero while a kernel runs, as XLA's own CPU kernels do: tiny adjoints decaying over
// a long backward sweep would otherwise hit the slow denormal path of the floating-point unit.
struct FlushDenormals {
#if defined(__SSE__)
  unsigned int saved = _mm_getcsr();
  FlushDenormals() { _mm_setcsr(saved | 0x8040); }  // FTZ | DAZ
  ~FlushDenormals() { _mm_setcsr(saved); }
#endif
};

// Runs body(thread, b0, b1) over the batch: split in two halves, this thread (0) and the kernels' worker
// (1), when there is enough work (PairWorker runs both halves here on a single CPU).
template <typename Body>
void parallel_over_batch(int64_t B, int64_t work_per_example, Body body) {
  FlushDenormals flush;
  if (B < 2 || work_per_example * B < (1 << 20)) {
    body(0, 0, B);
    return;
  }
  const int64_t half = (B + 1) / 2;
  brainsim::PairWorker::run([&] { body(0, 0, half); },
                            [&] {
                              FlushDenormals flush_other;
                              body(1, half, B);
                            });
}

// Per-neuron constants of one forward step: decay = exp(-(g_L / C_m) dt), g_L v_rest, 1 / g_L,
// 1 / |v_th - v_reset|, v_th - v_reset, v_th, v_reset, t_ref.
struct StepConsts {
  AlignedVector<float> decay, vrest_gl, inv_gl, inv_d, jump, vth, vreset, tref;
  StepConsts(const Params& P, int64_t H, float dt)
      : decay(H), vrest_gl(H), inv_gl(H), inv_d(H), jump(H), vth(P.vth, P.vth + H), vreset(P.vreset, P.vreset + H),
        tref(P.tref, P.tref + H) {
    for (int64_t h = 0; h < H; ++h) {
      const float g_l = P.cm[h] / P.tau[h];
      decay[h] = std::exp(-(g_l / P.cm[h]) * dt);
      vrest_gl[h] = g_l * P.vrest[h];
      inv_gl[h] = 1.0f / g_l;
      inv_d[h] = 1.0f / std::fabs(P.vth[h] - P.vreset[h]);
      jump[h] = P.vth[h] - P.vreset[h];
    }
  }
};

// v_new from v, the input current and the refractory mask: the forward step's integration, also used
// by the backward pass to recompute v_new (the same expression, so the same rounding).
[[gnu::always_inline]] inline float integrate(float v, float cur, bool frozen, float vrest_gl, float inv_gl,
                                             float decay) {
  const float v_inf = (vrest_gl + cur) * inv_gl;
  const float integrated = v_inf + (v - v_inf) * decay;
  return frozen ? v : integrated;
}

// One forward step for one example, elementwise over the H neurons (branch-free; the pointers are
// distinct arrays, so the loop vectorises). Updates v and ref in place, writes s_t, v_t and frozen_t.
template <bool kSubtract>
void forward_step(int64_t H, float dt, const StepConsts& c, const float* __restrict cur, float* __restrict v,
                  float* __restrict ref, float* __restrict s_t, float* __restrict v_t, uint8_t* __restrict fz_t) {
  const float* __restrict decay = c.decay.data();
  const float* __restrict vrest_gl = c.vrest_gl.data();
  const float* __restrict inv_gl = c.inv_gl.data();
  const float* __restrict inv_d = c.inv_d.data();
  const float* __restrict jump = c.jump.data();
  const float* __restrict vth = c.vth.data();
  const float* __restrict vreset = c.vreset.data();
  const float* __restrict tref = c.tref.data();
  for (int64_t h = 0; h < H; ++h) {
    const float remaining = std::max(ref[h] - dt, 0.0f);
    const bool frozen = remaining > 0.5f * dt;
    const float vn = integrate(v[h], cur[h], frozen, vrest_gl[h], inv_gl[h], decay[h]);
    const float s = (vn - vth[h]) * inv_d[h] > 0.0f ? 1.0f : 0.0f;
    const float after = kSubtract ? vn - s * jump[h] : vn + s * (vreset[h] - vn);
    v[h] = after;
    ref[h] = s > 0.0f ? tref[h] : remaining;
    s_t[h] = s;
    v_t[h] = after;
    fz_t[h] = frozen ? 1 : 0;
  }
}

// Copies a row of n floats to dst with non-temporal stores where dst is 64-byte aligned and n a multiple of 16:
// the forward pass's outputs are read back only by the backward pass, long after they have left the caches,
// and writing them through the caches would evict the rows of W_in the next steps read.
inline void stream_row(float* dst, const float* src, int64_t n) {
#if defined(__AVX512F__)
  if ((reinterpret_cast<uintptr_t>(dst) & 63) == 0 && n % 16 == 0) {
    for (int64_t j = 0; j < n; j += 16) _mm512_stream_ps(dst + j, _mm512_loadu_ps(src + j));
    return;
  }
#endif
  std::memcpy(dst, src, sizeof(float) * n);
}

// dst (cols x rows) = src (rows x cols) transposed, in 16 x 16 tiles (a row-by-row transpose writes a new
// cache line for every element)
inline void transpose(const float* src, int64_t rows, int64_t cols, float* dst) {
  constexpr int64_t kTile = 16;
  for (int64_t r0 = 0; r0 < rows; r0 += kTile)
    for (int64_t c0 = 0; c0 < cols; c0 += kTile)
      for (int64_t r = r0; r < std::min(r0 + kTile, rows); ++r)
        for (int64_t c = c0; c < std::min(c0 + kTile, cols); ++c) dst[c * rows + r] = src[r * cols + c];
}

// gemm with the column slabs outermost: each slab of kGemmVecs registers of columns of Bm (K x 32 floats,
// 32 kB for K = 256, with AVX-512) is used for all row blocks of A while it is in the L1 cache, instead of
// streaming all of Bm per row block
inline void gemm_slabs(const float* A, int64_t a_rs, int64_t a_cs, int64_t M, const float* Bm, int64_t K,
                       int64_t N, float* C, int64_t ldc) {
  using brainsim::gemm_block;
  constexpr int kRows = brainsim::kGemmRows, kVecs = brainsim::kGemmVecs;
  constexpr int64_t kCols = brainsim::kLanes * kVecs;
  if (N % kCols != 0) return gemm(A, a_rs, a_cs, M, Bm, K, N, C, ldc);
  for (int64_t j0 = 0; j0 < N; j0 += kCols) {
    int64_t i0 = 0;
    for (; i0 + kRows <= M; i0 += kRows) gemm_block<kRows, kVecs>(A + i0 * a_rs, a_rs, a_cs, Bm + j0, K, N, C + i0 * ldc + j0, ldc);
    for (; i0 + 4 <= M; i0 += 4) gemm_block<4, kVecs>(A + i0 * a_rs, a_rs, a_cs, Bm + j0, K, N, C + i0 * ldc + j0, ldc);
    for (; i0 < M; ++i0) gemm_block<1, kVecs>(A + i0 * a_rs, a_rs, a_cs, Bm + j0, K, N, C + i0 * ldc + j0, ldc);
  }
}

// Per-neuron constants of the adjoint update (see LifBackwardImpl).
struct AdjointConsts {
  const float *vth, *vreset, *vrest, *inv_d, *sign_d, *jump, *decay, *tau_cm, *inv_cm, *tau_cm2, *ddecay_dtau;
};

// One example's rows at one step of the reverse sweep (each H floats). In: s_t, I_t, the refractory mask
// (0 or 1 as floats: a byte load in the adjoint's loop makes GCC vectorise it 8 bytes wide), the cotangents
// of S and V at t, v_{t-1}, and dL/ds_t through step t+1's recurrent input. In/out: gv_carry = dL/dv_t
// through step t+1 (becomes dL/dv_{t-1}). Out: dI = dL/dI_t.
struct AdjointRows {
  const float *s_t, *cur_t, *fz_t;
  const float *cs_t, *cv_t, *v_prev, *rec;
  float *gv_carry, *dI;
};

// The adjoint of one step for neuron h of one example: v_new is recomputed from v_{t-1}, I_t and the
// refractory mask (the forward step's own expression), then the adjoint of the reset, the spike (surrogate
// derivative) and the integration. Adds neuron h's parameter gradients to g_tau ... g_vreset.
// (always inlined: the vectorised loops of adjoint_group call it; GCC's unit-growth limits may otherwise keep it
// out of line, and the loop scalar)
template <bool kSubtract, int kKind>
[[gnu::always_inline]] inline void adjoint_one(int64_t h, const AdjointConsts& c, const float* __restrict f_decay,
                        const float* __restrict vrest_gl, const float* __restrict inv_gl, float slope,
                        const AdjointRows& r, float& g_tau, float& g_cm, float& g_vrest, float& g_vth,
                        float& g_vreset) {
  const float frozen = r.fz_t[h];  // 0 or 1
  const bool is_frozen = frozen != 0.0f;
  const float cur = r.cur_t[h], vp = r.v_prev[h];
  const float vn = integrate(vp, cur, is_frozen, vrest_gl[h], inv_gl[h], f_decay[h]);
  const float s = r.s_t[h];
  const float gvo = r.cv_t[h] + r.gv_carry[h];
  float gs = r.cs_t[h] + r.rec[h];
  float gvn;
  if (kSubtract) {  // v = v_new - s (v_th - v_reset)
    gvn = gvo;
    gs -= gvo * c.jump[h];
    g_vth -= gvo * s;
    g_vreset += gvo * s;
  } else {  // v = v_new + s (v_reset - v_new)
    gvn = gvo * (1.0f - s);
    gs += gvo * (c.vreset[h] - vn);
    g_vreset += gvo * s;
  }
  // s = H(x), x = (v_new - v_th) / D, D = |v_th - v_reset|; surrogate derivative sigma'(x)
  const float x = (vn - c.vth[h]) * c.inv_d[h];
  const float gx = gs * surrogate<kKind>(x, slope);
  const float gD = -gx * x * c.inv_d[h];
  gvn += gx * c.inv_d[h];
  g_vth += -gx * c.inv_d[h] + gD * c.sign_d[h];
  g_vreset -= gD * c.sign_d[h];
  // not refractory: v_new = v_inf + (v_prev - v_inf) a, a = exp(-dt / tau), v_inf = v_rest + I tau / C_m;
  // refractory (frozen): v_new = v_prev
  const float live = 1.0f - frozen;
  const float v_inf = c.vrest[h] + cur * c.tau_cm[h];
  const float g_inf = live * gvn * (1.0f - c.decay[h]);
  const float g_a = live * gvn * (vp - v_inf);
  r.gv_carry[h] = gvn * (live * c.decay[h] + frozen);
  r.dI[h] = g_inf * c.tau_cm[h];
  g_tau += g_inf * cur * c.inv_cm[h] + g_a * c.ddecay_dtau[h];
  g_cm -= g_inf * cur * c.tau_cm2[h];
  g_vrest += g_inf;
}

// One step of the reverse sweep for the n examples of a thread (rows[e]), kGroup examples per pass over the
// neurons: each neuron's five parameter gradients are summed over the group in registers and added to
// g_* once per group. Done per example, those read-modify-writes of H floats were most of the update's
// cost (a timing-only variant without them took 0.66 ms off the SHD-shaped step's 0.70 ms of updates).
template <bool kSubtract, int kKind, int kGroup>
void adjoint_group(int64_t H, const AdjointConsts& c, const float* __restrict f_decay, const float* __restrict vrest_gl,
                   const float* __restrict inv_gl, float slope, const AdjointRows* rows, float* __restrict g_tau,
                   float* __restrict g_cm, float* __restrict g_vrest, float* __restrict g_vth,
                   float* __restrict g_vreset) {
  static_assert(kGroup >= 1 && kGroup <= 4, "groups of 1 to 4 examples");
  const AdjointRows r0 = rows[0], r1 = rows[kGroup > 1 ? 1 : 0], r2 = rows[kGroup > 2 ? 2 : 0],
                    r3 = rows[kGroup > 3 ? 3 : 0];  // copies: the loop below then sees no aliasing through rows
#pragma omp simd simdlen(16)
  for (int64_t h = 0; h < H; ++h) {
    float a_tau = 0.0f, a_cm = 0.0f, a_vrest = 0.0f, a_vth = 0.0f, a_vreset = 0.0f;
    adjoint_one<kSubtract, kKind>(h, c, f_decay, vrest_gl, inv_gl, slope, r0, a_tau, a_cm, a_vrest, a_vth, a_vreset);
    if constexpr (kGroup > 1)
      adjoint_one<kSubtract, kKind>(h, c, f_decay, vrest_gl, inv_gl, slope, r1, a_tau, a_cm, a_vrest, a_vth, a_vreset);
    if constexpr (kGroup > 2)
      adjoint_one<kSubtract, kKind>(h, c, f_decay, vrest_gl, inv_gl, slope, r2, a_tau, a_cm, a_vrest, a_vth, a_vreset);
    if constexpr (kGroup > 3)
      adjoint_one<kSubtract, kKind>(h, c, f_decay, vrest_gl, inv_gl, slope, r3, a_tau, a_cm, a_vrest, a_vth, a_vreset);
    g_tau[h] += a_tau;
    g_cm[h] += a_cm;
    g_vrest[h] += a_vrest;
    g_vth[h] += a_vth;
    g_vreset[h] += a_vreset;
  }
}

template <bool kSubtract, int kKind>
void adjoint_step(int64_t H, int64_t n, const AdjointConsts& c, const StepConsts& f, float slope,
                  const AdjointRows* rows, float* g_tau, float* g_cm, float* g_vrest, float* g_vth, float* g_vreset) {
  constexpr int kGroup = 4;
  int64_t e = 0;
  for (; e + kGroup <= n; e += kGroup)
    adjoint_group<kSubtract, kKind, kGroup>(H, c, f.decay.data(), f.vrest_gl.data(), f.inv_gl.data(), slope, rows + e,
                                            g_tau, g_cm, g_vrest, g_vth, g_vreset);
  for (; e < n; ++e)
    adjoint_group<kSubtract, kKind, 1>(H, c, f.decay.data(), f.vrest_gl.data(), f.inv_gl.data(), slope, rows + e,
                                       g_tau, g_cm, g_vrest, g_vth, g_vreset);
}

// The adjoint step instantiated for every (reset, surrogate) pair, indexed [subtract][surrogate].
using AdjointFn = decltype(&adjoint_step<true, 0>);
template <int... kKinds>
constexpr std::array<std::array<AdjointFn, sizeof...(kKinds)>, 2> adjoint_table(std::integer_sequence<int, kKinds...>) {
  return {{{&adjoint_step<false, kKinds>...}, {&adjoint_step<true, kKinds>...}}};
}
constexpr auto kAdjointSteps = adjoint_table(std::make_integer_sequence<int, kSurrogates>{});

// --- adaptive neurons (AdaptiveLIF): the extra per-neuron constants, forward step and adjoint -------------
inline constexpr const char* kAdaptiveParamOrder = "a,b,tau_w,delta_theta,tau_theta";
constexpr int64_t kAdaptiveRows = 11;  // P's rows with "adaptive": the six of Params, then kAdaptiveParamOrder
// P's rows: the six of Params, kAdaptiveParamOrder's five with "adaptive", then tau_syn with "synaptic"
inline int64_t param_rows(bool adaptive, bool synaptic) { return (adaptive ? kAdaptiveRows : 6) + (synaptic ? 1 : 0); }

// The synapse's decay exp(-dt / tau_syn) and its derivative with respect to tau_syn, from P's last row.
struct SynapseConsts {
  AlignedVector<float> decay, ddecay_dtau;
  SynapseConsts(const float* tau, int64_t H, float dt) : decay(H), ddecay_dtau(H) {
    for (int64_t h = 0; h < H; ++h) {
      decay[h] = std::exp(-dt / tau[h]);
      ddecay_dtau[h] = decay[h] * dt / (tau[h] * tau[h]);
    }
  }
};

// a, b, exp(-dt / tau_w), delta_theta, exp(-dt / tau_theta) and, for the adjoint, their derivatives with
// respect to tau_w and tau_theta (d exp(-dt / tau) / d tau = exp(-dt / tau) dt / tau^2)
struct AdaptConsts {
  AlignedVector<float> a, b, dw, delta, dth, ddw_dtau, ddth_dtau;
  AdaptConsts(const float* p, int64_t H, float dt)
      : a(p + 6 * H, p + 7 * H), b(p + 7 * H, p + 8 * H), dw(H), delta(p + 9 * H, p + 10 * H), dth(H), ddw_dtau(H),
        ddth_dtau(H) {
    for (int64_t h = 0; h < H; ++h) {
      const float tau_w = p[8 * H + h], tau_th = p[10 * H + h];
      dw[h] = std::exp(-(1.0f / tau_w) * dt);
      dth[h] = std::exp(-dt / tau_th);
      ddw_dtau[h] = dw[h] * dt / (tau_w * tau_w);
      ddth_dtau[h] = dth[h] * dt / (tau_th * tau_th);
    }
  }
};

// One forward step of adaptive neurons for one example (see the top of the file); updates v, ref, w and theta
// in place and writes s_t, v_t, frozen_t, w_t and theta_t.
template <bool kSubtract>
void forward_step_adaptive(int64_t H, float dt, const StepConsts& c, const AdaptConsts& ac,
                           const float* __restrict vrest, const float* __restrict cur, float* __restrict v,
                           float* __restrict ref, float* __restrict w, float* __restrict th, float* __restrict s_t,
                           float* __restrict v_t, uint8_t* __restrict fz_t, float* __restrict w_t,
                           float* __restrict th_t) {
  // the constants as restrict pointers (read through the vectors' members, the loop would not vectorise)
  const float* __restrict decay = c.decay.data();
  const float* __restrict vrest_gl = c.vrest_gl.data();
  const float* __restrict inv_gl = c.inv_gl.data();
  const float* __restrict vth = c.vth.data();
  const float* __restrict vreset = c.vreset.data();
  const float* __restrict tref = c.tref.data();
  const float* __restrict a = ac.a.data();
  const float* __restrict b = ac.b.data();
  const float* __restrict dw = ac.dw.data();
  const float* __restrict dth = ac.dth.data();
  const float* __restrict delta = ac.delta.data();
#pragma omp simd simdlen(16)
  for (int64_t h = 0; h < H; ++h) {
    const float remaining = std::max(ref[h] - dt, 0.0f);
    const bool frozen = remaining > 0.5f * dt;
    const float vp = v[h];
    const float vn = integrate(vp, cur[h] - w[h], frozen, vrest_gl[h], inv_gl[h], decay[h]);
    const float w_inf = a[h] * (vp - vrest[h]);
    const float w_mid = w_inf + (w[h] - w_inf) * dw[h];
    const float th_mid = th[h] * dth[h];
    const float thr = vth[h] + th_mid;
    const float jump = thr - vreset[h];
    const float s = (vn - thr) / std::fabs(jump) > 0.0f ? 1.0f : 0.0f;
    const float after = kSubtract ? vn - s * jump : vn + s * (vreset[h] - vn);
    const float w_new = w_mid + s * b[h], th_new = th_mid + s * delta[h];
    v[h] = after;
    w[h] = w_new;
    th[h] = th_new;
    ref[h] = s > 0.0f ? tref[h] : remaining;
    s_t[h] = s;
    v_t[h] = after;
    fz_t[h] = frozen ? 1 : 0;
    w_t[h] = w_new;
    th_t[h] = th_new;
  }
}

// G <- G exp(-dt / tau_syn) + I for one example (the synapse's forward step, in place)
inline void synapse_step(int64_t H, const SynapseConsts& c, const float* __restrict cur, float* __restrict g) {
  const float* __restrict decay = c.decay.data();
  for (int64_t h = 0; h < H; ++h) g[h] = g[h] * decay[h] + cur[h];
}

// The synapse's adjoint at step t for one example: dI (in: dL/dG_t through the neurons; out: dL/dI_t = dL/dG_t
// in all), the carry lam (in: dL/dG_{t+1} via G_{t+1} = G_t d + I_{t+1}; out: dL/dG_t), and tau_syn's gradient
// from G_t (dL/dd += dL/dG_{t+1} G_t).
inline void synapse_adjoint(int64_t H, const SynapseConsts& c, const float* __restrict g_t,
                            const float* __restrict ct_g_t, float* __restrict dI, float* __restrict lam,
                            float* __restrict d_tau) {
  const float* __restrict decay = c.decay.data();
  const float* __restrict ddecay = c.ddecay_dtau.data();
  for (int64_t h = 0; h < H; ++h) {
    d_tau[h] += lam[h] * g_t[h] * ddecay[h];
    const float total = dI[h] + ct_g_t[h] + lam[h] * decay[h];
    dI[h] = total;
    lam[h] = total;
  }
}

// One example's extra rows at one step of the reverse sweep: w_{t-1}, theta_{t-1}, the cotangents of W and
// Theta at t; in/out: the adjoints of w_t and theta_t through step t+1 (become those of w_{t-1}, theta_{t-1}).
struct AdaptRows {
  const float *w_prev, *th_prev, *cw_t, *cth_t;
  float *gw_carry, *gth_carry;
};

// The ten parameter gradients of adaptive neurons (no t_ref), summed over a group of examples in registers.
struct AdaptGrads {
  float tau = 0, cm = 0, vrest = 0, vth = 0, vreset = 0, a = 0, b = 0, tau_w = 0, delta = 0, tau_th = 0;
};

template <bool kSubtract, int kKind>
[[gnu::always_inline]] inline void adaptive_adjoint_one(int64_t h, const AdjointConsts& c, const StepConsts& f, const AdaptConsts& ac,
                                 float slope, const AdjointRows& r, const AdaptRows& ra, AdaptGrads& g) {
  const float frozen = r.fz_t[h];  // 0 or 1
  const float vp = r.v_prev[h], wp = ra.w_prev[h], thp = ra.th_prev[h];
  const float ce = r.cur_t[h] - wp;  // the current the membrane integrates
  const float vn = integrate(vp, ce, frozen != 0.0f, f.vrest_gl[h], f.inv_gl[h], f.decay[h]);
  const float s = r.s_t[h];
  const float th_mid = thp * ac.dth[h];
  const float thr = c.vth[h] + th_mid;
  const float jump = thr - c.vreset[h];
  const float gvo = r.cv_t[h] + r.gv_carry[h];
  const float gwo = ra.cw_t[h] + ra.gw_carry[h];   // dL/dw_t = dL/dw_mid
  float gth = ra.cth_t[h] + ra.gth_carry[h];      // dL/dtheta_t, becomes dL/dth_mid
  float gs = r.cs_t[h] + r.rec[h];
  // w = w_mid + s b, theta = th_mid + s delta
  g.b += gwo * s;
  g.delta += gth * s;
  gs += gwo * ac.b[h] + gth * ac.delta[h];
  float gvn, gthr = 0.0f;
  if (kSubtract) {  // v = v_new - s (thr - v_reset)
    gvn = gvo;
    gs -= gvo * jump;
    gthr -= gvo * s;
    g.vreset += gvo * s;
  } else {  // v = v_new + s (v_reset - v_new)
    gvn = gvo * (1.0f - s);
    gs += gvo * (c.vreset[h] - vn);
    g.vreset += gvo * s;
  }
  // s = H(x), x = (v_new - thr) / D, D = |thr - v_reset|
  const float inv_d = 1.0f / std::fabs(jump), sign_d = jump > 0.0f ? 1.0f : (jump < 0.0f ? -1.0f : 0.0f);
  const float x = (vn - thr) * inv_d;
  const float gx = gs * surrogate<kKind>(x, slope);
  const float gD = -gx * x * inv_d;
  gvn += gx * inv_d;
  gthr += -gx * inv_d + gD * sign_d;
  g.vreset -= gD * sign_d;
  g.vth += gthr;
  gth += gthr;
  // th_mid = theta_{t-1} exp(-dt / tau_theta)
  ra.gth_carry[h] = gth * ac.dth[h];
  g.tau_th += gth * thp * ac.ddth_dtau[h];
  // w_mid = w_inf + (w_{t-1} - w_inf) exp(-dt / tau_w), w_inf = a (v_{t-1} - v_rest)
  const float w_inf = ac.a[h] * (vp - c.vrest[h]);
  const float g_winf = gwo * (1.0f - ac.dw[h]);
  g.tau_w += gwo * (wp - w_inf) * ac.ddw_dtau[h];
  g.a += g_winf * (vp - c.vrest[h]);
  g.vrest -= g_winf * ac.a[h];
  // v_new = v_inf + (v_{t-1} - v_inf) exp(-dt / tau_m), v_inf = v_rest + (I_t - w_{t-1}) tau_m / C_m; frozen: v_{t-1}
  const float live = 1.0f - frozen;
  const float v_inf = c.vrest[h] + ce * c.tau_cm[h];
  const float g_inf = live * gvn * (1.0f - c.decay[h]);
  const float g_a = live * gvn * (vp - v_inf);
  r.gv_carry[h] = gvn * (live * c.decay[h] + frozen) + g_winf * ac.a[h];
  const float dI = g_inf * c.tau_cm[h];
  r.dI[h] = dI;
  ra.gw_carry[h] = gwo * ac.dw[h] - dI;
  g.tau += g_inf * ce * c.inv_cm[h] + g_a * c.ddecay_dtau[h];
  g.cm -= g_inf * ce * c.tau_cm2[h];
  g.vrest += g_inf;
}

// One step of the reverse sweep of adaptive neurons for the n examples of a thread, kGroup examples per pass
// over the neurons (their parameter gradients summed in registers, as adjoint_group does). dP: P's shape (the first
// 11 rows here).
template <bool kSubtract, int kKind, int kGroup>
void adaptive_adjoint_group(int64_t H, const AdjointConsts& c, const StepConsts& f, const AdaptConsts& ac, float slope,
                            const AdjointRows* rows, const AdaptRows* arows, float* __restrict dP) {
  const AdjointRows r0 = rows[0], r1 = rows[kGroup > 1 ? 1 : 0], r2 = rows[kGroup > 2 ? 2 : 0],
                    r3 = rows[kGroup > 3 ? 3 : 0];
  const AdaptRows a0 = arows[0], a1 = arows[kGroup > 1 ? 1 : 0], a2 = arows[kGroup > 2 ? 2 : 0],
                  a3 = arows[kGroup > 3 ? 3 : 0];
#pragma omp simd simdlen(16)
  for (int64_t h = 0; h < H; ++h) {
    AdaptGrads g;
    adaptive_adjoint_one<kSubtract, kKind>(h, c, f, ac, slope, r0, a0, g);
    if constexpr (kGroup > 1) adaptive_adjoint_one<kSubtract, kKind>(h, c, f, ac, slope, r1, a1, g);
    if constexpr (kGroup > 2) adaptive_adjoint_one<kSubtract, kKind>(h, c, f, ac, slope, r2, a2, g);
    if constexpr (kGroup > 3) adaptive_adjoint_one<kSubtract, kKind>(h, c, f, ac, slope, r3, a3, g);
    dP[h] += g.tau;
    dP[H + h] += g.cm;
    dP[2 * H + h] += g.vrest;
    dP[3 * H + h] += g.vth;
    dP[4 * H + h] += g.vreset;
    dP[6 * H + h] += g.a;
    dP[7 * H + h] += g.b;
    dP[8 * H + h] += g.tau_w;
    dP[9 * H + h] += g.delta;
    dP[10 * H + h] += g.tau_th;
  }
}

template <bool kSubtract, int kKind>
void adaptive_adjoint_step(int64_t H, int64_t n, const AdjointConsts& c, const StepConsts& f, const AdaptConsts& ac,
                           float slope, const AdjointRows* rows, const AdaptRows* arows, float* dP) {
  int64_t e = 0;
  for (; e + 4 <= n; e += 4) adaptive_adjoint_group<kSubtract, kKind, 4>(H, c, f, ac, slope, rows + e, arows + e, dP);
  for (; e < n; ++e) adaptive_adjoint_group<kSubtract, kKind, 1>(H, c, f, ac, slope, rows + e, arows + e, dP);
}

using AdaptiveAdjointFn = decltype(&adaptive_adjoint_step<true, 0>);
template <int... kKinds>
constexpr std::array<std::array<AdaptiveAdjointFn, sizeof...(kKinds)>, 2> adaptive_adjoint_table(
    std::integer_sequence<int, kKinds...>) {
  return {{{&adaptive_adjoint_step<false, kKinds>...}, {&adaptive_adjoint_step<true, kKinds>...}}};
}
constexpr auto kAdaptiveAdjointSteps = adaptive_adjoint_table(std::make_integer_sequence<int, kSurrogates>{});

}  // namespace

// The layer's input: I_ext (B, T, H), or x (B, T, K) with W_in (K, H) and b_in (H) when projected.
struct LayerInput {
  const float *x, *w_in, *b_in;
  int64_t K;
  bool projected;
};

// Checks the shapes of the layer's arguments; on success sets B, T, H and the input's K.
static ffi::Error check_layer_shapes(const char* name, ffi::Buffer<ffi::F32>& x, ffi::Buffer<ffi::F32>& w_in,
                                     ffi::Buffer<ffi::F32>& b_in, ffi::Buffer<ffi::F32>& w, ffi::Buffer<ffi::F32>& p,
                                     int64_t recurrent, int64_t projected, int64_t adaptive, int64_t synaptic,
                                     int64_t& B, int64_t& T, int64_t& H, LayerInput& in) {
  const auto d = x.dimensions();
  if (d.size() != 3) return ffi::Error::InvalidArgument(std::string(name) + ": input must be (B, T, features)");
  if (p.dimensions().size() != 2 || p.dimensions()[0] != param_rows(adaptive, synaptic))
    return ffi::Error::InvalidArgument(std::string(name) + ": P must be (6, H), with 5 more rows for adaptive "
                                       "neurons and 1 more for a synapse");
  B = d[0], T = d[1], H = p.dimensions()[1];
  const int64_t K = d[2];
  if (projected) {
    if (w_in.element_count() != K * H || b_in.element_count() != H)
      return ffi::Error::InvalidArgument(std::string(name) + ": need W_in (K, H) and b_in (H)");
  } else if (K != H) {
    return ffi::Error::InvalidArgument(std::string(name) + ": I_ext must be (B, T, H)");
  }
  if (recurrent && w.element_count() != H * H)
    return ffi::Error::InvalidArgument(std::string(name) + ": W must be (H, H)");
  in = LayerInput{x.typed_data(), w_in.typed_data(), b_in.typed_data(), K, projected != 0};
  return ffi::Error::Success();
}

// Words of the bit mask of a row of x's nonzero entries (one bit per input, 32 per word).
inline int64_t mask_words(int64_t K) { return (K + 31) / 32; }

// Sets mask row m (mask_words(K) words) to the bit mask of the nonzero entries of x[0:K]; returns whether they
// are all 1 (then the mask stands for the row). 16 entries per compare with AVX-512, 8 with AVX. Used for the
// rows of x and for the spikes (the backward pass's copy of S: 32 times smaller than S).
inline bool mask_of_row(const float* x, int64_t K, uint32_t* m) {
  std::memset(m, 0, sizeof(uint32_t) * mask_words(K));
  bool ones = true;
  int64_t k = 0;
#if defined(__AVX512F__)
  const __m512 zero = _mm512_setzero_ps(), one = _mm512_set1_ps(1.0f);
  for (; k < K; k += 16) {
    const __mmask16 live = K - k >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << (K - k)) - 1);
    const __m512 v = _mm512_maskz_loadu_ps(live, x + k);
    const __mmask16 nonzero = _mm512_mask_cmp_ps_mask(live, v, zero, _CMP_NEQ_UQ);
    const __mmask16 not_one = _mm512_mask_cmp_ps_mask(nonzero, v, one, _CMP_NEQ_UQ);
    m[k >> 5] |= static_cast<uint32_t>(nonzero) << (k & 31);
    ones &= not_one == 0;
  }
#elif defined(__AVX__)
  // 8 entries per compare (a branch per entry mispredicts on sparse inputs and took most of the forward pass)
  const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f);
  for (; k + 8 <= K; k += 8) {
    const __m256 v = _mm256_loadu_ps(x + k);
    const uint32_t nonzero = static_cast<uint32_t>(_mm256_movemask_ps(_mm256_cmp_ps(v, zero, _CMP_NEQ_UQ)));
    const uint32_t not_one = static_cast<uint32_t>(_mm256_movemask_ps(_mm256_cmp_ps(v, one, _CMP_NEQ_UQ))) & nonzero;
    m[k >> 5] |= nonzero << (k & 31);  // k & 31 is 0, 8, 16 or 24: the 8 bits stay in one word
    ones &= not_one == 0;
  }
#endif
  for (; k < K; ++k) {
    if (x[k] != 0.0f) m[k >> 5] |= 1u << (k & 31);
    ones &= x[k] == 0.0f || x[k] == 1.0f;
  }
  return ones;
}

// Writes the positions of the set bits of mask row m to idx in increasing order; returns how many.
inline int64_t decode_mask(const uint32_t* m, int64_t K, int32_t* idx) {
  int64_t n = 0;
#if defined(__AVX512VBMI2__)
  // branch-free for up to 16 set bits in 64: the byte positions of a 64-bit word's set bits compressed into a
  // register (vpcompressb), widened to 16 ints and stored whole; more set bits (dense rows) take more stores
  // (idx has room for 16 entries past K; the entries past n are scratch)
  const __m512i byte_pos = _mm512_set_epi8(63, 62, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48, 47, 46,
                                           45, 44, 43, 42, 41, 40, 39, 38, 37, 36, 35, 34, 33, 32, 31, 30, 29, 28, 27,
                                           26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7,
                                           6, 5, 4, 3, 2, 1, 0);
  const int64_t words = mask_words(K);
  for (int64_t w = 0; w < words; w += 2) {
    const uint64_t bits = m[w] | (w + 1 < words ? static_cast<uint64_t>(m[w + 1]) << 32 : 0);
    const __m512i packed = _mm512_maskz_compress_epi8(bits, byte_pos);
    const __m512i base = _mm512_set1_epi32(static_cast<int32_t>(32 * w));
    // positions 16 q ... 16 q + 15 of the compressed bytes as ints, plus the word's first position
    auto quarter = [&](__m128i bytes) { return _mm512_add_epi32(_mm512_cvtepu8_epi32(bytes), base); };
    _mm512_storeu_si512(idx + n, quarter(_mm512_castsi512_si128(packed)));
    const int64_t count = __builtin_popcountll(bits);
    if (__builtin_expect(count > 16, 0)) {
      _mm512_storeu_si512(idx + n + 16, quarter(_mm512_extracti32x4_epi32(packed, 1)));
      if (count > 32) _mm512_storeu_si512(idx + n + 32, quarter(_mm512_extracti32x4_epi32(packed, 2)));
      if (count > 48) _mm512_storeu_si512(idx + n + 48, quarter(_mm512_extracti32x4_epi32(packed, 3)));
    }
    n += count;
  }
#elif defined(__AVX512F__)
  // branch-free: per 16 bits, the positions of the set ones compressed into a register and stored whole
  // (idx has room for 16 entries past K; the entries past n are scratch)
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  for (int64_t k = 0; k < K; k += 16) {
    const __mmask16 bits = static_cast<__mmask16>(m[k >> 5] >> (k & 31));
    const __m512i pos = _mm512_add_epi32(lane, _mm512_set1_epi32(static_cast<int32_t>(k)));
    _mm512_storeu_si512(idx + n, _mm512_maskz_compress_epi32(bits, pos));
    n += __builtin_popcount(bits);
  }
#else
  for (int64_t w = 0; w < mask_words(K); ++w) {
    for (uint32_t bits = m[w]; bits; bits &= bits - 1) idx[n++] = static_cast<int32_t>(32 * w + __builtin_ctz(bits));
  }
#endif
  return n;
}

// The spikes s[0:H] (0 or 1) from their bit mask m
inline void expand_bits(const uint32_t* m, int64_t H, float* s) {
  int64_t h = 0;
#if defined(__AVX512F__)
  for (; h + 16 <= H; h += 16)
    _mm512_storeu_ps(s + h, _mm512_maskz_mov_ps(static_cast<__mmask16>(m[h >> 5] >> (h & 31)), _mm512_set1_ps(1.0f)));
#endif
  for (; h < H; ++h) s[h] = (m[h >> 5] >> (h & 31)) & 1u ? 1.0f : 0.0f;
}

// Per-example flags written by the forward pass for the backward pass (one uint32 word per example).
constexpr uint32_t kBinaryInput = 1;      // every nonzero x is 1: the bit mask of x stands for x
constexpr uint32_t kNeverRefractory = 2;  // no neuron can be refractory: the refractory mask is not written

// Checks the residuals of the inputs: B flags, and for a projected input the bit mask (B, T, mask_words(K)).
static ffi::Error check_mask_shapes(const char* name, bool projected, int64_t mask_count, int64_t flag_count,
                                    int64_t B, int64_t T, int64_t K) {
  if ((projected && mask_count != B * T * mask_words(K)) || flag_count != B)
    return ffi::Error::InvalidArgument(std::string(name) + ": the x mask must be (B, T, ceil(K / 32)), the flags (B)");
  return ffi::Error::Success();
}

// Whether a neuron starting from refractory counter ref (ms), and set to t_ref after each spike, can never be
// refractory: the forward step's test max(ref - dt, 0) > dt / 2 fails for both, hence for every later counter.
inline bool never_refractory(const float* ref, const float* t_ref, int64_t H, float dt) {
  bool never = true;
  for (int64_t h = 0; h < H; ++h)
    never &= !(std::max(ref[h] - dt, 0.0f) > 0.5f * dt) && !(std::max(t_ref[h] - dt, 0.0f) > 0.5f * dt);
  return never;
}

// The fused leaky-integrator readout (see the top of the file): R (H + 2, O) = [W_out; b_out; tau].
struct Readout {
  const float *w, *b, *tau;
  int64_t O;
  AlignedVector<float> a;  // exp(-dt / tau)
  Readout(const float* r, int64_t H, int64_t n_out, float dt) : w(r), b(r + H * n_out), tau(r + (H + 1) * n_out),
                                                                O(n_out), a(n_out) {
    for (int64_t o = 0; o < O; ++o) a[o] = std::exp(-(1.0f / tau[o]) * dt);
  }
  // I_out,t = b_out + s_t W_out from the spiking neurons of s_t (into cur, O floats)
  void current(const int32_t* spiking, const float* spike_vals, int64_t n, float* cur) const {
    accumulate_rows(cur, b, spiking, spike_vals, n, w, O, O);
  }
  // u <- v_inf + (u - v_inf) a with v_inf = tau I_out,t (mV): one step of the membrane, in place
  void integrate(const float* cur, float* u) const {
    for (int64_t k = 0; k < O; ++k) {
      const float v_inf = tau[k] * cur[k];
      u[k] = v_inf + (u[k] - v_inf) * a[k];
    }
  }
};

// Checks the readout's shapes, R (H + 2, O) and u (B, T, O), and sets O (0 without a readout).
static ffi::Error check_readout_shapes(const char* name, bool readout, ffi::Buffer<ffi::F32>& r, int64_t u_count,
                                       int64_t B, int64_t T, int64_t H, int64_t& O) {
  O = 0;
  if (!readout) return ffi::Error::Success();
  const auto d = r.dimensions();
  if (d.size() != 2 || d[0] != H + 2)
    return ffi::Error::InvalidArgument(std::string(name) + ": the readout parameters must be (H + 2, O)");
  O = d[1];
  if (u_count != B * T * O) return ffi::Error::InvalidArgument(std::string(name) + ": the readout u must be (B, T, O)");
  return ffi::Error::Success();
}

// One step of the readout's reverse sweep for one example, elementwise over the O outputs:
// u_t = v_inf + (u_{t-1} - v_inf) a, v_inf = tau I_out,t. In: dL/du_t from later steps (lam) and from the loss
// (ct_u_t), u_{t-1}, I_out,t. Out: dI_out,t (dio), lam = dL/du_{t-1} via u_t, and the gradients of b_out and
// tau accumulated.
inline void readout_adjoint(const Readout& ro, float dt, const float* __restrict ct_u_t, const float* __restrict u_prev,
                            const float* __restrict cur, float* __restrict lam, float* __restrict dio,
                            float* __restrict db_out, float* __restrict dtau_out) {
  const float* __restrict a_ = ro.a.data();
  const float* __restrict tau_ = ro.tau;
  for (int64_t k = 0; k < ro.O; ++k) {
    const float g = ct_u_t[k] + lam[k], a = a_[k], tau = tau_[k];  // g = dL/du_t
    const float v_inf = tau * cur[k];
    const float g_inf = g * (1.0f - a);        // dL/dv_inf
    const float g_a = g * (u_prev[k] - v_inf);  // dL/da, da/dtau = a dt / tau^2
    dtau_out[k] += g_inf * cur[k] + g_a * a * dt / (tau * tau);
    dio[k] = g_inf * tau;
    db_out[k] += dio[k];
    lam[k] = g * a;
  }
}

// Scratch of one thread for the input current of a step: I_t (H) and the nonzero entries of x_t
// (positions; values, or null where they are all 1).
struct CurrentScratch {
  AlignedVector<float> cur, x_vals;
  AlignedVector<int32_t> x_idx;
  int64_t n_x = 0;
  const float* vals = nullptr;
  CurrentScratch(int64_t H, int64_t K) : cur(H), x_vals(K), x_idx(K + 16) {}  // 16 past K: see decode_mask
};

// I_t = I_ext[t] + s_{t-1} W (rows of W of the neurons that spiked), with I_ext[t] = b_in + x_t W_in
// (rows of W_in of the nonzero x_t) when projected. The nonzero x_t are read from x, or, given the
// row's bit mask (inputs whose nonzero values are all 1, e.g. spikes), from the mask: 22 words instead
// of a 700-float row. Returns a pointer to I_t (into I_ext when it can).
// The nonzero entries of the projected input's row x_t into sc (from the bit mask if given).
inline void input_entries(const LayerInput& in, int64_t row, CurrentScratch& sc, const uint32_t* mask_row) {
  if (mask_row) {
    sc.n_x = decode_mask(mask_row, in.K, sc.x_idx.data());
    sc.vals = nullptr;
  } else {
    sc.n_x = collect_nonzero(in.x + row * in.K, in.K, sc.x_idx.data(), sc.x_vals.data());
    sc.vals = sc.x_vals.data();
  }
}

inline const float* input_current(const LayerInput& in, int64_t row, int64_t H, const int32_t* spiking,
                                  const float* spike_vals, int64_t n_spiking, const float* W, CurrentScratch& sc,
                                  const uint32_t* mask_row = nullptr) {
  float* cur = sc.cur.data();
  if (in.projected) {
    input_entries(in, row, sc, mask_row);
    accumulate_rows(cur, in.b_in, sc.x_idx.data(), sc.vals, sc.n_x, in.w_in, H, H);
    if (n_spiking > 0) accumulate_rows(cur, cur, spiking, spike_vals, n_spiking, W, H, H);
    return cur;
  }
  const float* i_ext = in.x + row * H;
  if (n_spiking == 0) return i_ext;
  accumulate_rows(cur, i_ext, spiking, spike_vals, n_spiking, W, H, H);
  return cur;
}

// out = cur + extra (the current already at the neurons when the sequence starts, added to I_0)
inline const float* add_rows(const float* __restrict cur, const float* __restrict extra, float* __restrict out,
                             int64_t H) {
  for (int64_t h = 0; h < H; ++h) out[h] = cur[h] + extra[h];
  return out;
}

// With a subtractive reset, I_t can be recovered from the stored membrane instead of being summed again
// from the rows of W_in and W: v_new = v_t + s_t (v_th - v_reset), and v_new = v_inf + (v_{t-1} - v_inf) a
// with a = exp(-dt / tau_m) gives v_inf = (v_new - a v_{t-1}) / (1 - a), I_t = g_L v_inf - g_L v_rest.
// The division amplifies the rounding of v by 1 / (1 - a): used only where that stays below
// kMaxAmplification (10.5 for tau_m = 10 dt; 100 is about tau_m = 100 dt), otherwise the sum is recomputed.
// For refractory neurons the value is unused (their integration is frozen) and stays finite.
constexpr float kMaxAmplification = 100.0f;

struct RecoverConsts {
  AlignedVector<float> inv_one_minus_a, g_l;
  bool usable = true;
  RecoverConsts(const StepConsts& c, int64_t H) : inv_one_minus_a(H), g_l(H) {
    for (int64_t h = 0; h < H; ++h) {
      const float one_minus_a = 1.0f - c.decay[h];
      usable = usable && one_minus_a * kMaxAmplification >= 1.0f;
      inv_one_minus_a[h] = 1.0f / one_minus_a;
      g_l[h] = 1.0f / c.inv_gl[h];
    }
  }
};

inline void recover_current(int64_t H, const StepConsts& c, const RecoverConsts& r, const float* __restrict s_t,
                            const float* __restrict v_t, const float* __restrict v_prev, float* __restrict cur) {
  const float* __restrict jump = c.jump.data();
  const float* __restrict decay = c.decay.data();
  const float* __restrict vrest_gl = c.vrest_gl.data();
  const float* __restrict inv = r.inv_one_minus_a.data();
  const float* __restrict g_l = r.g_l.data();
  for (int64_t h = 0; h < H; ++h) {
    const float v_new = v_t[h] + s_t[h] * jump[h];
    const float v_inf = (v_new - decay[h] * v_prev[h]) * inv[h];
    cur[h] = g_l[h] * v_inf - vrest_gl[h];
  }
}

// Checks the adaptive neurons' buffers: z0 (B, 2, H) and the per-step w and theta (B, T, H) each.
static ffi::Error check_adaptive_shapes(const char* name, bool adaptive, int64_t z0_count, int64_t w_count,
                                        int64_t th_count, int64_t B, int64_t T, int64_t H) {
  if (adaptive && (z0_count != B * 2 * H || w_count != B * T * H || th_count != B * T * H))
    return ffi::Error::InvalidArgument(std::string(name) + ": adaptive neurons need z0 (B, 2, H), W and Theta (B, T, H)");
  return ffi::Error::Success();
}

// recover_current for adaptive neurons: the threshold of step t is v_th + theta_{t-1} exp(-dt / tau_theta), and
// the membrane integrated I_t - w_{t-1}, so I_t = g_L v_inf - g_L v_rest + w_{t-1}.
inline void recover_current_adaptive(int64_t H, const StepConsts& c, const RecoverConsts& r, const AdaptConsts& ac,
                                     const float* __restrict s_t, const float* __restrict v_t,
                                     const float* __restrict v_prev, const float* __restrict w_prev,
                                     const float* __restrict th_prev, float* __restrict cur) {
  const float* __restrict vth = c.vth.data();
  const float* __restrict vreset = c.vreset.data();
  const float* __restrict decay = c.decay.data();
  const float* __restrict vrest_gl = c.vrest_gl.data();
  const float* __restrict dth = ac.dth.data();
  const float* __restrict inv = r.inv_one_minus_a.data();
  const float* __restrict g_l = r.g_l.data();
  for (int64_t h = 0; h < H; ++h) {
    const float jump = (vth[h] + th_prev[h] * dth[h]) - vreset[h];
    const float v_new = v_t[h] + s_t[h] * jump;
    const float v_inf = (v_new - decay[h] * v_prev[h]) * inv[h];
    cur[h] = (g_l[h] * v_inf - vrest_gl[h]) + w_prev[h];
  }
}

static ffi::Error LifForwardImpl(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> w_in, ffi::Buffer<ffi::F32> b_in,
                                 ffi::Buffer<ffi::F32> v0, ffi::Buffer<ffi::F32> ref0, ffi::Buffer<ffi::F32> i0,
                                 ffi::Buffer<ffi::F32> z0, ffi::Buffer<ffi::F32> w, ffi::Buffer<ffi::F32> p,
                                 ffi::Buffer<ffi::F32> r, float dt, int64_t subtract, int64_t recurrent,
                                 int64_t projected, int64_t readout, int64_t adaptive, int64_t synaptic,
                                 ffi::ResultBuffer<ffi::F32> s_out, ffi::ResultBuffer<ffi::F32> v_out,
                                 ffi::ResultBuffer<ffi::F32> u_out, ffi::ResultBuffer<ffi::F32> w_out,
                                 ffi::ResultBuffer<ffi::F32> th_out, ffi::ResultBuffer<ffi::F32> g_out,
                                 ffi::ResultBuffer<ffi::U8> frozen_out,
                                 ffi::ResultBuffer<ffi::U32> x_mask_out, ffi::ResultBuffer<ffi::U32> flags_out,
                                 ffi::ResultBuffer<ffi::U32> s_bits_out) {
  int64_t B, T, H;
  LayerInput in;
  if (auto err = check_layer_shapes("lif_forward", x, w_in, b_in, w, p, recurrent, projected, adaptive, synaptic, B,
                                    T, H, in);
      !err.success())
    return err;
  if (synaptic && g_out->element_count() != B * T * H)
    return ffi::Error::InvalidArgument("lif_forward: the synaptic current G must be (B, T, H)");
  const SynapseConsts syn(synaptic ? p.typed_data() + (param_rows(adaptive, true) - 1) * H : nullptr,
                          synaptic ? H : 0, dt);
  float* GS = g_out->typed_data();
  if (auto err = check_adaptive_shapes("lif_forward", adaptive, z0.element_count(), w_out->element_count(),
                                       th_out->element_count(), B, T, H);
      !err.success())
    return err;
  const Params P(p.typed_data(), H);
  const StepConsts consts(P, H, dt);
  const AdaptConsts adapt(adaptive ? p.typed_data() : nullptr, adaptive ? H : 0, dt);
  float *WT = w_out->typed_data(), *THT = th_out->typed_data();
  const float* W = w.typed_data();
  float *S = s_out->typed_data(), *V = v_out->typed_data();
  const int64_t HW = mask_words(H);  // words of a row of the spikes' bit mask
  if (s_bits_out->element_count() != B * T * HW)
    return ffi::Error::InvalidArgument("lif_forward: the spike bits must be (B, T, ceil(H / 32))");
  uint32_t* SB = s_bits_out->typed_data();
  uint8_t* FZ = frozen_out->typed_data();
  const int64_t MW = mask_words(in.K);
  if (auto err = check_mask_shapes("lif_forward", projected, x_mask_out->element_count(),
                                   flags_out->element_count(), B, T, in.K);
      !err.success())
    return err;
  uint32_t *XM = x_mask_out->typed_data(), *XB = flags_out->typed_data();
  int64_t O;
  if (auto err = check_readout_shapes("lif_forward", readout, r, u_out->element_count(), B, T, H, O); !err.success())
    return err;
  const Readout ro(r.typed_data(), H, O, dt);
  float* U = u_out->typed_data();

  // The threads claim examples one at a time (an example's outputs do not depend on which thread runs it),
  // so that a thread slowed down by other work on its CPU runs fewer of them. Each example's input masks
  // are made first, by one thread: state 0 = to do, 1 = being made, 2 = made.
  std::atomic<int64_t> next_example{0};
  std::unique_ptr<std::atomic<uint8_t>[]> mask_state(new std::atomic<uint8_t>[B]);
  AlignedVector<uint8_t> binary(B, 1);  // every nonzero x of the example is 1
  for (int64_t b = 0; b < B; ++b) mask_state[b].store(projected ? 0 : 2, std::memory_order_relaxed);
  // (kAdaptive a compile-time constant, as in the backward pass)
  auto sweep = [&](auto adaptive_tag, int64_t b0, int64_t b1) {
    constexpr bool kAdaptive = decltype(adaptive_tag)::value;
    AlignedVector<float> v(H), ref(H), u(O), cur_out(O);
    AlignedVector<float> wa(kAdaptive ? H : 0), tha(kAdaptive ? H : 0), w_row(kAdaptive ? H : 0), th_row(kAdaptive ? H : 0);
    AlignedVector<float> g(synaptic ? H : 0);  // the synaptic current G
    AlignedVector<int32_t> spiking(H + 16);  // neurons that spiked in the previous step (16 past H: see decode_mask)
    CurrentScratch scratch(H, in.K);
    AlignedVector<uint8_t> fz_unused(H);  // the refractory mask of an example that is never refractory
    AlignedVector<float> s_row(H), v_row(H);  // this step's spikes and membrane, streamed to S and V
    AlignedVector<float> first(H);  // I_0, which includes i0
    // The bit masks of x's rows of example b (unless another thread makes or made them)
    auto make_masks = [&](int64_t b) {
      uint8_t todo = 0;
      if (!mask_state[b].compare_exchange_strong(todo, 1, std::memory_order_acquire)) return;
      bool ones = true;
      for (int64_t t = 0; t < T; ++t) ones &= mask_of_row(in.x + (b * T + t) * in.K, in.K, XM + (b * T + t) * MW);
      binary[b] = ones;
      mask_state[b].store(2, std::memory_order_release);
    };
    // First the masks of this thread's half of the batch, in one streaming pass over x: the sweep then reads
    // the masks (22 words a row for 700 inputs) and x's megabytes no longer evict the rows of W_in from the
    // cache while the sweep sums them. Inputs that are not all 0 or 1 are read from x in the sweep.
    for (int64_t b = b0; b < b1; ++b) make_masks(b);
    for (int64_t b; (b = next_example.fetch_add(1, std::memory_order_relaxed)) < B;) {
      make_masks(b);
      while (mask_state[b].load(std::memory_order_acquire) != 2) brainsim::cpu_pause();  // the other thread's
      std::memcpy(v.data(), v0.typed_data() + b * H, sizeof(float) * H);
      std::memcpy(ref.data(), ref0.typed_data() + b * H, sizeof(float) * H);
      if constexpr (kAdaptive) {
        std::memcpy(wa.data(), z0.typed_data() + b * 2 * H, sizeof(float) * H);
        std::memcpy(tha.data(), z0.typed_data() + b * 2 * H + H, sizeof(float) * H);
      }
      const bool never = never_refractory(ref.data(), P.tref, H, dt);
      std::fill(u.begin(), u.end(), 0.0f);
      std::fill(g.begin(), g.end(), 0.0f);
      int64_t n_spiking = 0;  // no spikes before the sequence: what they sent is in i0
      const float* vals = nullptr;  // the spikes are 1
      const bool ones = projected && binary[b];  // the sweep and the backward pass read x's mask only
      for (int64_t t = 0; t < T; ++t) {
        const int64_t o = (b * T + t) * H;
        const float* current = input_current(in, b * T + t, H, spiking.data(), vals, n_spiking, W,
                                              scratch, ones ? XM + (b * T + t) * MW : nullptr);
        if (t == 0) current = add_rows(current, i0.typed_data() + b * H, first.data(), H);
        if (synaptic) {  // G_t = G_{t-1} exp(-dt / tau_syn) + I_t drives the membrane
          synapse_step(H, syn, current, g.data());
          stream_row(GS + (b * T + t) * H, g.data(), H);
          current = g.data();
        }
        uint8_t* fz_t = never ? fz_unused.data() : FZ + o;
        if constexpr (kAdaptive) {
          (subtract ? forward_step_adaptive<true> : forward_step_adaptive<false>)(
              H, dt, consts, adapt, P.vrest, current, v.data(), ref.data(), wa.data(), tha.data(), s_row.data(),
              v_row.data(), fz_t, w_row.data(), th_row.data());
          stream_row(WT + o, w_row.data(), H);
          stream_row(THT + o, th_row.data(), H);
        } else if (subtract) {
          forward_step<true>(H, dt, consts, current, v.data(), ref.data(), s_row.data(), v_row.data(), fz_t);
        } else {
          forward_step<false>(H, dt, consts, current, v.data(), ref.data(), s_row.data(), v_row.data(), fz_t);
        }
        stream_row(S + o, s_row.data(), H);
        mask_of_row(s_row.data(), H, SB + (b * T + t) * HW);  // the spikes' bits, for the backward pass
        stream_row(V + o, v_row.data(), H);
        if (!recurrent && !readout) continue;
        // the spiking neurons from the bits just made, not from a second pass over s_row
        const int64_t n_now = decode_mask(SB + (b * T + t) * HW, H, spiking.data());
        n_spiking = recurrent ? n_now : 0;
        vals = nullptr;
        if (readout) {
          ro.current(spiking.data(), nullptr, n_now, cur_out.data());
          ro.integrate(cur_out.data(), u.data());
          std::memcpy(U + (b * T + t) * O, u.data(), sizeof(float) * O);
        }
      }
      XB[b] = (ones ? kBinaryInput : 0) | (never ? kNeverRefractory : 0);
    }
#if defined(__AVX512F__)
    _mm_sfence();  // the streamed rows are visible before the kernel returns
#endif
  };
  const int64_t work = T * (H + (in.projected ? in.K : 0)) * 8;
  if (adaptive) {
    parallel_over_batch(B, work, [&](int64_t, int64_t b0, int64_t b1) { sweep(std::true_type{}, b0, b1); });
  } else {
    parallel_over_batch(B, work, [&](int64_t, int64_t b0, int64_t b1) { sweep(std::false_type{}, b0, b1); });
  }
  return ffi::Error::Success();
}

static ffi::Error LifBackwardImpl(ffi::Buffer<ffi::F32> ct_s, ffi::Buffer<ffi::F32> ct_v, ffi::Buffer<ffi::F32> ct_u,
                                  ffi::Buffer<ffi::F32> ct_w, ffi::Buffer<ffi::F32> ct_th, ffi::Buffer<ffi::F32> ct_g,
                                  ffi::Buffer<ffi::U32> s_bits, ffi::Buffer<ffi::F32> v_res, ffi::Buffer<ffi::F32> u_res,
                                  ffi::Buffer<ffi::F32> w_res, ffi::Buffer<ffi::F32> th_res, ffi::Buffer<ffi::F32> g_res,
                                  ffi::Buffer<ffi::U8> frozen_res, ffi::Buffer<ffi::U32> x_mask,
                                  ffi::Buffer<ffi::U32> flags, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> w_in,
                                  ffi::Buffer<ffi::F32> b_in, ffi::Buffer<ffi::F32> v0, ffi::Buffer<ffi::F32> i0,
                                  ffi::Buffer<ffi::F32> z0, ffi::Buffer<ffi::F32> w, ffi::Buffer<ffi::F32> p,
                                  ffi::Buffer<ffi::F32> r, float dt, int64_t subtract, int64_t recurrent,
                                  int64_t projected, int64_t readout, int64_t adaptive, int64_t synaptic,
                                  int64_t surrogate_kind, float slope, int64_t ct_s_zero, int64_t ct_v_zero,
                                  int64_t ct_a_zero, int64_t ct_g_zero, int64_t write_di, ffi::ResultBuffer<ffi::F32> d_i, ffi::ResultBuffer<ffi::F32> d_w_in,
                                  ffi::ResultBuffer<ffi::F32> d_b_in, ffi::ResultBuffer<ffi::F32> d_v0,
                                  ffi::ResultBuffer<ffi::F32> d_i0, ffi::ResultBuffer<ffi::F32> d_z0,
                                  ffi::ResultBuffer<ffi::F32> d_w,
                                  ffi::ResultBuffer<ffi::F32> d_p, ffi::ResultBuffer<ffi::F32> d_r) {
  int64_t B, T, H;
  LayerInput in;
  if (auto err = check_layer_shapes("lif_backward", x, w_in, b_in, w, p, recurrent, projected, adaptive, synaptic, B,
                                    T, H, in);
      !err.success())
    return err;
  if (synaptic && (g_res.element_count() != B * T * H || (!ct_g_zero && ct_g.element_count() != B * T * H)))
    return ffi::Error::InvalidArgument("lif_backward: G and ct_G must be (B, T, H)");
  if (auto err = check_adaptive_shapes("lif_backward", adaptive, z0.element_count(), w_res.element_count(),
                                       th_res.element_count(), B, T, H);
      !err.success())
    return err;
  if (adaptive && !ct_a_zero && (ct_w.element_count() != B * T * H || ct_th.element_count() != B * T * H))
    return ffi::Error::InvalidArgument("lif_backward: ct_W and ct_Theta must be (B, T, H)");
  if (adaptive && d_z0->element_count() != B * 2 * H)
    return ffi::Error::InvalidArgument("lif_backward: dz0 must be (B, 2, H)");
  const int64_t n_rows = param_rows(adaptive, synaptic);  // of P and dP
  const SynapseConsts syn(synaptic ? p.typed_data() + (n_rows - 1) * H : nullptr, synaptic ? H : 0, dt);
  const float *GR = g_res.typed_data(), *CG = ct_g.typed_data();
  const auto d = v_res.dimensions();
  if (d.size() != 3 || d[0] != B || d[1] != T || d[2] != H)
    return ffi::Error::InvalidArgument("lif_backward: residuals must be (B, T, H)");
  const int64_t HW = mask_words(H);  // words of a row of the spikes' bit mask
  if (s_bits.element_count() != B * T * HW)
    return ffi::Error::InvalidArgument("lif_backward: the spike bits must be (B, T, ceil(H / 32))");
  const uint32_t* SB = s_bits.typed_data();
  if (!ct_s_zero && ct_s.element_count() != B * T * H)
    return ffi::Error::InvalidArgument("lif_backward: ct_S must be (B, T, H)");
  if (!ct_v_zero && ct_v.element_count() != B * T * H)
    return ffi::Error::InvalidArgument("lif_backward: ct_V must be (B, T, H)");
  int64_t O;
  if (auto err = check_readout_shapes("lif_backward", readout, r, u_res.element_count(), B, T, H, O); !err.success())
    return err;
  if (readout && (ct_u.element_count() != B * T * O || d_r->element_count() != (H + 2) * O))
    return ffi::Error::InvalidArgument("lif_backward: ct_u must be (B, T, O) and dR (H + 2, O)");
  const Readout ro(r.typed_data(), H, O, dt);
  if (write_di && d_i->element_count() != B * T * H)
    return ffi::Error::InvalidArgument("lif_backward: dI must be (B, T, H)");
  if (projected && (d_w_in->element_count() != 2 * in.K * H || d_b_in->element_count() != H))
    return ffi::Error::InvalidArgument("lif_backward: dW_in must be (2, K, H) and db_in (H)");
  if (recurrent && d_w->element_count() != 2 * H * H)
    return ffi::Error::InvalidArgument("lif_backward: dW must be (2, H, H)");
  const int64_t MW = mask_words(in.K);
  if (auto err = check_mask_shapes("lif_backward", projected, x_mask.element_count(), flags.element_count(), B, T,
                                   in.K);
      !err.success())
    return err;
  const uint32_t *XM = x_mask.typed_data(), *XB = flags.typed_data();
  const Params P(p.typed_data(), H);
  const StepConsts step_consts(P, H, dt);
  const RecoverConsts recover_consts(step_consts, H);
  const bool recover = subtract && recover_consts.usable;  // I_t from v_t (see recover_current)
  const AdaptConsts adapt(adaptive ? p.typed_data() : nullptr, adaptive ? H : 0, dt);
  const float *CW = ct_w.typed_data(), *CTH = ct_th.typed_data(), *WR = w_res.typed_data(), *THR = th_res.typed_data();
  const float *CS = ct_s.typed_data(), *CV = ct_v.typed_data(), *V = v_res.typed_data();
  const uint8_t* FZ = frozen_res.typed_data();
  const float* W = w.typed_data();
  float* DI = d_i->typed_data();
  const int64_t K = in.K;

  // per-thread accumulators of the shared-parameter gradients, summed at the end. dW_in and dW are returned
  // as the two threads' parts, (2, K, H) and (2, H, H): their sum is left to XLA, which fuses it into the
  // optimizer's update (run in parallel) instead of a serial pass here.
  AlignedVector<float> dp_part[2], db_part[2], dr_part[2];
  bool ran[2] = {false, false};
  for (int i = 0; i < 2; ++i) {
    dp_part[i].assign(n_rows * H, 0.0f);
    db_part[i].assign(projected ? H : 0, 0.0f);
    dr_part[i].assign((H + 2) * O, 0.0f);
  }

  // per-neuron constants of the adjoint update
  // (1 / |v_th - v_reset| and v_th - v_reset are the forward step's own, step_consts)
  AlignedVector<float> decay(H), tau_cm(H), inv_cm(H), tau_cm2(H), ddecay_dtau(H), sign_d(H);
  for (int64_t h = 0; h < H; ++h) {
    const float tau = P.tau[h], cm = P.cm[h], diff = P.vth[h] - P.vreset[h];
    decay[h] = std::exp(-dt / tau);
    tau_cm[h] = tau / cm;
    inv_cm[h] = 1.0f / cm;
    tau_cm2[h] = tau / (cm * cm);
    ddecay_dtau[h] = decay[h] * dt / (tau * tau);
    sign_d[h] = diff > 0.0f ? 1.0f : (diff < 0.0f ? -1.0f : 0.0f);
  }
  if (surrogate_kind < 0 || surrogate_kind >= kSurrogates)
    return ffi::Error::InvalidArgument("lif_backward: unknown surrogate");
  const AdjointFn adjoint = kAdjointSteps[subtract ? 1 : 0][surrogate_kind];
  const AdaptiveAdjointFn adaptive_adjoint = kAdaptiveAdjointSteps[subtract ? 1 : 0][surrogate_kind];
  const AdjointConsts consts{P.vth, P.vreset, P.vrest, step_consts.inv_d.data(), sign_d.data(),
                             step_consts.jump.data(), decay.data(), tau_cm.data(), inv_cm.data(), tau_cm2.data(),
                             ddecay_dtau.data()};
  const AlignedVector<float> zeros(H, 0.0f);  // ct_S or ct_V when S or V has no cotangent

  // All examples of a thread's share of the batch step back in time together, so that each row of W^T
  // is loaded once per step and reused for every example in the recurrent adjoint.
  // (kAdaptive is a compile-time constant, so that the plain-LIF sweep is compiled without the adaptive code)
  auto sweep = [&](auto adaptive_tag, int64_t thread, int64_t b0, int64_t b1) {
    constexpr bool kAdaptive = decltype(adaptive_tag)::value;
    ran[thread] = true;
    float* dW = recurrent ? d_w->typed_data() + thread * H * H : nullptr;
    if (recurrent) std::memset(dW, 0, sizeof(float) * H * H);
    float* dP = dp_part[thread].data();
    float* dB = db_part[thread].data();
    float* dW_in = projected ? d_w_in->typed_data() + thread * K * H : nullptr;
    if (projected) std::memset(dW_in, 0, sizeof(float) * K * H);
    // this thread's copies, made in parallel: [W^T; W_out^T] ((H + O) x H; either part only if the layer has
    // it), as the spikes' cotangent via step t+1's recurrent input and via the readout at t is one product
    // [dI_{t+1}, dI_out,t] [W^T; W_out^T]; and its examples' ct_u and u time-major, (T, nb, O), as the sweep
    // reads them for every example at a step
    AlignedVector<float> wt((recurrent ? H : 0) * H + (readout ? O * H : 0));
    float* wout_part = wt.data() + (recurrent ? H * H : 0);
    if (recurrent) transpose(W, H, H, wt.data());
    if (readout) transpose(ro.w, H, O, wout_part);
    const int64_t nb = b1 - b0;
    AlignedVector<float> cu_tm(readout ? T * nb * O : 0), u_tm(readout ? T * nb * O : 0);
    for (int64_t b = b0; b < (readout ? b1 : b0); ++b)
      for (int64_t t = 0; t < T; ++t) {
        std::memcpy(cu_tm.data() + (t * nb + b - b0) * O, ct_u.typed_data() + (b * T + t) * O, sizeof(float) * O);
        std::memcpy(u_tm.data() + (t * nb + b - b0) * O, u_res.typed_data() + (b * T + t) * O, sizeof(float) * O);
      }
    const float *CU = cu_tm.data(), *U = u_tm.data();
    float *g_tau = dP, *g_cm = dP + H, *g_vrest = dP + 2 * H, *g_vth = dP + 3 * H, *g_vreset = dP + 4 * H;
    AlignedVector<float> gv_all(nb * H, 0.0f);   // dL/dv_t through step t+1, per example
    AlignedVector<float> rec_all(nb * H, 0.0f);  // dL/ds_t via step t+1's recurrent input and the readout at t
    // per example, dL/dI_t of this step (H) then the readout's dL/dI_out,t-1 (O): the rows of the product above
    // (padded to whole cache lines)
    const int64_t LDA = H + (O + 15) / 16 * 16;
    AlignedVector<float> di_all(nb * LDA);
    AlignedVector<float> s_rows(nb * H), cur_rows(nb * H), fz_rows(nb * H);  // s_t (from its bits), I_t, refractory
    AlignedVector<AdjointRows> rows(nb);
    AlignedVector<AdaptRows> arows(kAdaptive ? nb : 0);
    AlignedVector<float> gw_all(kAdaptive ? nb * H : 0, 0.0f), gth_all(kAdaptive ? nb * H : 0, 0.0f);  // dL/dw_t, dL/dtheta_t
    AlignedVector<float> gsyn_all(synaptic ? nb * H : 0, 0.0f);  // dL/dG_{t+1}
    AlignedVector<int32_t> spiking(H + 16);        // 16 past H: see decode_mask
    // the spiking neurons of s_{t-1} per example, decoded at step t for dW and kept for the readout at step t - 1
    // (where they are s_t), so that each spike row is decoded once
    const int64_t LW = H + 16;
    AlignedVector<int32_t> lists(nb * LW);
    AlignedVector<int64_t> list_n(nb, -1);  // -1: not decoded yet
    CurrentScratch scratch(H, K);
    // the readout: dL/du_t through u_{t+1} per example, and I_out,t (recomputed from the spikes)
    AlignedVector<float> lam_all(nb * O, 0.0f), cur_out(O);
    const AlignedVector<float> zeros_o(O, 0.0f);  // u_{-1}
    float *dW_out = dr_part[thread].data(), *db_out = dW_out + H * O, *dtau_out = db_out + O;
    // the readout's reverse step at t for every example of this thread (it does not depend on the layer's
    // adjoint, so it runs a step ahead of it): dI_out,t into the rows' last O entries
    auto readout_step = [&](int64_t t) {
      for (int64_t b = b0; b < b1; ++b) {
        // u_t = v_inf + (u_{t-1} - v_inf) a, v_inf = tau I_out,t, a = exp(-dt / tau), I_out,t = b_out + s_t W_out
        int32_t* now = lists.data() + (b - b0) * LW;  // s_t's spiking neurons (spikes are 1)
        const int64_t n_now = list_n[b - b0] >= 0 ? list_n[b - b0] : decode_mask(SB + (b * T + t) * HW, H, now);
        ro.current(now, nullptr, n_now, cur_out.data());
        float* dio = di_all.data() + (b - b0) * LDA + H;
        readout_adjoint(ro, dt, CU + (t * nb + b - b0) * O, t > 0 ? U + ((t - 1) * nb + b - b0) * O : zeros_o.data(),
                        cur_out.data(), lam_all.data() + (b - b0) * O, dio, db_out, dtau_out);
        scatter_rows(dW_out, O, now, nullptr, n_now, dio, O);  // dW_out += s_t^T dI_out,t
      }
    };
    if (readout) {  // dL/ds_{T-1} = dI_out,T-1 W_out^T
      readout_step(T - 1);
      gemm(di_all.data() + H, LDA, 1, nb, wout_part, O, H, rec_all.data(), H);
    }
    for (int64_t t = T - 1; t >= 0; --t) {
      // the adjoint step's rows of every example of this thread (s_t and I_t made here), then the step for all
      // examples at once, then the weight gradients of each example
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t e = b - b0, o = (b * T + t) * H;
        const float* v_prev = t > 0 ? V + o - H : v0.typed_data() + b * H;
        float* s_t = s_rows.data() + e * H;
        expand_bits(SB + (b * T + t) * HW, H, s_t);
        const float* cv_t = ct_v_zero ? zeros.data() : CV + o;
        const float* cs_t = ct_s_zero ? zeros.data() : CS + o;  // (the readout's part is in rec)
        const float* fz_t = zeros.data();
        if (!(XB[b] & kNeverRefractory)) {
          float* fz = fz_rows.data() + e * H;
          for (int64_t h = 0; h < H; ++h) fz[h] = FZ[o + h] != 0 ? 1.0f : 0.0f;
          fz_t = fz;
        }
        {  // the rows of the next example (or of the first example at t - 1) are 100s of kB away
          const int64_t bn = b + 1 < b1 ? b + 1 : b0, tn = b + 1 < b1 ? t : t - 1;
          if (tn >= 0) {
            const int64_t on = (bn * T + tn) * H, row = sizeof(float) * H;
            prefetch_range(V + on - (tn > 0 ? H : 0), tn > 0 ? 2 * row : row);
            if (!(XB[bn] & kNeverRefractory)) prefetch_range(FZ + on, H);
            if (projected && (XB[bn] & kBinaryInput)) {
              prefetch_range(XM + (bn * T + tn) * MW, sizeof(uint32_t) * MW);
            } else if (projected) {
              prefetch_range(in.x + (bn * T + tn) * K, sizeof(float) * K);
            }
            if (!ct_s_zero) prefetch_range(CS + on, row);
            if (!ct_v_zero) prefetch_range(CV + on, row);
            if (write_di) prefetch_range<1>(DI + on, row);
          }
        }
        // s_{t-1}'s spikes (1); none before the sequence (what they sent is in i0)
        int64_t n_spiking = 0;
        const int32_t* prev = spiking.data();
        if (recurrent && t > 0) {
          int32_t* list = lists.data() + e * LW;
          n_spiking = list_n[e] = decode_mask(SB + (b * T + t - 1) * HW, H, list);
          prev = list;
        }
        // I_t, recovered from v_t or recomputed (v_new is recomputed from it inside the adjoint step)
        float* cur = cur_rows.data() + e * H;
        const float* cur_t = cur;
        const float* z = kAdaptive ? z0.typed_data() + b * 2 * H : nullptr;  // w_{-1}, theta_{-1}
        const float* w_prev = kAdaptive ? (t > 0 ? WR + o - H : z) : nullptr;
        const float* th_prev = kAdaptive ? (t > 0 ? THR + o - H : z + H) : nullptr;
        if (synaptic) {  // the membrane integrated G_t, kept by the forward pass
          cur_t = GR + o;
        } else if (recover) {
          if constexpr (kAdaptive) {
            recover_current_adaptive(H, step_consts, recover_consts, adapt, s_t, V + o, v_prev, w_prev, th_prev, cur);
          } else {
            recover_current(H, step_consts, recover_consts, s_t, V + o, v_prev, cur);
          }
        } else {
          const uint32_t* mask_row = projected && (XB[b] & kBinaryInput) ? XM + (b * T + t) * MW : nullptr;
          cur_t = input_current(in, b * T + t, H, prev, nullptr, n_spiking, W, scratch, mask_row);
          if (t == 0) {
            cur_t = add_rows(cur_t, i0.typed_data() + b * H, cur, H);
          } else if (cur_t == scratch.cur.data()) {  // the scratch is reused by the next example
            std::memcpy(cur, cur_t, sizeof(float) * H);
            cur_t = cur;
          }
        }
        rows[e] = AdjointRows{s_t, cur_t, fz_t, cs_t, cv_t, v_prev, rec_all.data() + e * H, gv_all.data() + e * H,
                              di_all.data() + e * LDA};
        if constexpr (kAdaptive) {
          arows[e] = AdaptRows{w_prev, th_prev, ct_a_zero ? zeros.data() : CW + o,
                               ct_a_zero ? zeros.data() : CTH + o, gw_all.data() + e * H, gth_all.data() + e * H};
        }
      }
      if constexpr (kAdaptive) {
        adaptive_adjoint(H, nb, consts, step_consts, adapt, slope, rows.data(), arows.data(), dP);
      } else {
        adjoint(H, nb, consts, step_consts, slope, rows.data(), g_tau, g_cm, g_vrest, g_vth, g_vreset);
      }
      if (synaptic) {  // dL/dG_t from the neurons becomes dL/dI_t (G_t = G_{t-1} d + I_t)
        for (int64_t b = b0; b < b1; ++b) {
          const int64_t e = b - b0, o = (b * T + t) * H;
          synapse_adjoint(H, syn, GR + o, ct_g_zero ? zeros.data() : CG + o, di_all.data() + e * LDA,
                          gsyn_all.data() + e * H, dP + (n_rows - 1) * H);
        }
      }
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t e = b - b0;
        const float* dI = di_all.data() + e * LDA;
        if (write_di) std::memcpy(DI + (b * T + t) * H, dI, sizeof(float) * H);
        // I_t = ... + s_{t-1} W: dW += s_{t-1}^T dI_t (rows of neurons that spiked; dI_t held in registers)
        if (recurrent && t > 0) {
          if (list_n[e] > 0) scatter_rows(dW, H, lists.data() + e * LW, nullptr, list_n[e], dI, H);
        }
        if (t == 0) std::memcpy(d_i0->typed_data() + b * H, dI, sizeof(float) * H);  // I_0 = ... + i0
        if (projected) {  // I_ext[t] = b_in + x_t W_in: db_in += dI_t, dW_in += x_t^T dI_t (nonzero x_t)
          const uint32_t* mask_row = XB[b] & kBinaryInput ? XM + (b * T + t) * MW : nullptr;
          input_entries(in, b * T + t, scratch, mask_row);
          axpy(dB, 1.0f, dI, H);
          scatter_rows(dW_in, H, scratch.x_idx.data(), scratch.vals, scratch.n_x, dI, H);
        }
      }
      // dL/ds_{t-1} = dI_t W^T (via step t) + dI_out,t-1 W_out^T (via the readout) for every example, rows of
      // [W^T; W_out^T] reused across examples:
      //   rec[b, k] = sum_n dI[b, t, n] W[k, n] + sum_o dI_out[b, t-1, o] W_out[k, o]
      if (readout && t > 0) readout_step(t - 1);
      const bool with_readout = readout && t > 0;
      if (recurrent) {
        gemm_slabs(di_all.data(), LDA, 1, nb, wt.data(), with_readout ? H + O : H, H, rec_all.data(), H);
      } else if (with_readout) {
        gemm(di_all.data() + H, LDA, 1, nb, wout_part, O, H, rec_all.data(), H);
      }
    }
    for (int64_t b = b0; b < b1; ++b) {
      std::memcpy(d_v0->typed_data() + b * H, gv_all.data() + (b - b0) * H, sizeof(float) * H);
      if constexpr (kAdaptive) {
        std::memcpy(d_z0->typed_data() + b * 2 * H, gw_all.data() + (b - b0) * H, sizeof(float) * H);
        std::memcpy(d_z0->typed_data() + b * 2 * H + H, gth_all.data() + (b - b0) * H, sizeof(float) * H);
      }
    }
  };
  const int64_t work = T * (H + (projected ? K : 0)) * (recurrent ? H / 4 + 8 : 8);
  if (adaptive) {
    parallel_over_batch(B, work, [&](int64_t thread, int64_t b0, int64_t b1) { sweep(std::true_type{}, thread, b0, b1); });
  } else {
    parallel_over_batch(B, work, [&](int64_t thread, int64_t b0, int64_t b1) { sweep(std::false_type{}, thread, b0, b1); });
  }

  if (!ran[1]) {  // one thread ran the whole batch: the second parts are zero
    if (recurrent) std::memset(d_w->typed_data() + H * H, 0, sizeof(float) * H * H);
    if (projected) std::memset(d_w_in->typed_data() + K * H, 0, sizeof(float) * K * H);
  }
  if (!recurrent) std::memset(d_w->typed_data(), 0, sizeof(float) * d_w->element_count());
  float* dp_out = d_p->typed_data();
  for (int64_t j = 0; j < n_rows * H; ++j) dp_out[j] = dp_part[0][j] + dp_part[1][j];
  if (readout) {
    float* dr_out = d_r->typed_data();
    for (int64_t j = 0; j < (H + 2) * O; ++j) dr_out[j] = dr_part[0][j] + dr_part[1][j];
  }
  if (projected) {
    float* db_out = d_b_in->typed_data();
    for (int64_t j = 0; j < H; ++j) db_out[j] = db_part[0][j] + db_part[1][j];
  }
  return ffi::Error::Success();
}

XLA_FFI_DEFINE_HANDLER_SYMBOL(BrainsimLifForward, LifForwardImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()  // I_ext (B, T, H) or x (B, T, K)
                                  .Arg<ffi::Buffer<ffi::F32>>()  // W_in (K, H) or a dummy
                                  .Arg<ffi::Buffer<ffi::F32>>()  // b_in (H) or a dummy
                                  .Arg<ffi::Buffer<ffi::F32>>()  // v0 (B, H)
                                  .Arg<ffi::Buffer<ffi::F32>>()  // ref0 (B, H)
                                  .Arg<ffi::Buffer<ffi::F32>>()  // i0 (B, H)
                                  .Arg<ffi::Buffer<ffi::F32>>()  // z0 = [w_0; theta_0] (B, 2, H) or a dummy
                                  .Arg<ffi::Buffer<ffi::F32>>()  // W (H, H) or a dummy
                                  .Arg<ffi::Buffer<ffi::F32>>()  // P (param_rows(adaptive, synaptic), H)
                                  .Arg<ffi::Buffer<ffi::F32>>()  // R (H + 2, O) or a dummy
                                  .Attr<float>("dt")
                                  .Attr<int64_t>("subtract")
                                  .Attr<int64_t>("recurrent")
                                  .Attr<int64_t>("projected")
                                  .Attr<int64_t>("readout")
                                  .Attr<int64_t>("adaptive")
                                  .Attr<int64_t>("synaptic")
                                  .Ret<ffi::Buffer<ffi::F32>>()  // S
                                  .Ret<ffi::Buffer<ffi::F32>>()  // V
                                  .Ret<ffi::Buffer<ffi::F32>>()  // u (B, T, O) or a dummy
                                  .Ret<ffi::Buffer<ffi::F32>>()  // W: w after each step (B, T, H) or a dummy
                                  .Ret<ffi::Buffer<ffi::F32>>()  // Theta: theta after each step (B, T, H) or a dummy
                                  .Ret<ffi::Buffer<ffi::F32>>()  // G: the synaptic current of each step (B, T, H) or a dummy
                                  .Ret<ffi::Buffer<ffi::U8>>()   // frozen (refractory mask)
                                  .Ret<ffi::Buffer<ffi::U32>>()  // bit mask of x's nonzero entries (B, T, ceil(K/32))
                                  .Ret<ffi::Buffer<ffi::U32>>()   // per-example flags (B), see kBinaryInput
                                  .Ret<ffi::Buffer<ffi::U32>>());  // bit mask of S (B, T, ceil(H/32))

XLA_FFI_DEFINE_HANDLER_SYMBOL(BrainsimLifBackward, LifBackwardImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()  // ct_S (or a dummy if ct_s_zero)
                                  .Arg<ffi::Buffer<ffi::F32>>()  // ct_V (or a dummy if ct_v_zero)
                                  .Arg<ffi::Buffer<ffi::F32>>()  // ct_u (or a dummy without readout)
                                  .Arg<ffi::Buffer<ffi::F32>>()  // ct_W (or a dummy if ct_a_zero)
                                  .Arg<ffi::Buffer<ffi::F32>>()  // ct_Theta (or a dummy if ct_a_zero)
                                  .Arg<ffi::Buffer<ffi::F32>>()  // ct_G (or a dummy if ct_g_zero)
                                  .Arg<ffi::Buffer<ffi::U32>>()  // bit mask of S (B, T, ceil(H/32))
                                  .Arg<ffi::Buffer<ffi::F32>>()  // V
                                  .Arg<ffi::Buffer<ffi::F32>>()  // u
                                  .Arg<ffi::Buffer<ffi::F32>>()  // W (adaptive) or a dummy
                                  .Arg<ffi::Buffer<ffi::F32>>()  // Theta (adaptive) or a dummy
                                  .Arg<ffi::Buffer<ffi::F32>>()  // G (synaptic) or a dummy
                                  .Arg<ffi::Buffer<ffi::U8>>()   // frozen
                                  .Arg<ffi::Buffer<ffi::U32>>()  // x mask
                                  .Arg<ffi::Buffer<ffi::U32>>()  // per-example flags (B)
                                  .Arg<ffi::Buffer<ffi::F32>>()  // I_ext or x
                                  .Arg<ffi::Buffer<ffi::F32>>()  // W_in
                                  .Arg<ffi::Buffer<ffi::F32>>()  // b_in
                                  .Arg<ffi::Buffer<ffi::F32>>()  // v0
                                  .Arg<ffi::Buffer<ffi::F32>>()  // i0
                                  .Arg<ffi::Buffer<ffi::F32>>()  // z0
                                  .Arg<ffi::Buffer<ffi::F32>>()  // W
                                  .Arg<ffi::Buffer<ffi::F32>>()  // P
                                  .Arg<ffi::Buffer<ffi::F32>>()  // R
                                  .Attr<float>("dt")
                                  .Attr<int64_t>("subtract")
                                  .Attr<int64_t>("recurrent")
                                  .Attr<int64_t>("projected")
                                  .Attr<int64_t>("readout")
                                  .Attr<int64_t>("adaptive")
                                  .Attr<int64_t>("synaptic")
                                  .Attr<int64_t>("surrogate")
                                  .Attr<float>("slope")
                                  .Attr<int64_t>("ct_s_zero")
                                  .Attr<int64_t>("ct_v_zero")
                                  .Attr<int64_t>("ct_a_zero")
                                  .Attr<int64_t>("ct_g_zero")
                                  .Attr<int64_t>("write_di")
                                  .Ret<ffi::Buffer<ffi::F32>>()   // dI (B, T, H) or a dummy unless write_di
                                  .Ret<ffi::Buffer<ffi::F32>>()   // dW_in, two parts (2, K, H), or a dummy
                                  .Ret<ffi::Buffer<ffi::F32>>()   // db_in (H) or a dummy
                                  .Ret<ffi::Buffer<ffi::F32>>()   // dv0 (B, H)
                                  .Ret<ffi::Buffer<ffi::F32>>()   // di0 (B, H)
                                  .Ret<ffi::Buffer<ffi::F32>>()   // dz0 (B, 2, H) or a dummy
                                  .Ret<ffi::Buffer<ffi::F32>>()   // dW, two parts (2, H, H), or a dummy
                                  .Ret<ffi::Buffer<ffi::F32>>()   // dP (P's shape)
                                  .Ret<ffi::Buffer<ffi::F32>>());  // dR (H + 2, O) or a dummy

extern "C" const char* BrainsimLifParamOrder() { return brainsim::kLifParamOrder; }

// The rows of P after the six LIF rows for adaptive neurons; checked against fused_lif.ADAPTIVE_PARAM_NAMES at load.
extern "C" const char* BrainsimAdaptiveParamOrder() { return kAdaptiveParamOrder; }

// The surrogates of surrogate<kKind>, in kKind order; brainsim.train.fused_lif passes a surrogate as its index in
// this list, and the loader checks it against fused_lif.NATIVE_SURROGATES.
extern "C" const char* BrainsimLifSurrogates() {
  return "fast_sigmoid,arctan,sigmoid,triangle,rectangular,gaussian,exponential";
}
