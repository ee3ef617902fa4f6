#include "delta/matcher.hpp"

#include <divsufsort.h>
#include <divsufsort64.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <exception>
#include <limits>
#include <mutex>
#include <new>
#include <thread>

namespace ota::delta::detail {

namespace {

// Length of the common prefix of a and b (at most n bytes), eight bytes at a time.
inline std::uint64_t common_prefix(const std::uint8_t* a, const std::uint8_t* b, std::uint64_t n) {
  std::uint64_t i = 0;
  while (i + 8 <= n) {
    std::uint64_t x, y;
    std::memcpy(&x, a + i, 8);
    std::memcpy(&y, b + i, 8);
    if (x != y) return i + static_cast<std::uint64_t>(__builtin_ctzll(x ^ y) / 8);
    i += 8;
  }
  while (i < n && a[i] == b[i]) ++i;
  return i;
}

// A large array in its own mapping, backed by transparent huge pages where
// the kernel allows (madvise mode): the suffix array is read at random, and
// with 4 KiB pages nearly every access of a sort or a search misses the TLB.
template <typename T>
class LargeArray {
 public:
  explicit LargeArray(std::size_t n) {
    if (n == 0) return;
    bytes_ = (n * sizeof(T) + kHuge - 1) / kHuge * kHuge;
    void* p = ::mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
    ::madvise(p, bytes_, MADV_HUGEPAGE);
#endif
    data_ = static_cast<T*>(p);
  }
  ~LargeArray() {
    if (data_) ::munmap(data_, bytes_);
  }
  LargeArray(const LargeArray&) = delete;
  LargeArray& operator=(const LargeArray&) = delete;
  T* data() { return data_; }
  const T& operator[](std::size_t i) const { return data_[i]; }

 private:
  static constexpr std::size_t kHuge = std::size_t{2} << 20;
  std::size_t bytes_ = 0;
  T* data_ = nullptr;
};

// The suffix array of one part of OLD, OLD[base, end): suffixes that start in
// the part, ordered by their bytes up to the part's end.
template <typename Index>
class PartIndex {
 public:
  PartIndex(ByteSpan old_image, std::uint64_t base, std::uint64_t end)
      : old_(old_image), base_(base), end_(end), sa_(end - base), start_(kKeys + 1) {
    const std::uint64_t size = end_ - base_;
    if (size == 0) return;
    const std::uint8_t* text = old_.data() + base_;
    if constexpr (sizeof(Index) == 4) {
      divsufsort(text, reinterpret_cast<saidx_t*>(sa_.data()), static_cast<saidx_t>(size));
    } else {
      divsufsort64(text, reinterpret_cast<saidx64_t*>(sa_.data()), static_cast<saidx64_t>(size));
    }
    // Bucket bounds by the first 22 bits of a suffix (two bytes and the top six
    // bits of the third; a suffix shorter than three bytes is padded with
    // zeros, which sorts it first among its bucket, as in the array), from key
    // counts over the text: sequential, unlike a pass over the suffix array.
    Index* start = start_.data();
    auto key_at = [&](std::uint64_t i) {
      const unsigned b1 = i + 1 < size ? text[i + 1] : 0, b2 = i + 2 < size ? text[i + 2] : 0;
      return static_cast<unsigned>(text[i]) << 14 | b1 << 6 | b2 >> 2;
    };
    for (std::uint64_t i = 0; i < size; ++i) ++start[key_at(i) + 1];
    for (std::size_t k = 1; k <= kKeys; ++k) start[k] += start[k - 1];
  }

