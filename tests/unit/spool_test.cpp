// The download spool (ota/device/spool.hpp): records kept and read back, a
// power cut at every write in each loss mode (the spool never lies about its
// bytes), the spooled reader (what is held is not fetched again), and an
// install on the simulator cut at every write and resumed: the bytes fetched
// over both attempts against a clean install.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <vector>

#include "ota/device/agent.hpp"
#include "ota/device/spool.hpp"
#include "ota/testing/power_cut.hpp"
#include "support/device_sim.hpp"
#include "support/power_cuts.hpp"
#include "support/random.hpp"
#include "support/signing.hpp"
#include "support/temp_dir.hpp"

namespace ota {
namespace {

using fetch::Spool;
using fetch::SpooledReader;
using storage::LossMode;
using storage::PowerCut;
using storage::SimulatedBank;

constexpr std::size_t kStore = 256 * 1024;

// A source that counts what it sends; a skip is a jump (a Range request), not
// counted. Once `power` is cut the device is off: nothing more is fetched.
class CountingSource final : public fetch::SourceReader {
 public:
  explicit CountingSource(ByteSpan b, const PowerCut* power = nullptr) : in_(b), power_(power) {}
  Result<std::size_t> read(MutableByteSpan out) override {
    if (power_ && power_->cut()) return fail(ErrorCode::kIo, "power cut");
    OTA_TRY_ASSIGN(auto n, in_.read(out));
    stats_.bytes_received += n;
    return n;
  }
  Result<std::uint64_t> skip(std::uint64_t n) override { return in_.skip(n); }
  const fetch::Stats& stats() const override { return stats_; }

