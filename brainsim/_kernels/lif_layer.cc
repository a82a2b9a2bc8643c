// Fused forward and backward pass of a (recurrent) layer of LIF neurons over a whole sequence,
// registered as XLA FFI custom calls. They compute exactly what brainsim.neurons.LIF.step computes
// step by step (current input, exponential Euler, refractory period, "value" or "subtract" reset,
// surrogate spike derivative), for a batch of B independent sequences sharing the parameters:
//
//   I_t     = I_ext[t] + s_{t-1} W                        (pA; W only for recurrent layers)
//   frozen  = max(ref - dt, 0) > dt / 2                   (refractory)
//   g_L     = C_m / tau_m                                 (nS)
//   v_inf   = (g_L v_rest + I_t) / g_L                    (mV)
//   v_new   = frozen ? v : v_inf + (v - v_inf) exp(-(g_L / C_m) dt)
//   s_t     = H((v_new - v_th) / |v_th - v_reset|)        surrogate derivative in the backward pass
//   v       = v_new - s_t (v_th - v_reset)                ("subtract")  or  v_new + s_t (v_reset - v_new)
//   ref     = s_t > 0 ? t_ref : max(ref - dt, 0)
//
// The forward pass also returns the residuals the backward pass needs (v_new, I_t, frozen), so the
// backward pass is one reverse sweep: per step an elementwise adjoint update, the recurrent adjoint
// W dI_t (dense) and the weight gradient s_{t-1}^T dI_t (only rows of neurons that spiked).
// Parameters are packed as P = [tau_m, C_m, v_rest, v_th, v_reset, t_ref], each of length H.
// The batch is split over up to two threads (examples are independent).
#include <algorithm>
#if defined(__SSE__)
#include <xmmintrin.h>
#endif
#include <cmath>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "kernel_common.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

using brainsim::axpy;