  // Longest prefix of needle that occurs at a position of this part; a match
  // that reaches the part's end is extended over the rest of OLD.
  std::uint64_t longest_match(ByteSpan needle, std::uint64_t& pos) const {
    const std::uint64_t size = end_ - base_;
    pos = 0;
    if (size == 0 || needle.empty()) return 0;
    std::uint64_t lo = 0, hi = size - 1;
    if (needle.size() >= 3) {
      const unsigned key = static_cast<unsigned>(needle[0]) << 14 | static_cast<unsigned>(needle[1]) << 6 | needle[2] >> 2;
      const auto b = static_cast<std::uint64_t>(start_[key]), e = static_cast<std::uint64_t>(start_[key + 1]);
      if (e > b) {
        lo = b;
        hi = e - 1;
      }
    }
    const std::uint8_t* text = old_.data() + base_;
    auto lcp_at = [&](std::uint64_t i, std::uint64_t from) {
      std::uint64_t s = static_cast<std::uint64_t>(sa_[i]);
      std::uint64_t n = std::min<std::uint64_t>(size - s, needle.size());
      return from + common_prefix(text + s + from, needle.data() + from, n - from);
    };
    std::uint64_t llo = lcp_at(lo, 0);
    std::uint64_t lhi = lo == hi ? llo : lcp_at(hi, 0);
    std::uint64_t best_pos = 0, best_len = 0;
    bool found = false;
    while (hi - lo > 1) {
      std::uint64_t mid = lo + (hi - lo) / 2;
      std::uint64_t m = std::min(llo, lhi);
      // The search reads the array and the text at random: while this level
      // compares, fetch the text of both possible next probes and the array
      // entries of the four after them.
      {
        const std::uint64_t c1 = lo + (mid - lo) / 2, c2 = mid + (hi - mid) / 2;
        __builtin_prefetch(&sa_[lo + (c1 - lo) / 2]);
        __builtin_prefetch(&sa_[c1 + (mid - c1) / 2]);
        __builtin_prefetch(&sa_[mid + (c2 - mid) / 2]);
        __builtin_prefetch(&sa_[c2 + (hi - c2) / 2]);
        __builtin_prefetch(text + static_cast<std::uint64_t>(sa_[c1]) + m);
        __builtin_prefetch(text + static_cast<std::uint64_t>(sa_[c2]) + m);
      }
      std::uint64_t l = lcp_at(mid, m);
      std::uint64_t s = static_cast<std::uint64_t>(sa_[mid]);
      if (l == needle.size()) {
        best_pos = s;
        best_len = l;
        found = true;
        break;
      }
      // The suffix at mid is below the needle when it is a proper prefix of it or its
      // next byte is smaller.
      if (s + l == size || text[s + l] < needle[l]) {
        lo = mid;
        llo = l;
      } else {
        hi = mid;
        lhi = l;
      }
    }
    if (!found) {
      best_pos = static_cast<std::uint64_t>(llo >= lhi ? sa_[lo] : sa_[hi]);
      best_len = std::max(llo, lhi);
    }
    pos = base_ + best_pos;
    if (best_pos + best_len == size && best_len < needle.size() && end_ < old_.size()) {
      const std::uint64_t n = std::min<std::uint64_t>(old_.size() - end_, needle.size() - best_len);
      best_len += common_prefix(old_.data() + end_, needle.data() + best_len, n);
    }
    return best_len;
  }

 private:
  ByteSpan old_;
  std::uint64_t base_, end_;
  static constexpr std::size_t kKeys = std::size_t{1} << 22;
  LargeArray<Index> sa_;
  LargeArray<Index> start_;  // kKeys + 1 bucket starts: 16 MiB
};

// OLD split into parts of at most part_size bytes, whose suffix arrays are
// built in parallel; a search asks every part and keeps the longest match
// (the first part's on a tie). The split depends only on OLD's size, so a
// patch does not depend on the machine's core count.

template <typename Index>
class SuffixIndexImpl final : public SuffixIndex {
 public:
  SuffixIndexImpl(ByteSpan old_image, unsigned threads, std::uint64_t part_size) {
    const std::uint64_t size = old_image.size();
    const std::uint64_t parts = std::max<std::uint64_t>(1, (size + part_size - 1) / part_size);
    const std::uint64_t step = (size + parts - 1) / parts;
    parts_.resize(static_cast<std::size_t>(parts));
    std::atomic<std::uint64_t> next{0};
    std::exception_ptr error;
    std::mutex mu;
    auto worker = [&] {
      for (;;) {
        const std::uint64_t i = next.fetch_add(1);
        if (i >= parts) return;
        try {
          const std::uint64_t b = std::min(size, i * step), e = std::min(size, b + step);
          parts_[i] = std::make_unique<PartIndex<Index>>(old_image, b, e);
        } catch (...) {
          std::lock_guard<std::mutex> lock(mu);
          if (!error) error = std::current_exception();
        }
      }
    };
    std::vector<std::thread> pool;
    const unsigned n = static_cast<unsigned>(std::min<std::uint64_t>(std::max(1u, threads), parts));
    for (unsigned t = 1; t < n; ++t) pool.emplace_back(worker);
    worker();
    for (auto& t : pool) t.join();
    if (error) std::rethrow_exception(error);
  }

  std::uint64_t longest_match(ByteSpan needle, std::uint64_t& pos) const override {
    std::uint64_t best = 0;
    pos = 0;
    for (const auto& part : parts_) {
      std::uint64_t p = 0;
      const std::uint64_t len = part->longest_match(needle, p);
      if (len > best) {
        best = len;
        pos = p;
        if (best == needle.size()) break;
      }
    }
    return best;
  }

