// ota/device/storage.hpp: file banks, BankWriter and the state directory.
#include "unit/storage_helpers.hpp"

namespace ota::storage {
namespace {

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

}  // namespace
}  // namespace ota::storage
