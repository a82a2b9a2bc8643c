// Helpers shared by brainsim's native CPU kernels (header only; each kernel file is its own library).
#pragma once

#include <cstdint>
#include <cstring>

namespace brainsim {

// Number of float32 values tested at once when looking for spikes (or other nonzero inputs).
constexpr int64_t kSkipBlock = 64;

// True if all kSkipBlock floats at `values` have all-zero bits (+0.0f); reads them as 32 uint64 words,
// one vectorisable OR reduction.
inline bool block_is_zero(const float* values) {
  uint64_t words[kSkipBlock / 2];
  std::memcpy(words, values, sizeof(words));
  uint64_t any = 0;
  for (int k = 0; k < kSkipBlock / 2; ++k) any |= words[k];
  return any == 0;
}

// acc[0:n] += a * row[0:n] (vectorised; the libraries are compiled for the running CPU).
inline void axpy(float* __restrict acc, float a, const float* __restrict row, int64_t n) {
  for (int64_t j = 0; j < n; ++j) acc[j] += a * row[j];
}

}  // namespace brainsim
