// Native CPU kernels for brainsim, registered as XLA FFI custom calls:
//   BrainsimEventDeliver: event-driven spike delivery;
//   BrainsimPackSpikes:   bit-packing of a spike vector for spike monitors (numpy.packbits order).
//
// Event-driven spike delivery:
//
// out = g + spikes[row_offset : row_offset + n_pre] @ W,   computed in place (out aliases g)
//
// Row i of `targets` lists the postsynaptic indices of presynaptic neuron row_offset + i in padded
// fixed-fan-out (ELL) layout; a target >= n_post marks padding, which always ends a row. Cost: one
// pass over the n_pre spike values plus O(out-degree) per spiking neuron, so it grows with the number
// of spikes. `weights` is either (n_pre, K), one weight per synapse, or one element (homogeneous).
#include <cstdint>
#include <cstring>

#include "kernel_common.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

using brainsim::block_is_zero;
using brainsim::kSkipBlock;

static ffi::Error EventDeliverImpl(ffi::Buffer<ffi::F32> g, ffi::Buffer<ffi::F32> spikes,
                                   ffi::Buffer<ffi::S32> targets, ffi::Buffer<ffi::F32> weights,
                                   int64_t row_offset, ffi::ResultBuffer<ffi::F32> out) {
  const int64_t n_post = out->element_count();
  const auto dims = targets.dimensions();
  if (dims.size() != 2) return ffi::Error::InvalidArgument("event_deliver: targets must be 2-D (n_pre, K)");
  const int64_t n_pre = dims[0];
  const int64_t width = dims[1];
  if (g.element_count() != n_post) return ffi::Error::InvalidArgument("event_deliver: g must have n_post elements");
  if (row_offset < 0 || row_offset + n_pre > static_cast<int64_t>(spikes.element_count())) {
    return ffi::Error::InvalidArgument("event_deliver: spike rows out of range");
  }
  const bool homogeneous = weights.element_count() == 1;
  if (!homogeneous && static_cast<int64_t>(weights.element_count()) != n_pre * width) {
    return ffi::Error::InvalidArgument("event_deliver: weights must have shape (n_pre, K) or one element");
  }
  float* o = out->typed_data();
  if (o != g.typed_data()) std::memcpy(o, g.typed_data(), sizeof(float) * n_post);
  const float* s = spikes.typed_data() + row_offset;
  const int32_t* t = targets.typed_data();
  const float* w = weights.typed_data();
  const uint64_t limit = static_cast<uint64_t>(n_post);
  auto deliver_row = [&](int64_t i) {
    const float value = s[i];
    if (value == 0.0f) return;
    const int32_t* row = t + i * width;
    if (homogeneous) {
      const float add = value * w[0];
      for (int64_t k = 0; k < width; ++k) {
        const uint32_t j = static_cast<uint32_t>(row[k]);
        if (j >= limit) break;
        o[j] += add;
      }
    } else {
      const float* wrow = w + i * width;
      for (int64_t k = 0; k < width; ++k) {
        const uint32_t j = static_cast<uint32_t>(row[k]);
        if (j >= limit) break;
        o[j] += value * wrow[k];
      }
    }
  };
  // Most presynaptic neurons are silent in a step: skip blocks of 64 spike values whose bit patterns
  // are all zero (+0.0f is all-zero bits), testing them with one vectorisable OR reduction. The
  // spiking rows found are delivered in batches; while one row is delivered, the target rows of the
  // spikes kPrefetchRows ahead are prefetched, and the postsynaptic entries of the next one, so that
  // for large networks (synapse tables far bigger than the caches) the memory latencies overlap.
  constexpr int64_t kBatch = 256, kPrefetchRows = 8;
  int64_t pending[kBatch];
  int64_t n_pending = 0;
  const int64_t row_bytes = width * static_cast<int64_t>(sizeof(int32_t));
  auto prefetch_row = [&](int64_t i) {
    const char* p = reinterpret_cast<const char*>(t + i * width);
    for (int64_t b = 0; b < row_bytes; b += 64) __builtin_prefetch(p + b);
  };
  auto prefetch_targets = [&](int64_t i) {
    const int32_t* row = t + i * width;
    for (int64_t k = 0; k < width; ++k) {
      const uint32_t j = static_cast<uint32_t>(row[k]);
      if (j >= limit) break;
      __builtin_prefetch(o + j, 1);
    }
  };
  auto flush = [&] {
    for (int64_t n = 0; n < n_pending; ++n) {
      if (n + kPrefetchRows < n_pending) prefetch_row(pending[n + kPrefetchRows]);
      if (n + 1 < n_pending) prefetch_targets(pending[n + 1]);
      deliver_row(pending[n]);
    }
    n_pending = 0;
  };
  for (int64_t start = 0; start < n_pre; start += kSkipBlock) {
    const int64_t stop = start + kSkipBlock < n_pre ? start + kSkipBlock : n_pre;
    if (stop - start == kSkipBlock && block_is_zero(s + start)) continue;
    for (int64_t i = start; i < stop; ++i) {
      if (s[i] == 0.0f) continue;
      if (n_pending == kBatch) flush();
      if (n_pending < kPrefetchRows) prefetch_row(i);
      pending[n_pending++] = i;
    }
  }
  flush();
  return ffi::Error::Success();
}

