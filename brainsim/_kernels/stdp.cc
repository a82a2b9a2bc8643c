// Event-driven STDP update (pair and triplet, all-to-all or nearest-spike) as an XLA FFI call (CPU).
//
// One step, in place (outputs alias the weight and trace inputs):
//   traces relax (multiplied by their decay factors);
//   for every presynaptic spike i:  w[i,k] -= (A_minus + A3_minus r2[i]) y[t[i,k]] f_minus(w)  (clipped)
//   pre traces jump (x += 1, or x = 1 for nearest-spike pairing);
//   for every postsynaptic spike j: w[s] += (A_plus + A3_plus o2[j]) x[s / K] f_plus(w)  for the slots s
//                                   of the reverse index row j (clipped)
//   post traces jump.
// Cost: one pass over the pre and post spike/trace vectors plus O(fan-out) per pre spike and O(fan-in)
// per post spike. Semantics are those of brainsim/plasticity/stdp.py (the pure-JAX path).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernel_common.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

// Spiking neurons are found with kernel_common.h's collect_nonzero.
using brainsim::collect_nonzero;

// trace[0:n] *= factor (vectorised)
static void decay_trace(float* __restrict trace, int64_t n, float factor) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) trace[i] *= factor;
}

static inline void copy_if_needed(float* dst, const float* src, int64_t n) {
  if (dst != src) std::memcpy(dst, src, sizeof(float) * n);
}

