// The power-loss simulator (ota/testing): PowerCut, SimulatedBank and
// SimulatedStateStore, exact outcomes of each loss mode.
#include "support/power_cuts.hpp"
#include "unit/storage_helpers.hpp"

namespace ota::storage {
namespace {

// ---- PowerCut ----

TEST(PowerCut, CutsAtTheNthWriteCountingFromOne) {
  PowerCut power(3);
  EXPECT_TRUE(power.on_write());
  EXPECT_TRUE(power.on_write());
  EXPECT_FALSE(power.cut());
  auto third = power.on_write();
  ASSERT_FALSE(third);
  EXPECT_EQ(third.error().code, ErrorCode::kIo);
  EXPECT_EQ(third.error().message, "power cut at write 3");
  EXPECT_TRUE(power.cut());
  auto fourth = power.on_write();
  ASSERT_FALSE(fourth);
  EXPECT_EQ(fourth.error().message, "power cut at write 3");
  EXPECT_EQ(power.writes(), 4u) << "failed writes are counted too";
}

TEST(PowerCut, FirstWriteAndNever) {
  PowerCut first(1);
  EXPECT_FALSE(first.on_write());
  PowerCut never;
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(never.on_write());
  EXPECT_FALSE(never.cut());
  EXPECT_EQ(never.writes(), 1000u);
  EXPECT_EQ(never.mode(), LossMode::kDropUnsynced);
}

// ---- SimulatedBank ----

struct Write {
  std::uint64_t offset;
  Bytes data;
};

Bytes apply_writes(Bytes image, const std::vector<Write>& writes) {
  for (const Write& w : writes) std::copy(w.data.begin(), w.data.end(), image.begin() + static_cast<std::ptrdiff_t>(w.offset));
  return image;
}

// Four overlapping writes, so the order of applying them matters.
std::vector<Write> overlapping_writes() {
  return {{100, Bytes(300, 1)}, {200, Bytes(300, 2)}, {0, Bytes(150, 3)}, {350, Bytes(50, 4)}};
}

TEST(SimulatedBank, ReadsSeeUnsyncedWritesInOrder) {
  PowerCut power;
  Bytes durable = random_bytes(1024, 10);
  SimulatedBank bank(durable, power);
  EXPECT_EQ(bank.size(), 1024u);
  auto writes = overlapping_writes();
  for (const Write& w : writes) ASSERT_TRUE(bank.write_at(w.offset, w.data));
  Bytes expected = apply_writes(durable, writes);
  EXPECT_EQ(read_all(bank), expected);
  for (std::uint64_t offset : {0, 99, 149, 250, 399, 1000}) {
    Bytes window(24);
    ASSERT_TRUE(bank.read_at(offset, window));
    EXPECT_EQ(window, Bytes(expected.begin() + static_cast<std::ptrdiff_t>(offset),
                            expected.begin() + static_cast<std::ptrdiff_t>(offset) + 24))
        << offset;
  }
  const Source* source = &bank;
  Bytes via_source(1024);
  ASSERT_TRUE(source->read_at(0, via_source));
  EXPECT_EQ(via_source, expected);
  EXPECT_EQ(power.writes(), 4u);
}

TEST(SimulatedBank, BoundsAreCheckedAndNotCounted) {
  PowerCut power;
  SimulatedBank bank(Bytes(1000, 0), power);
  auto w = bank.write_at(990, Bytes(11, 1));
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().code, ErrorCode::kLimitExceeded);
  EXPECT_TRUE(contains(w.error().message, "11 bytes at offset 990")) << w.error().message;
  EXPECT_FALSE(bank.write_at(kMax64, Bytes(1, 1)));
  Bytes out(11);
  auto r = bank.read_at(990, out);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kIo);
  EXPECT_EQ(power.writes(), 0u);
  EXPECT_EQ(read_all(bank), Bytes(1000, 0));
}