// C (M x N) = A (M x K, row stride lda) * Bm (K x N, row stride N). Blocks of 4 rows x 32 columns are
// accumulated in registers (GCC/Clang vector extensions, 16 floats per vector) over the whole K loop:
// each row of Bm is loaded once per block and used for 4 rows of A, so the dense recurrent adjoint is
// bound by multiply-adds rather than by loads and stores. Edges fall back to scalar loops.
typedef float v16 __attribute__((vector_size(64)));
inline v16 load16(const float* p) {
  v16 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
inline void store16(float* p, v16 v) { std::memcpy(p, &v, sizeof(v)); }

void small_gemm(const float* A, int64_t lda, int64_t M, const float* Bm, int64_t K, int64_t N, float* C,
                int64_t ldc) {
  const int64_t m4 = M - M % 4, n32 = N - N % 32;
  for (int64_t i0 = 0; i0 < m4; i0 += 4) {
    const float *a0 = A + i0 * lda, *a1 = a0 + lda, *a2 = a1 + lda, *a3 = a2 + lda;
    for (int64_t j0 = 0; j0 < n32; j0 += 32) {
      v16 c00 = {}, c01 = {}, c10 = {}, c11 = {}, c20 = {}, c21 = {}, c30 = {}, c31 = {};
      for (int64_t k = 0; k < K; ++k) {
        const v16 b0 = load16(Bm + k * N + j0), b1 = load16(Bm + k * N + j0 + 16);
        const float x0 = a0[k], x1 = a1[k], x2 = a2[k], x3 = a3[k];
        c00 += x0 * b0;
        c01 += x0 * b1;
        c10 += x1 * b0;
        c11 += x1 * b1;
        c20 += x2 * b0;
        c21 += x2 * b1;
        c30 += x3 * b0;
        c31 += x3 * b1;
      }
      float* c = C + i0 * ldc + j0;
      store16(c, c00);
      store16(c + 16, c01);
      store16(c + ldc, c10);
      store16(c + ldc + 16, c11);
      store16(c + 2 * ldc, c20);
      store16(c + 2 * ldc + 16, c21);
      store16(c + 3 * ldc, c30);
      store16(c + 3 * ldc + 16, c31);
    }
  }
  auto scalar = [&](int64_t i, int64_t j) {
    float sum = 0.0f;
    for (int64_t k = 0; k < K; ++k) sum += A[i * lda + k] * Bm[k * N + j];
    C[i * ldc + j] = sum;
  };
  for (int64_t i = 0; i < m4; ++i)
    for (int64_t j = n32; j < N; ++j) scalar(i, j);
  for (int64_t i = m4; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) scalar(i, j);
}

// Surrogate derivatives sigma'(x) of the spike function, in the order of brainsim.spikes.SURROGATES.
inline float surrogate(int kind, float x, float k) {
  switch (kind) {
    case 0: {  // fast sigmoid / SuperSpike
      const float d = 1.0f + k * std::fabs(x);
      return k / (2.0f * d * d);
    }
    case 1: {  // arctan
      const float a = 3.14159265358979f * k * x / 2.0f;
      return k / (2.0f * (1.0f + a * a));
    }
    case 2: {  // sigmoid
      const float s = 1.0f / (1.0f + std::exp(-k * x));
      return k * s * (1.0f - s);
    }
    case 3:  // triangle
      return k * std::max(0.0f, 1.0f - k * std::fabs(x));
    case 4:  // rectangular
      return std::fabs(x) < 0.5f / k ? k : 0.0f;
    case 5:  // gaussian
      return k / 2.50662827463100f * std::exp(-0.5f * (k * x) * (k * x));
    case 6:  // exponential
      return 0.5f * k * std::exp(-k * std::fabs(x));
    default:
      return 0.0f;
  }
}

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

template <typename Body>
void parallel_over_batch(int64_t B, int64_t work_per_example, Body body) {
  const int64_t n_threads = (B >= 2 && work_per_example * B >= (1 << 20))
                                ? std::min<int64_t>(2, std::max(1u, std::thread::hardware_concurrency()))
                                : 1;
  FlushDenormals flush;
  if (n_threads == 1) {
    body(0, 0, B);
    return;
  }
  const int64_t half = (B + 1) / 2;
  std::thread other([&] {
    FlushDenormals flush_other;
    body(1, half, B);
  });
  body(0, 0, half);
  other.join();
}

// Per-neuron constants of the adjoint update (see LifBackwardImpl).
struct AdjointConsts {
  const float *vth, *vreset, *vrest, *inv_d, *sign_d, *jump, *decay, *tau_cm, *inv_cm, *tau_cm2, *ddecay_dtau;
};

// One step of the reverse sweep for one example, elementwise over the H neurons. All pointers are
// distinct arrays (restrict), so the loop vectorises.
template <bool kSubtract>
void adjoint_step(int64_t H, const AdjointConsts& c, const float* __restrict s_t, const float* __restrict vn_t,
                  const float* __restrict cur_t, const float* __restrict fz_t, const float* __restrict cs_t,
                  const float* __restrict cv_t, const float* __restrict v_prev, const float* __restrict sg,
                  const float* __restrict rec, float* __restrict gv_carry, float* __restrict dI,
                  float* __restrict g_tau, float* __restrict g_cm, float* __restrict g_vrest,
                  float* __restrict g_vth, float* __restrict g_vreset) {
  const float* __restrict vth = c.vth;
  const float* __restrict vreset = c.vreset;
  const float* __restrict vrest = c.vrest;
  const float* __restrict inv_d = c.inv_d;
  const float* __restrict sign_d = c.sign_d;
  const float* __restrict jump = c.jump;
  const float* __restrict decay = c.decay;
  const float* __restrict tau_cm = c.tau_cm;
  const float* __restrict inv_cm = c.inv_cm;
  const float* __restrict tau_cm2 = c.tau_cm2;
  const float* __restrict ddecay_dtau = c.ddecay_dtau;
  for (int64_t h = 0; h < H; ++h) {
    const float s = s_t[h], vn = vn_t[h];
    const float gvo = cv_t[h] + gv_carry[h];
    float gs = cs_t[h] + rec[h];
    float gvn;
    if (kSubtract) {  // v = v_new - s (v_th - v_reset)
      gvn = gvo;
      gs -= gvo * jump[h];
      g_vth[h] -= gvo * s;
      g_vreset[h] += gvo * s;
    } else {  // v = v_new + s (v_reset - v_new)
      gvn = gvo * (1.0f - s);
      gs += gvo * (vreset[h] - vn);
      g_vreset[h] += gvo * s;
    }
    // s = H(x), x = (v_new - v_th) / D, D = |v_th - v_reset|; sg = sigma'(x)
    const float x = (vn - vth[h]) * inv_d[h];
    const float gx = gs * sg[h];
    const float gD = -gx * x * inv_d[h];
    gvn += gx * inv_d[h];
    g_vth[h] += -gx * inv_d[h] + gD * sign_d[h];
    g_vreset[h] -= gD * sign_d[h];
    // not refractory: v_new = v_inf + (v_prev - v_inf) a, a = exp(-dt / tau), v_inf = v_rest + I tau / C_m;
    // refractory (frozen): v_new = v_prev
    const float live = 1.0f - fz_t[h];
    const float cur = cur_t[h];
    const float v_inf = vrest[h] + cur * tau_cm[h];
    const float g_inf = live * gvn * (1.0f - decay[h]);
    const float g_a = live * gvn * (v_prev[h] - v_inf);
    gv_carry[h] = gvn * (live * decay[h] + fz_t[h]);
    dI[h] = g_inf * tau_cm[h];
    g_tau[h] += g_inf * cur * inv_cm[h] + g_a * ddecay_dtau[h];
    g_cm[h] -= g_inf * cur * tau_cm2[h];
    g_vrest[h] += g_inf;
  }
}

}  // namespace