static ffi::Error StdpCore(float* g_out, const float* g_in, ffi::Buffer<ffi::F32> weights, ffi::Buffer<ffi::F32> pre_trace,
                           ffi::Buffer<ffi::F32> post_trace, ffi::Buffer<ffi::S32> targets,
                           ffi::Buffer<ffi::S32> slots, ffi::Buffer<ffi::F32> pre_spikes,
                           ffi::Buffer<ffi::F32> post_spikes, float a_plus, float a_minus, float a3_plus,
                           float a3_minus, float w_min, float w_max, float dec_pre1, float dec_pre2,
                           float dec_post1, float dec_post2, int64_t soft, int64_t multiplicative,
                           int64_t nearest, ffi::Result<ffi::Buffer<ffi::F32>> w_out,
                           ffi::Result<ffi::Buffer<ffi::F32>> pre_out, ffi::Result<ffi::Buffer<ffi::F32>> post_out) {
  const auto tdims = targets.dimensions();
  const auto sdims = slots.dimensions();
  if (tdims.size() != 2 || sdims.size() != 2) return ffi::Error::InvalidArgument("stdp: targets/slots must be 2-D");
  const int64_t n_pre = tdims[0], width = tdims[1];
  const int64_t n_post = sdims[0], in_width = sdims[1];
  const int64_t n_syn = n_pre * width;
  if (static_cast<int64_t>(weights.element_count()) != n_syn) return ffi::Error::InvalidArgument("stdp: weights shape");
  if (static_cast<int64_t>(pre_spikes.element_count()) != n_pre || static_cast<int64_t>(post_spikes.element_count()) != n_post)
    return ffi::Error::InvalidArgument("stdp: spike vector sizes");
  const int64_t p = pre_trace.element_count() / std::max<int64_t>(n_pre, 1);
  const int64_t q = post_trace.element_count() / std::max<int64_t>(n_post, 1);
  float* w = w_out->typed_data();
  float* x = pre_out->typed_data();
  float* y = post_out->typed_data();
  copy_if_needed(w, weights.typed_data(), n_syn);
  copy_if_needed(x, pre_trace.typed_data(), p * n_pre);
  copy_if_needed(y, post_trace.typed_data(), q * n_post);
  const float span = w_max - w_min;
  const float dec_pre[2] = {dec_pre1, dec_pre2};
  const float dec_post[2] = {dec_post1, dec_post2};
  for (int64_t r = 0; r < p; ++r) decay_trace(x + r * n_pre, n_pre, dec_pre[r]);
  for (int64_t r = 0; r < q; ++r) decay_trace(y + r * n_post, n_post, dec_post[r]);
  const float* sp = pre_spikes.typed_data();
  const float* so = post_spikes.typed_data();
  const int32_t* t = targets.typed_data();
  const int32_t* sl = slots.typed_data();
  const uint64_t post_limit = static_cast<uint64_t>(n_post);
  // presynaptic events: depression
  if (g_out != nullptr) copy_if_needed(g_out, g_in, n_post);
  // spiking presynaptic neurons first; their target and weight rows are prefetched two spikes ahead
  thread_local std::vector<int32_t> firing;
  firing.resize(n_pre);
  const int64_t n_firing = collect_nonzero(sp, n_pre, firing.data(), nullptr);
  const int64_t row_bytes = width * static_cast<int64_t>(sizeof(float));
  auto prefetch_rows = [&](int64_t i) {
    const char* trow = reinterpret_cast<const char*>(t + i * width);
    const char* wrow = reinterpret_cast<const char*>(w + i * width);
    for (int64_t b = 0; b < row_bytes; b += 64) {
      __builtin_prefetch(trow + b);
      __builtin_prefetch(wrow + b, 1);
    }
  };
  for (int64_t a = 0; a < std::min<int64_t>(n_firing, 2); ++a) prefetch_rows(firing[a]);
  for (int64_t a = 0; a < n_firing; ++a) {
    if (a + 2 < n_firing) prefetch_rows(firing[a + 2]);
    const int64_t i = firing[a];
    const int32_t* trow = t + i * width;
    float* wrow = w + i * width;
    const float amp = a_minus + (p > 1 ? a3_minus * x[n_pre + i] : 0.0f);
    auto depress = [&](bool deliver) {  // one pass over the row: delivery (weights before the update), then update
      const float value = sp[i];
      for (int64_t k = 0; k < width; ++k) {
        const uint32_t j = static_cast<uint32_t>(trow[k]);
        if (j >= post_limit) break;
        const float wk = wrow[k];
        if (deliver) g_out[j] += value * wk;
        const float f = (soft || multiplicative) ? (wk - w_min) / span : 1.0f;
        wrow[k] = std::min(std::max(wk - amp * y[j] * f, w_min), w_max);
      }
    };
    if (g_out != nullptr) {
      depress(true);
    } else {
      depress(false);
    }
    for (int64_t r = 0; r < p; ++r) x[r * n_pre + i] = nearest ? 1.0f : x[r * n_pre + i] + 1.0f;
  }
  // postsynaptic events: potentiation
  const uint64_t slot_limit = static_cast<uint64_t>(n_syn);
  // row of slot s = s / width without a hardware division per synapse (20-40 cycles each): a double
  // multiplication by 1 / width, corrected by at most one (exact for slots below 2^52)
  const double inv_width = 1.0 / static_cast<double>(width);
  auto row_of = [&](uint32_t s) -> int64_t {
    int64_t r = static_cast<int64_t>(static_cast<double>(s) * inv_width);
    if (r * width > static_cast<int64_t>(s)) --r;
    if ((r + 1) * width <= static_cast<int64_t>(s)) ++r;
    return r;
  };
  // The incoming synapses of a neuron are scattered over the weight table: collect the spiking
  // postsynaptic neurons first, then update them while the weights of the ones kAhead spikes later are
  // prefetched (and their reverse-index rows before that), so the cache misses overlap.
  thread_local std::vector<int32_t> spiking;
  spiking.resize(n_post);
  const int64_t n_spiking = collect_nonzero(so, n_post, spiking.data(), nullptr);
  constexpr int64_t kAhead = 2;
  auto prefetch_weights = [&](int64_t j) {
    const int32_t* srow = sl + j * in_width;
    for (int64_t m = 0; m < in_width; ++m) {
      const uint32_t s = static_cast<uint32_t>(srow[m]);
      if (s >= slot_limit) break;
      __builtin_prefetch(w + s, 1, 2);
    }
  };
  auto prefetch_slots = [&](int64_t j) {
    const char* row = reinterpret_cast<const char*>(sl + j * in_width);
    for (int64_t b = 0; b < in_width * static_cast<int64_t>(sizeof(int32_t)); b += 64) __builtin_prefetch(row + b);
  };
  for (int64_t a = 0; a < std::min(n_spiking, 2 * kAhead); ++a) prefetch_slots(spiking[a]);
  for (int64_t a = 0; a < std::min(n_spiking, kAhead); ++a) prefetch_weights(spiking[a]);
  for (int64_t a = 0; a < n_spiking; ++a) {
    if (a + 2 * kAhead < n_spiking) prefetch_slots(spiking[a + 2 * kAhead]);
    if (a + kAhead < n_spiking) prefetch_weights(spiking[a + kAhead]);
    const int64_t j = spiking[a];
    const float amp = a_plus + (q > 1 ? a3_plus * y[n_post + j] : 0.0f);
    const int32_t* srow = sl + j * in_width;
    for (int64_t m = 0; m < in_width; ++m) {
      const uint32_t s = static_cast<uint32_t>(srow[m]);
      if (s >= slot_limit) break;
      const float ws = w[s];
      const float f = soft ? 1.0f - (ws - w_min) / span : 1.0f;
      w[s] = std::min(std::max(ws + amp * x[row_of(s)] * f, w_min), w_max);
    }
    for (int64_t r = 0; r < q; ++r) y[r * n_post + j] = nearest ? 1.0f : y[r * n_post + j] + 1.0f;
  }
  return ffi::Error::Success();
}