TEST(SimulatedBank, SyncMakesWritesDurable) {
  PowerCut power(0, LossMode::kDropUnsynced);
  Bytes durable(1024, 0);
  SimulatedBank bank(durable, power);
  auto writes = overlapping_writes();
  ASSERT_TRUE(bank.write_at(writes[0].offset, writes[0].data));
  ASSERT_TRUE(bank.write_at(writes[1].offset, writes[1].data));
  ASSERT_TRUE(bank.sync());
  ASSERT_TRUE(bank.write_at(writes[2].offset, writes[2].data));
  EXPECT_EQ(bank.survivors(), apply_writes(durable, {writes[0], writes[1]}));
  ASSERT_TRUE(bank.sync());
  EXPECT_EQ(bank.survivors(), apply_writes(durable, {writes[0], writes[1], writes[2]}));
  EXPECT_EQ(power.writes(), 3u) << "sync is not a counted write";
}

TEST(SimulatedBank, DropUnsyncedKeepsOnlySyncedData) {
  PowerCut power(4, LossMode::kDropUnsynced);
  Bytes durable = random_bytes(1024, 11);
  SimulatedBank bank(durable, power);
  auto writes = overlapping_writes();
  ASSERT_TRUE(bank.write_at(writes[0].offset, writes[0].data));
  ASSERT_TRUE(bank.sync());
  ASSERT_TRUE(bank.write_at(writes[1].offset, writes[1].data));
  ASSERT_TRUE(bank.write_at(writes[2].offset, writes[2].data));
  EXPECT_FALSE(bank.write_at(writes[3].offset, writes[3].data));
  EXPECT_EQ(bank.survivors(), apply_writes(durable, {writes[0]}));
}

TEST(SimulatedBank, WritesAfterTheCutFailAndChangeNothing) {
  PowerCut power(3, LossMode::kTornSector);
  Bytes durable(4096, 0);
  SimulatedBank bank(durable, power);
  ASSERT_TRUE(bank.write_at(0, Bytes(100, 1)));
  ASSERT_TRUE(bank.write_at(1100, Bytes(100, 2)));
  Bytes before = read_all(bank);
  for (int i = 0; i < 3; ++i) {
    auto st = bank.write_at(0, Bytes(4096, 9));
    ASSERT_FALSE(st);
    EXPECT_EQ(st.error().code, ErrorCode::kIo);
    EXPECT_EQ(st.error().message, "power cut at write 3");
  }
  EXPECT_EQ(read_all(bank), before) << "a write refused at the cut is not even cached";
  // TornSector tears the last recorded write ([1100, 1200): no sector boundary inside, lost).
  EXPECT_EQ(bank.survivors(), apply_writes(durable, {{0, Bytes(100, 1)}}));
}

TEST(SimulatedBank, SyncAfterTheCutFails) {
  PowerCut power(2, LossMode::kDropUnsynced);
  Bytes durable(1024, 0);
  SimulatedBank bank(durable, power);
  ASSERT_TRUE(bank.write_at(0, Bytes(10, 1)));
  EXPECT_FALSE(bank.write_at(10, Bytes(10, 2)));
  auto st = bank.sync();
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kIo);
  EXPECT_EQ(bank.survivors(), durable) << "the failed sync made nothing durable";
  EXPECT_EQ(power.writes(), 2u);
}

