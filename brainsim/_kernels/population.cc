// One simulation step of a population of LIF neurons with exponential synaptic receptors, in one pass
// over the neurons and in place (XLA FFI custom call). It computes what brainsim.network.Network.step
// computes for such a population, in the same order (Brian2's): membrane update from the receptor
// state at the start of the step, threshold and reset, then receptor decay. Spike arrivals are added
// afterwards by the event-delivery kernels.
//
// Receptor k (state g_k) is either a conductance (nS, reversal E_k) or a current (pA):
//   G  = sum_k g_k [conductance],   G E = sum_k g_k E_k [conductance],   I = I_ext + sum_k g_k [current]
//   g_L = C_m / tau_m;  g_tot = g_L + G;  v_inf = (g_L v_rest + I + G E) / g_tot
//   v_new = frozen ? v : v_inf + (v - v_inf) exp(-(g_tot / C_m) dt)        (exponential Euler)
//   or      frozen ? v : v + dt (g_L (v_rest - v) + I + G E - G v) / C_m     (forward Euler)
//   spike = (v_new - v_th) / |v_th - v_reset| > 0;  reset to v_reset ("value") or by v_th - v_reset
//   g_k <- g_k * decay_k,  decay_k = exp(-dt / tau_k) (computed by the caller)
//
// Parameters P (6, M): tau_m, C_m, v_rest, v_th, v_reset, t_ref, with M = 1 (shared by all neurons)
// or M = N (per neuron); the external current I_ext has 1 or N elements. R (K, 4) holds per receptor
// [decay, E_rev, is_conductance, drive]: a receptor drives the step with drive * g_k (drive = 1, or under exact
// integration the membrane-filtered value of a unit state, computed by the caller). The exponential is a vectorisable polynomial (Cephes expf
// coefficients, relative error ~1e-7 over the range used), so the whole loop runs in SIMD registers.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernel_common.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr int64_t kThreadedSize = 100000;

// exp(x) = 2^n exp(r), n = round(x / ln 2), r = x - n ln 2 (two-part ln 2), exp(r) by a degree-7
// polynomial; x is clamped to [-87, 88] (the float range).
inline float exp_poly(float x) {
  x = x > 88.0f ? 88.0f : x;
  x = x < -87.0f ? -87.0f : x;
  const float n = static_cast<float>(static_cast<int32_t>(x * 1.44269504088896341f + 128.5f) - 128);
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

struct Block {
  int64_t n;
  float dt;
  const float *v, *ref, *g_sum, *ge_sum, *i_sum;
  float *v_out, *ref_out, *spikes;
};

// The membrane update of one block of neurons. kShared: one set of parameters for all neurons (else per
// neuron, P row stride M, block offset b0).
template <bool kShared, bool kEuler, bool kSubtract>
void membrane_update(const Block& b, const float* P, int64_t M, int64_t b0) {
  const float dt = b.dt;
  const float* __restrict vi = b.v;
  const float* __restrict ri = b.ref;
  const float* __restrict gs = b.g_sum;
  const float* __restrict ges = b.ge_sum;
  const float* __restrict is = b.i_sum;
  float* __restrict vo = b.v_out;
  float* __restrict ro = b.ref_out;
  float* __restrict so = b.spikes;
  const int64_t off = kShared ? 0 : b0;
  const float* __restrict tau_p = P + off;
  const float* __restrict cm_p = P + M + off;
  const float* __restrict vrest_p = P + 2 * M + off;
  const float* __restrict vth_p = P + 3 * M + off;
  const float* __restrict vreset_p = P + 4 * M + off;
  const float* __restrict tref_p = P + 5 * M + off;
  // shared parameters are read once, outside the loop (the vectoriser does not hoist them itself)
  const float tau0 = tau_p[0], cm0 = cm_p[0], vrest0 = vrest_p[0], vth0 = vth_p[0], vreset0 = vreset_p[0];
  const float tref0 = tref_p[0];
#pragma omp simd
  for (int64_t j = 0; j < b.n; ++j) {
    const float tau = kShared ? tau0 : tau_p[j], cm = kShared ? cm0 : cm_p[j];
    const float vrest = kShared ? vrest0 : vrest_p[j], vth = kShared ? vth0 : vth_p[j];
    const float vreset = kShared ? vreset0 : vreset_p[j], tref = kShared ? tref0 : tref_p[j];
    const float rm = ri[j] - dt;
    const float remaining = rm > 0.0f ? rm : 0.0f;
    const bool frozen = remaining > 0.5f * dt;
    const float g_l = cm / tau;
    float integrated;
    if (kEuler) {  // v + dt (g_L (v_rest - v) + I + G E - G v) / C_m
      integrated = vi[j] + dt * (g_l * (vrest - vi[j]) + ((is[j] + ges[j]) - gs[j] * vi[j])) / cm;
    } else {
      const float g_tot = g_l + gs[j];
      const float v_inf = (g_l * vrest + is[j] + ges[j]) / g_tot;
      integrated = v_inf + (vi[j] - v_inf) * exp_poly(-(g_tot / cm) * dt);
    }
    const float vn = frozen ? vi[j] : integrated;
    const float diff = vth - vreset;
    const float scale = diff > 0.0f ? diff : -diff;
    const float s = (vn - vth) / scale > 0.0f ? 1.0f : 0.0f;
    vo[j] = kSubtract ? vn - s * diff : vn + s * (vreset - vn);
    ro[j] = s > 0.0f ? tref : remaining;
    so[j] = s;
  }
}

}  // namespace