static ffi::Error StdpImpl(ffi::Buffer<ffi::F32> weights, ffi::Buffer<ffi::F32> pre_trace,
                           ffi::Buffer<ffi::F32> post_trace, ffi::Buffer<ffi::S32> targets,
                           ffi::Buffer<ffi::S32> slots, ffi::Buffer<ffi::F32> pre_spikes,
                           ffi::Buffer<ffi::F32> post_spikes, float a_plus, float a_minus, float a3_plus,
                           float a3_minus, float w_min, float w_max, float dec_pre1, float dec_pre2,
                           float dec_post1, float dec_post2, int64_t soft, int64_t multiplicative,
                           int64_t nearest, ffi::Result<ffi::Buffer<ffi::F32>> w_out,
                           ffi::Result<ffi::Buffer<ffi::F32>> pre_out, ffi::Result<ffi::Buffer<ffi::F32>> post_out) {
  return StdpCore(nullptr, nullptr, weights, pre_trace, post_trace, targets, slots, pre_spikes, post_spikes, a_plus,
                  a_minus, a3_plus, a3_minus, w_min, w_max, dec_pre1, dec_pre2, dec_post1, dec_post2, soft,
                  multiplicative, nearest, w_out, pre_out, post_out);
}

// Delivery fused with the update: g_out = g + pre_spikes @ W (weights before the update), then STDP.
// One call reads and rewrites the weights, so XLA needs no copy of them to order a separate delivery.
static ffi::Error StdpDeliverImpl(ffi::Buffer<ffi::F32> g, ffi::Buffer<ffi::F32> weights,
                                  ffi::Buffer<ffi::F32> pre_trace, ffi::Buffer<ffi::F32> post_trace,
                                  ffi::Buffer<ffi::S32> targets, ffi::Buffer<ffi::S32> slots,
                                  ffi::Buffer<ffi::F32> pre_spikes, ffi::Buffer<ffi::F32> post_spikes, float a_plus,
                                  float a_minus, float a3_plus, float a3_minus, float w_min, float w_max,
                                  float dec_pre1, float dec_pre2, float dec_post1, float dec_post2, int64_t soft,
                                  int64_t multiplicative, int64_t nearest, ffi::Result<ffi::Buffer<ffi::F32>> g_out,
                                  ffi::Result<ffi::Buffer<ffi::F32>> w_out, ffi::Result<ffi::Buffer<ffi::F32>> pre_out,
                                  ffi::Result<ffi::Buffer<ffi::F32>> post_out) {
  if (g.element_count() != g_out->element_count() ||
      static_cast<int64_t>(g.element_count()) != slots.dimensions()[0])
    return ffi::Error::InvalidArgument("stdp_deliver: g must have n_post elements");
  return StdpCore(g_out->typed_data(), g.typed_data(), weights, pre_trace, post_trace, targets, slots, pre_spikes,
                  post_spikes, a_plus, a_minus, a3_plus, a3_minus, w_min, w_max, dec_pre1, dec_pre2, dec_post1,
                  dec_post2, soft, multiplicative, nearest, w_out, pre_out, post_out);
}

#define STDP_ATTRS                      \
  .Attr<float>("a_plus")                \
      .Attr<float>("a_minus")           \
      .Attr<float>("a3_plus")           \
      .Attr<float>("a3_minus")          \
      .Attr<float>("w_min")             \
      .Attr<float>("w_max")             \
      .Attr<float>("dec_pre1")          \
      .Attr<float>("dec_pre2")          \
      .Attr<float>("dec_post1")         \
      .Attr<float>("dec_post2")         \
      .Attr<int64_t>("soft")            \
      .Attr<int64_t>("multiplicative")  \
      .Attr<int64_t>("nearest")

XLA_FFI_DEFINE_HANDLER_SYMBOL(BrainsimStdpDeliverUpdate, StdpDeliverImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>() STDP_ATTRS
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(BrainsimStdpUpdate, StdpImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>() STDP_ATTRS
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());
