// Reuse: content-defined chunking, the chunk index (layout pinned byte by
// byte, malformed ones refused), the planner, write_chunks over simulated
// banks (stale sources, tampering, resume), and the payload ladder.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "ota/device/agent.hpp"
#include "ota/device/install.hpp"
#include "ota/device/reuse.hpp"
#include "ota/release/bundle.hpp"
#include "ota/release/chunks.hpp"
#include "ota/testing/power_cut.hpp"
#include "support/device_sim.hpp"
#include "support/random.hpp"
#include "support/signing.hpp"
#include "support/temp_dir.hpp"

namespace ota {
namespace {

using chunks::Entry;
using chunks::Index;
using chunks::Mode;
using chunks::Params;
using reuse::Origin;

const Params kSmall{512, 10, 4096};
#define PINNED_CUTS "2384 1932 698 1953 3644 1437 587 847 2496 2580 837 605 "

std::vector<std::size_t> cuts_of(const Bytes& data, const Params& p) {
  std::vector<std::size_t> out;
  for (std::size_t at = 0; at < data.size();) {
    const std::size_t n = chunks::next_cut(ByteSpan(data).subspan(at), p);
    out.push_back(n);
    at += n;
  }
  return out;
}

std::set<Digest> hashes_of(const Bytes& data, const Params& p) {
  std::set<Digest> out;
  std::size_t at = 0;
  for (std::size_t n : cuts_of(data, p)) {
    out.insert(content_hash(ByteSpan(data).subspan(at, n)));
    at += n;
  }
  return out;
}

// ---- content-defined chunking ----

TEST(Cdc, DeterministicAndWithinBounds) {
  const Bytes data = test::random_bytes(200'000, 1);
  const auto a = cuts_of(data, kSmall), b = cuts_of(data, kSmall);
  EXPECT_EQ(a, b);
  std::size_t sum = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    sum += a[i];
    EXPECT_LE(a[i], kSmall.max_size);
    if (i + 1 < a.size()) {
      EXPECT_GE(a[i], kSmall.min_size);
    }
  }
  EXPECT_EQ(sum, data.size());
  // Average near min + 2^avg_bits.
  const double avg = static_cast<double>(data.size()) / static_cast<double>(a.size());
  EXPECT_GT(avg, 900);
  EXPECT_LT(avg, 2500);
}

TEST(Cdc, ShortInputIsOneChunkAndConstantBytesCutAtTheMax) {
  EXPECT_EQ(chunks::next_cut(Bytes(100, 7), kSmall), 100u);
  EXPECT_EQ(chunks::next_cut(Bytes(512, 7), kSmall), 512u);
  EXPECT_EQ(chunks::next_cut(Bytes{}, kSmall), 0u);
  const std::size_t zeros = chunks::next_cut(Bytes(20'000, 0), kSmall);
  EXPECT_GE(zeros, kSmall.min_size);
  EXPECT_LE(zeros, kSmall.max_size);
}

// Pinned: a change of the gear table or the rule changes these cuts, and
// devices would no longer find the builder's chunks.
TEST(Cdc, PinnedCuts) {
  const Bytes data = test::random_bytes(20'000, 42);
  const auto c = cuts_of(data, kSmall);
  std::string got;
  for (auto n : c) got += std::to_string(n) + " ";
  // Regenerate only with a format version change.
  EXPECT_EQ(got, PINNED_CUTS) << got;
}

TEST(Cdc, AnInsertionChangesOnlyTheChunksAroundIt) {
  const Bytes old = test::random_bytes(300'000, 2);
  const Bytes changed = test::with_insertion(old, 150'000, test::random_bytes(777, 3));
  const auto a = hashes_of(old, kSmall), b = hashes_of(changed, kSmall);
  std::size_t shared = 0;
  for (const auto& h : b) shared += a.count(h);
  EXPECT_GE(shared + 4, b.size()) << "CDC resynchronises after an edit";
}

TEST(Cdc, TheChunkerCutsLikeNextCutWhateverThePieces) {
  const Bytes data = test::random_bytes(100'000, 4);
  const auto expect = cuts_of(data, kSmall);
  for (std::size_t piece : {1u, 7u, 4096u, 100'000u}) {
    chunks::Chunker ch(kSmall);
    std::vector<std::size_t> got;
    std::uint64_t next = 0;
    auto on = [&](std::uint64_t off, ByteSpan b) -> Status {
      EXPECT_EQ(off, next);
      next += b.size();
      got.push_back(b.size());
      return ok();
    };
    for (std::size_t at = 0; at < data.size(); at += piece)
      ASSERT_TRUE(ch.feed(ByteSpan(data).subspan(at, std::min(piece, data.size() - at)), on));
    ASSERT_TRUE(ch.finish(on));
    EXPECT_EQ(got, expect) << "piece " << piece;
  }
}

// ---- the index ----

Index two_chunks() {
  Index ix;
  ix.params = kSmall;
  ix.target_size = 1000 + 600;
  Entry a;
  a.plain_size = 1000;
  a.stored_size = 300;
  a.mode = Mode::kZstd;
  a.plain_hash.fill(0x11);
  a.stored_hash.fill(0x22);
  Entry b;
  b.plain_size = 600;
  b.stored_size = 600;
  b.mode = Mode::kRaw;
  b.plain_hash.fill(0x33);
  b.stored_hash.fill(0x33);
  ix.entries = {a, b};
  return ix;
}

TEST(ChunkIndex, LayoutPinnedByteByByte) {
  const Bytes b = chunks::encode_index(two_chunks());
  ASSERT_EQ(b.size(), 32u + 2 * 73u);
  const std::uint8_t header[32] = {
      'O', 'T', 'C', 'I',      // magic
      1,                       // version
      10,                      // avg_bits
      0, 0,                    // reserved
      0x00, 0x02, 0, 0,        // min_size 512
      0x00, 0x10, 0, 0,        // max_size 4096
      2, 0, 0, 0,              // count
      0, 0, 0, 0,              // reserved
      0x40, 0x06, 0, 0, 0, 0, 0, 0,  // target_size 1600
  };
  EXPECT_EQ(0, std::memcmp(b.data(), header, 32));
  const std::uint8_t e0[9] = {0xe8, 0x03, 0, 0,  // plain 1000
                              0x2c, 0x01, 0, 0,  // stored 300
                              1};                // zstd
  EXPECT_EQ(0, std::memcmp(b.data() + 32, e0, 9));
  EXPECT_EQ(b[32 + 9], 0x11);
  EXPECT_EQ(b[32 + 41], 0x22);
  const std::uint8_t e1[9] = {0x58, 0x02, 0, 0, 0x58, 0x02, 0, 0, 0};  // 600, 600, raw
  EXPECT_EQ(0, std::memcmp(b.data() + 32 + 73, e1, 9));
  auto back = chunks::parse_index(b);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(chunks::encode_index(*back), b);
  EXPECT_EQ(back->stored_total(), 900u);
}

TEST(ChunkIndex, MalformedIndexesAreRefused) {
  const Bytes good = chunks::encode_index(two_chunks());
  auto with = [&](std::size_t at, std::uint8_t v) {
    Bytes b = good;
    b[at] = v;
    return b;
  };
  struct Case {
    const char* what;
    Bytes bytes;
    ErrorCode code;
  };
  std::vector<Case> cases = {
      {"empty", Bytes{}, ErrorCode::kMalformed},
      {"magic", with(0, 'X'), ErrorCode::kMalformed},
      {"version 2", with(4, 2), ErrorCode::kUnsupported},
      {"avg_bits 40", with(5, 40), ErrorCode::kMalformed},
      {"reserved", with(6, 1), ErrorCode::kMalformed},
      {"reserved 2", with(20, 1), ErrorCode::kMalformed},
      {"min over max", with(9, 0x20), ErrorCode::kMalformed},
      {"count 3", with(16, 3), ErrorCode::kMalformed},
      {"count huge", with(19, 0x80), ErrorCode::kMalformed},
      {"target size", with(24, 0x41), ErrorCode::kMalformed},
      {"plain 0", [&] { Bytes b = with(32, 0); b[33] = 0; return b; }(), ErrorCode::kMalformed},
      {"plain over max", with(34, 1), ErrorCode::kMalformed},
      {"zstd not smaller", with(33, 0x05), ErrorCode::kMalformed},
      {"raw stored differs", with(32 + 73 + 4, 0x59), ErrorCode::kMalformed},
      {"mode 2", with(32 + 8, 2), ErrorCode::kMalformed},
      {"truncated", Bytes(good.begin(), good.end() - 1), ErrorCode::kMalformed},
      {"trailing", [&] { Bytes b = good; b.push_back(0); return b; }(), ErrorCode::kMalformed},
  };
  for (const auto& c : cases) {
    auto r = chunks::parse_index(c.bytes);
    ASSERT_FALSE(r) << c.what;
    EXPECT_EQ(r.error().code, c.code) << c.what << ": " << r.error().message;
  }
  // Every single-byte change in the header is refused or parses to an
  // index that encodes back to those bytes (nothing is silently ignored).
  for (std::size_t i = 0; i < 32; ++i) {
    Bytes b = good;
    b[i] ^= 0x5a;
    auto r = chunks::parse_index(b);
    if (r) {
      EXPECT_EQ(chunks::encode_index(*r), b) << "byte " << i;
    }
  }
}

// ---- the planner ----

Index index_of(const std::vector<Bytes>& parts) {
  Index ix;
  ix.params = kSmall;
  for (const auto& p : parts) {
    Entry e;
    e.plain_size = static_cast<std::uint32_t>(p.size());
    e.stored_size = e.plain_size / 2;
    e.mode = Mode::kZstd;
    e.plain_hash = content_hash(p);
    ix.entries.push_back(e);
    ix.target_size += p.size();
  }
  return ix;
}

TEST(ReusePlan, AllLocalNothingLocalAndPartial) {
  std::vector<Bytes> parts;
  for (int i = 0; i < 6; ++i) parts.push_back(test::random_bytes(1000, 10 + i));
  const Index ix = index_of(parts);
  reuse::LocalChunks all, none;
  for (int i = 0; i < 6; ++i) all[content_hash(parts[i])] = 5000 + 1000 * i;
  auto p = reuse::plan(ix, all, none);
  EXPECT_EQ(p.fetch_bytes, 0u);
  EXPECT_EQ(p.local_bytes, 6000u);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(p.steps[i].origin, Origin::kActive);
  EXPECT_EQ(p.steps[2].offset, 7000u);

  p = reuse::plan(ix, none, none);
  EXPECT_EQ(p.fetch_bytes, 3000u);
  EXPECT_EQ(p.fetch_chunks, 6u);

  reuse::LocalChunks some;
  some[content_hash(parts[1])] = 0;
  some[content_hash(parts[4])] = 0;
  p = reuse::plan(ix, some, none);
  EXPECT_EQ(p.fetch_bytes, 2000u);
  EXPECT_EQ(p.local_bytes, 2000u);
  EXPECT_EQ(p.steps[4].origin, Origin::kActive);
  EXPECT_EQ(p.steps[3].origin, Origin::kFetch);

  // From a resume point on only.
  p = reuse::plan(ix, none, none, 4);
  EXPECT_EQ(p.fetch_chunks, 2u);
}

TEST(ReusePlan, InactiveSourcesBehindTheCursorAreNotPlannedAndRepeatsComeFromTheTarget) {
  std::vector<Bytes> parts;
  for (int i = 0; i < 4; ++i) parts.push_back(test::random_bytes(1000, 20 + i));
  parts.push_back(parts[1]);  // a repeat of chunk 1, at target offset 4000
  const Index ix = index_of(parts);
  reuse::LocalChunks active, inactive;
  inactive[content_hash(parts[0])] = 0;     // in place: at the cursor, valid
  inactive[content_hash(parts[2])] = 1500;  // below chunk 2's offset (2000): overwritten by then
  inactive[content_hash(parts[3])] = 3500;  // ahead of chunk 3's offset (3000): still there
  auto p = reuse::plan(ix, active, inactive);
  EXPECT_EQ(p.steps[0].origin, Origin::kInactive);
  EXPECT_EQ(p.steps[1].origin, Origin::kFetch);
  EXPECT_EQ(p.steps[2].origin, Origin::kFetch);
  EXPECT_EQ(p.steps[3].origin, Origin::kInactive);
  EXPECT_EQ(p.steps[3].offset, 3500u);
  EXPECT_EQ(p.steps[4].origin, Origin::kWritten);
  EXPECT_EQ(p.steps[4].offset, 1000u);
}

// ---- write_chunks over a real bundle ----

class ReuseWrite : public testing::Test {
 protected:
  void SetUp() override {
    old_ = test::structured_bytes(96 * 1024, 900);
    // A release that changed a few places and grew a little.
    image_ = test::with_insertion(test::with_random_edits(old_, 6, 901), 40'000, test::random_bytes(3000, 902));
    test::write_bytes(dir_.file("new.img"), image_);
    auto o = test::small_bundle(dir_.file("new.img"), {}, "1.1.0", {"board"});
    o.reuse = true;
    o.reuse_params = kSmall;
    o.reuse_level = 3;
    auto st = bundle::stage(o);
    ASSERT_TRUE(st) << st.error().message;
    m_ = (*st)->manifest();
    VectorWriter out;
    ASSERT_TRUE((*st)->write(out, bundle::SignatureBlock{}));
    bundle_ = std::move(out).take();
  }

  struct Opened {
    std::unique_ptr<MemoryReader> in;
    std::unique_ptr<bundle::BundleReader> reader;
    Index index;
  };
  Opened open(const Bytes& b) {
    Opened o;
    o.in = std::make_unique<MemoryReader>(b);
    auto r = bundle::BundleReader::open(*o.in);
    EXPECT_TRUE(r);
    o.reader = std::move(*r);
    EXPECT_TRUE(o.reader->parse_unverified());
    auto idx = o.reader->next_payload();
    EXPECT_TRUE(idx && *idx && **idx == 0);
    auto ix = reuse::read_index(*o.reader, m_.payloads[0], m_);
    EXPECT_TRUE(ix) << ix.error().message;
    if (ix) o.index = std::move(*ix);
    return o;
  }

  test::TempDir dir_;
  Bytes old_, image_, bundle_;
  manifest::Manifest m_;
};

TEST_F(ReuseWrite, TheBundleCarriesTheChunksPayloadFirst) {
  ASSERT_EQ(m_.payloads.size(), 2u);
  EXPECT_EQ(m_.payloads[0].kind, manifest::PayloadKind::kChunks);
  EXPECT_EQ(m_.payloads[0].compression, manifest::Compression::kOtaChunks);
  EXPECT_EQ(m_.payloads[1].kind, manifest::PayloadKind::kFull);
  auto again = manifest::parse_manifest(manifest::encode_manifest(m_));
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->payloads[0].index_size, m_.payloads[0].index_size);
  EXPECT_EQ(again->payloads[0].index_hash, m_.payloads[0].index_hash);
}

TEST_F(ReuseWrite, CopiesWhatTheActiveBankHoldsAndFetchesTheRest) {
  auto o = open(bundle_);
  storage::PowerCut never;
  storage::SimulatedBank active(test::bank_with(old_, 128 * 1024), never);
  storage::SimulatedBank target(Bytes(128 * 1024, 0), never);
  auto in_active = reuse::scan(active, old_.size(), o.index.params);
  auto in_target = reuse::scan(target, target.size(), o.index.params);
  ASSERT_TRUE(in_active && in_target);
  const reuse::Plan plan = reuse::plan(o.index, *in_active, *in_target);
  EXPECT_LT(plan.fetch_bytes, m_.payloads[1].size / 2) << "most of the image is in the active bank";
  storage::BankWriter out(target, 0);
  auto rep = reuse::write_chunks(*o.reader, m_.payloads[0], o.index, plan, active, target, out, {});
  ASSERT_TRUE(rep) << rep.error().message;
  ASSERT_TRUE(out.sync());
  EXPECT_EQ(rep->fetched_bytes, plan.fetch_bytes);
  EXPECT_EQ(rep->stale_sources, 0u);
  EXPECT_EQ(test::prefix(target.survivors(), image_.size()), image_);
  // Nothing local: everything fetched, still the image.
  auto o2 = open(bundle_);
  storage::SimulatedBank empty(Bytes(128 * 1024, 0), never), target2(Bytes(128 * 1024, 0), never);
  const reuse::Plan all = reuse::plan(o2.index, {}, {});
  storage::BankWriter out2(target2, 0);
  auto rep2 = reuse::write_chunks(*o2.reader, m_.payloads[0], o2.index, all, empty, target2, out2, {});
  ASSERT_TRUE(rep2) << rep2.error().message;
  ASSERT_TRUE(out2.sync());
  EXPECT_EQ(rep2->fetched_bytes, m_.payloads[0].size - m_.payloads[0].index_size);
  EXPECT_EQ(test::prefix(target2.survivors(), image_.size()), image_);
}

TEST_F(ReuseWrite, AStaleSourceIsFetchedInstead) {
  auto o = open(bundle_);
  storage::PowerCut never;
  storage::SimulatedBank active(test::bank_with(old_, 128 * 1024), never);
  storage::SimulatedBank target(Bytes(128 * 1024, 0), never);
  auto in_active = reuse::scan(active, old_.size(), o.index.params);
  ASSERT_TRUE(in_active);
  reuse::Plan plan = reuse::plan(o.index, *in_active, {});
  // Lie: claim every chunk is in the inactive bank ahead of the cursor (it is all zeros).
  for (auto& s : plan.steps) s = {Origin::kInactive, 100 * 1024};
  storage::BankWriter out(target, 0);
  auto rep = reuse::write_chunks(*o.reader, m_.payloads[0], o.index, plan, active, target, out, {});
  ASSERT_TRUE(rep) << rep.error().message;
  ASSERT_TRUE(out.sync());
  EXPECT_EQ(rep->stale_sources, o.index.entries.size());
  EXPECT_EQ(rep->local_chunks, 0u);
  EXPECT_EQ(test::prefix(target.survivors(), image_.size()), image_);
}

TEST_F(ReuseWrite, ATamperedChunkIsNeverWritten) {
  // Flip a byte in the last stored chunk: it fails its stored hash before it
  // is decompressed, and nothing of it reaches the bank.
  auto o = open(bundle_);
  Bytes bad = bundle_;
  // The chunks payload is the third tar member; its index starts it.
  const auto& last = o.index.entries.back();
  const std::size_t payload_start = [&] {
    const Bytes head = chunks::encode_index(o.index);
    auto it = std::search(bundle_.begin(), bundle_.end(), head.begin(), head.end());
    return static_cast<std::size_t>(it - bundle_.begin());
  }();
  const std::size_t at = payload_start + m_.payloads[0].size - last.stored_size / 2 - 1;
  bad[at] ^= 1;
  auto ob = open(bad);
  storage::PowerCut never;
  storage::SimulatedBank active(Bytes(128 * 1024, 0), never), target(Bytes(128 * 1024, 0), never);
  const reuse::Plan all = reuse::plan(ob.index, {}, {});
  storage::BankWriter out(target, 0);
  auto rep = reuse::write_chunks(*ob.reader, m_.payloads[0], ob.index, all, active, target, out, {});
  ASSERT_FALSE(rep);
  EXPECT_EQ(rep.error().code, ErrorCode::kPayloadMismatch) << rep.error().message;
  ASSERT_TRUE(out.flush());
  EXPECT_LE(out.position(), image_.size() - last.plain_size);
}

TEST_F(ReuseWrite, ATamperedIndexIsNeverParsed) {
  auto o = open(bundle_);
  const Bytes head = chunks::encode_index(o.index);
  auto it = std::search(bundle_.begin(), bundle_.end(), head.begin(), head.end());
  ASSERT_NE(it, bundle_.end());
  Bytes bad = bundle_;
  bad[static_cast<std::size_t>(it - bundle_.begin()) + 16] ^= 0xff;  // the count
  MemoryReader in(bad);
  auto r = bundle::BundleReader::open(in);
  ASSERT_TRUE(r);
  ASSERT_TRUE((*r)->parse_unverified());
  ASSERT_TRUE((*r)->next_payload());
  auto ix = reuse::read_index(**r, m_.payloads[0], m_);
  ASSERT_FALSE(ix);
  EXPECT_EQ(ix.error().code, ErrorCode::kPayloadMismatch);
}

TEST_F(ReuseWrite, ResumesAtAChunkBoundary) {
  auto o = open(bundle_);
  storage::PowerCut never;
  storage::SimulatedBank active(test::bank_with(old_, 128 * 1024), never);
  storage::SimulatedBank target(Bytes(128 * 1024, 0), never);
  const reuse::Plan all = reuse::plan(o.index, {}, {});
  std::vector<delta::ResumePoint> points;
  reuse::WriteOptions wo;
  wo.checkpoint_bytes = 16 * 1024;
  wo.on_checkpoint = [&](const delta::ResumePoint& rp) -> Status {
    points.push_back(rp);
    return ok();
  };
  storage::BankWriter out(target, 0);
  ASSERT_TRUE(reuse::write_chunks(*o.reader, m_.payloads[0], o.index, all, active, target, out, wo));
  ASSERT_TRUE(out.sync());
  ASSERT_GE(points.size(), 3u);
  // Resume from the middle checkpoint into a bank that has only the prefix.
  const delta::ResumePoint rp = points[points.size() / 2];
  Bytes partial = target.survivors();
  std::fill(partial.begin() + static_cast<std::ptrdiff_t>(rp.new_offset), partial.end(), 0);
  storage::SimulatedBank again(partial, never);
  auto o2 = open(bundle_);
  auto in_active = reuse::scan(active, old_.size(), o2.index.params);
  auto in_again = reuse::scan(again, again.size(), o2.index.params);
  ASSERT_TRUE(in_active && in_again);
  const reuse::Plan rest = reuse::plan(o2.index, *in_active, *in_again, static_cast<std::size_t>(rp.frame));
  reuse::WriteOptions ro;
  ro.resume = rp;
  storage::BankWriter out2(again, rp.new_offset);
  auto rep = reuse::write_chunks(*o2.reader, m_.payloads[0], o2.index, rest, active, again, out2, ro);
  ASSERT_TRUE(rep) << rep.error().message;
  ASSERT_TRUE(out2.sync());
  EXPECT_EQ(test::prefix(again.survivors(), image_.size()), image_);
  EXPECT_LT(rep->fetched_bytes, m_.payloads[0].size / 2);
  // A resume point that is not a chunk boundary is refused.
  auto o3 = open(bundle_);
  reuse::WriteOptions wrong;
  wrong.resume = delta::ResumePoint{rp.frame, rp.patch_offset + 1, rp.new_offset};
  storage::BankWriter out3(again, rp.new_offset);
  auto bad = reuse::write_chunks(*o3.reader, m_.payloads[0], o3.index, rest, active, again, out3, wrong);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::kUsage);
}

// ---- the ladder ----

manifest::Payload payload(const std::string& name, manifest::PayloadKind kind, std::uint64_t size) {
  manifest::Payload p;
  p.name = name;
  p.kind = kind;
  p.size = size;
  return p;
}

struct Ladder {
  manifest::Manifest m;
  std::optional<agent::BankInfo> active;
  Digest bank{};
  std::uint64_t cost = 0;
  int planned = 0;
  Result<agent::PayloadChoice> run() {
    agent::ChooseInput in;
    in.manifest = &m;
    in.active = &active;
    in.active_bank_size = 1000;
    in.active_hash = [this](std::uint64_t) -> Result<Digest> { return bank; };
    in.reuse_cost = [this](std::size_t) -> Result<std::uint64_t> {
      ++planned;
      return cost;
    };
    return agent::choose_payload(in);
  }
};

TEST(ReuseLadder, ExactDeltaThenReuseThenFull) {
  Ladder l;
  manifest::Payload d = payload("delta", manifest::PayloadKind::kDelta, 50);
  d.base_size = 500;
  d.base_hash.fill(1);
  l.m.payloads = {payload("chunks", manifest::PayloadKind::kChunks, 900),
                  payload("full", manifest::PayloadKind::kFull, 800), d};
  l.bank.fill(1);
  l.cost = 100;
  auto got = l.run();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->index, 2u) << "the exact-base delta first";
  EXPECT_EQ(l.planned, 0) << "no plan needed";

  l.bank.fill(2);
  got = l.run();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->index, 0u) << "reuse fetches 100 of the full image's 800";
  EXPECT_EQ(l.planned, 1);

  l.cost = 800;
  got = l.run();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->index, 1u) << "reuse that fetches no less than the full image loses";

  l.m.payloads = {payload("chunks", manifest::PayloadKind::kChunks, 900), d};
  got = l.run();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->index, 0u) << "without a full image, reuse whatever it costs";

  // No speculation on the delta when reuse is possible: the bank is hashed.
  l.m.payloads = {payload("chunks", manifest::PayloadKind::kChunks, 900),
                  payload("full", manifest::PayloadKind::kFull, 800), d};
  l.bank.fill(2);
  l.cost = 100;
  {
    agent::ChooseInput in;
    in.manifest = &l.m;
    in.active = &l.active;
    in.active_bank_size = 1000;
    in.speculate = true;
    in.active_hash = [&](std::uint64_t) -> Result<Digest> { return l.bank; };
    in.reuse_cost = [&](std::size_t) -> Result<std::uint64_t> { return l.cost; };
    got = agent::choose_payload(in);
    ASSERT_TRUE(got);
    EXPECT_EQ(got->index, 0u);
    EXPECT_FALSE(got->speculative);
  }

  // A chunks payload after the full one cannot be weighed (its index comes too late).
  l.m.payloads = {payload("full", manifest::PayloadKind::kFull, 800),
                  payload("chunks", manifest::PayloadKind::kChunks, 900)};
  l.cost = 1;
  l.planned = 0;
  got = l.run();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->index, 0u);
  EXPECT_EQ(l.planned, 0);
}

}  // namespace
}  // namespace ota