static ffi::Error LifPopulationStepImpl(ffi::Buffer<ffi::F32> v, ffi::Buffer<ffi::F32> ref, ffi::Buffer<ffi::F32> p,
                                        ffi::Buffer<ffi::F32> r, ffi::Buffer<ffi::F32> i_ext, ffi::RemainingArgs g_in,
                                        float dt, int64_t subtract, int64_t euler, ffi::ResultBuffer<ffi::F32> v_out,
                                        ffi::ResultBuffer<ffi::F32> ref_out, ffi::ResultBuffer<ffi::F32> spikes,
                                        ffi::RemainingRets g_out) {
  const int64_t N = v.element_count();
  const int64_t K = static_cast<int64_t>(g_in.size());
  if (static_cast<int64_t>(g_out.size()) != K || r.element_count() != 4 * K) {
    return ffi::Error::InvalidArgument("lif_population_step: one result and one row of R per receptor");
  }
  const int64_t M = p.element_count() / 6;
  if (p.element_count() != 6 * M || (M != 1 && M != N)) {
    return ffi::Error::InvalidArgument("lif_population_step: P must be (6, 1) or (6, N)");
  }
  const int64_t n_ext = i_ext.element_count();
  if (n_ext != 1 && n_ext != N) return ffi::Error::InvalidArgument("lif_population_step: I_ext must have 1 or N elements");
  if (K > 8) return ffi::Error::InvalidArgument("lif_population_step: at most 8 receptors");

  const float* gk_in[8];
  float* gk_out[8];
  float decay[8], e_rev[8], is_cond[8], drive[8];
  for (int64_t k = 0; k < K; ++k) {
    auto in = g_in.get<ffi::Buffer<ffi::F32>>(k);
    auto out = g_out.get<ffi::Buffer<ffi::F32>>(k);
    if (!in.has_value() || !out.has_value()) return ffi::Error::InvalidArgument("lif_population_step: bad receptor");
    if (in->element_count() != N) return ffi::Error::InvalidArgument("lif_population_step: receptor size != N");
    gk_in[k] = in->typed_data();
    gk_out[k] = (*out)->typed_data();
    decay[k] = r.typed_data()[4 * k];
    e_rev[k] = r.typed_data()[4 * k + 1];
    is_cond[k] = r.typed_data()[4 * k + 2];
    drive[k] = r.typed_data()[4 * k + 3];
  }
  const float* P = p.typed_data();
  const float* I = i_ext.typed_data();
  const bool shared = M == 1;
  const bool ext_shared = n_ext == 1;
  // Blocks of neurons: first the summed receptor input for the block, then the membrane update (one
  // vectorised loop, specialised at compile time), then the decay of each receptor.
  constexpr int64_t kBlock = 256;
  auto run = [&](int64_t first, int64_t last) {
    float g_sum[kBlock], ge_sum[kBlock], i_sum[kBlock];
    for (int64_t b0 = first; b0 < last; b0 += kBlock) {
      const int64_t nb = last - b0 < kBlock ? last - b0 : kBlock;
      for (int64_t j = 0; j < nb; ++j) {
        g_sum[j] = 0.0f;
        ge_sum[j] = 0.0f;
        i_sum[j] = 0.0f;
      }
      for (int64_t k = 0; k < K; ++k) {
        const float* g = gk_in[k] + b0;
        const float d = drive[k];
        if (is_cond[k] != 0.0f) {
          const float e = e_rev[k];
          for (int64_t j = 0; j < nb; ++j) {
            g_sum[j] += d * g[j];
            ge_sum[j] += d * g[j] * e;
          }
        } else {
          for (int64_t j = 0; j < nb; ++j) i_sum[j] += d * g[j];
        }
      }
      if (ext_shared) {
        for (int64_t j = 0; j < nb; ++j) i_sum[j] += I[0];
      } else {
        for (int64_t j = 0; j < nb; ++j) i_sum[j] += I[b0 + j];
      }
      Block blk{nb, dt, v.typed_data() + b0, ref.typed_data() + b0, g_sum, ge_sum, i_sum,
                v_out->typed_data() + b0, ref_out->typed_data() + b0, spikes->typed_data() + b0};
      const int variant = (shared ? 4 : 0) + (euler ? 2 : 0) + (subtract ? 1 : 0);
      switch (variant) {
        case 0: membrane_update<false, false, false>(blk, P, M, b0); break;
        case 1: membrane_update<false, false, true>(blk, P, M, b0); break;
        case 2: membrane_update<false, true, false>(blk, P, M, b0); break;
        case 3: membrane_update<false, true, true>(blk, P, M, b0); break;
        case 4: membrane_update<true, false, false>(blk, P, M, b0); break;
        case 5: membrane_update<true, false, true>(blk, P, M, b0); break;
        case 6: membrane_update<true, true, false>(blk, P, M, b0); break;
        default: membrane_update<true, true, true>(blk, P, M, b0); break;
      }
      for (int64_t k = 0; k < K; ++k) {
        const float* g = gk_in[k] + b0;
        float* go = gk_out[k] + b0;
        const float d = decay[k];
        for (int64_t j = 0; j < nb; ++j) go[j] = g[j] * d;
      }
    }
  };
  // Large populations are bound by memory bandwidth, not arithmetic: split them over two threads
  // (handing work to the other thread costs microseconds, so small populations stay on one).
  if (N >= kThreadedSize) {
    const int64_t half = (N / 2 + kBlock - 1) / kBlock * kBlock;
    brainsim::PairWorker::run([&] { run(0, half); }, [&] { run(half, N); });
  } else {
    run(0, N);
  }
  return ffi::Error::Success();
}

XLA_FFI_DEFINE_HANDLER_SYMBOL(BrainsimLifPopulationStep, LifPopulationStepImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()  // v (N), mV
                                  .Arg<ffi::Buffer<ffi::F32>>()  // refractory (N), ms
                                  .Arg<ffi::Buffer<ffi::F32>>()  // P (6, 1 or N)
                                  .Arg<ffi::Buffer<ffi::F32>>()  // R (K, 4)
                                  .Arg<ffi::Buffer<ffi::F32>>()  // I_ext (1 or N), pA
                                  .RemainingArgs()               // g_1 .. g_K (N each)
                                  .Attr<float>("dt")
                                  .Attr<int64_t>("subtract")
                                  .Attr<int64_t>("euler")        // 1: forward Euler, 0: exponential Euler
                                  .Ret<ffi::Buffer<ffi::F32>>()  // v
                                  .Ret<ffi::Buffer<ffi::F32>>()  // refractory
                                  .Ret<ffi::Buffer<ffi::F32>>()  // spikes
                                  .RemainingRets());             // g_1 .. g_K after decay

extern "C" const char* BrainsimLifParamOrder() { return brainsim::kLifParamOrder; }