XLA_FFI_DEFINE_HANDLER_SYMBOL(BrainsimEventDeliver, EventDeliverImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Attr<int64_t>("row_offset")
                                  .Ret<ffi::Buffer<ffi::F32>>());

// out[b] bit (7 - k) = spikes[8 b + k] != 0, i.e. numpy.packbits(spikes != 0) (most significant bit first).
// Spike monitors record these bytes every step: 8x less than a bool raster, one pass over the spikes.
static ffi::Error PackSpikesImpl(ffi::Buffer<ffi::F32> spikes, ffi::ResultBuffer<ffi::U8> out) {
  const int64_t n = spikes.element_count();
  const int64_t n_bytes = out->element_count();
  if (n_bytes != (n + 7) / 8) return ffi::Error::InvalidArgument("pack_spikes: output must have ceil(n / 8) bytes");
  const float* s = spikes.typed_data();
  uint8_t* o = out->typed_data();
  const int64_t full = n / 8;
  for (int64_t b = 0; b < full; ++b) {
    if (b % 8 == 0 && b + 8 <= full && block_is_zero(s + 8 * b)) {  // 64 silent neurons -> 8 zero bytes
      std::memset(o + b, 0, 8);
      b += 7;
      continue;
    }
    uint8_t byte = 0;
    for (int k = 0; k < 8; ++k) byte |= static_cast<uint8_t>((s[8 * b + k] != 0.0f) << (7 - k));
    o[b] = byte;
  }
  if (full < n_bytes) {
    uint8_t byte = 0;
    for (int64_t i = 8 * full; i < n; ++i) byte |= static_cast<uint8_t>((s[i] != 0.0f) << (7 - (i - 8 * full)));
    o[full] = byte;
  }
  return ffi::Error::Success();
}

XLA_FFI_DEFINE_HANDLER_SYMBOL(BrainsimPackSpikes, PackSpikesImpl,
                              ffi::Ffi::Bind().Arg<ffi::Buffer<ffi::F32>>().Ret<ffi::Buffer<ffi::U8>>());

// Host-side decoding of a packed spike raster (numpy.packbits rows, padded to whole 64-bit words):
// writes the (row, neuron) of every set bit, row by row and in increasing neuron order, and returns
// the number of set bits. With steps == nullptr it only counts. Called through ctypes by
// brainsim.simulate, so that decoding costs one pass over the raster plus O(spikes).
extern "C" int64_t brainsim_decode_spikes(const uint64_t* words, int64_t n_rows, int64_t words_per_row,
                                          int64_t* steps, int32_t* neurons) {
  int64_t count = 0;
  for (int64_t r = 0; r < n_rows; ++r) {
    const uint64_t* row = words + r * words_per_row;
    for (int64_t k = 0; k < words_per_row; ++k) {
      const uint64_t w = row[k];
      if (w == 0) continue;
      if (steps == nullptr) {
        count += __builtin_popcountll(w);
        continue;
      }
      for (int j = 0; j < 8; ++j) {  // byte j of the word in memory order (little-endian)
        const unsigned byte = static_cast<unsigned>(w >> (8 * j)) & 0xFFu;
        if (byte == 0) continue;
        for (int q = 7; q >= 0; --q) {  // packbits: the most significant bit is the lowest neuron
          if ((byte >> q) & 1u) {
            steps[count] = r;
            neurons[count] = static_cast<int32_t>(k * 64 + j * 8 + (7 - q));
            ++count;
          }
        }
      }
    }
  }
  return count;
}
