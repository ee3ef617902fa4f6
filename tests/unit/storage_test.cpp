// ota/device/storage.hpp: file banks, the state directory, and the power-loss simulator.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcntl.h>

#include <csignal>
#include <cstdint>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "ota/core/io.hpp"
#include "ota/device/storage.hpp"
#include "ota/testing/power_cut.hpp"
#include "support/random.hpp"
#include "support/temp_dir.hpp"

namespace ota::storage {
namespace {

using test::mode_of;
using test::ScopedUmask;

using test::random_bytes;
using test::TempDir;

constexpr std::uint64_t kMax64 = std::numeric_limits<std::uint64_t>::max();

Bytes text(const std::string& s) { return Bytes(s.begin(), s.end()); }

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// Reads a whole BlockStore.
Bytes read_all(const BlockStore& bank) {
  Bytes out(static_cast<std::size_t>(bank.size()));
  auto st = bank.read_at(0, out);
  EXPECT_TRUE(st) << st.error().message;
  return out;
}

std::unique_ptr<BlockStore> open_bank(const std::string& path) {
  auto bank = open_file_bank(path);
  EXPECT_TRUE(bank) << bank.error().message;
  return bank ? std::move(*bank) : nullptr;
}

std::unique_ptr<StateStore> open_dir(const std::string& path) {
  auto store = open_state_dir(path);
  EXPECT_TRUE(store) << store.error().message;
  return store ? std::move(*store) : nullptr;
}

// ---- file banks ----

TEST(FileBank, RoundTripsAndPersists) {
  TempDir dir;
  std::string path = dir.file("bank.img");
  Bytes image = random_bytes(64 * 1024, 1);
  test::write_bytes(path, image);
  {
    auto bank = open_bank(path);
    ASSERT_TRUE(bank);
    EXPECT_EQ(bank->size(), image.size());
    EXPECT_EQ(read_all(*bank), image);

    Bytes patch = random_bytes(5000, 2);
    ASSERT_TRUE(bank->write_at(12345, patch));
    std::copy(patch.begin(), patch.end(), image.begin() + 12345);
    ASSERT_TRUE(bank->write_at(image.size() - 1, ByteSpan(patch).first(1)));
    image.back() = patch[0];
    ASSERT_TRUE(bank->write_at(0, ByteSpan{})) << "an empty write is fine";
    EXPECT_EQ(read_all(*bank), image) << "reads see the writes before sync";

    Bytes window(100);
    ASSERT_TRUE(bank->read_at(12300, window));
    EXPECT_EQ(window, Bytes(image.begin() + 12300, image.begin() + 12400));
    ASSERT_TRUE(bank->sync());
  }
  EXPECT_EQ(test::read_bytes(path), image) << "the file holds the writes, same size";
}

TEST(FileBank, BoundsAreCheckedWithOffsetsInTheMessage) {
  TempDir dir;
  std::string path = dir.file("bank.img");
  Bytes image = random_bytes(4096, 3);
  test::write_bytes(path, image);
  auto bank = open_bank(path);
  ASSERT_TRUE(bank);

  Bytes data(100, 0xAB);
  auto w = bank->write_at(4000, data);
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().code, ErrorCode::kLimitExceeded);
  EXPECT_TRUE(contains(w.error().message, "100 bytes at offset 4000")) << w.error().message;
  EXPECT_TRUE(contains(w.error().message, "4096")) << w.error().message;
  EXPECT_TRUE(contains(w.error().message, path)) << w.error().message;
  for (std::uint64_t offset : {std::uint64_t{4097}, kMax64, kMax64 - 50}) {
    auto st = bank->write_at(offset, data);
    ASSERT_FALSE(st) << offset;
    EXPECT_EQ(st.error().code, ErrorCode::kLimitExceeded) << offset;
  }
  EXPECT_TRUE(bank->write_at(4096, ByteSpan{})) << "an empty write at the very end is in range";

  Bytes out(100);
  auto r = bank->read_at(4000, out);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kIo);
  EXPECT_TRUE(contains(r.error().message, "offset 4000")) << r.error().message;
  EXPECT_FALSE(bank->read_at(kMax64, out));
  EXPECT_TRUE(bank->read_at(4096, MutableByteSpan{}));

  ASSERT_TRUE(bank->sync());
  EXPECT_EQ(test::read_bytes(path), image) << "refused writes wrote nothing, the file did not grow";
}