static ffi::Error LifForwardImpl(ffi::Buffer<ffi::F32> i_ext, ffi::Buffer<ffi::F32> v0, ffi::Buffer<ffi::F32> ref0,
                                 ffi::Buffer<ffi::F32> s0, ffi::Buffer<ffi::F32> w, ffi::Buffer<ffi::F32> p,
                                 float dt, int64_t subtract, int64_t recurrent,
                                 ffi::ResultBuffer<ffi::F32> s_out, ffi::ResultBuffer<ffi::F32> v_out,
                                 ffi::ResultBuffer<ffi::F32> vnew_out, ffi::ResultBuffer<ffi::F32> cur_out,
                                 ffi::ResultBuffer<ffi::F32> frozen_out) {
  const auto d = i_ext.dimensions();
  if (d.size() != 3) return ffi::Error::InvalidArgument("lif_forward: I_ext must be (B, T, H)");
  const int64_t B = d[0], T = d[1], H = d[2];
  if (p.element_count() != 6 * H) return ffi::Error::InvalidArgument("lif_forward: P must be (6, H)");
  if (recurrent && w.element_count() != H * H) return ffi::Error::InvalidArgument("lif_forward: W must be (H, H)");
  const Params P(p.typed_data(), H);
  const float* I = i_ext.typed_data();
  const float* W = w.typed_data();
  float *S = s_out->typed_data(), *V = v_out->typed_data(), *VN = vnew_out->typed_data();
  float *CUR = cur_out->typed_data(), *FZ = frozen_out->typed_data();

  // per-neuron constants: g_L = C_m / tau_m (nS), decay exp(-(g_L / C_m) dt), v_rest g_L, 1 / g_L, 1 / |v_th - v_reset|
  std::vector<float> decay(H), vrest_gl(H), inv_gl(H), inv_d(H), jump(H);
  for (int64_t h = 0; h < H; ++h) {
    const float g_l = P.cm[h] / P.tau[h];
    decay[h] = std::exp(-(g_l / P.cm[h]) * dt);
    vrest_gl[h] = g_l * P.vrest[h];
    inv_gl[h] = 1.0f / g_l;
    inv_d[h] = 1.0f / std::fabs(P.vth[h] - P.vreset[h]);
    jump[h] = P.vth[h] - P.vreset[h];
  }

  auto run = [&](int64_t, int64_t b0, int64_t b1) {
    std::vector<float> v(H), ref(H), s_prev(H), cur(H);
    for (int64_t b = b0; b < b1; ++b) {
      std::memcpy(v.data(), v0.typed_data() + b * H, sizeof(float) * H);
      std::memcpy(ref.data(), ref0.typed_data() + b * H, sizeof(float) * H);
      std::memcpy(s_prev.data(), s0.typed_data() + b * H, sizeof(float) * H);
      for (int64_t t = 0; t < T; ++t) {
        const int64_t o = (b * T + t) * H;
        std::memcpy(cur.data(), I + o, sizeof(float) * H);
        if (recurrent) {
          for (int64_t k = 0; k < H; ++k) {
            if (s_prev[k] != 0.0f) axpy(cur.data(), s_prev[k], W + k * H, H);
          }
        }
        float *s_t = S + o, *v_t = V + o, *vn_t = VN + o, *cur_t = CUR + o, *fz_t = FZ + o;
        // branch-free so that the compiler vectorises it
        for (int64_t h = 0; h < H; ++h) {
          const float remaining = std::max(ref[h] - dt, 0.0f);
          const bool frozen = remaining > 0.5f * dt;
          const float v_inf = (vrest_gl[h] + cur[h]) * inv_gl[h];
          const float integrated = v_inf + (v[h] - v_inf) * decay[h];
          const float vn = frozen ? v[h] : integrated;
          const float s = (vn - P.vth[h]) * inv_d[h] > 0.0f ? 1.0f : 0.0f;
          const float after = subtract ? vn - s * jump[h] : vn + s * (P.vreset[h] - vn);
          v[h] = after;
          ref[h] = s > 0.0f ? P.tref[h] : remaining;
          s_t[h] = s;
          v_t[h] = after;
          vn_t[h] = vn;
          cur_t[h] = cur[h];
          fz_t[h] = frozen ? 1.0f : 0.0f;
          s_prev[h] = s;
        }
      }
    }
  };
  parallel_over_batch(B, T * H * 8, run);
  return ffi::Error::Success();
}

