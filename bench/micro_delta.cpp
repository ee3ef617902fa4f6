// ota_micro_bench: libota's diff and patch-apply throughput on generated data.
//
// Complements bench/delta_bench.sh (whole CLI against bsdiff, xdelta3 and zstd
// on real binaries): this measures the library alone, in memory, so a change
// to the generator or the patcher shows up without file I/O or process start.
//
// Data: a deterministic firmware-like OLD image (code-like bytes, tables of
// 32-bit pointers, zero padding, strings) and two kinds of NEW:
//   edits: what a rebuild does: insertions and deletions that shift code,
//          relocated pointers (+delta on every word of a table), scattered
//          byte changes and a block of new code;
//   tiny:  3 bytes changed (the esbuild 0.27.6 -> 0.27.7 case): pure COPY.
//
//   build-bench/bench/ota_micro_bench --benchmark_filter=Apply
//   build-bench/bench/ota_micro_bench --benchmark_format=json
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <utility>

#include <sodium.h>

#include "ota/delta/delta.hpp"
#include "ota/core/hash.hpp"
#include "ota/core/io.hpp"

namespace {

using ota::Bytes;
using ota::ByteSpan;

// xorshift64*: deterministic across platforms and runs.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : s_(seed ? seed : 0x9E3779B97F4A7C15ull) {}
  std::uint64_t next() {
    s_ ^= s_ >> 12;
    s_ ^= s_ << 25;
    s_ ^= s_ >> 27;
    return s_ * 0x2545F4914F6CDD1Dull;
  }
  std::uint32_t below(std::uint32_t n) { return static_cast<std::uint32_t>(next() % n); }
  std::uint8_t byte() { return static_cast<std::uint8_t>(next() >> 56); }

 private:
  std::uint64_t s_;
};

void put_u32(Bytes& b, std::size_t at, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) b[at + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(v >> (8 * i));
}
std::uint32_t get_u32(const Bytes& b, std::size_t at) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= std::uint32_t{b[at + static_cast<std::size_t>(i)]} << (8 * i);
  return v;
}

// Code-like bytes: a small vocabulary of "instructions", some with random operands.
void append_code(Bytes& out, std::size_t n, Rng& rng) {
  static const std::uint8_t kOps[][4] = {{0x48, 0x89, 0xE5, 0x00}, {0x48, 0x83, 0xEC, 0x00},
                                         {0xE8, 0x00, 0x00, 0x00}, {0x0F, 0x1F, 0x44, 0x00},
                                         {0x8B, 0x45, 0x00, 0x00}, {0xC3, 0x90, 0x90, 0x90}};
  const std::size_t end = out.size() + n;
  while (out.size() < end) {
    const auto& op = kOps[rng.below(6)];
    for (int i = 0; i < 4 && out.size() < end; ++i)
      out.push_back(op[i] != 0 ? op[i] : (rng.below(4) == 0 ? rng.byte() : std::uint8_t{0}));
  }
}

Bytes make_old(std::size_t size, std::uint64_t seed) {
  Rng rng(seed);
  Bytes out;
  out.reserve(size);
  while (out.size() < size) {
    const std::size_t left = size - out.size();
    const std::size_t n = std::min<std::size_t>(left, 256 + rng.below(16 * 1024));
    switch (rng.below(8)) {
      case 0: {  // pointer table into a 1 MiB address space
        const std::uint32_t base = 0x08000000u + rng.below(1u << 20);
        for (std::size_t i = 0; i + 4 <= n; i += 4) {
          out.resize(out.size() + 4);
          put_u32(out, out.size() - 4, base + rng.below(1u << 16) * 4);
        }
        while (out.size() < size && (out.size() % 4) != 0) out.push_back(0);
        break;
      }
      case 1:  // padding
        out.insert(out.end(), std::min<std::size_t>(n / 4, left), std::uint8_t{0});
        break;
      case 2:  // strings
        for (std::size_t i = 0; i < n && out.size() < size; ++i)
          out.push_back(rng.below(12) == 0 ? std::uint8_t{0} : static_cast<std::uint8_t>('a' + rng.below(26)));
        break;
      default:
        append_code(out, n, rng);
    }
  }
  out.resize(size);
  return out;
}

Bytes make_new_edits(const Bytes& old, std::uint64_t seed) {
  Rng rng(seed);
  Bytes out;
  out.reserve(old.size() + old.size() / 16);
  std::size_t pos = 0;
  while (pos < old.size()) {
    const std::size_t run = std::min<std::size_t>(old.size() - pos, 4096 + rng.below(64 * 1024));
    const std::size_t at = out.size();
    out.insert(out.end(), old.begin() + static_cast<std::ptrdiff_t>(pos),
               old.begin() + static_cast<std::ptrdiff_t>(pos + run));
    pos += run;
    switch (rng.below(6)) {
      case 0: {  // relocation: every aligned word in part of the run moves by the same delta
        const std::uint32_t delta = 0x40u * (1 + rng.below(64));
        for (std::size_t i = at + (4 - at % 4) % 4; i + 4 <= at + run / 2; i += 4)
          if ((get_u32(out, i) & 0xFF000000u) == 0x08000000u) put_u32(out, i, get_u32(out, i) + delta);
        break;
      }
      case 1:  // inserted code
        append_code(out, 16 + rng.below(2048), rng);
        break;
      case 2:  // deleted bytes
        pos += std::min<std::size_t>(old.size() - pos, 16 + rng.below(1024));
        break;
      case 3:  // scattered byte changes
        for (int i = 0; i < 8; ++i) out[at + rng.below(static_cast<std::uint32_t>(run))] = rng.byte();
        break;
      default:
        break;
    }
  }
  return out;
}