TEST(FileBank, OpenFailures) {
  TempDir dir;
  auto missing = open_file_bank(dir.file("missing"));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ErrorCode::kIo);
  EXPECT_TRUE(contains(missing.error().message, "missing")) << missing.error().message;

  auto directory = open_file_bank(dir.path());
  ASSERT_FALSE(directory);
  EXPECT_EQ(directory.error().code, ErrorCode::kIo);

  std::string fifo = dir.file("fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  auto pipe = open_file_bank(fifo);
  ASSERT_FALSE(pipe);
  EXPECT_EQ(pipe.error().code, ErrorCode::kUnsupported);
}

TEST(FileBank, SparseOneGiBBankNearItsEnd) {
  TempDir dir;
  std::string path = dir.file("big.img");
  constexpr std::uint64_t kSize = std::uint64_t{1} << 30;
  {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, static_cast<off_t>(kSize)), 0);
    ::close(fd);
  }
  auto bank = open_bank(path);
  ASSERT_TRUE(bank);
  EXPECT_EQ(bank->size(), kSize);

  Bytes tail = random_bytes(4096, 4);
  ASSERT_TRUE(bank->write_at(kSize - tail.size(), tail));
  Bytes back(tail.size());
  ASSERT_TRUE(bank->read_at(kSize - tail.size(), back));
  EXPECT_EQ(back, tail);
  Bytes hole(8192, 0xFF);
  ASSERT_TRUE(bank->read_at(kSize / 2, hole));
  EXPECT_EQ(hole, Bytes(8192, 0)) << "a hole reads as zeros";

  auto over = bank->write_at(kSize - 100, Bytes(200, 1));
  ASSERT_FALSE(over);
  EXPECT_EQ(over.error().code, ErrorCode::kLimitExceeded);
  EXPECT_TRUE(contains(over.error().message, "offset " + std::to_string(kSize - 100))) << over.error().message;
  ASSERT_TRUE(bank->sync());

  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(static_cast<std::uint64_t>(st.st_size), kSize);
  EXPECT_LT(static_cast<std::uint64_t>(st.st_blocks) * 512, std::uint64_t{1} << 20) << "still sparse";
}

TEST(FileBank, IsASourceThatReadsTheBank) {
  TempDir dir;
  std::string path = dir.file("bank.img");
  Bytes image = random_bytes(10000, 5);
  test::write_bytes(path, image);
  auto bank = open_bank(path);
  ASSERT_TRUE(bank);
  const Source* source = bank.get();
  EXPECT_EQ(source->size(), image.size());
  Bytes out(1000);
  ASSERT_TRUE(source->read_at(9000, out));
  EXPECT_EQ(out, Bytes(image.begin() + 9000, image.end()));
  ASSERT_TRUE(bank->write_at(9000, Bytes(1000, 7)));
  ASSERT_TRUE(source->read_at(9000, out));
  EXPECT_EQ(out, Bytes(1000, 7)) << "the source reads through to the bank";
  auto past = source->read_at(9001, out);
  ASSERT_FALSE(past);
  EXPECT_EQ(past.error().code, ErrorCode::kIo);
}

// ---- BankWriter ----

TEST(BankWriter, WritesSequentiallyFromItsOffset) {
  TempDir dir;
  std::string path = dir.file("bank.img");
  Bytes image(8192, 0);
  test::write_bytes(path, image);
  auto bank = open_bank(path);
  ASSERT_TRUE(bank);

  BankWriter writer(*bank, 1000);
  EXPECT_EQ(writer.position(), 1000u);
  Bytes data = random_bytes(7000, 6);
  std::size_t pos = 0;
  for (std::size_t chunk : {1, 999, 0, 4096, 1904}) {
    ASSERT_TRUE(writer.write(ByteSpan(data).subspan(pos, chunk)));
    pos += chunk;
    EXPECT_EQ(writer.position(), 1000 + pos);
  }
  ASSERT_EQ(pos, data.size());
  std::copy(data.begin(), data.end(), image.begin() + 1000);

  auto over = writer.write(Bytes(193, 1));  // 8000 + 193 > 8192
  ASSERT_FALSE(over);
  EXPECT_EQ(over.error().code, ErrorCode::kLimitExceeded);
  EXPECT_EQ(writer.position(), 8000u) << "a failed write does not advance";
  ASSERT_TRUE(writer.write(Bytes(192, 2)));
  std::fill(image.begin() + 8000, image.end(), 2);
  EXPECT_EQ(writer.position(), 8192u);
  ASSERT_TRUE(writer.commit());
  EXPECT_EQ(test::read_bytes(path), image);
}

