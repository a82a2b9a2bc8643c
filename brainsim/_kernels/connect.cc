// Random connectivity on the host (plain C entry points called through ctypes by brainsim.connectivity).
//
// brainsim_sample_rows draws, for every row r, degrees[r] distinct columns out of [0, n_cols) (never r itself when
// forbid_diagonal), uniformly among all such sets (or, with replace, degrees[r] independent uniform columns), and
// writes them sorted ascending, row after row. The random
// numbers of row r are a SplitMix64 sequence seeded by Threefry-2x32 (20 rounds) of the counter (r, 0) under a
// 2-word key, so a row's columns depend only on the key and the row. A column is drawn by Lemire's
// multiply-and-reject (exactly uniform); rows needing more than half of the allowed columns draw the columns to
// leave out instead.
//
// brainsim_transpose_rows turns such a row-major list (rows = post, columns = pre) into (pre, post) pairs sorted by
// pre, then post: a counting sort, O(n_synapses + n_pre).
#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernel_common.h"

namespace {

// The uniform 32-bit words of one row: a SplitMix64 sequence (Steele et al. 2014) seeded with Threefry-2x32 of the
// counter (row, 0), two words per 64-bit output.
class RowStream {
 public:
  RowStream(uint32_t k0, uint32_t k1, uint32_t row) {
    uint32_t x0 = row, x1 = 0;
    brainsim::threefry2x32(k0, k1, x0, x1);
    state_ = (static_cast<uint64_t>(x1) << 32) | x0;
  }
  uint32_t next() {
    if (have_) {
      have_ = false;
      return second_;
    }
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    second_ = static_cast<uint32_t>(z >> 32);
    have_ = true;
    return static_cast<uint32_t>(z);
  }
  // exactly uniform in [0, n) (Lemire 2019)
  uint32_t below(uint32_t n) {
    uint64_t m = static_cast<uint64_t>(next()) * n;
    uint32_t low = static_cast<uint32_t>(m);
    if (low < n) {
      const uint32_t threshold = static_cast<uint32_t>(-n) % n;
      while (low < threshold) {
        m = static_cast<uint64_t>(next()) * n;
        low = static_cast<uint32_t>(m);
      }
    }
    return static_cast<uint32_t>(m >> 32);
  }

 private:
  uint64_t state_ = 0;
  uint32_t second_ = 0;
  bool have_ = false;
};

}  // namespace