TEST(SimulatedBank, TornSectorExactOutcomes) {
  Bytes durable(4096, 0);
  const Write a{100, Bytes(50, 1)};
  const Write b{2048, Bytes(1024, 2)};  // boundaries inside: 2560 only
  {
    // The last write [1000, 1500) holds one boundary, 1024: bytes [1000, 1024) survive.
    PowerCut power(0, LossMode::kTornSector, 7);
    SimulatedBank bank(durable, power);
    ASSERT_TRUE(bank.write_at(a.offset, a.data));
    ASSERT_TRUE(bank.write_at(1000, Bytes(500, 3)));
    EXPECT_EQ(bank.survivors(), apply_writes(durable, {a, {1000, Bytes(24, 3)}}));
  }
  {
    // A last write inside one sector (even a whole aligned sector) has no boundary strictly inside: lost.
    for (const Write& last : {Write{2048, Bytes(512, 4)}, Write{2100, Bytes(400, 4)}}) {
      PowerCut power(0, LossMode::kTornSector, 7);
      SimulatedBank bank(durable, power);
      ASSERT_TRUE(bank.write_at(a.offset, a.data));
      ASSERT_TRUE(bank.write_at(b.offset, b.data));
      ASSERT_TRUE(bank.write_at(last.offset, last.data));
      EXPECT_EQ(bank.survivors(), apply_writes(durable, {a, b})) << last.offset;
    }
  }
  {
    // Only the last write is torn; an earlier one crossing boundaries survives whole.
    PowerCut power(0, LossMode::kTornSector, 7);
    SimulatedBank bank(durable, power);
    ASSERT_TRUE(bank.write_at(b.offset, b.data));
    ASSERT_TRUE(bank.write_at(a.offset, a.data));
    EXPECT_EQ(bank.survivors(), apply_writes(durable, {b}));
    ASSERT_TRUE(bank.sync());
    EXPECT_EQ(bank.survivors(), apply_writes(durable, {b, a})) << "nothing unsynced, nothing torn";
  }
}

TEST(SimulatedBank, TornSectorCutsAtASectorBoundaryChosenPerSeed) {
  Bytes durable(4096, 0);
  std::set<std::uint64_t> cuts;
  for (std::uint64_t seed = 1; seed <= 64; ++seed) {
    Bytes outcome[2];
    for (Bytes& out : outcome) {
      PowerCut power(0, LossMode::kTornSector, seed);
      SimulatedBank bank(durable, power);
      EXPECT_TRUE(bank.write_at(0, Bytes(2000, 5)));  // boundaries inside: 512, 1024, 1536
      out = bank.survivors();
    }
    EXPECT_EQ(outcome[0], outcome[1]) << "deterministic per seed " << seed;
    std::uint64_t kept = 0;
    while (kept < outcome[0].size() && outcome[0][kept] == 5) ++kept;
    EXPECT_EQ(outcome[0], apply_writes(durable, {{0, Bytes(kept, 5)}})) << "a prefix of the write";
    cuts.insert(kept);
  }
  EXPECT_EQ(cuts, (std::set<std::uint64_t>{512, 1024, 1536}));
}

TEST(SimulatedBank, RandomSubsetIsDeterministicAndOrderConsistent) {
  Bytes durable = random_bytes(1024, 12);
  auto writes = overlapping_writes();
  // Every outcome must be durable plus some subset of the writes, applied in order.
  std::vector<Bytes> allowed;
  for (unsigned mask = 0; mask < (1u << writes.size()); ++mask) {
    std::vector<Write> subset;
    for (std::size_t i = 0; i < writes.size(); ++i)
      if (mask & (1u << i)) subset.push_back(writes[i]);
    allowed.push_back(apply_writes(durable, subset));
  }
  std::set<std::size_t> seen;
  for (std::uint64_t seed = 1; seed <= 200; ++seed) {
    Bytes outcome[2];
    for (Bytes& out : outcome) {
      PowerCut power(writes.size() + 1, LossMode::kRandomSubset, seed);
      SimulatedBank bank(durable, power);
      for (const Write& w : writes) EXPECT_TRUE(bank.write_at(w.offset, w.data));
      EXPECT_FALSE(bank.write_at(0, Bytes(1, 0)));
      out = bank.survivors();
    }
    EXPECT_EQ(outcome[0], outcome[1]) << "deterministic per seed " << seed;
    auto it = std::find(allowed.begin(), allowed.end(), outcome[0]);
    ASSERT_NE(it, allowed.end()) << "seed " << seed << " kept something that is no in-order subset";
    seen.insert(static_cast<std::size_t>(it - allowed.begin()));
  }
  EXPECT_EQ(seen.size(), allowed.size()) << "200 seeds reach all 16 subsets";
}