TEST(BankWriter, SyncMakesASimulatedBankDurable) {
  PowerCut power;
  SimulatedBank bank(Bytes(1024, 0), power);
  BankWriter writer(bank, 512);
  ASSERT_TRUE(writer.write(Bytes(512, 9)));
  EXPECT_EQ(bank.survivors(), Bytes(1024, 0)) << "not synced yet: DropUnsynced loses it";
  ASSERT_TRUE(writer.sync());
  Bytes expected(1024, 0);
  std::fill(expected.begin() + 512, expected.end(), 9);
  EXPECT_EQ(bank.survivors(), expected);
}

// ---- state directory ----

TEST(StateDir, GetReplaceRemove) {
  TempDir dir;
  auto store = open_dir(dir.file("state"));
  ASSERT_TRUE(store);

  auto none = store->get("agent");
  ASSERT_TRUE(none) << none.error().message;
  EXPECT_FALSE(*none);

  ASSERT_TRUE(store->replace("agent", text("one")));
  auto one = store->get("agent");
  ASSERT_TRUE(one && *one);
  EXPECT_EQ(**one, text("one"));

  Bytes big = random_bytes(200 * 1024, 7);
  ASSERT_TRUE(store->replace("agent", big));
  ASSERT_TRUE(store->replace("empty", ByteSpan{}));
  auto got = store->get("agent");
  ASSERT_TRUE(got && *got);
  EXPECT_EQ(**got, big);
  auto empty = store->get("empty");
  ASSERT_TRUE(empty && *empty) << "an empty record exists";
  EXPECT_TRUE((*empty)->empty());
  EXPECT_EQ(test::read_bytes(dir.file("state/agent")), big) << "one plain file per record";

  ASSERT_TRUE(store->remove("agent"));
  auto gone = store->get("agent");
  ASSERT_TRUE(gone);
  EXPECT_FALSE(*gone);
  EXPECT_TRUE(store->remove("agent")) << "removing a missing record succeeds";

  auto store2 = open_dir(dir.file("state"));
  ASSERT_TRUE(store2);
  auto again = store2->get("empty");
  ASSERT_TRUE(again && *again) << "records persist across opens";
}

TEST(StateDir, LeavesOnlyTheRecordFiles) {
  TempDir dir;
  auto store = open_dir(dir.path());
  ASSERT_TRUE(store);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(store->replace("a", text(std::to_string(i))));
  ASSERT_TRUE(store->replace("b.json", text("{}")));
  EXPECT_EQ(dir.list(), (std::vector<std::string>{"a", "b.json"}));
}

TEST(StateDir, Modes0700And0600EvenUnderUmask000) {
  TempDir dir;
  ScopedUmask mask(0);
  std::string path = dir.file("state");
  auto store = open_dir(path);
  ASSERT_TRUE(store);
  EXPECT_EQ(mode_of(path), 0700u);
  ASSERT_TRUE(store->replace("secret", text("x")));
  EXPECT_EQ(mode_of(path + "/secret"), 0600u);
  ASSERT_TRUE(store->replace("secret", text("y")));
  EXPECT_EQ(mode_of(path + "/secret"), 0600u);
}

TEST(StateDir, ExistingDirectoryKeepsItsMode) {
  TempDir dir;
  std::string path = dir.file("state");
  ASSERT_EQ(::mkdir(path.c_str(), 0750), 0);
  ASSERT_EQ(::chmod(path.c_str(), 0750), 0);
  ASSERT_TRUE(open_dir(path + "/"));
  EXPECT_EQ(mode_of(path), 0750u);
}

TEST(StateDir, OpenFailures) {
  TempDir dir;
  test::write_bytes(dir.file("file"), text("x"));
  auto not_dir = open_state_dir(dir.file("file"));
  ASSERT_FALSE(not_dir);
  EXPECT_EQ(not_dir.error().code, ErrorCode::kIo);
  auto no_parent = open_state_dir(dir.file("missing/state"));
  ASSERT_FALSE(no_parent);
  EXPECT_EQ(no_parent.error().code, ErrorCode::kIo);
  auto empty = open_state_dir("");
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().code, ErrorCode::kUsage);
}