Bytes make_new_tiny(const Bytes& old) {
  Bytes out = old;
  for (std::size_t i : {out.size() / 7, out.size() / 2, out.size() - out.size() / 5}) out[i] ^= 0x5A;
  return out;
}

enum Scenario : int { kEdits = 0, kTiny = 1 };

struct Case {
  Bytes old_image, new_image, patch;
};

// Built once per (size, scenario): the patch with default options.
const Case& get_case(std::size_t size, int scenario) {
  static std::map<std::pair<std::size_t, int>, Case> cache;
  auto key = std::make_pair(size, scenario);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  Case c;
  c.old_image = make_old(size, 0xC0FFEEull + size);
  c.new_image = scenario == kTiny ? make_new_tiny(c.old_image) : make_new_edits(c.old_image, 0xBEEFull + size);
  ota::VectorWriter w;
  auto st = ota::delta::diff(c.old_image, c.new_image, w);
  if (st) c.patch = std::move(w).take();
  return cache.emplace(key, std::move(c)).first->second;
}

const char* scenario_name(int scenario) { return scenario == kTiny ? "tiny" : "edits"; }

void set_label(benchmark::State& state, const Case& c, int scenario) {
  state.counters["patch_bytes"] = static_cast<double>(c.patch.size());
  state.counters["patch_pct_of_new"] =
      c.new_image.empty() ? 0.0 : 100.0 * static_cast<double>(c.patch.size()) / static_cast<double>(c.new_image.size());
  state.SetLabel(scenario_name(scenario));
}

// Args: NEW size in KiB, scenario, threads (0: one per core), zstd level.
void BM_Diff(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0)) * 1024;
  const int scenario = static_cast<int>(state.range(1));
  const Case& c = get_case(size, scenario);
  ota::delta::DiffOptions opt;
  opt.threads = static_cast<unsigned>(state.range(2));
  opt.level = static_cast<int>(state.range(3));
  std::uint64_t patch_size = 0;
  for (auto _ : state) {
    ota::VectorWriter w;
    auto st = ota::delta::diff(c.old_image, c.new_image, w, opt);
    if (!st) {
      state.SkipWithError(("diff failed: " + st.error().message).c_str());
      return;
    }
    patch_size = w.position();
    benchmark::DoNotOptimize(patch_size);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(c.new_image.size()));
  state.counters["patch_bytes"] = static_cast<double>(patch_size);
  state.SetLabel(scenario_name(scenario));
}

// Args: NEW size in KiB, scenario. Applies the default-options patch from memory to memory
// (OLD verified first, as the CLI does); bytes/s counts NEW bytes produced.
void BM_Apply(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0)) * 1024;
  const int scenario = static_cast<int>(state.range(1));
  const Case& c = get_case(size, scenario);
  if (c.patch.empty()) {
    state.SkipWithError("diff failed while preparing the patch");
    return;
  }
  ota::MemorySource old_src(c.old_image);
  bool checked = false;
  for (auto _ : state) {
    ota::MemoryReader patch(c.patch);
    ota::VectorWriter out;
    auto st = ota::delta::apply(old_src, patch, out);
    if (!st) {
      state.SkipWithError(("apply failed: " + st.error().message).c_str());
      return;
    }
    if (!checked) {  // once, outside the hot path's cost model: the output must be NEW
      if (out.data() != c.new_image) {
        state.SkipWithError("apply produced bytes different from NEW");
        return;
      }
      checked = true;
    }
    benchmark::DoNotOptimize(out.data().data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(c.new_image.size()));
  set_label(state, c, scenario);
}

}  // namespace

// Diff: firmware-sized and esbuild-sized NEW, one thread and one per core, default level 19;
// plus level 3 to show what the level costs.
BENCHMARK(BM_Diff)
    ->ArgNames({"kib", "scenario", "threads", "level"})
    ->Args({256, kEdits, 1, 19})
    ->Args({256, kEdits, 0, 19})
    ->Args({8192, kEdits, 1, 19})
    ->Args({8192, kEdits, 0, 19})
    ->Args({8192, kEdits, 0, 3})
    ->Args({8192, kTiny, 0, 19})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

BENCHMARK(BM_Apply)
    ->ArgNames({"kib", "scenario"})
    ->Args({256, kEdits})
    ->Args({8192, kEdits})
    ->Args({8192, kTiny})
    ->Args({65536, kTiny})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// The content hash (docs/design.md, "Decisions"): libota's BLAKE2b-256 against
// libsodium's SHA-256, the other hash a device could use, on 16 MiB.
//   ota_micro_bench --benchmark_filter=Hash
void BM_HashBlake2b(benchmark::State& state) {
  Bytes data(16u << 20, 0x5a);
  for (auto _ : state) benchmark::DoNotOptimize(ota::content_hash(data));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(data.size()));
}
void BM_HashSha256Sodium(benchmark::State& state) {
  if (sodium_init() < 0) state.SkipWithError("sodium_init failed");
  Bytes data(16u << 20, 0x5a);
  unsigned char out[crypto_hash_sha256_BYTES];
  for (auto _ : state) {
    crypto_hash_sha256(out, data.data(), data.size());
    benchmark::DoNotOptimize(out);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(data.size()));
}
BENCHMARK(BM_HashBlake2b)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_HashSha256Sodium)->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
