// libFuzzer target: arbitrary bytes as the download spool's store (the file
// in the state directory that a crash, a power cut or a bad disk may leave in
// any state). The spool must read back only what checks out, never misread.
//
// Oracles beyond "no crash, no sanitizer report":
// - opening never fails on content (only a store too small to hold a record);
// - every held range reads back, and the held bytes add up to bytes_held();
// - an append after the held bytes works or reports full, and opening the
//   store again holds at least what was held, plus the append.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "ota/device/spool.hpp"
#include "sign_fixture.hpp"

using namespace ota;
using fuzz::check;

namespace {

class MemStore final : public storage::BlockStore {
 public:
  explicit MemStore(Bytes b) : b_(std::move(b)) {}
  std::uint64_t size() const override { return b_.size(); }
  Status read_at(std::uint64_t off, MutableByteSpan out) const override {
    if (off > b_.size() || out.size() > b_.size() - off) return fail(ErrorCode::kIo, "past the end");
    std::memcpy(out.data(), b_.data() + off, out.size());
    return ok();
  }
  Status write_at(std::uint64_t off, ByteSpan data) override {
    if (off > b_.size() || data.size() > b_.size() - off) return fail(ErrorCode::kLimitExceeded, "past the end");
    std::memcpy(b_.data() + off, data.data(), data.size());
    return ok();
  }
  Status sync() override { return ok(); }

 private:
  Bytes b_;
};

std::uint64_t walk(const fetch::Spool& s) {
  std::uint64_t total = 0;
  for (std::uint64_t at = 0;;) {
    const std::uint64_t h = s.held(at);
    if (h == 0) {
      at = s.next_held(at);
      if (at == UINT64_MAX) break;
      continue;
    }
    Bytes buf(static_cast<std::size_t>(std::min<std::uint64_t>(h, 1 << 16)));
    check(static_cast<bool>(s.read(at, buf)));
    total += h;
    if (at > UINT64_MAX - h) break;
    at += h;
  }
  return total;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > (1u << 20)) return 0;
  // Room for an append after the input.
  Bytes store_bytes(data, data + size);
  store_bytes.resize(size + 4096, 0);
  MemStore store(std::move(store_bytes));
  auto s = fetch::Spool::open(store, "http://fuzz/b.otb", 0);
  check(static_cast<bool>(s));
  const std::uint64_t held = (*s)->bytes_held();
  check(walk(**s) == held);
  // Append 100 bytes where nothing is held.
  std::uint64_t at = 0;
  for (int steps = 0; steps < 100000; ++steps) {
    if (const std::uint64_t h = (*s)->held(at); h > 0) {
      at += h;
    } else if (const std::uint64_t next = (*s)->next_held(at); next < at + 100) {
      at = next;
    } else {
      break;
    }
  }
  if ((*s)->held(at) > 0 || (*s)->next_held(at) < at + 100) return 0;
  const Bytes extra(100, 0x5a);
  auto added = (*s)->append(at, extra);
  check(static_cast<bool>(added));
  auto again = fetch::Spool::open(store, "http://fuzz/b.otb", 0);
  check(static_cast<bool>(again));
  check((*again)->bytes_held() >= (*added ? 100u : 0u));
  check(walk(**again) == (*again)->bytes_held());
  return 0;
}
