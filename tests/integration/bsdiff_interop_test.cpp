// BSDIFF40 interoperability with Debian's bsdiff 4.3 (/usr/bin/bsdiff and
// /usr/bin/bspatch), both ways, through the library and through `ota`.
#include <bzlib.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "ota/delta/bsdiff40.hpp"
#include "support/patching.hpp"
#include "support/random.hpp"
#include "support/subprocess.hpp"
#include "support/temp_dir.hpp"

namespace ota {
namespace {

using test::TempDir;

const std::string kOta = OTA_CLI_PATH;
const std::string kBsdiff = BSDIFF_PATH;
const std::string kBspatch = BSPATCH_PATH;

#define REQUIRE_DEBIAN_BSDIFF()                                                              \
  do {                                                                                       \
    if (!test::is_executable(kBsdiff) || !test::is_executable(kBspatch))                     \
      GTEST_SKIP() << "Debian bsdiff/bspatch not installed (apt-get install bsdiff)";        \
  } while (0)

struct Pair {
  std::string name;
  Bytes old_image;
  Bytes new_image;
};

void PrintTo(const Pair& p, std::ostream* os) { *os << p.name; }

std::vector<Pair> pairs() {
  Bytes s = test::structured_bytes(60'000, 300);
  Bytes r = test::random_bytes(50'000, 301);
  return {
      {"Edits", s, test::with_random_edits(s, 100, 302)},
      {"InsertAtFront", s, test::with_insertion(s, 0, test::random_bytes(1000, 303))},
      {"InsertInMiddle", r, test::with_insertion(r, 25'000, test::random_bytes(3000, 304))},
      {"Identical", s, s},
      {"EmptyOld", {}, test::structured_bytes(5000, 305)},
      {"EmptyNew", s, {}},
      {"Shrunk", s, test::slice(s, 0, 20'000)},
      {"Unrelated", test::random_bytes(10'000, 306), test::random_bytes(12'000, 307)},
  };
}

// NEW starts with bytes found in the middle of OLD (see InteropMoved).
std::vector<Pair> moved_pairs() {
  Bytes a = test::random_bytes(30'000, 310), b = test::random_bytes(30'000, 311);
  Bytes s = test::structured_bytes(60'000, 312);
  return {
      {"SwappedHalves", test::concat(a, b), test::concat(b, a)},
      {"MovedBlockToFront", s, test::with_moved_block(s, 40'000, 10'000, 0)},
      {"NewIsTailOfOld", s, test::slice(s, 30'000, 30'000)},
  };
}

Bytes lib_diff(const Pair& p) {
  VectorWriter out;
  auto st = bsdiff40::diff(p.old_image, p.new_image, out);
  EXPECT_TRUE(st) << test::describe(fail(st.error()));
  if (st) {
    EXPECT_EQ(st->patch_size, out.data().size());
  }
  return std::move(out).take();
}

Result<Bytes> lib_apply(ByteSpan old_image, ByteSpan patch) {
  MemorySource old_source(old_image), patch_source(patch);
  VectorWriter out;
  OTA_TRY(bsdiff40::apply(old_source, patch_source, out));
  return std::move(out).take();
}

// Runs Debian's bspatch; returns NEW or nullopt (with the failure recorded).
std::optional<Bytes> debian_bspatch(const TempDir& dir, const Bytes& old_image, const Bytes& patch) {
  test::write_bytes(dir.file("old"), old_image);
  test::write_bytes(dir.file("patch"), patch);
  auto r = test::run_process({kBspatch, dir.file("old"), dir.file("out"), dir.file("patch")});
  EXPECT_FALSE(r.crashed());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  if (r.exit_code != 0) return std::nullopt;
  return test::read_bytes(dir.file("out"));
}

// Debian's bsdiff mmaps both files and refuses empty ones ("mmap(): Invalid argument").
#define SKIP_IF_DEBIAN_BSDIFF_CANNOT(pair)                                                   \
  do {                                                                                       \
    if ((pair).old_image.empty() || (pair).new_image.empty())                               \
      GTEST_SKIP() << "Debian bsdiff cannot diff empty files (it mmaps them)";              \
  } while (0)

Bytes debian_bsdiff(const TempDir& dir, const Bytes& old_image, const Bytes& new_image) {
  test::write_bytes(dir.file("old"), old_image);
  test::write_bytes(dir.file("new"), new_image);
  auto r = test::run_process({kBsdiff, dir.file("old"), dir.file("new"), dir.file("debian.patch")});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return test::read_bytes(dir.file("debian.patch"));
}

class Interop : public testing::TestWithParam<Pair> {};

std::string pair_name(const testing::TestParamInfo<Pair>& info) { return info.param.name; }

TEST_P(Interop, LibraryDiffAppliedByDebianBspatch) {
  REQUIRE_DEBIAN_BSDIFF();
  const Pair& p = GetParam();
  TempDir dir;
  Bytes patch = lib_diff(p);
  ASSERT_TRUE(bsdiff40::is_bsdiff40(patch));
  auto out = debian_bspatch(dir, p.old_image, patch);
  ASSERT_TRUE(out);
  EXPECT_TRUE(*out == p.new_image) << "Debian bspatch output differs from NEW";
  // And our own apply agrees.
  auto ours = lib_apply(p.old_image, patch);
  ASSERT_TRUE(ours) << test::describe(fail(ours.error()));
  EXPECT_TRUE(*ours == p.new_image);
}

TEST_P(Interop, CliDiffAppliedByDebianBspatch) {
  REQUIRE_DEBIAN_BSDIFF();
  const Pair& p = GetParam();
  TempDir dir;
  test::write_bytes(dir.file("old"), p.old_image);
  test::write_bytes(dir.file("new"), p.new_image);
  auto d = test::run_process({kOta, "diff", "--format", "bsdiff40", "-q", dir.file("old"), dir.file("new"), "-o",
                              dir.file("ota.bsdiff")});
  ASSERT_EQ(d.exit_code, 0) << d.err;
  auto r = test::run_process({kBspatch, dir.file("old"), dir.file("out"), dir.file("ota.bsdiff")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(test::read_bytes(dir.file("out")) == p.new_image);
}

TEST_P(Interop, DebianDiffAppliedByLibrary) {
  REQUIRE_DEBIAN_BSDIFF();
  const Pair& p = GetParam();
  SKIP_IF_DEBIAN_BSDIFF_CANNOT(p);
  TempDir dir;
  Bytes patch = debian_bsdiff(dir, p.old_image, p.new_image);
  ASSERT_TRUE(bsdiff40::is_bsdiff40(patch));
  auto out = lib_apply(p.old_image, patch);
  ASSERT_TRUE(out) << test::describe(fail(out.error()));
  EXPECT_TRUE(*out == p.new_image);
  MemorySource patch_source(patch);
  auto declared = bsdiff40::new_size(patch_source);
  ASSERT_TRUE(declared);
  EXPECT_EQ(*declared, p.new_image.size());
}

TEST_P(Interop, DebianDiffAppliedByCli) {
  REQUIRE_DEBIAN_BSDIFF();
  const Pair& p = GetParam();
  SKIP_IF_DEBIAN_BSDIFF_CANNOT(p);
  TempDir dir;
  debian_bsdiff(dir, p.old_image, p.new_image);
  auto r = test::run_process({kOta, "patch", dir.file("old"), dir.file("debian.patch"), "-o", dir.file("out")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(test::read_bytes(dir.file("out")) == p.new_image);
}

INSTANTIATE_TEST_SUITE_P(Bsdiff40, Interop, testing::ValuesIn(pairs()), pair_name);

// Debian's bsdiff handles these; so must ours, both ways. Regression tests:
// bsdiff40::diff once dropped the leading seek when NEW did not begin with a
// match at OLD offset 0, so the patch it wrote made a wrong NEW.
class InteropMoved : public testing::TestWithParam<Pair> {};

TEST_P(InteropMoved, LibraryDiffAppliedByDebianBspatch) {
  REQUIRE_DEBIAN_BSDIFF();
  const Pair& p = GetParam();
  TempDir dir;
  Bytes patch = lib_diff(p);
  auto out = debian_bspatch(dir, p.old_image, patch);
  ASSERT_TRUE(out);
  EXPECT_TRUE(*out == p.new_image) << "Debian bspatch output differs from NEW";
}

TEST_P(InteropMoved, LibraryDiffAppliedByLibrary) {
  const Pair& p = GetParam();
  Bytes patch = lib_diff(p);
  auto out = lib_apply(p.old_image, patch);
  ASSERT_TRUE(out) << test::describe(fail(out.error()));
  EXPECT_TRUE(*out == p.new_image) << "bsdiff40::apply(bsdiff40::diff(OLD, NEW)) differs from NEW";
}

TEST_P(InteropMoved, DebianDiffAppliedByLibrary) {
  REQUIRE_DEBIAN_BSDIFF();
  const Pair& p = GetParam();
  TempDir dir;
  Bytes patch = debian_bsdiff(dir, p.old_image, p.new_image);
  auto out = lib_apply(p.old_image, patch);
  ASSERT_TRUE(out) << test::describe(fail(out.error()));
  EXPECT_TRUE(*out == p.new_image);
}

INSTANTIATE_TEST_SUITE_P(Bsdiff40, InteropMoved, testing::ValuesIn(moved_pairs()), pair_name);

// ---- damaged BSDIFF40 patches: an error, never a crash ----

// The patch of a small pair, made by Debian's bsdiff (or our own when it is missing).
struct Damage {
  Bytes old_image;
  Bytes new_image;
  Bytes patch;
};

Damage small_damage_fixture() {
  Damage d;
  d.old_image = test::structured_bytes(3000, 320);
  d.new_image = test::with_insertion(test::with_random_edits(d.old_image, 30, 321), 1000, test::random_bytes(200, 322));
  if (test::is_executable(kBsdiff)) {
    TempDir dir;
    d.patch = debian_bsdiff(dir, d.old_image, d.new_image);
  } else {
    VectorWriter w;
    EXPECT_TRUE(bsdiff40::diff(d.old_image, d.new_image, w));
    d.patch = std::move(w).take();
  }
  return d;
}

// bsdiff40::apply reads every bzip2 stream to its end, so bzip2's block and
// stream CRCs are checked and a patch missing the tail of a stream is refused
// (Debian's bspatch does neither). These tests hold apply() to "an error, or
// exactly NEW" (regression tests: an earlier apply() stopped decoding as soon
// as it had the bytes NEW needs).
TEST(Bsdiff40Damage, EveryTruncationFails) {
  Damage d = small_damage_fixture();
  for (std::size_t len = 0; len < d.patch.size(); ++len) {
    auto out = lib_apply(d.old_image, ByteSpan(d.patch.data(), len));
    ASSERT_FALSE(out) << "prefix of " << len << " of " << d.patch.size() << " bytes succeeded"
                      << (*out == d.new_image ? " (with the right NEW)" : " with a WRONG NEW");
    const ErrorCode c = out.error().code;
    EXPECT_TRUE(c == ErrorCode::kPatchTruncated || c == ErrorCode::kPatchMalformed || c == ErrorCode::kDecompress)
        << "prefix " << len << ": " << test::describe(fail(out.error()));
  }
}

TEST(Bsdiff40Damage, EverySingleByteMutationFailsOrGivesNew) {
  Damage d = small_damage_fixture();
  Bytes patch = d.patch;
  const std::uint8_t xors[] = {0x01, 0x80, 0xff};
  int wrong = 0, failures = 0, runs = 0;
  std::size_t first_wrong = 0;
  for (std::size_t i = 0; i < patch.size(); ++i) {
    for (std::uint8_t x : xors) {
      patch[i] ^= x;
      auto out = lib_apply(d.old_image, patch);
      patch[i] ^= x;
      ++runs;
      if (!out) {
        ++failures;
        const ErrorCode c = out.error().code;
        EXPECT_TRUE(c == ErrorCode::kPatchTruncated || c == ErrorCode::kPatchMalformed || c == ErrorCode::kDecompress)
            << "byte " << i << ": " << test::describe(fail(out.error()));
      } else if (*out != d.new_image && wrong++ == 0) {
        first_wrong = i;
      }
    }
  }
  EXPECT_EQ(wrong, 0) << wrong << " single-byte mutations applied with a wrong NEW, the first at byte "
                      << first_wrong << " of " << patch.size();
  EXPECT_GT(failures, runs * 9 / 10) << "bzip2's CRCs catch almost everything";
}

TEST(Bsdiff40Damage, HostileHeaders) {
  Damage d = small_damage_fixture();
  auto with_field = [&](std::size_t offset, std::uint64_t value) {
    Bytes p = d.patch;
    for (int i = 0; i < 8; ++i) p[offset + i] = static_cast<std::uint8_t>(value >> (8 * i));
    return p;
  };
  const std::uint64_t neg1 = 0x8000000000000001ULL;  // sign-magnitude -1
  for (const Bytes& p : {with_field(8, neg1), with_field(16, neg1), with_field(24, neg1),
                         with_field(8, 0x7fffffffffffffffULL), with_field(16, 0x7fffffffffffffffULL),
                         with_field(8, 0), with_field(16, d.patch.size())}) {
    auto out = lib_apply(d.old_image, p);
    EXPECT_FALSE(out);
  }
  // A huge declared NEW with the real streams: fails when the streams run dry.
  auto huge = lib_apply(d.old_image, with_field(24, std::uint64_t{1} << 40));
  ASSERT_FALSE(huge);
  // "BSDIFF40" alone, or a wrong magic.
  EXPECT_FALSE(lib_apply(d.old_image, Bytes(d.patch.begin(), d.patch.begin() + 8)));
  Bytes magic = d.patch;
  magic[7] = '1';
  auto wrong = lib_apply(d.old_image, magic);
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().code, ErrorCode::kPatchMalformed);
}

// ---- hand-built BSDIFF40 patches ----

void put_off(Bytes& out, std::int64_t x) {
  std::uint64_t y = x < 0 ? static_cast<std::uint64_t>(-(x + 1)) + 1 : static_cast<std::uint64_t>(x);
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<std::uint8_t>(y >> (8 * i)));
  if (x < 0) out.back() |= 0x80;
}

Bytes bz2(const Bytes& in) {
  Bytes out(in.size() + in.size() / 100 + 600);
  unsigned len = static_cast<unsigned>(out.size());
  Bytes copy = in;  // the bzip2 API takes a non-null, non-const source
  copy.reserve(1);
  int rc = BZ2_bzBuffToBuffCompress(reinterpret_cast<char*>(out.data()), &len, reinterpret_cast<char*>(copy.data()),
                                    static_cast<unsigned>(in.size()), 9, 0, 0);
  EXPECT_EQ(rc, BZ_OK);
  out.resize(len);
  return out;
}

struct Triple {
  std::int64_t add, insert, seek;
};

// A BSDIFF40 patch from its parts, exactly as bsdiff 4 lays them out.
Bytes build_bsdiff40(const std::vector<Triple>& ctrl, const Bytes& diff, const Bytes& extra, std::int64_t new_size) {
  Bytes c;
  for (const auto& t : ctrl) {
    put_off(c, t.add);
    put_off(c, t.insert);
    put_off(c, t.seek);
  }
  Bytes zc = bz2(c), zd = bz2(diff), ze = bz2(extra);
  Bytes out(bsdiff40::kMagic, bsdiff40::kMagic + 8);
  put_off(out, static_cast<std::int64_t>(zc.size()));
  put_off(out, static_cast<std::int64_t>(zd.size()));
  put_off(out, new_size);
  out.insert(out.end(), zc.begin(), zc.end());
  out.insert(out.end(), zd.begin(), zd.end());
  out.insert(out.end(), ze.begin(), ze.end());
  return out;
}

TEST(Bsdiff40Hand, BuilderMatchesTheFormat) {
  // Control for the hostile cases: NEW = (OLD[0, 4) + 1) + "xy" + (OLD[2, 4) + 0).
  Bytes old_image = {10, 20, 30, 40};
  Bytes patch = build_bsdiff40({{4, 2, -2}, {2, 0, 0}}, {1, 1, 1, 1, 0, 0}, {'x', 'y'}, 8);
  auto out = lib_apply(old_image, patch);
  ASSERT_TRUE(out) << test::describe(fail(out.error()));
  EXPECT_EQ(*out, (Bytes{11, 21, 31, 41, 'x', 'y', 30, 40}));
  if (test::is_executable(kBspatch)) {
    TempDir dir;
    auto theirs = debian_bspatch(dir, old_image, patch);
    ASSERT_TRUE(theirs);
    EXPECT_EQ(*theirs, *out);
  }
}

TEST(Bsdiff40Hand, OldBytesOutsideOldCountAsZero) {
  // bspatch adds nothing for OLD positions outside OLD; so must we.
  Bytes old_image = {10, 20, 30, 40};
  Bytes patch = build_bsdiff40({{0, 0, -2}, {8, 0, 0}}, {1, 1, 1, 1, 1, 1, 1, 1}, {}, 8);
  auto out = lib_apply(old_image, patch);
  ASSERT_TRUE(out) << test::describe(fail(out.error()));
  EXPECT_EQ(*out, (Bytes{1, 1, 11, 21, 31, 41, 1, 1}));
}

TEST(Bsdiff40Hand, SeekToTheEdgeOfInt64) {
  // A seek to just below INT64_MAX once made the next ADD overflow int64_t
  // (found by UBSan). A hostile patch must get an error or a result of the
  // declared size, never undefined behaviour.
  Bytes old_image = {10, 20, 30, 40};
  const std::int64_t near_max = INT64_MAX - 10;
  Bytes diff(100, 1);
  Bytes patch = build_bsdiff40({{0, 0, near_max}, {100, 0, 0}}, diff, {}, 100);
  auto out = lib_apply(old_image, patch);
  if (out) {
    EXPECT_EQ(out->size(), 100u);
  }
  // The same with a seek that lands exactly on INT64_MAX.
  Bytes patch2 = build_bsdiff40({{0, 0, INT64_MAX}, {1, 0, 0}}, Bytes{1}, {}, 1);
  auto out2 = lib_apply(old_image, patch2);
  if (out2) {
    EXPECT_EQ(out2->size(), 1u);
  }
}

TEST(Bsdiff40Hand, RepeatedLargeSeeksNeverOverflow) {
  // Seeks that each stay within a bound but add up past INT64_MAX (or below
  // INT64_MIN): an error or a result of the declared size, never undefined
  // behaviour (UBSan aborts the OTA_SANITIZE build on signed overflow).
  Bytes old_image = {10, 20, 30, 40};
  for (std::int64_t step : {std::int64_t{1} << 62, (std::int64_t{1} << 62) - 1, INT64_MAX / 3, INT64_MAX}) {
    for (std::int64_t sign : {1, -1}) {
      const std::int64_t z = sign * step;
      Bytes patch = build_bsdiff40({{0, 0, z}, {0, 0, z}, {0, 0, z}, {4, 0, 0}}, Bytes(4, 1), {}, 4);
      auto out = lib_apply(old_image, patch);
      if (out) {
        EXPECT_EQ(out->size(), 4u) << z;
      }
    }
  }
}

TEST(Bsdiff40Hand, HugeNegativeSeeksAreRefusedOrHarmless) {
  Bytes old_image = {10, 20, 30, 40};
  const std::int64_t big = std::int64_t{1} << 62;
  Bytes patch = build_bsdiff40({{0, 0, -big}, {0, 0, -big}, {0, 0, -big}, {4, 0, 0}}, Bytes(4, 1), {}, 4);
  auto out = lib_apply(old_image, patch);
  if (out) {
    EXPECT_EQ(out->size(), 4u);
  }
}

TEST(Bsdiff40Damage, CliReportsTruncatedPatch) {
  Damage d = small_damage_fixture();
  TempDir dir;
  test::write_bytes(dir.file("old"), d.old_image);
  test::write_bytes(dir.file("patch"), Bytes(d.patch.begin(), d.patch.begin() + static_cast<std::ptrdiff_t>(d.patch.size() / 2)));
  auto r = test::run_process({kOta, "patch", dir.file("old"), dir.file("patch"), "-o", dir.file("out")});
  EXPECT_FALSE(r.crashed());
  EXPECT_TRUE(r.exit_code == 11 || r.exit_code == 10 || r.exit_code == 14) << r.exit_code << " " << r.err;
  EXPECT_FALSE(test::file_exists(dir.file("out")));
  EXPECT_EQ(dir.list(), (std::vector<std::string>{"old", "patch"}));
}

TEST(Bsdiff40Damage, CliRefusesBsdiff40OnStdin) {
  Damage d = small_damage_fixture();
  TempDir dir;
  test::write_bytes(dir.file("old"), d.old_image);
  test::write_bytes(dir.file("patch"), d.patch);
  test::ProcessOptions opt;
  opt.stdin_path = dir.file("patch");
  auto r = test::run_process({kOta, "patch", dir.file("old"), "-", "-o", dir.file("out")}, opt);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_FALSE(test::file_exists(dir.file("out")));
  EXPECT_EQ(dir.list(), (std::vector<std::string>{"old", "patch"}));
}

}  // namespace
}  // namespace ota
