// Scheduling of spikes into a postsynaptic ring buffer with one integer delay per synapse (XLA FFI, CPU):
// what brainsim.delays.schedule computes, in place.
//
//   for every presynaptic i with spikes[i] != 0, every synapse k of its row (ELL layout, padding >= n_post ends it):
//     buffer[(step + delays[i, k]) mod depth, targets[i, k]] += spikes[i] * w[i, k]
//
// Cost: one pass over the spike vector plus O(out-degree) per spiking neuron (the pure-JAX path pads every batch of
// spikes to full rows). `weights` has one element (homogeneous) or n_pre * K; delays are int8, int16 or int32.
#include <cstdint>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

template <ffi::DataType kDelay>
static ffi::Error ScheduleImpl(ffi::Buffer<ffi::F32> buffer, ffi::Buffer<ffi::F32> spikes,
                               ffi::Buffer<ffi::S32> targets, ffi::Buffer<kDelay> delays,
                               ffi::Buffer<ffi::F32> weights, ffi::Buffer<ffi::S32> step,
                               ffi::ResultBuffer<ffi::F32> out) {
  const auto bdims = buffer.dimensions();
  const auto tdims = targets.dimensions();
  if (bdims.size() != 2 || tdims.size() != 2) return ffi::Error::InvalidArgument("delayed_schedule: ranks");
  const int64_t depth = bdims[0], n_post = bdims[1], n_pre = tdims[0], width = tdims[1];
  if (static_cast<int64_t>(spikes.element_count()) != n_pre || delays.element_count() != targets.element_count())
    return ffi::Error::InvalidArgument("delayed_schedule: spikes/delays shapes");
  const bool homogeneous = weights.element_count() == 1;
  if (!homogeneous && weights.element_count() != targets.element_count())
    return ffi::Error::InvalidArgument("delayed_schedule: weights must have one element or one per synapse");
  float* buf = out->typed_data();  // aliases `buffer`
  const float* s = spikes.typed_data();
  const int32_t* t = targets.typed_data();
  const auto* d = delays.typed_data();
  const float* w = weights.typed_data();
  const int64_t now = step.typed_data()[0];
  for (int64_t i = 0; i < n_pre; ++i) {
    if (s[i] == 0.0f) continue;
    const int64_t row = i * width;
    const float value = s[i];
    for (int64_t k = 0; k < width; ++k) {
      const int32_t target = t[row + k];
      if (target >= n_post || target < 0) break;  // padding ends the row
      const int64_t slot = (now + static_cast<int64_t>(d[row + k])) % depth;
      buf[slot * n_post + target] += value * (homogeneous ? w[0] : w[row + k]);
    }
  }
  return ffi::Error::Success();
}

#define BRAINSIM_SCHEDULE_HANDLER(name, dtype)                       \
  XLA_FFI_DEFINE_HANDLER_SYMBOL(name, ScheduleImpl<dtype>,           \
                                ffi::Ffi::Bind()                     \
                                    .Arg<ffi::Buffer<ffi::F32>>()    \
                                    .Arg<ffi::Buffer<ffi::F32>>()    \
                                    .Arg<ffi::Buffer<ffi::S32>>()    \
                                    .Arg<ffi::Buffer<dtype>>()       \
                                    .Arg<ffi::Buffer<ffi::F32>>()    \
                                    .Arg<ffi::Buffer<ffi::S32>>()    \
                                    .Ret<ffi::Buffer<ffi::F32>>());

BRAINSIM_SCHEDULE_HANDLER(BrainsimDelayedScheduleS8, ffi::DataType::S8)
BRAINSIM_SCHEDULE_HANDLER(BrainsimDelayedScheduleS16, ffi::DataType::S16)
BRAINSIM_SCHEDULE_HANDLER(BrainsimDelayedScheduleS32, ffi::DataType::S32)
