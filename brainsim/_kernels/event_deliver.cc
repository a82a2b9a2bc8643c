// Event-driven spike delivery as an XLA FFI custom call (CPU).
//
// out[j] = sum_i spikes[i] * sum_k weights[i, k] * [targets[i, k] == j]
//
// Rows are the outgoing synapses of presynaptic neuron i in padded fixed-fan-out (ELL) layout; a
// target >= n_post marks padding, and padding is always at the end of a row. Cost: one pass over
// the spike vector plus O(out-degree) per spiking neuron, so it grows with the number of spikes.
// `weights` is either (n_pre, K) (one weight per synapse) or a single element (homogeneous weight).
#include <cstdint>
#include <cstring>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

static ffi::Error EventDeliverImpl(ffi::Buffer<ffi::F32> spikes, ffi::Buffer<ffi::S32> targets,
                                   ffi::Buffer<ffi::F32> weights, ffi::ResultBuffer<ffi::F32> out) {
  const int64_t n_pre = spikes.element_count();
  const int64_t n_post = out->element_count();
  const auto dims = targets.dimensions();
  if (dims.size() != 2 || dims[0] != n_pre) {
    return ffi::Error::InvalidArgument("event_deliver: targets must have shape (n_pre, K)");
  }
  const int64_t width = dims[1];
  const bool homogeneous = weights.element_count() == 1;
  if (!homogeneous && weights.element_count() != n_pre * width) {
    return ffi::Error::InvalidArgument("event_deliver: weights must have shape (n_pre, K) or one element");
  }
  const float* s = spikes.typed_data();
  const int32_t* t = targets.typed_data();
  const float* w = weights.typed_data();
  float* o = out->typed_data();
  std::memset(o, 0, sizeof(float) * n_post);
  for (int64_t i = 0; i < n_pre; ++i) {
    const float value = s[i];
    if (value == 0.0f) continue;
    const int32_t* row = t + i * width;
    if (homogeneous) {
      const float add = value * w[0];
      for (int64_t k = 0; k < width; ++k) {
        const int32_t j = row[k];
        if (static_cast<uint32_t>(j) >= static_cast<uint64_t>(n_post)) break;
        o[j] += add;
      }
    } else {
      const float* wrow = w + i * width;
      for (int64_t k = 0; k < width; ++k) {
        const int32_t j = row[k];
        if (static_cast<uint32_t>(j) >= static_cast<uint64_t>(n_post)) break;
        o[j] += value * wrow[k];
      }
    }
  }
  return ffi::Error::Success();
}

XLA_FFI_DEFINE_HANDLER_SYMBOL(BrainsimEventDeliver, EventDeliverImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());
