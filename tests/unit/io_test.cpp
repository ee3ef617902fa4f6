// ota/core/io.hpp: memory and file streams, the atomic writer, copy().
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fcntl.h>

#include <algorithm>
#include <cstdint>
#include <limits>

#include "ota/core/io.hpp"
#include "support/patching.hpp"
#include "support/random.hpp"
#include "support/temp_dir.hpp"

namespace ota {
namespace {

using test::mode_of;
using test::ScopedUmask;

using test::random_bytes;
using test::TempDir;

constexpr std::uint64_t kMax64 = std::numeric_limits<std::uint64_t>::max();

// Reads everything from a Reader with a buffer of `chunk` bytes.
Bytes drain(Reader& r, std::size_t chunk) {
  Bytes out, buf(chunk);
  for (;;) {
    auto n = r.read(buf);
    EXPECT_TRUE(n);
    if (!n || *n == 0) return out;
    EXPECT_LE(*n, chunk);
    out.insert(out.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(*n));
  }
}

// ---- MemoryReader / VectorWriter / MemorySource ----

TEST(MemoryReader, ReadsInChunksThenZero) {
  Bytes data = random_bytes(1000, 1);
  for (std::size_t chunk : {1, 7, 999, 1000, 4096}) {
    MemoryReader r(data);
    EXPECT_EQ(drain(r, chunk), data) << chunk;
    Bytes buf(10);
    auto again = r.read(buf);
    ASSERT_TRUE(again);
    EXPECT_EQ(*again, 0u) << "end of stream is sticky";
  }
}

TEST(MemoryReader, EmptyInputAndEmptyBuffer) {
  MemoryReader empty{ByteSpan{}};
  Bytes buf(8);
  auto n = empty.read(buf);
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 0u);
  Bytes data = {1, 2, 3};
  MemoryReader r(data);
  auto z = r.read(MutableByteSpan{});
  ASSERT_TRUE(z);
  EXPECT_EQ(*z, 0u);
  EXPECT_EQ(drain(r, 2), data) << "a zero-size read consumes nothing";
}

TEST(VectorWriter, AppendsAndTracksPosition) {
  VectorWriter w;
  EXPECT_EQ(w.position(), 0u);
  Bytes a = {1, 2, 3}, b = {4, 5};
  ASSERT_TRUE(w.write(a));
  ASSERT_TRUE(w.write(ByteSpan{}));
  ASSERT_TRUE(w.write(b));
  EXPECT_EQ(w.position(), 5u);
  ASSERT_TRUE(w.sync());
  ASSERT_TRUE(w.commit());
  EXPECT_EQ(w.data(), (Bytes{1, 2, 3, 4, 5}));
  Bytes taken = std::move(w).take();
  EXPECT_EQ(taken, (Bytes{1, 2, 3, 4, 5}));
}

TEST(MemorySource, ReadAtWithinAndAtTheEdges) {
  Bytes data = random_bytes(300, 2);
  MemorySource s(data);
  EXPECT_EQ(s.size(), 300u);
  Bytes out(50);
  ASSERT_TRUE(s.read_at(250, out));
  EXPECT_TRUE(std::equal(out.begin(), out.end(), data.begin() + 250));
  ASSERT_TRUE(s.read_at(0, out));
  EXPECT_TRUE(std::equal(out.begin(), out.end(), data.begin()));
  EXPECT_TRUE(s.read_at(300, MutableByteSpan{})) << "an empty read at the end is fine";
}

TEST(MemorySource, ReadingPastTheEndFails) {
  Bytes data = random_bytes(300, 3);
  MemorySource s(data);
  Bytes out(51);
  auto st = s.read_at(250, out);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kIo);
  EXPECT_FALSE(s.read_at(301, MutableByteSpan{}));
  Bytes one(1);
  EXPECT_FALSE(s.read_at(kMax64, one)) << "offset + size must not wrap around";
  EXPECT_FALSE(s.read_at(kMax64, MutableByteSpan{}));
}

TEST(MemorySource, EmptySource) {
  MemorySource s{ByteSpan{}};
  EXPECT_EQ(s.size(), 0u);
  EXPECT_TRUE(s.read_at(0, MutableByteSpan{}));
  Bytes one(1);
  EXPECT_FALSE(s.read_at(0, one));
}

// ---- FileSource / FileReader / read_file ----