static ffi::Error LifBackwardImpl(ffi::Buffer<ffi::F32> ct_s, ffi::Buffer<ffi::F32> ct_v, ffi::Buffer<ffi::F32> s_res,
                                  ffi::Buffer<ffi::F32> v_res, ffi::Buffer<ffi::F32> vnew_res,
                                  ffi::Buffer<ffi::F32> cur_res, ffi::Buffer<ffi::F32> frozen_res,
                                  ffi::Buffer<ffi::F32> v0, ffi::Buffer<ffi::F32> s0, ffi::Buffer<ffi::F32> w,
                                  ffi::Buffer<ffi::F32> p, float dt, int64_t subtract, int64_t recurrent,
                                  int64_t surrogate_kind, float slope, ffi::ResultBuffer<ffi::F32> d_i,
                                  ffi::ResultBuffer<ffi::F32> d_v0, ffi::ResultBuffer<ffi::F32> d_s0,
                                  ffi::ResultBuffer<ffi::F32> d_w, ffi::ResultBuffer<ffi::F32> d_p) {
  const auto d = s_res.dimensions();
  if (d.size() != 3) return ffi::Error::InvalidArgument("lif_backward: residuals must be (B, T, H)");
  const int64_t B = d[0], T = d[1], H = d[2];
  if (p.element_count() != 6 * H) return ffi::Error::InvalidArgument("lif_backward: P must be (6, H)");
  if (recurrent && w.element_count() != H * H) return ffi::Error::InvalidArgument("lif_backward: W must be (H, H)");
  const Params P(p.typed_data(), H);
  const float *CS = ct_s.typed_data(), *CV = ct_v.typed_data(), *S = s_res.typed_data(), *V = v_res.typed_data();
  const float *VN = vnew_res.typed_data(), *CUR = cur_res.typed_data(), *FZ = frozen_res.typed_data();
  const float* W = w.typed_data();
  float* DI = d_i->typed_data();

  // W transposed: the recurrent adjoint is the product dI_t W^T
  std::vector<float> wt(recurrent ? H * H : 0);
  for (int64_t k = 0; k < (recurrent ? H : 0); ++k)
    for (int64_t n = 0; n < H; ++n) wt[n * H + k] = W[k * H + n];

  // per-thread accumulators of the shared-parameter gradients, summed at the end
  std::vector<float> dw_part[2], dp_part[2];
  for (int i = 0; i < 2; ++i) {
    dw_part[i].assign(recurrent ? H * H : 0, 0.0f);
    dp_part[i].assign(6 * H, 0.0f);
  }

  // per-neuron constants of the adjoint update
  std::vector<float> decay(H), tau_cm(H), inv_cm(H), tau_cm2(H), ddecay_dtau(H), inv_d(H), sign_d(H), jump(H);
  for (int64_t h = 0; h < H; ++h) {
    const float tau = P.tau[h], cm = P.cm[h], diff = P.vth[h] - P.vreset[h];
    decay[h] = std::exp(-dt / tau);
    tau_cm[h] = tau / cm;
    inv_cm[h] = 1.0f / cm;
    tau_cm2[h] = tau / (cm * cm);
    ddecay_dtau[h] = decay[h] * dt / (tau * tau);
    inv_d[h] = 1.0f / std::fabs(diff);
    sign_d[h] = diff > 0.0f ? 1.0f : (diff < 0.0f ? -1.0f : 0.0f);
    jump[h] = diff;
  }
  const int kind = static_cast<int>(surrogate_kind);
  const AdjointConsts consts{P.vth, P.vreset, P.vrest, inv_d.data(), sign_d.data(), jump.data(), decay.data(),
                             tau_cm.data(), inv_cm.data(), tau_cm2.data(), ddecay_dtau.data()};

  // All examples of a thread's share of the batch step back in time together, so that each row of W^T
  // is loaded once per step and reused for every example in the recurrent adjoint.
  auto run = [&](int64_t thread, int64_t b0, int64_t b1) {
    float* dW = dw_part[thread].data();
    float* dP = dp_part[thread].data();
    float *g_tau = dP, *g_cm = dP + H, *g_vrest = dP + 2 * H, *g_vth = dP + 3 * H, *g_vreset = dP + 4 * H;
    const int64_t nb = b1 - b0;
    std::vector<float> gv_all(nb * H, 0.0f);   // dL/dv_t through step t+1, per example
    std::vector<float> rec_all(nb * H, 0.0f);  // dL/ds_t through step t+1's recurrent input, per example
    std::vector<float> sg(H);
    for (int64_t t = T - 1; t >= 0; --t) {
      for (int64_t b = b0; b < b1; ++b) {
        float* gv_carry = gv_all.data() + (b - b0) * H;
        const float* rec = rec_all.data() + (b - b0) * H;
        const int64_t o = (b * T + t) * H;
        const float* v_prev = t > 0 ? V + o - H : v0.typed_data() + b * H;
        const float *s_t = S + o, *vn_t = VN + o, *cur_t = CUR + o, *fz_t = FZ + o, *cs_t = CS + o, *cv_t = CV + o;
        float* dI = DI + o;
        // surrogate derivative at x = (v_new - v_th) / |v_th - v_reset| (one switch per step, not per neuron)
        for (int64_t h = 0; h < H; ++h) sg[h] = (vn_t[h] - P.vth[h]) * inv_d[h];
        switch (kind) {
          case 0:
            for (int64_t h = 0; h < H; ++h) sg[h] = surrogate(0, sg[h], slope);
            break;
          default:
            for (int64_t h = 0; h < H; ++h) sg[h] = surrogate(kind, sg[h], slope);
        }
        if (subtract) {
          adjoint_step<true>(H, consts, s_t, vn_t, cur_t, fz_t, cs_t, cv_t, v_prev, sg.data(), rec, gv_carry, dI,
                             g_tau, g_cm, g_vrest, g_vth, g_vreset);
        } else {
          adjoint_step<false>(H, consts, s_t, vn_t, cur_t, fz_t, cs_t, cv_t, v_prev, sg.data(), rec, gv_carry, dI,
                              g_tau, g_cm, g_vrest, g_vth, g_vreset);
        }
        if (recurrent) {  // I_t = ... + s_{t-1} W: dW += s_{t-1}^T dI_t
          const float* s_prev = t > 0 ? S + o - H : s0.typed_data() + b * H;
          for (int64_t k = 0; k < H; ++k) {
            if (s_prev[k] != 0.0f) axpy(dW + k * H, s_prev[k], dI, H);
          }
        }
      }
      if (recurrent) {  // dL/ds_{t-1} (via step t) = W dI_t for every example: rows of W^T reused across examples
        // rec[b, k] = sum_n dI[b, t, n] W[k, n] = (dI_t W^T)[b, k]
        small_gemm(DI + (b0 * T + t) * H, T * H, nb, wt.data(), H, H, rec_all.data(), H);
      }
    }
    for (int64_t b = b0; b < b1; ++b) {
      std::memcpy(d_v0->typed_data() + b * H, gv_all.data() + (b - b0) * H, sizeof(float) * H);
      if (recurrent) {
        std::memcpy(d_s0->typed_data() + b * H, rec_all.data() + (b - b0) * H, sizeof(float) * H);
      } else {
        std::memset(d_s0->typed_data() + b * H, 0, sizeof(float) * H);
      }
    }
  };
  parallel_over_batch(B, T * H * (recurrent ? H / 4 + 8 : 8), run);

  float* dw_out = d_w->typed_data();
  const int64_t n_w = d_w->element_count();
  for (int64_t j = 0; j < n_w; ++j) dw_out[j] = recurrent ? dw_part[0][j] + dw_part[1][j] : 0.0f;
  float* dp_out = d_p->typed_data();
  for (int64_t j = 0; j < 6 * H; ++j) dp_out[j] = dp_part[0][j] + dp_part[1][j];
  return ffi::Error::Success();
}

