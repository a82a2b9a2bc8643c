// Helpers shared by brainsim's native CPU kernels (header only; each kernel file is its own library).
#pragma once

#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <thread>
#include <type_traits>
#include <new>
#include <vector>
#if defined(__AVX__)
#include <immintrin.h>
#endif

namespace brainsim {

// Threefry-2x32 with 20 rounds (Salmon et al. 2011), as jax.random's threefry2x32: encrypts the counter (x0, x1)
// under the key (k0, k1) in place. The counter-based generator of brainsim.counts and the connectivity builders.
inline void threefry2x32(uint32_t k0, uint32_t k1, uint32_t& x0, uint32_t& x1) {
  const uint32_t ks[3] = {k0, k1, k0 ^ k1 ^ 0x1BD11BDAu};
  constexpr int kRot[2][4] = {{13, 15, 26, 6}, {17, 29, 16, 24}};
  x0 += k0;
  x1 += k1;
  for (int group = 0; group < 5; ++group) {
    for (int j = 0; j < 4; ++j) {
      x0 += x1;
      x1 = (x1 << kRot[group & 1][j]) | (x1 >> (32 - kRot[group & 1][j]));
      x1 ^= x0;
    }
    x0 += ks[(group + 1) % 3];
    x1 += ks[(group + 2) % 3] + static_cast<uint32_t>(group + 1);
  }
}

// The order of the LIF parameter rows P (6, M) that population.cc and lif_layer.cc read; each library exports it
// (BrainsimLifParamOrder) and the Python loader checks it against brainsim.neurons.lif.LIF_PARAM_ORDER.
inline constexpr const char* kLifParamOrder = "tau_m,C_m,v_rest,v_th,v_reset,t_ref";

// A std::vector whose storage starts on a 64-byte boundary (a cache line, an AVX-512 vector). The kernels'
// scratch rows are read and written 16 floats at a time: with malloc's 16-byte alignment, where each row
// started (and so whether its vector loads straddle two cache lines) depended on what was allocated before.
template <typename T>
struct CacheLineAllocator {
  using value_type = T;
  CacheLineAllocator() = default;
  template <typename U>
  CacheLineAllocator(const CacheLineAllocator<U>&) {}
  T* allocate(std::size_t n) {
    void* p = ::operator new(n * sizeof(T), std::align_val_t{64});
    return static_cast<T*>(p);
  }
  void deallocate(T* p, std::size_t) { ::operator delete(p, std::align_val_t{64}); }
  template <typename U>
  bool operator==(const CacheLineAllocator<U>&) const { return true; }
  template <typename U>
  bool operator!=(const CacheLineAllocator<U>&) const { return false; }
};
template <typename T>
using AlignedVector = std::vector<T, CacheLineAllocator<T>>;

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

// One vector register of floats (GCC/Clang vector extension) at the width the library is compiled for: 16 lanes
// with AVX-512, 8 otherwise (AVX2; narrower instruction sets split it). Register blocks are sized to the register
// file (AVX-512 has 32 vector registers, AVX2 16): a block that keeps more accumulators than fit, or a vector type
// wider than the registers (which GCC moves through memory in 64-bit pieces), made the AVX2 backward pass of the
// LIF layer ~3x slower than its pure-JAX reference. Blocking never changes the order in which an output element
// is summed, so results do not depend on it.
#if defined(__AVX512F__)
constexpr int kLanes = 16;
constexpr int kGemmRows = 8, kGemmVecs = 2;  // 8 x 32 outputs: 16 accumulators
constexpr int kRowVecs = 16;                 // row sums 256 columns at a time: 16 accumulators
#else
constexpr int kLanes = 8;
constexpr int kGemmRows = 6, kGemmVecs = 2;  // 6 x 16 outputs: 12 accumulators, 2 registers for a row of Bm
constexpr int kRowVecs = 8;                  // row sums 64 columns at a time: 8 accumulators
#endif
typedef float vf __attribute__((vector_size(4 * kLanes)));
inline vf loadv(const float* p) {
  vf v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
inline void storev(float* p, vf v) { std::memcpy(p, &v, sizeof(v)); }

// Writes the positions (and values) of the nonzero entries of x[0:n] to idx (and vals, if not null) in
// increasing order; returns how many there are. With AVX-512 sixteen entries are tested per compare;
// without it, all-zero blocks of kSkipBlock entries are skipped with one OR reduction each.
inline int64_t collect_nonzero(const float* x, int64_t n, int32_t* idx, float* vals) {
  int64_t count = 0, k = 0;
  auto add = [&](int64_t j) {
    idx[count] = static_cast<int32_t>(j);
    if (vals) vals[count] = x[j];
    ++count;
  };
#if defined(__AVX512F__)
  const __m512 zero = _mm512_setzero_ps();
  for (; k + 16 <= n; k += 16) {
    for (__mmask16 m = _mm512_cmpneq_ps_mask(_mm512_loadu_ps(x + k), zero); m; m &= m - 1) add(k + __builtin_ctz(m));
  }
#else
  for (; k + kSkipBlock <= n; k += kSkipBlock) {
    if (block_is_zero(x + k)) continue;
    for (int64_t j = k; j < k + kSkipBlock; ++j) {
      if (x[j] != 0.0f) add(j);
    }
  }
#endif
  for (; k < n; ++k) {
    if (x[k] != 0.0f) add(k);
  }
  return count;
}

// out[j] = base[j] + sum_i vals[i] * rows[idx[i] * ld + j] for j < NV kLanes, accumulated in NV vector
// registers (each row is loaded once; out is written once). base may be null (zero), vals null (ones).
template <int NV>
inline void accumulate_rows_block(float* out, const float* base, const int32_t* idx, const float* vals,
                                  int64_t count, const float* rows, int64_t ld) {
  vf acc[NV];
  for (int j = 0; j < NV; ++j) acc[j] = base ? loadv(base + kLanes * j) : vf{};
  for (int64_t i = 0; i < count; ++i) {
    const float* r = rows + static_cast<int64_t>(idx[i]) * ld;
    if (vals) {
      const float a = vals[i];
      for (int j = 0; j < NV; ++j) acc[j] += a * loadv(r + kLanes * j);
    } else {
      for (int j = 0; j < NV; ++j) acc[j] += loadv(r + kLanes * j);
    }
  }
  for (int j = 0; j < NV; ++j) storev(out + kLanes * j, acc[j]);
}

// out[0:n] = base[0:n] + sum_i vals[i] * rows[idx[i] * ld + 0:n]: a weighted sum of selected rows of a
// row-major matrix (spikes times weights), kRowVecs registers of columns at a time.
inline void accumulate_rows(float* out, const float* base, const int32_t* idx, const float* vals, int64_t count,
                            const float* rows, int64_t ld, int64_t n) {
  int64_t j = 0;
  for (; j + kLanes * kRowVecs <= n; j += kLanes * kRowVecs)
    accumulate_rows_block<kRowVecs>(out + j, base ? base + j : nullptr, idx, vals, count, rows + j, ld);
  for (; j + kLanes * 4 <= n; j += kLanes * 4)
    accumulate_rows_block<4>(out + j, base ? base + j : nullptr, idx, vals, count, rows + j, ld);
  for (; j + kLanes <= n; j += kLanes)
    accumulate_rows_block<1>(out + j, base ? base + j : nullptr, idx, vals, count, rows + j, ld);
  for (; j < n; ++j) {
    float sum = base ? base[j] : 0.0f;
    for (int64_t i = 0; i < count; ++i) sum += (vals ? vals[i] : 1.0f) * rows[static_cast<int64_t>(idx[i]) * ld + j];
    out[j] = sum;
  }
}

// rows[idx[i] * ld + j] += vals[i] * src[j] for j < NV kLanes and every i: src is held in NV vector
// registers, so each selected row is read and written once.
template <int NV>
inline void scatter_rows_block(float* rows, int64_t ld, const int32_t* idx, const float* vals, int64_t count,
                               const float* src) {
  vf x[NV];
  for (int j = 0; j < NV; ++j) x[j] = loadv(src + kLanes * j);
  for (int64_t i = 0; i < count; ++i) {
    float* r = rows + static_cast<int64_t>(idx[i]) * ld;
    const float a = vals ? vals[i] : 1.0f;
    for (int j = 0; j < NV; ++j) storev(r + kLanes * j, loadv(r + kLanes * j) + a * x[j]);
  }
}

// rows[idx[i] * ld + 0:n] += vals[i] * src[0:n] for every i (vals null: ones): the transpose of
// accumulate_rows, e.g. a weight gradient x^T g visiting only the nonzero entries of x.
inline void scatter_rows(float* rows, int64_t ld, const int32_t* idx, const float* vals, int64_t count,
                         const float* src, int64_t n) {
  int64_t j = 0;
  for (; j + kLanes * kRowVecs <= n; j += kLanes * kRowVecs)
    scatter_rows_block<kRowVecs>(rows + j, ld, idx, vals, count, src + j);
  for (; j + kLanes * 4 <= n; j += kLanes * 4) scatter_rows_block<4>(rows + j, ld, idx, vals, count, src + j);
  for (; j + kLanes <= n; j += kLanes) scatter_rows_block<1>(rows + j, ld, idx, vals, count, src + j);
  if (j < n) {
    for (int64_t i = 0; i < count; ++i) {
      float* r = rows + static_cast<int64_t>(idx[i]) * ld;
      const float a = vals ? vals[i] : 1.0f;
      for (int64_t c = j; c < n; ++c) r[c] += a * src[c];
    }
  }
}

// C[0:MR, 0:NV kLanes] = A[0:MR, :] * Bm[:, 0:NV kLanes], A(i, k) = A[i * a_rs + k * a_cs], Bm row stride N,
// accumulated in MR x NV vector registers over the whole K loop: each row of Bm is loaded once per block
// and used for MR rows of A.
template <int MR, int NV>
inline void gemm_block(const float* A, int64_t a_rs, int64_t a_cs, const float* Bm, int64_t K, int64_t N, float* C,
                       int64_t ldc) {
  vf c[MR][NV];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NV; ++j) c[i][j] = vf{};
  for (int64_t k = 0; k < K; ++k) {
    vf b[NV];
    for (int j = 0; j < NV; ++j) b[j] = loadv(Bm + k * N + kLanes * j);
    for (int i = 0; i < MR; ++i) {
      const float a = A[i * a_rs + k * a_cs];
      for (int j = 0; j < NV; ++j) c[i][j] += a * b[j];
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NV; ++j) storev(C + i * ldc + kLanes * j, c[i][j]);
}

template <int MR>
inline void gemm_rows(const float* A, int64_t a_rs, int64_t a_cs, const float* Bm, int64_t K, int64_t N, float* C,
                      int64_t ldc) {
  int64_t j0 = 0;
  for (; j0 + kLanes * kGemmVecs <= N; j0 += kLanes * kGemmVecs)
    gemm_block<MR, kGemmVecs>(A, a_rs, a_cs, Bm + j0, K, N, C + j0, ldc);
  for (; j0 + kLanes <= N; j0 += kLanes) gemm_block<MR, 1>(A, a_rs, a_cs, Bm + j0, K, N, C + j0, ldc);
  for (int i = 0; i < MR; ++i)
    for (int64_t j = j0; j < N; ++j) {
      float sum = 0.0f;
      for (int64_t k = 0; k < K; ++k) sum += A[i * a_rs + k * a_cs] * Bm[k * N + j];
      C[i * ldc + j] = sum;
    }
}

// C (M x N, row stride ldc) = A (M x K; A(i, k) = A[i * a_rs + k * a_cs]) * Bm (K x N, row-major):
// blocks of kGemmRows rows x kGemmVecs registers of columns, then 4- and 1-row and one-register edges, then
// scalars. A dense product small enough that W stays in cache.
inline void gemm(const float* A, int64_t a_rs, int64_t a_cs, int64_t M, const float* Bm, int64_t K, int64_t N,
                 float* C, int64_t ldc) {
  int64_t i0 = 0;
  for (; i0 + kGemmRows <= M; i0 += kGemmRows) gemm_rows<kGemmRows>(A + i0 * a_rs, a_rs, a_cs, Bm, K, N, C + i0 * ldc, ldc);
  for (; i0 + 4 <= M; i0 += 4) gemm_rows<4>(A + i0 * a_rs, a_rs, a_cs, Bm, K, N, C + i0 * ldc, ldc);
  for (; i0 < M; ++i0) gemm_rows<1>(A + i0 * a_rs, a_rs, a_cs, Bm, K, N, C + i0 * ldc, ldc);
}

// Fraction of nonzero entries among at most ~4096 evenly strided entries of x[0:n] (an estimate that
// only chooses between two exact ways of computing a product).
inline double sampled_density(const float* x, int64_t n) {
  if (n <= 0) return 0.0;
  const int64_t stride = n > 4096 ? n / 4096 : 1;
  int64_t seen = 0, nonzero = 0;
  for (int64_t k = 0; k < n; k += stride, ++seen) nonzero += x[k] != 0.0f;
  return static_cast<double>(nonzero) / static_cast<double>(seen);
}

// Asks the CPU to start loading bytes [p, p + bytes) into cache (rw = 1: about to be written). Used one
// loop iteration ahead when the next rows are too far away for the hardware prefetcher to guess.
template <int kRw = 0>
inline void prefetch_range(const void* p, int64_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (int64_t off = 0; off < bytes; off += 64) __builtin_prefetch(c + off, kRw, 3);
}

// Tells the CPU that this thread is spinning on a flag (frees the core's resources for a moment).
inline void cpu_pause() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// The second thread of the kernels' two-way splits, kept between calls. Starting a std::thread per
// call cost 1-2 ms on this project's 2-vCPU virtual machine (measured with rdtsc inside the fused LIF
// kernels: the new thread began its half that long after the caller began its own), because the idle
// virtual CPU has to be woken. The worker stays; after a task it keeps its CPU awake for kStayAwake,
// yielding (so runnable threads, e.g. XLA's, still get the CPU), then sleeps on a condition variable.
class PairWorker {
 public:
  // Runs first() on the calling thread and second() on the worker; returns when both are done. If the
  // worker is busy with another call (kernels running concurrently), or cannot start, both run here.
  template <typename First, typename Second>
  static void run(First&& first, Second&& second) {
    PairWorker* w = instance();
    if (w == nullptr || w->busy_.exchange(true, std::memory_order_acquire)) {
      first();
      second();
      return;
    }
    w->post(&call<std::remove_reference_t<Second>>, &second);
    first();
    // the worker's half usually ends within microseconds of ours: spin (a yield here could hand the CPU
    // to another spinning thread for a whole time slice), then yield if it takes longer
    for (int spins = 0; w->done_.load(std::memory_order_acquire) == 0; ++spins) {
      if (spins < kSpinBeforeYield) {
        cpu_pause();
      } else {
        sched_yield();
      }
    }
    w->busy_.store(false, std::memory_order_release);
  }

 private:
  static constexpr auto kStayAwake = std::chrono::milliseconds(5);
  static constexpr int kSpinBeforeYield = 1 << 16;

  template <typename F>
  static void call(void* f) {
    (*static_cast<F*>(f))();
  }

  // One worker per process (and per kernel library): created on first use, re-created in a forked child
  // (threads do not survive fork). Never destroyed: the thread is detached and ends with the process.
  static PairWorker* instance() {
    static std::mutex guard;
    static PairWorker* worker = nullptr;
    static pid_t owner = 0;
    std::lock_guard<std::mutex> lock(guard);
    if (worker == nullptr || owner != getpid()) {
      worker = nullptr;
      if (std::thread::hardware_concurrency() < 2) return nullptr;
      try {
        auto* w = new PairWorker();
        std::thread(&PairWorker::loop, w).detach();
        worker = w;
        owner = getpid();
      } catch (...) {
        return nullptr;
      }
    }
    return worker;
  }

  void post(void (*fn)(void*), void* arg) {
    done_.store(0, std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      fn_ = fn;
      arg_ = arg;
      posted_.store(1, std::memory_order_release);
    }
    wake_.notify_one();
  }

  void loop() {
    for (;;) {
      const auto idle_since = std::chrono::steady_clock::now();
      while (posted_.load(std::memory_order_acquire) == 0) {
        if (std::chrono::steady_clock::now() - idle_since < kStayAwake) {
          sched_yield();
          continue;
        }
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [this] { return posted_.load(std::memory_order_acquire) != 0; });
      }
      void (*fn)(void*);
      void* arg;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        fn = fn_;
        arg = arg_;
        posted_.store(0, std::memory_order_relaxed);
      }
      fn(arg);
      done_.store(1, std::memory_order_release);
    }
  }

  std::atomic<bool> busy_{false};
  std::atomic<int> posted_{0}, done_{0};
  std::mutex mutex_;
  std::condition_variable wake_;
  void (*fn_)(void*) = nullptr;
  void* arg_ = nullptr;
};

}  // namespace brainsim