TEST(FileSource, ReadsLikeMemory) {
  TempDir dir;
  Bytes data = random_bytes(200'000, 4);
  test::write_bytes(dir.file("img"), data);
  auto src = FileSource::open(dir.file("img"));
  ASSERT_TRUE(src) << test::describe(fail(src.error()));
  EXPECT_EQ((*src)->size(), data.size());
  Bytes out(70'000);
  ASSERT_TRUE((*src)->read_at(123'456, out));
  EXPECT_TRUE(std::equal(out.begin(), out.end(), data.begin() + 123'456));
  Bytes tail(10);
  ASSERT_TRUE((*src)->read_at(data.size() - 10, tail));
  EXPECT_TRUE(std::equal(tail.begin(), tail.end(), data.end() - 10));
}

TEST(FileSource, PastTheEndAndWraparoundFail) {
  TempDir dir;
  test::write_bytes(dir.file("img"), random_bytes(100, 5));
  auto src = FileSource::open(dir.file("img"));
  ASSERT_TRUE(src);
  Bytes out(11);
  auto st = (*src)->read_at(90, out);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kIo);
  EXPECT_FALSE((*src)->read_at(kMax64, out));
}

TEST(FileSource, MissingFileIsIoErrorNamingThePath) {
  TempDir dir;
  auto src = FileSource::open(dir.file("missing"));
  ASSERT_FALSE(src);
  EXPECT_EQ(src.error().code, ErrorCode::kIo);
  EXPECT_NE(src.error().message.find("missing"), std::string::npos) << src.error().message;
}

TEST(FileSource, EmptyFile) {
  TempDir dir;
  test::write_bytes(dir.file("empty"), {});
  auto src = FileSource::open(dir.file("empty"));
  ASSERT_TRUE(src);
  EXPECT_EQ((*src)->size(), 0u);
  EXPECT_TRUE((*src)->read_at(0, MutableByteSpan{}));
}

TEST(FileReader, ReadsWholeFileInAnyChunkSize) {
  TempDir dir;
  Bytes data = random_bytes(150'000, 6);
  test::write_bytes(dir.file("f"), data);
  for (std::size_t chunk : {1000, 65536, 1 << 20}) {
    auto r = FileReader::open(dir.file("f"));
    ASSERT_TRUE(r);
    EXPECT_EQ(drain(**r, chunk), data) << chunk;
  }
}

TEST(FileReader, MissingFileIsIoError) {
  TempDir dir;
  auto r = FileReader::open(dir.file("nope"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kIo);
}

TEST(FileReader, DashReadsStandardInputAndLeavesItOpen) {
  TempDir dir;
  Bytes data = random_bytes(5000, 7);
  test::write_bytes(dir.file("stdin"), data);
  int saved = ::dup(STDIN_FILENO);
  ASSERT_GE(saved, 0);
  int fd = ::open(dir.file("stdin").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::dup2(fd, STDIN_FILENO), STDIN_FILENO);
  ::close(fd);
  {
    auto r = FileReader::open("-");
    ASSERT_TRUE(r);
    EXPECT_EQ(drain(**r, 777), data);
  }
  // The reader did not own fd 0: it is still open.
  EXPECT_NE(::fcntl(STDIN_FILENO, F_GETFD), -1);
  ASSERT_EQ(::dup2(saved, STDIN_FILENO), STDIN_FILENO);
  ::close(saved);
}

TEST(ReadFile, WholeFileAndMissingFile) {
  TempDir dir;
  Bytes data = random_bytes(70'000, 8);
  test::write_bytes(dir.file("f"), data);
  auto got = read_file(dir.file("f"));
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, data);
  auto missing = read_file(dir.file("g"));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ErrorCode::kIo);
}

// ---- AtomicFileWriter ----

bool is_temp_of(const std::string& name, const std::string& target) {
  return name.rfind(target + ".tmp.", 0) == 0;
}

TEST(AtomicFileWriter, NothingUnderTheFinalNameBeforeCommit) {
  TempDir dir;
  const std::string target = dir.file("out.bin");
  Bytes data = random_bytes(300'000, 9);
  auto w = AtomicFileWriter::create(target);
  ASSERT_TRUE(w);
  // Mixed write sizes around the 64 KiB internal buffer.
  std::size_t pos = 0;
  test::Rng rng(10);
  while (pos < data.size()) {
    std::size_t n = std::min<std::size_t>(data.size() - pos, rng.between(1, 100'000));
    ASSERT_TRUE((*w)->write(ByteSpan(data).subspan(pos, n)));
    pos += n;
    EXPECT_EQ((*w)->position(), pos);
  }
  ASSERT_TRUE((*w)->sync());
  EXPECT_FALSE(test::file_exists(target));
  auto names = dir.list();
  ASSERT_EQ(names.size(), 1u);
  EXPECT_TRUE(is_temp_of(names[0], "out.bin")) << names[0];

  ASSERT_TRUE((*w)->commit());
  EXPECT_EQ(dir.list(), std::vector<std::string>{"out.bin"});
  EXPECT_EQ(test::read_bytes(target), data);
}

TEST(AtomicFileWriter, DestroyedWithoutCommitLeavesNoFileAndNoTempFile) {
  TempDir dir;
  const std::string target = dir.file("out.bin");
  {
    auto w = AtomicFileWriter::create(target);
    ASSERT_TRUE(w);
    ASSERT_TRUE((*w)->write(random_bytes(200'000, 11)));
    ASSERT_TRUE((*w)->sync());
  }
  EXPECT_FALSE(test::file_exists(target));
  EXPECT_TRUE(dir.list().empty());
}

TEST(AtomicFileWriter, DestroyedWithoutCommitKeepsThePreviousFile) {
  TempDir dir;
  const std::string target = dir.file("out.bin");
  Bytes before = random_bytes(1000, 12);
  test::write_bytes(target, before);
  {
    auto w = AtomicFileWriter::create(target);
    ASSERT_TRUE(w);
    ASSERT_TRUE((*w)->write(random_bytes(5000, 13)));
  }
  EXPECT_EQ(test::read_bytes(target), before);
  EXPECT_EQ(dir.list(), std::vector<std::string>{"out.bin"});
}

TEST(AtomicFileWriter, CommitReplacesAnExistingFile) {
  TempDir dir;
  const std::string target = dir.file("out.bin");
  test::write_bytes(target, random_bytes(100'000, 14));
  Bytes after = random_bytes(10, 15);
  ASSERT_TRUE(write_file_atomic(target, after));
  EXPECT_EQ(test::read_bytes(target), after);
  EXPECT_EQ(dir.list(), std::vector<std::string>{"out.bin"});
}

TEST(AtomicFileWriter, EmptyFile) {
  TempDir dir;
  auto w = AtomicFileWriter::create(dir.file("e"));
  ASSERT_TRUE(w);
  ASSERT_TRUE((*w)->commit());
  EXPECT_EQ(test::read_bytes(dir.file("e")), Bytes{});
}

TEST(AtomicFileWriter, Mode0600RegardlessOfUmask) {
  for (mode_t mask : {mode_t{0}, mode_t{022}, mode_t{077}, mode_t{0777}}) {
    ScopedUmask scoped(mask);
    TempDir dir;
    auto w = AtomicFileWriter::create(dir.file("secret"), 0600);
    ASSERT_TRUE(w);
    ASSERT_TRUE((*w)->write(Bytes{1, 2, 3}));
    ASSERT_TRUE((*w)->commit());
    EXPECT_EQ(mode_of(dir.file("secret")), 0600u) << "umask " << std::oct << mask;
  }
}

TEST(AtomicFileWriter, ModeIsExactEvenWhenUmaskIsStricter) {
  ScopedUmask scoped(077);
  TempDir dir;
  ASSERT_TRUE(write_file_atomic(dir.file("pub"), Bytes{1}, 0644));
  EXPECT_EQ(mode_of(dir.file("pub")), 0644u);
  ASSERT_TRUE(write_file_atomic(dir.file("default"), Bytes{1}));
  EXPECT_EQ(mode_of(dir.file("default")), 0644u) << "the default mode is 0644";
}

TEST(AtomicFileWriter, ModeIsNeverWiderThanAsked) {
  ScopedUmask scoped(0);
  TempDir dir;
  ASSERT_TRUE(write_file_atomic(dir.file("f"), Bytes{1}, 0640));
  EXPECT_EQ(mode_of(dir.file("f")), 0640u);
  // Only permission bits are honoured: no setuid/setgid/sticky from a bad mode.
  ASSERT_TRUE(write_file_atomic(dir.file("g"), Bytes{1}, 07755));
  EXPECT_EQ(mode_of(dir.file("g")), 0755u);
}

TEST(AtomicFileWriter, WriteAfterCommitFails) {
  TempDir dir;
  auto w = AtomicFileWriter::create(dir.file("f"));
  ASSERT_TRUE(w);
  ASSERT_TRUE((*w)->write(Bytes{1}));
  ASSERT_TRUE((*w)->commit());
  auto st = (*w)->write(Bytes{2});
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kInternal);
  EXPECT_EQ(test::read_bytes(dir.file("f")), Bytes{1});
}

TEST(AtomicFileWriter, MissingDirectoryIsIoError) {
  TempDir dir;
  auto w = AtomicFileWriter::create(dir.file("no/such/dir/f"));
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().code, ErrorCode::kIo);
}

TEST(AtomicFileWriter, RelativePathInCurrentDirectory) {
  TempDir dir;
  char cwd[4096];
  ASSERT_NE(::getcwd(cwd, sizeof cwd), nullptr);
  ASSERT_EQ(::chdir(dir.path().c_str()), 0);
  Status st = write_file_atomic("rel.bin", Bytes{7, 8, 9});
  ASSERT_EQ(::chdir(cwd), 0);
  ASSERT_TRUE(st) << test::describe(st);
  EXPECT_EQ(test::read_bytes(dir.file("rel.bin")), (Bytes{7, 8, 9}));
  EXPECT_EQ(dir.list(), std::vector<std::string>{"rel.bin"});
}

// ---- copy() ----

// Returns at most `max` bytes per read, then fails after `fail_after` bytes if set.
class TrickleReader final : public Reader {
 public:
  TrickleReader(ByteSpan data, std::size_t max, std::size_t fail_after = SIZE_MAX)
      : data_(data), max_(max), fail_after_(fail_after) {}
  Result<std::size_t> read(MutableByteSpan out) override {
    if (pos_ >= fail_after_) return fail(ErrorCode::kIo, "device went away");
    std::size_t n = std::min({out.size(), max_, data_.size() - pos_});
    std::copy_n(data_.begin() + static_cast<std::ptrdiff_t>(pos_), n, out.begin());
    pos_ += n;
    return n;
  }

 private:
  ByteSpan data_;
  std::size_t max_, fail_after_, pos_ = 0;
};

using FailingWriter = test::FullDiskWriter;

TEST(Copy, CopiesEverythingAndCounts) {
  Bytes data = random_bytes(250'000, 16);
  for (std::size_t max : {1u << 20, 1000u, 1u}) {
    if (max == 1) data.resize(3000);  // keep the byte-at-a-time case quick
    TrickleReader r(data, max);
    VectorWriter w;
    auto n = copy(r, w);
    ASSERT_TRUE(n);
    EXPECT_EQ(*n, data.size());
    EXPECT_EQ(w.data(), data);
  }
}

TEST(Copy, EmptyInput) {
  MemoryReader r{ByteSpan{}};
  VectorWriter w;
  auto n = copy(r, w);
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 0u);
}

TEST(Copy, ReaderErrorPropagates) {
  Bytes data = random_bytes(10'000, 17);
  TrickleReader r(data, 1000, 5000);
  VectorWriter w;
  auto n = copy(r, w);
  ASSERT_FALSE(n);
  EXPECT_EQ(n.error().code, ErrorCode::kIo);
  EXPECT_EQ(n.error().message, "device went away");
  EXPECT_EQ(w.position(), 5000u);
}

TEST(Copy, WriterErrorPropagates) {
  Bytes data = random_bytes(200'000, 18);
  MemoryReader r(data);
  FailingWriter w(100'000);
  auto n = copy(r, w);
  ASSERT_FALSE(n);
  EXPECT_EQ(n.error().code, ErrorCode::kIo);
  EXPECT_EQ(n.error().message, "no space left on device");
}

TEST(Copy, FileToAtomicFile) {
  TempDir dir;
  Bytes data = random_bytes(333'333, 19);
  test::write_bytes(dir.file("in"), data);
  auto r = FileReader::open(dir.file("in"));
  ASSERT_TRUE(r);
  auto w = AtomicFileWriter::create(dir.file("out"));
  ASSERT_TRUE(w);
  auto n = copy(**r, **w);
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, data.size());
  ASSERT_TRUE((*w)->commit());
  EXPECT_EQ(test::read_bytes(dir.file("out")), data);
}

}  // namespace
}  // namespace ota