const std::vector<std::string>& bad_names() {
  static const std::vector<std::string> names = {
      "",      "../x", "a/b",  "/etc/passwd", ".", "..", "..a/../b", "a b", "a\\b", std::string("a\0b", 3),
      "é",     std::string(65, 'x'), "x.tmp.0123abcd", "state.tmp.deadbeef"};
  return names;
}

TEST(StateDir, NamesThatCouldEscapeAreRejected) {
  TempDir outer;
  std::string path = outer.file("state");
  auto store = open_dir(path);
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->replace("keep", text("kept")));
  for (const std::string& name : bad_names()) {
    auto g = store->get(name);
    ASSERT_FALSE(g) << name;
    EXPECT_EQ(g.error().code, ErrorCode::kUsage) << name;
    auto r = store->replace(name, text("evil"));
    ASSERT_FALSE(r) << name;
    EXPECT_EQ(r.error().code, ErrorCode::kUsage) << name;
    auto d = store->remove(name);
    ASSERT_FALSE(d) << name;
    EXPECT_EQ(d.error().code, ErrorCode::kUsage) << name;
  }
  EXPECT_EQ(outer.list(), (std::vector<std::string>{"state"})) << "nothing written beside the directory";
  auto kept = store->get("keep");
  ASSERT_TRUE(kept && *kept);
  EXPECT_EQ(**kept, text("kept")) << "a refused replace leaves the other records";

  // The edges of what is allowed.
  for (const std::string& name : {std::string(64, 'x'), std::string("..."), std::string(".hidden"),
                                  std::string("A-z_0.9"), std::string("x.tmp.0123ABCD"), std::string("x.tmp.1")}) {
    ASSERT_TRUE(store->replace(name, text(name))) << name;
    auto back = store->get(name);
    ASSERT_TRUE(back && *back) << name;
    EXPECT_EQ(**back, text(name));
  }
}

// A replace that fails half-way (the file size limit cuts the temporary
// file's write short) leaves the old record and no temporary file.
TEST(StateDir, FailedReplaceLeavesTheOldRecord) {
  TempDir dir;
  auto store = open_dir(dir.path());
  ASSERT_TRUE(store);
  Bytes old = random_bytes(1000, 8);
  ASSERT_TRUE(store->replace("agent", old));

  rlimit saved {};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &saved), 0);
  auto previous = std::signal(SIGXFSZ, SIG_IGN);
  rlimit small = saved;
  small.rlim_cur = 4096;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  auto st = store->replace("agent", random_bytes(100 * 1024, 9));
  ::setrlimit(RLIMIT_FSIZE, &saved);
  std::signal(SIGXFSZ, previous);

  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kIo);
  EXPECT_TRUE(contains(st.error().message, "state record 'agent'")) << st.error().message;
  auto got = store->get("agent");
  ASSERT_TRUE(got && *got);
  EXPECT_EQ(**got, old);
  EXPECT_EQ(dir.list(), (std::vector<std::string>{"agent"})) << "the temporary file is gone";
}

// A process that dies mid-replace leaves "<name>.tmp.<hex>"; the next open removes it.
TEST(StateDir, OpenRemovesTemporaryFilesOfInterruptedReplaces) {
  TempDir dir;
  {
    auto store = open_dir(dir.path());
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->replace("agent", text("old")));
  }
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto w = AtomicFileWriter::create(dir.file("agent"), 0600);
    if (!w || !(*w)->write(text("new")) || !(*w)->sync()) ::_exit(1);
    ::_exit(0);  // "power cut": no destructor, no commit
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ASSERT_EQ(dir.list().size(), 2u) << "the interrupted replace left its temporary file";
  test::write_bytes(dir.file("notes.tmp.x"), text("a record, not a temporary file"));

  auto store = open_dir(dir.path());
  ASSERT_TRUE(store);
  EXPECT_EQ(dir.list(), (std::vector<std::string>{"agent", "notes.tmp.x"}));
  auto got = store->get("agent");
  ASSERT_TRUE(got && *got);
  EXPECT_EQ(**got, text("old"));
}

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
  for (std::uint64_t cut = 1; cut <= dry_run.writes(); ++cut) {
    PowerCut power(cut);
    std::map<std::string, Bytes> records;
    run(power, records);
    EXPECT_EQ(records, prefixes[cut - 1]) << "cut at write " << cut;
  }
}

}  // namespace
}  // namespace ota::storage
