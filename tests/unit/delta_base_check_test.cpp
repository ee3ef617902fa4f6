// delta::Patcher's base check (PatchOptions::base_check): a wrong OLD in
// each mode, the known hash, hashing on failure, in the background and while
// patching.
#include "unit/patcher_fixture.hpp"

namespace ota {
namespace {

// ---- wrong OLD ----

TEST(WrongOld, SameSizeDifferentBytes) {
  Fixture f = make_fixture();
  Bytes wrong = f.old_image;
  wrong[wrong.size() / 2] ^= 0x01;
  MemorySource old_source(wrong);
  MemoryReader reader(f.patch);
  VectorWriter out;
  Status st = delta::apply(old_source, reader, out);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kOldMismatch) << test::describe(st);
  EXPECT_EQ(out.position(), 0u) << "nothing is written before OLD is verified";
}

TEST(WrongOld, DifferentSize) {
  Fixture f = make_fixture();
  for (Bytes wrong : {Bytes(f.old_image.begin(), f.old_image.end() - 1), test::concat(f.old_image, Bytes{0}),
                      Bytes{}}) {
    auto out = test::apply_patch(wrong, f.patch);
    ASSERT_FALSE(out) << wrong.size();
    EXPECT_EQ(out.error().code, ErrorCode::kOldMismatch) << test::describe(fail(out.error()));
  }
}

TEST(WrongOld, DetectedWhateverTheCompression) {
  for (Compression c : {Compression::kNone, Compression::kZstd}) {
    Fixture f = make_fixture(c);
    auto out = test::apply_patch(test::random_bytes(f.old_image.size(), 9), f.patch);
    ASSERT_FALSE(out);
    EXPECT_EQ(out.error().code, ErrorCode::kOldMismatch);
  }
}

TEST(WrongOld, WithoutVerificationTheNewHashStillCatchesIt) {
  Fixture f = make_fixture();
  Bytes wrong = f.old_image;
  for (std::size_t i = 0; i < wrong.size(); i += 97) wrong[i] ^= 0x20;
  delta::PatchOptions opt;
  opt.base_check = delta::BaseCheck::kNone;
  auto out = test::apply_patch(wrong, f.patch, opt);
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().code, ErrorCode::kNewMismatch) << test::describe(fail(out.error()));
}

// ---- BaseCheck::kKnownHash / kNone ----

TEST(KnownOldHash, MismatchIsOldMismatch) {
  Fixture f = make_fixture();
  delta::PatchOptions opt;
  Digest other = content_hash(f.new_image);
  opt.base_check = delta::BaseCheck::kKnownHash;
  opt.known_old_hash = other;
  MemorySource old_source(f.old_image);
  MemoryReader reader(f.patch);
  VectorWriter out;
  Status st = delta::apply(old_source, reader, out, opt);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kOldMismatch) << test::describe(st);
  EXPECT_EQ(out.position(), 0u);
}

TEST(KnownOldHash, MatchSkipsHashingOld) {
  // A patch that reads only a little of a big OLD: with the hash known, OLD is
  // not read front to back.
  Bytes old_image = test::random_bytes(1'000'000, 210);
  Bytes new_image = test::slice(old_image, 500'000, 10'000);
  auto patch = test::make_patch(old_image, new_image, test::fast_options());
  ASSERT_TRUE(patch);

  CountingSource verified(old_image);
  VectorWriter out1;
  MemoryReader r1(*patch);
  ASSERT_TRUE(delta::apply(verified, r1, out1));
  EXPECT_GE(verified.bytes_read, old_image.size()) << "default: OLD is hashed";

  delta::PatchOptions opt;
  opt.base_check = delta::BaseCheck::kKnownHash;
  opt.known_old_hash = content_hash(old_image);
  CountingSource trusted(old_image);
  VectorWriter out2;
  MemoryReader r2(*patch);
  Status st = delta::apply(trusted, r2, out2, opt);
  ASSERT_TRUE(st) << test::describe(st);
  EXPECT_TRUE(out2.data() == new_image);
  EXPECT_LT(trusted.bytes_read, old_image.size() / 4);

  delta::PatchOptions no_verify;
  no_verify.base_check = delta::BaseCheck::kNone;
  CountingSource unverified(old_image);
  VectorWriter out3;
  MemoryReader r3(*patch);
  ASSERT_TRUE(delta::apply(unverified, r3, out3, no_verify));
  EXPECT_TRUE(out3.data() == new_image);
  EXPECT_LT(unverified.bytes_read, old_image.size() / 4);
}

// ---- BaseCheck::kHashOnFailure ----

delta::PatchOptions on_failure() {
  delta::PatchOptions opt;
  opt.base_check = delta::BaseCheck::kHashOnFailure;
  return opt;
}