XLA_FFI_DEFINE_HANDLER_SYMBOL(BrainsimLifForward, LifForwardImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()  // I_ext (B, T, H)
                                  .Arg<ffi::Buffer<ffi::F32>>()  // v0 (B, H)
                                  .Arg<ffi::Buffer<ffi::F32>>()  // ref0 (B, H)
                                  .Arg<ffi::Buffer<ffi::F32>>()  // s0 (B, H)
                                  .Arg<ffi::Buffer<ffi::F32>>()  // W (H, H) or a dummy
                                  .Arg<ffi::Buffer<ffi::F32>>()  // P (6, H)
                                  .Attr<float>("dt")
                                  .Attr<int64_t>("subtract")
                                  .Attr<int64_t>("recurrent")
                                  .Ret<ffi::Buffer<ffi::F32>>()   // S
                                  .Ret<ffi::Buffer<ffi::F32>>()   // V
                                  .Ret<ffi::Buffer<ffi::F32>>()   // V_new
                                  .Ret<ffi::Buffer<ffi::F32>>()   // I_t
                                  .Ret<ffi::Buffer<ffi::F32>>());  // frozen

XLA_FFI_DEFINE_HANDLER_SYMBOL(BrainsimLifBackward, LifBackwardImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()  // ct_S
                                  .Arg<ffi::Buffer<ffi::F32>>()  // ct_V
                                  .Arg<ffi::Buffer<ffi::F32>>()  // S
                                  .Arg<ffi::Buffer<ffi::F32>>()  // V
                                  .Arg<ffi::Buffer<ffi::F32>>()  // V_new
                                  .Arg<ffi::Buffer<ffi::F32>>()  // I_t
                                  .Arg<ffi::Buffer<ffi::F32>>()  // frozen
                                  .Arg<ffi::Buffer<ffi::F32>>()  // v0
                                  .Arg<ffi::Buffer<ffi::F32>>()  // s0
                                  .Arg<ffi::Buffer<ffi::F32>>()  // W
                                  .Arg<ffi::Buffer<ffi::F32>>()  // P
                                  .Attr<float>("dt")
                                  .Attr<int64_t>("subtract")
                                  .Attr<int64_t>("recurrent")
                                  .Attr<int64_t>("surrogate")
                                  .Attr<float>("slope")
                                  .Ret<ffi::Buffer<ffi::F32>>()   // dI_ext (B, T, H)
                                  .Ret<ffi::Buffer<ffi::F32>>()   // dv0 (B, H)
                                  .Ret<ffi::Buffer<ffi::F32>>()   // ds0 (B, H)
                                  .Ret<ffi::Buffer<ffi::F32>>()   // dW (H, H) or dummy
                                  .Ret<ffi::Buffer<ffi::F32>>());  // dP (6, H)