// ---- SimulatedStateStore ----

TEST(SimulatedStateStore, ReplaceAndRemoveAreAtomicAcrossACut) {
  PowerCut power(3);
  SimulatedStateStore store(power, {{"agent", text("v0")}});
  auto v0 = store.get("agent");
  ASSERT_TRUE(v0 && *v0);
  EXPECT_EQ(**v0, text("v0"));
  EXPECT_EQ(power.writes(), 0u) << "get is not a write";

  ASSERT_TRUE(store.replace("agent", text("v1")));
  ASSERT_TRUE(store.replace("hash", text("h")));
  auto cut = store.replace("agent", text("v2"));
  ASSERT_FALSE(cut);
  EXPECT_EQ(cut.error().code, ErrorCode::kIo);
  EXPECT_FALSE(store.remove("hash"));
  EXPECT_EQ(store.records(), (std::map<std::string, Bytes>{{"agent", text("v1")}, {"hash", text("h")}}));
  auto after = store.get("agent");
  ASSERT_TRUE(after && *after);
  EXPECT_EQ(**after, text("v1")) << "reads still work after the cut";
  auto none = store.get("missing");
  ASSERT_TRUE(none);
  EXPECT_FALSE(*none);
}

TEST(SimulatedStateStore, RejectsBadNamesWithoutCountingThem) {
  PowerCut power;
  SimulatedStateStore store(power);
  for (const std::string& name : bad_names()) {
    auto r = store.replace(name, text("x"));
    ASSERT_FALSE(r) << name;
    EXPECT_EQ(r.error().code, ErrorCode::kUsage) << name;
    EXPECT_FALSE(store.remove(name)) << name;
    EXPECT_FALSE(store.get(name)) << name;
  }
  EXPECT_EQ(power.writes(), 0u);
  EXPECT_TRUE(store.records().empty());
  ASSERT_TRUE(store.remove("missing")) << "removing a missing record succeeds";
  EXPECT_EQ(power.writes(), 1u);
}

// MCUboot-style: cut at every write of a short sequence; after each cut the
// store holds exactly the records of some prefix of the sequence.
TEST(SimulatedStateStore, EveryCutPointLeavesAPrefixOfTheSequence) {
  const std::vector<std::pair<std::string, std::optional<std::string>>> steps = {
      {"agent", "download"}, {"hash", "abc"}, {"agent", "install"}, {"hash", std::nullopt}, {"agent", "idle"}};
  auto run = [&](PowerCut& power, std::map<std::string, Bytes>& out) {
    SimulatedStateStore store(power, {{"agent", text("idle")}});
    for (const auto& [name, value] : steps) {
      auto st = value ? store.replace(name, text(*value)) : store.remove(name);
      if (!st) break;
    }
    out = store.records();
  };
  std::vector<std::map<std::string, Bytes>> prefixes(1, {{"agent", text("idle")}});
  for (const auto& [name, value] : steps) {
    auto next = prefixes.back();
    if (value)
      next[name] = text(*value);
    else
      next.erase(name);
    prefixes.push_back(next);
  }
  PowerCut dry_run;
  std::map<std::string, Bytes> final_records;
  run(dry_run, final_records);
  ASSERT_EQ(dry_run.writes(), steps.size());
  EXPECT_EQ(final_records, prefixes.back());
  test::for_each_cut(dry_run.writes(), {LossMode::kDropUnsynced}, [&](const test::Cut& cut) {
    PowerCut power(cut.n, cut.mode);
    std::map<std::string, Bytes> records;
    run(power, records);
    EXPECT_EQ(records, prefixes[cut.n - 1]) << cut.where;
  });
}

}  // namespace
}  // namespace ota::storage