extern "C" {

// 0 on success; -1 if a degree exceeds the columns allowed in its row; -2 if a size exceeds 2^31 - 1.
// With pairs != 0, `out` receives (row, column) pairs (2 int32 per entry), else the columns alone. With
// replace != 0 the columns of a row are drawn with replacement (independently, uniform over the allowed ones).
int64_t brainsim_sample_rows(uint32_t k0, uint32_t k1, int64_t n_rows, int64_t n_cols, const int64_t* degrees,
                             int64_t forbid_diagonal, int64_t pairs, int64_t replace, int32_t* out) {
  if (n_rows > INT32_MAX || n_cols > INT32_MAX) return -2;
  std::vector<uint64_t> taken((n_cols + 63) / 64, 0);
  std::vector<uint32_t> drawn;
  auto is_set = [&](uint32_t c) { return (taken[c >> 6] >> (c & 63)) & 1u; };
  auto set = [&](uint32_t c) { taken[c >> 6] |= uint64_t{1} << (c & 63); };
  int64_t pos = 0;
  const int64_t width = pairs ? 2 : 1;
  int32_t* col_out = out + (pairs ? 1 : 0);
  for (int64_t r = 0; r < n_rows; ++r) {
    if (pairs)
      for (int64_t j = 0; j < degrees[r]; ++j) out[(pos + j) * 2] = static_cast<int32_t>(r);
    const bool skip_r = forbid_diagonal && r < n_cols;
    const int64_t allowed = n_cols - (skip_r ? 1 : 0);
    const int64_t d = degrees[r];
    if (d < 0 || (d > allowed && !replace) || (d > 0 && allowed == 0)) return -1;
    RowStream stream(k0, k1, static_cast<uint32_t>(r));
    if (replace) {
      drawn.clear();
      while (static_cast<int64_t>(drawn.size()) < d) {
        const uint32_t c = stream.below(static_cast<uint32_t>(n_cols));
        if (!(skip_r && c == static_cast<uint32_t>(r))) drawn.push_back(c);
      }
      std::sort(drawn.begin(), drawn.end());
      for (uint32_t c : drawn) col_out[width * pos++] = static_cast<int32_t>(c);
      continue;
    }
    const bool complement = d > allowed / 2;
    const int64_t n_draw = complement ? allowed - d : d;
    drawn.clear();
    while (static_cast<int64_t>(drawn.size()) < n_draw) {
      const uint32_t c = stream.below(static_cast<uint32_t>(n_cols));
      if ((skip_r && c == static_cast<uint32_t>(r)) || is_set(c)) continue;
      set(c);
      drawn.push_back(c);
    }
    if (complement) {  // emit the allowed columns not drawn, then clear the bitmap
      for (int64_t c = 0; c < n_cols; ++c)
        if (!is_set(static_cast<uint32_t>(c)) && !(skip_r && c == r)) col_out[width * pos++] = static_cast<int32_t>(c);
      for (uint32_t c : drawn) taken[c >> 6] = 0;
    } else if (static_cast<int64_t>(drawn.size()) * 16 < n_cols / 64) {  // sparse row: sort the few drawn
      std::sort(drawn.begin(), drawn.end());
      for (uint32_t c : drawn) {
        col_out[width * pos++] = static_cast<int32_t>(c);
        taken[c >> 6] = 0;
      }
    } else {  // dense enough: read the bitmap in order, clearing it
      for (int64_t w = 0; w < static_cast<int64_t>(taken.size()); ++w) {
        uint64_t bits = taken[w];
        while (bits) {
          col_out[width * pos++] = static_cast<int32_t>(w * 64 + __builtin_ctzll(bits));
          bits &= bits - 1;
        }
        taken[w] = 0;
      }
    }
  }
  return 0;
}

// rows: n_rows row-major lists (row r has degrees[r] entries in [0, n_cols)), r ascending. Writes the pairs
// (column, row) sorted by column, then row, into `pairs` (2 int32 per entry). A counting sort in two passes that
// each write to few places at once (cache-friendly): first into blocks of kBlockCols columns, then within a block
// (through a copy of the block, so no second array of the whole size is needed).
void brainsim_transpose_rows(int64_t n_rows, int64_t n_cols, const int64_t* degrees, const int32_t* cols,
                             int32_t* pairs) {
  constexpr int64_t kBlockShift = 7, kBlockCols = int64_t{1} << kBlockShift;
  const int64_t n_blocks = (n_cols + kBlockCols - 1) / kBlockCols;
  std::vector<int64_t> start(n_cols + 1, 0), block_start(n_blocks + 1, 0);
  int64_t total = 0;
  for (int64_t r = 0; r < n_rows; ++r) total += degrees[r];
  for (int64_t e = 0; e < total; ++e) ++start[cols[e] + 1];
  for (int64_t c = 0; c < n_cols; ++c) start[c + 1] += start[c];
  for (int64_t b = 0; b <= n_blocks; ++b) block_start[b] = start[std::min(b * kBlockCols, n_cols)];
  // pass 1: (column, row) into the column's block of `pairs`, rows ascending within each block
  std::vector<int64_t> fill(block_start.begin(), block_start.end() - 1);
  int64_t e = 0;
  for (int64_t r = 0; r < n_rows; ++r) {
    for (int64_t j = 0; j < degrees[r]; ++j, ++e) {
      const int64_t at = fill[cols[e] >> kBlockShift]++;
      pairs[2 * at] = cols[e];
      pairs[2 * at + 1] = static_cast<int32_t>(r);
    }
  }
  // pass 2: block by block, through a small copy, to the column's place (stable: rows stay ascending)
  std::vector<int32_t> block;
  for (int64_t b = 0; b < n_blocks; ++b) {
    block.assign(pairs + 2 * block_start[b], pairs + 2 * block_start[b + 1]);
    for (size_t at = 0; at < block.size(); at += 2) {
      const int64_t to = start[block[at]]++;
      pairs[2 * to] = block[at];
      pairs[2 * to + 1] = block[at + 1];
    }
  }
}

}  // extern "C"