TEST(OldCheckOnFailure, CorrectOldIsReadOnlyWhereThePatchUsesIt) {
  // NEW keeps the first third of OLD: a successful patch never hashes all of OLD.
  Bytes old_image = test::random_bytes(300'000, 260);
  Bytes new_image = test::with_random_edits(test::slice(old_image, 0, 100'000), 20, 261);
  auto patch = test::make_patch(old_image, new_image, test::fast_options(Compression::kZstd, 12));
  ASSERT_TRUE(patch);
  CountingSource counting(old_image);
  MemoryReader reader(*patch);
  VectorWriter out;
  ASSERT_TRUE(delta::apply(counting, reader, out, on_failure()));
  EXPECT_TRUE(out.data() == new_image);
  EXPECT_LT(counting.bytes_read, old_image.size() / 2);
}

TEST(OldCheckOnFailure, WrongOldIsStillOldMismatch) {
  for (Compression c : {Compression::kNone, Compression::kZstd}) {
    Fixture f = make_fixture(c);
    Bytes wrong = f.old_image;
    wrong[321] ^= 0x40;
    auto out = test::apply_patch(wrong, f.patch, on_failure());
    ASSERT_FALSE(out);
    EXPECT_EQ(out.error().code, ErrorCode::kOldMismatch) << test::describe(fail(out.error()));
    // ... and explains a damaged patch too.
    auto damaged = test::apply_patch(wrong, Bytes(f.patch.begin(), f.patch.end() - 3), on_failure());
    ASSERT_FALSE(damaged);
    EXPECT_EQ(damaged.error().code, ErrorCode::kOldMismatch) << test::describe(fail(damaged.error()));
  }
}

TEST(OldCheckOnFailure, WithTheRightOldTheDamageIsReported) {
  Fixture f = make_fixture();
  auto truncated = test::apply_patch(f.old_image, Bytes(f.patch.begin(), f.patch.end() - 5), on_failure());
  ASSERT_FALSE(truncated);
  EXPECT_EQ(truncated.error().code, ErrorCode::kPatchTruncated);
  auto trailing = test::apply_patch(f.old_image, test::concat(f.patch, Bytes{1, 2}), on_failure());
  ASSERT_FALSE(trailing);
  EXPECT_EQ(trailing.error().code, ErrorCode::kPatchMalformed);
}

// ---- hash_in_background ----

delta::PatchOptions background(delta::PatchOptions opt = {}) {
  opt.hash_in_background = true;
  return opt;
}

TEST(BackgroundHash, AppliesWhateverTheChunking) {
  // NEW of 300 KB crosses the ring of hash buffers many times.
  Bytes old_image = test::structured_bytes(300'000, 270);
  Bytes new_image = test::with_insertion(test::with_random_edits(old_image, 200, 271), 1000, test::random_bytes(70'000, 272));
  auto patch = test::make_patch(old_image, new_image, test::fast_options(Compression::kZstd, 14));
  ASSERT_TRUE(patch);
  auto whole = test::apply_patch(old_image, *patch, background());
  ASSERT_TRUE(whole) << test::describe(fail(whole.error()));
  EXPECT_TRUE(*whole == new_image);
  for (std::size_t step : {std::size_t{1}, std::size_t{777}, std::size_t{40'000}}) {
    auto chunked = test::apply_in_chunks(old_image, *patch, [step](std::size_t left) { return std::min(left, step); },
                                         background(on_failure()));
    ASSERT_TRUE(chunked) << step << ": " << test::describe(fail(chunked.error()));
    EXPECT_TRUE(*chunked == new_image) << step;
  }
}

TEST(BackgroundHash, AWrongResultIsNewMismatch) {
  Fixture f = make_fixture();
  Bytes wrong = f.old_image;
  for (std::size_t i = 0; i < wrong.size(); i += 101) wrong[i] ^= 0x08;
  delta::PatchOptions opt = background();
  opt.base_check = delta::BaseCheck::kNone;
  auto out = test::apply_patch(wrong, f.patch, opt);
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().code, ErrorCode::kNewMismatch) << test::describe(fail(out.error()));
}

TEST(BackgroundHash, DestroyedMidwayDoesNotHang) {
  Fixture f = make_fixture(Compression::kZstd, 12, 200'000);
  for (std::size_t cut : {std::size_t{50}, f.patch.size() / 3, f.patch.size() - 1}) {
    MemorySource old_source(f.old_image);
    VectorWriter out;
    auto p = delta::Patcher::create(old_source, out, background());
    ASSERT_TRUE(p);
    ASSERT_TRUE((*p)->feed(ByteSpan(f.patch.data(), cut)));
  }  // each Patcher is dropped with its hashing thread running
}

TEST(BackgroundHash, WriterErrorStopsThePatchAndCountsOnlyAcceptedBytes) {
  // The background thread writes: its first Writer error ends the patch, is
  // reported with context, and new_written() equals what the Writer accepted.
  Fixture f = make_fixture(Compression::kZstd, 12, 300'000);
  for (std::uint64_t limit : {std::uint64_t{0}, std::uint64_t{40'000}, std::uint64_t{200'000}}) {
    MemorySource old_source(f.old_image);
    test::FullDiskWriter out(limit);
    auto p = delta::Patcher::create(old_source, out, background());
    ASSERT_TRUE(p);
    Status st = ok();
    for (std::size_t off = 0; off < f.patch.size() && st; off += 999)
      st = (*p)->feed(ByteSpan(f.patch.data() + off, std::min<std::size_t>(999, f.patch.size() - off)));
    if (st) st = (*p)->finish();
    ASSERT_FALSE(st) << limit;
    EXPECT_EQ(st.error().code, ErrorCode::kIo) << limit;
    EXPECT_NE(st.error().message.find("writing NEW"), std::string::npos) << st.error().message;
    EXPECT_EQ((*p)->new_written(), out.position()) << limit;
    EXPECT_LE(out.position(), limit);
  }
}

// ---- BaseCheck::kHashWhilePatching ----

delta::PatchOptions concurrent() {
  delta::PatchOptions opt;
  opt.base_check = delta::BaseCheck::kHashWhilePatching;
  return opt;
}

TEST(ConcurrentOldCheck, CorrectOldApplies) {
  for (Compression c : {Compression::kNone, Compression::kZstd}) {
    Fixture f = make_fixture(c);
    auto out = test::apply_patch(f.old_image, f.patch, concurrent());
    ASSERT_TRUE(out) << test::describe(fail(out.error()));
    EXPECT_TRUE(*out == f.new_image);
    auto chunked = test::apply_in_chunks(f.old_image, f.patch, [](std::size_t left) { return std::min<std::size_t>(left, 7); },
                                         concurrent());
    ASSERT_TRUE(chunked);
    EXPECT_TRUE(*chunked == f.new_image);
  }
}

TEST(ConcurrentOldCheck, WrongOldIsStillOldMismatch) {
  Fixture f = make_fixture();
  Bytes wrong = f.old_image;
  wrong[123] ^= 0x01;
  auto out = test::apply_patch(wrong, f.patch, concurrent());
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().code, ErrorCode::kOldMismatch) << test::describe(fail(out.error()));
}

TEST(ConcurrentOldCheck, WrongOldExplainsOtherFailures) {
  // A wrong OLD and a damaged patch: the wrong OLD is reported as the cause.
  Fixture f = make_fixture();
  Bytes wrong = f.old_image;
  wrong[5] ^= 0x01;
  for (const Bytes& patch : {Bytes(f.patch.begin(), f.patch.end() - 5), test::concat(f.patch, Bytes{0})}) {
    auto out = test::apply_patch(wrong, patch, concurrent());
    ASSERT_FALSE(out);
    EXPECT_EQ(out.error().code, ErrorCode::kOldMismatch) << test::describe(fail(out.error()));
  }
  // With the right OLD the damage itself is reported.
  auto truncated = test::apply_patch(f.old_image, Bytes(f.patch.begin(), f.patch.end() - 5), concurrent());
  ASSERT_FALSE(truncated);
  EXPECT_EQ(truncated.error().code, ErrorCode::kPatchTruncated);
}

TEST(ConcurrentOldCheck, OldReadErrorPropagates) {
  Fixture f = make_fixture();
  CountingSource broken(f.old_image, /*broken=*/true);
  MemoryReader reader(f.patch);
  VectorWriter out;
  Status st = delta::apply(broken, reader, out, concurrent());
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kIo) << test::describe(st);
}

TEST(ConcurrentOldCheck, DestroyedMidwayDoesNotHang) {
  // A big OLD keeps the checking thread busy; dropping the Patcher must stop it.
  Bytes old_image = test::random_bytes(3'000'000, 250);
  Bytes new_image = test::slice(old_image, 0, 100'000);
  auto patch = test::make_patch(old_image, new_image, test::fast_options(Compression::kZstd, 12));
  ASSERT_TRUE(patch);
  for (std::size_t cut : {std::size_t{10}, std::size_t{200}, patch->size() / 2}) {
    MemorySource old_source(old_image);
    VectorWriter out;
    auto p = delta::Patcher::create(old_source, out, concurrent());
    ASSERT_TRUE(p);
    ASSERT_TRUE((*p)->feed(ByteSpan(patch->data(), cut)));
  }
}

TEST(ConcurrentOldCheck, KnownHashTakesPrecedence) {
  Fixture f = make_fixture();
  delta::PatchOptions opt = concurrent();
  opt.base_check = delta::BaseCheck::kKnownHash;
  opt.known_old_hash = content_hash(f.new_image);  // wrong on purpose
  auto out = test::apply_patch(f.old_image, f.patch, opt);
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().code, ErrorCode::kOldMismatch);
}

}  // namespace
}  // namespace ota