 private:
  std::vector<std::unique_ptr<PartIndex<Index>>> parts_;
};

}  // namespace

std::unique_ptr<SuffixIndex> build_suffix_index(ByteSpan old_image, unsigned threads, std::uint64_t part_size) {
  part_size = std::max<std::uint64_t>(part_size, 1);
  if (std::min<std::uint64_t>(old_image.size(), part_size) < static_cast<std::uint64_t>(std::numeric_limits<std::int32_t>::max()))
    return std::make_unique<SuffixIndexImpl<std::int32_t>>(old_image, threads, part_size);
  return std::make_unique<SuffixIndexImpl<std::int64_t>>(old_image, threads, part_size);
}

// The cover search of bsdiff 4 (Colin Percival): extend an approximate match
// while at least half of its bytes agree, and look for a new exact match
// wherever the current alignment stops paying for itself.
constexpr std::int64_t kSkipLength = 256;
constexpr std::int64_t kSkipKeep = 32;
void match_range(const SuffixIndex& index, ByteSpan old_image, ByteSpan new_image,
                 std::uint64_t begin, std::uint64_t end, std::vector<Block>& out, std::int64_t threshold) {
  using i64 = std::int64_t;
  const std::uint8_t* oldp = old_image.data();
  const std::uint8_t* newp = new_image.data();
  const i64 oldsize = static_cast<i64>(old_image.size());
  const i64 stop = static_cast<i64>(end);
  // Start each range on the diagonal (NEW offset == OLD offset) when OLD reaches it.
  i64 scan = static_cast<i64>(begin), len = 0, lastscan = scan;
  i64 lastpos = scan < oldsize ? scan : 0, lastoffset = lastpos - scan;
  std::uint64_t pos_u = 0;
  i64 pos = 0;

  auto old_at = [&](i64 i) -> int { return (i >= 0 && i < oldsize) ? oldp[i] : -1; };

  while (scan < stop) {
    i64 oldscore = 0;
    i64 scsc;
    bool searched = false;
    for (scsc = scan += len; scan < stop; ++scan) {
      // Where the current alignment still matches, a better alignment would also be
      // found at the next mismatch (and extended back by lenb): skip the search.
      if (searched && old_at(scan + lastoffset) == newp[scan]) {
        if (scan < scsc) {
          --oldscore;
        } else {
          scsc = scan + 1;  // the score window [scan, scsc) is empty
        }
        continue;
      }
      searched = true;
      len = static_cast<i64>(index.longest_match(
          ByteSpan(newp + scan, static_cast<std::size_t>(stop - scan)), pos_u));
      pos = static_cast<i64>(pos_u);
      for (; scsc < scan + len; ++scsc)
        if (old_at(scsc + lastoffset) == newp[scsc]) ++oldscore;
      if ((len == oldscore && len != 0) || len > oldscore + threshold) break;
      // The current alignment matches nearly all of a long match: skip most of
      // it without searching (bsdiff would search at every byte, quadratic in
      // long periodic regions).
      if (len >= kSkipLength) {
        const i64 target = scan + len - kSkipKeep;
        for (; scan + 1 < target; ++scan)
          if (old_at(scan + lastoffset) == newp[scan]) --oldscore;
      }
      if (old_at(scan + lastoffset) == newp[scan]) --oldscore;
    }

    if (len != oldscore || scan == stop) {
      i64 s = 0, sf = 0, lenf = 0;
      for (i64 i = 0; lastscan + i < scan && lastpos + i < oldsize;) {
        if (oldp[lastpos + i] == newp[lastscan + i]) ++s;
        ++i;
        if (s * 2 - i > sf * 2 - lenf) {
          sf = s;
          lenf = i;
        }
      }

      i64 lenb = 0;
      if (scan < stop) {
        i64 sb = 0;
        s = 0;
        for (i64 i = 1; scan >= lastscan + i && pos >= i; ++i) {
          if (oldp[pos - i] == newp[scan - i]) ++s;
          if (s * 2 - i > sb * 2 - lenb) {
            sb = s;
            lenb = i;
          }
        }
      }

      if (lastscan + lenf > scan - lenb) {
        i64 overlap = (lastscan + lenf) - (scan - lenb);
        i64 ss = 0, lens = 0;
        s = 0;
        for (i64 i = 0; i < overlap; ++i) {
          if (newp[lastscan + lenf - overlap + i] == oldp[lastpos + lenf - overlap + i]) ++s;
          if (newp[scan - lenb + i] == oldp[pos - lenb + i]) --s;
          if (s > ss) {
            ss = s;
            lens = i + 1;
          }
        }
        lenf += lens - overlap;
        lenb -= lens;
      }

      Block b;
      b.new_pos = static_cast<std::uint64_t>(lastscan);
      b.old_pos = static_cast<std::uint64_t>(lastpos);
      b.add_len = static_cast<std::uint64_t>(lenf);
      b.insert_len = static_cast<std::uint64_t>((scan - lenb) - (lastscan + lenf));
      if (b.add_len || b.insert_len) out.push_back(b);

      lastscan = scan - lenb;
      lastpos = pos - lenb;
      lastoffset = pos - scan;
    }
  }
}

}  // namespace ota::delta::detail