 private:
  MemoryReader in_;
  const PowerCut* power_;
  fetch::Stats stats_;
};

std::unique_ptr<Spool> open_spool(storage::BlockStore& store, const char* key = "http://h/b.otb",
                                  std::uint64_t sync_every = 0) {
  auto s = Spool::open(store, key, sync_every);
  EXPECT_TRUE(s) << s.error().message;
  return s ? std::move(*s) : nullptr;
}

// Every byte the spool says it holds is the source's.
void expect_truthful(const Spool& s, const Bytes& source) {
  for (std::uint64_t at = 0; at < source.size();) {
    const std::uint64_t h = s.held(at);
    if (h == 0) {
      at = std::min<std::uint64_t>(s.next_held(at), source.size());
      continue;
    }
    ASSERT_LE(at + h, source.size());
    Bytes got(static_cast<std::size_t>(h));
    ASSERT_TRUE(s.read(at, got));
    ASSERT_TRUE(std::equal(got.begin(), got.end(), source.begin() + static_cast<std::ptrdiff_t>(at))) << "at " << at;
    at += h;
  }
}

TEST(Spool, KeepsRecordsAndReadsThemBack) {
  PowerCut power;
  SimulatedBank store(Bytes(kStore, 0), power);
  const Bytes src = test::random_bytes(50'000, 800);
  auto s = open_spool(store);
  EXPECT_EQ(s->held(0), 0u);
  EXPECT_EQ(s->next_held(0), UINT64_MAX);
  ASSERT_TRUE(s->append(0, ByteSpan(src).first(10'000)).value());
  ASSERT_TRUE(s->append(10'000, ByteSpan(src).subspan(10'000, 5'000)).value());
  ASSERT_TRUE(s->append(30'000, ByteSpan(src).subspan(30'000, 1'000)).value());
  EXPECT_EQ(s->held(0), 15'000u) << "adjacent records read as one run";
  EXPECT_EQ(s->held(12'345), 15'000u - 12'345u);
  EXPECT_EQ(s->held(15'000), 0u);
  EXPECT_EQ(s->next_held(15'000), 30'000u);
  EXPECT_EQ(s->bytes_held(), 16'000u);
  expect_truthful(*s, src);
  EXPECT_FALSE(s->append(5'000, ByteSpan(src).subspan(5'000, 10))) << "bytes already held";
  Bytes too_much(16'001);
  EXPECT_FALSE(s->read(0, too_much));

  // Opened again (a restart): the same records; another source: nothing.
  auto again = open_spool(store);
  EXPECT_EQ(again->held(0), 15'000u);
  EXPECT_EQ(again->held(30'000), 1'000u);
  expect_truthful(*again, src);
  auto other = open_spool(store, "http://h/other.otb");
  EXPECT_EQ(other->bytes_held(), 0u);
  ASSERT_TRUE(other->append(0, ByteSpan(src).first(100)).value());
  EXPECT_EQ(open_spool(store)->bytes_held(), 0u) << "the other source's spool replaced it";
}

// The format, pinned: the fuzzer's seed (fuzz/corpus/fuzz_spool), written
// by hand from docs/formats.md, reads back as three records.
TEST(Spool, TheCommittedSeedReadsBack) {
  const Bytes seed = test::read_bytes(std::string(OTA_SOURCE_DIR) + "/fuzz/corpus/fuzz_spool/three-records");
  Bytes room = seed;
  room.resize(seed.size() + 4096, 0);
  PowerCut power;
  SimulatedBank store(room, power);
  auto s = open_spool(store, "http://fuzz/b.otb");
  EXPECT_EQ(s->held(0), 500u);
  EXPECT_EQ(s->held(1000), 50u);
  EXPECT_EQ(s->bytes_held(), 550u);
  EXPECT_EQ(s->store_used(), seed.size());
}

TEST(Spool, AFullSpoolRefusesAppendsAndKeepsWhatItHolds) {
  PowerCut power;
  SimulatedBank store(Bytes(4096, 0), power);
  const Bytes src = test::random_bytes(8000, 801);
  auto s = open_spool(store);
  ASSERT_TRUE(s->append(0, ByteSpan(src).first(3000)).value());
  auto full = s->append(3000, ByteSpan(src).subspan(3000, 3000));
  ASSERT_TRUE(full);
  EXPECT_FALSE(*full);
  EXPECT_EQ(s->held(0), 3000u);
  EXPECT_EQ(open_spool(store)->held(0), 3000u);
}

TEST(Spool, ADamagedRecordEndsWhatIsReadBack) {
  PowerCut power;
  SimulatedBank store(Bytes(kStore, 0), power);
  const Bytes src = test::random_bytes(30'000, 802);
  auto s = open_spool(store);
  for (std::uint64_t at = 0; at < 30'000; at += 10'000) ASSERT_TRUE(s->append(at, ByteSpan(src).subspan(at, 10'000)).value());
  // One byte of the second record's data changes.
  const std::uint64_t second_data = 88 + 44 + 10'000 + 44 + 17;
  Bytes b(1);
  ASSERT_TRUE(store.read_at(second_data, b));
  b[0] ^= 1;
  ASSERT_TRUE(store.write_at(second_data, b));
  auto again = open_spool(store);
  EXPECT_EQ(again->held(0), 10'000u);
  EXPECT_EQ(again->bytes_held(), 10'000u) << "nothing after the damaged record is trusted";
  expect_truthful(*again, src);
}

// A power cut at every write of a spool being filled, in each loss mode:
// reopened, it holds only the source's bytes, and (dropping unsynced writes)
// at least what was synced.
TEST(Spool, PowerCutAtEveryWriteLeavesATruthfulSpool) {
  const Bytes src = test::random_bytes(40'000, 803);
  // Appends 4000-byte records; returns the bytes appended before the first failure.
  auto fill = [&](Spool& s) {
    std::uint64_t at = 0;
    for (; at < src.size(); at += 4000) {
      auto r = s.append(at, ByteSpan(src).subspan(at, 4000));
      if (!r) break;
    }
    return at;
  };
  PowerCut counting;
  SimulatedBank probe(Bytes(kStore, 0), counting);
  fill(*open_spool(probe, "k", 8000));
  const std::uint64_t total = counting.writes();
  ASSERT_GT(total, 10u);
  test::for_each_cut(total, [&](const test::Cut& cut) {
    PowerCut power(cut.n, cut.mode, cut.n * 31);
    SimulatedBank store(Bytes(kStore, 0), power);
    auto s = open_spool(store, "k", 8000);
    const std::uint64_t appended = fill(*s);
    PowerCut after;
    SimulatedBank survived(store.survivors(), after);
    auto back = open_spool(survived, "k", 8000);
    SCOPED_TRACE(cut.where);
    expect_truthful(*back, src);
    if (HasFatalFailure()) return;
    // A sync every 8000 bytes: dropping what was not synced loses at most
    // that and the record being written.
    if (cut.mode == LossMode::kDropUnsynced) {
      EXPECT_GE(back->held(0) + 8000 + 4000, appended) << cut.where;
    }
  });
}

TEST(SpooledReader, WhatIsHeldIsNotFetchedAgain) {
  PowerCut power;
  SimulatedBank store(Bytes(kStore, 0), power);
  const Bytes src = test::random_bytes(100'000, 804);
  Bytes got;
  {
    // The first attempt reads 60,000 bytes and is killed.
    auto s = open_spool(store);
    CountingSource net(src);
    SpooledReader r(net, *s);
    Bytes buf(7000);
    while (got.size() < 60'000) {
      auto n = r.read(buf);
      ASSERT_TRUE(n && *n > 0);
      got.insert(got.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(*n));
    }
    EXPECT_EQ(net.stats().bytes_received, got.size());
  }
  // The second attempt reads it all: the source sends only what the first did not get.
  auto s = open_spool(store);
  CountingSource net(src);
  SpooledReader r(net, *s);
  Bytes all, buf(5000);
  for (;;) {
    auto n = r.read(buf);
    ASSERT_TRUE(n);
    if (*n == 0) break;
    all.insert(all.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(*n));
  }
  EXPECT_EQ(all, src);
  EXPECT_EQ(net.stats().bytes_received, src.size() - got.size());
  EXPECT_EQ(r.stats().bytes_from_spool, got.size());
}

TEST(SpooledReader, SkipsOverHeldAndUnheldBytes) {
  PowerCut power;
  SimulatedBank store(Bytes(kStore, 0), power);
  const Bytes src = test::random_bytes(50'000, 805);
  auto s = open_spool(store);
  ASSERT_TRUE(s->append(10'000, ByteSpan(src).subspan(10'000, 10'000)).value());
  CountingSource net(src);
  SpooledReader r(net, *s);
  ASSERT_EQ(r.skip(12'000).value(), 12'000u);  // into the held range
  Bytes b(3000);
  ASSERT_EQ(r.read(b).value(), 3000u);
  EXPECT_TRUE(std::equal(b.begin(), b.end(), src.begin() + 12'000));
  EXPECT_EQ(net.stats().bytes_received, 0u);
  ASSERT_EQ(r.skip(10'000).value(), 10'000u);  // past it: the source jumps
  ASSERT_EQ(r.read(b).value(), 3000u);
  EXPECT_TRUE(std::equal(b.begin(), b.end(), src.begin() + 25'000));
  EXPECT_EQ(net.stats().bytes_received, 3000u);
  // A read that would run into held bytes stops where they start.
  auto s2 = open_spool(store, "k2");
  ASSERT_TRUE(s2->append(1000, ByteSpan(src).subspan(1000, 500)).value());
  CountingSource net2(src);
  SpooledReader r2(net2, *s2);
  Bytes big(4000);
  ASSERT_EQ(r2.read(big).value(), 1000u);
  ASSERT_EQ(r2.read(big).value(), 500u);
  EXPECT_EQ(r2.stats().bytes_from_spool, 500u);
}

// ---- an install on the simulator, cut at every write, resumed ----

class SpooledInstall : public testing::Test {
 protected:
  void SetUp() override {
    base_ = test::structured_bytes(64 * 1024, 810);
    image_ = test::with_insertion(test::with_random_edits(base_, 200, 811), 20'000, test::random_bytes(3000, 812));
    test::write_bytes(dir_.file("base.img"), base_);
    test::write_bytes(dir_.file("new.img"), image_);
    root_ = test::root_envelope(test::make_root(1, test::at("2030-01-01"), 1, keys_.ptrs({0})), keys_.ptrs({0}));
  }

  struct Durable {
    Bytes a, b, spool;
    std::map<std::string, Bytes> records;
    boot::Vars env;
  };

  // One boot: storage from `from` (or fresh), the power cut at write n
  // (0: never); installs through the spool; returns what survives and adds
  // the bytes the source sent to *fetched.
  Durable boot_and_install(const Durable& from, std::uint64_t n, LossMode mode, std::uint64_t* fetched,
                           std::uint64_t* writes = nullptr, bool* done = nullptr) {
    PowerCut power(n, mode, n * 7);
    SimulatedBank a(from.a, power), b(from.b, power), spool_store(from.spool, power);
    storage::SimulatedStateStore state(power, from.records);
    test::CutEnvironment env(from.env, power);
    trust::TrustStore trust = test::store_from(root_);
    agent::Device d;
    d.banks[0] = &a;
    d.banks[1] = &b;
    d.state = &state;
    d.env = &env;
    d.trust = &trust;
    d.hardware_id = "board";
    d.now = [] { return test::at("2026-06-01"); };
    d.health_check = [] { return ok(); };
    d.reboot = [] { return ok(); };
    agent::Agent agent(std::move(d));
    bool ok_run = !power.cut() && agent.boot_check();
    auto st = agent.state();
    const bool installed = st && st->install.stage != agent::Stage::kNone && st->install.stage != agent::Stage::kWriting;
    if (ok_run && !installed && boot::simulate_boot(env).value_or(boot::Slot::kA) == boot::Slot::kA) {
      auto sp = Spool::open(spool_store, "http://h/fw.otb", 0);
      ok_run = static_cast<bool>(sp);
      if (sp) {
        CountingSource net(bundle_, &power);
        SpooledReader in(net, **sp);
        auto rep = agent.install(in);
        *fetched += net.stats().bytes_received;
        ok_run = static_cast<bool>(rep);
      }
    }
    if (writes) *writes = power.writes();
    if (done) *done = ok_run;
    return Durable{a.survivors(), b.survivors(), spool_store.survivors(), state.records(), env.vars()};
  }

  Durable fresh() const {
    return Durable{test::bank_with(base_, 256 * 1024), Bytes(256 * 1024, 0), Bytes(kStore, 0), {},
                   boot::Vars{{"ota_slot", "a"}}};
  }

  test::Keyring keys_{1};
  test::TempDir dir_;
  Bytes base_, image_, bundle_;
  trust::Envelope root_;
};

TEST_F(SpooledInstall, ACutAtEveryWriteCostsLittleMoreThanACleanInstall) {
  for (bool with_delta : {true, false}) {
    SCOPED_TRACE(with_delta ? "delta" : "full image");
    auto o = test::small_bundle(dir_.file("new.img"), {}, "1.1.0", {"board"});
    if (with_delta) o.base_paths = {dir_.file("base.img")};
    bundle_ = test::signed_bundle(o, keys_.ptrs({0}));
    std::uint64_t clean = 0, total = 0;
    bool done = false;
    boot_and_install(fresh(), 0, LossMode::kDropUnsynced, &clean, &total, &done);
    ASSERT_TRUE(done);
    std::vector<double> ratios;
    test::for_each_cut(total, {LossMode::kDropUnsynced, LossMode::kTornSector}, [&](const test::Cut& cut) {
      std::uint64_t fetched = 0;
      Durable s = boot_and_install(fresh(), cut.n, cut.mode, &fetched);
      // The next boots finish the job (a cut leaves old or verified-new).
      for (int boot = 0; boot < 3; ++boot) {
        bool ok_run = false;
        s = boot_and_install(s, 0, cut.mode, &fetched, nullptr, &ok_run);
        if (ok_run) break;
      }
      ASSERT_EQ(test::prefix(s.b, image_.size()), image_) << cut.where;
      ratios.push_back(static_cast<double>(fetched) / static_cast<double>(clean));
    });
    if (HasFatalFailure()) return;
    std::sort(ratios.begin(), ratios.end());
    const double median = ratios[ratios.size() / 2], worst = ratios.back();
    std::printf("%s: %zu cut points, bytes fetched over a clean install's %llu: median %.3fx, max %.3fx\n",
                with_delta ? "delta" : "full image", ratios.size(), static_cast<unsigned long long>(clean), median, worst);
    EXPECT_LE(median, 1.05);
    // A cut loses at most the record being written (one 4 KiB chunk here,
    // against bundles of 20 to 60 KB).
    EXPECT_LE(worst, 1.0 + 4096.0 / static_cast<double>(clean) + 0.02);
  }
}

}  // namespace
}  // namespace ota
