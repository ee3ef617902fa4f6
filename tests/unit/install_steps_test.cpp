// The steps of Agent::install (ota/device/install.hpp), each alone:
// verify_bundle, choose_payload, stream_payload, check_target; and the copies
// the install data path makes per byte of the image, through real file banks
// and a bundle file (the measurement the design's "at most two user-space
// copies per payload byte" rests on).
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "ota/device/agent.hpp"
#include "ota/device/install.hpp"
#include "ota/testing/memory_environment.hpp"
#include "support/device_sim.hpp"
#include "support/file_device.hpp"
#include "support/random.hpp"
#include "support/signing.hpp"
#include "support/temp_dir.hpp"

namespace ota {
namespace {

using agent::BankInfo;
using agent::ChooseInput;

const trust::Time kNow = test::at("2026-06-01");

class InstallSteps : public testing::Test {
 protected:
  void SetUp() override {
    base_ = test::structured_bytes(96 * 1024, 700);
    image_ = test::with_insertion(test::with_random_edits(base_, 300, 701), 30'000, test::random_bytes(4000, 702));
    test::write_bytes(dir_.file("base.img"), base_);
    test::write_bytes(dir_.file("new.img"), image_);
    root_ = test::root_envelope(test::make_root(1, test::at("2030-01-01"), 1, keys_.ptrs({0})), keys_.ptrs({0}));
  }

  // `sized`: chunks and frames of a real release (64 KiB chunks, 1 MiB
  // frames) rather than the 4 KiB ones that make the other tests cross many
  // boundaries; a boundary flushes a partial buffer, which is copied.
  Bytes bundle(std::size_t signer = 0, bool compress = true, bool sized = false) {
    auto o = test::small_bundle(dir_.file("new.img"), {dir_.file("base.img")}, "1.1.0", {"board"});
    if (!compress) o.compress = false;
    if (sized) {
      o.chunk_size = 64 * 1024;
      o.full_frame_log = 20;
      o.delta_frame_log = 20;
    }
    return test::signed_bundle(o, keys_.ptrs({signer}));
  }

  bundle::VerifyOptions policy() const {
    bundle::VerifyOptions vo;
    vo.policy.now = kNow;
    vo.policy.hardware = "board";
    return vo;
  }

  // Step 1 on the bundle bytes `b` as a device would: a trust store from the
  // root, a state store, the policy (or `vo`). The reader and the stores live
  // in the fixture, as long as the test.
  Result<agent::VerifiedBundle> verify(const Bytes& b, std::optional<bundle::VerifyOptions> vo = {}) {
    held_.push_back(std::make_unique<Held>(b, root_));
    Held& h = *held_.back();
    return agent::verify_bundle(h.in, h.trust, h.state, vo ? *vo : policy());
  }
  // The state store of the last verify().
  storage::SimulatedStateStore& last_state() { return held_.back()->state; }

  // The bytes of payload `index` as bundle `b` stores them (verified first).
  Bytes payload_bytes(const Bytes& b, std::size_t index) {
    auto v = verify(b);
    EXPECT_TRUE(v);
    if (!v) return {};
    for (;;) {
      auto idx = v->reader->next_payload();
      if (!idx || !*idx) return {};
      if (**idx != index) continue;
      Bytes out(4096), all;
      for (;;) {
        auto n = v->reader->read(out);
        if (!n || *n == 0) return all;
        all.insert(all.end(), out.begin(), out.begin() + static_cast<std::ptrdiff_t>(*n));
      }
    }
  }

  test::Keyring keys_{2};
  test::TempDir dir_;
  Bytes base_, image_;
  trust::Envelope root_;

 private:
  struct Held {
    Held(const Bytes& b, const trust::Envelope& root) : bytes(b), in(bytes), trust(test::store_from(root)), state(power) {}
    Bytes bytes;
    MemoryReader in;
    trust::TrustStore trust;
    storage::PowerCut power;
    storage::SimulatedStateStore state;
  };
  std::vector<std::unique_ptr<Held>> held_;
};

// ---- 1. verify_bundle ----

TEST_F(InstallSteps, VerifyBundleGivesTheManifestAndItsHash) {
  auto v = verify(bundle());
  ASSERT_TRUE(v) << v.error().message;
  EXPECT_EQ(v->manifest.version, "1.1.0");
  EXPECT_EQ(v->manifest.target_hash, content_hash(image_));
  EXPECT_EQ(v->manifest_hash, content_hash(v->reader->manifest_bytes()));
}

TEST_F(InstallSteps, VerifyBundleRefusesAnUntrustedSignerAndReadsNoPayload) {
  auto v = verify(bundle(/*signer=*/1));  // key 1 is not in the root
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().code, ErrorCode::kUnknownKey) << v.error().message;
  EXPECT_FALSE(last_state().get(agent::kTrustRecord).value()) << "no root was saved";
}

TEST_F(InstallSteps, VerifyBundleAppliesThePolicy) {
  auto vo = policy();
  vo.policy.hardware = "another-board";
  auto v = verify(bundle(), vo);
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().code, ErrorCode::kIncompatibleHardware) << v.error().message;
}

// ---- 2. choose_payload (pure: a manifest and what is known of the active bank) ----

manifest::Payload delta_from(const std::string& name, std::uint64_t size, std::uint8_t seed) {
  manifest::Payload p;
  p.name = name;
  p.kind = manifest::PayloadKind::kDelta;
  p.base_size = size;
  p.base_hash.fill(seed);
  return p;
}

manifest::Payload full_image() {
  manifest::Payload p;
  p.name = "full";
  p.kind = manifest::PayloadKind::kFull;
  return p;
}

struct Choose {
  manifest::Manifest m;
  std::optional<BankInfo> active;
  std::uint64_t bank_size = 1000;
  bool speculate = false;
  const std::string* resuming = nullptr;
  Digest bank_digest{};  // what hashing the active bank gives
  int hashes = 0;        // how often it was hashed

  Result<agent::PayloadChoice> run() {
    ChooseInput in;
    in.manifest = &m;
    in.resuming = resuming;
    in.active = &active;
    in.active_bank_size = bank_size;
    in.speculate = speculate;
    in.active_hash = [this](std::uint64_t) -> Result<Digest> {
      ++hashes;
      return bank_digest;
    };
    return agent::choose_payload(in);
  }
};

Digest filled(std::uint8_t v) {
  Digest d;
  d.fill(v);
  return d;
}

TEST(ChoosePayload, TheDeltaWhoseBaseIsTheActiveBank) {
  Choose c;
  c.m.payloads = {full_image(), delta_from("from-1", 500, 1), delta_from("from-2", 600, 2)};
  c.bank_digest = filled(2);
  auto got = c.run();
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(got->index, 2u);
  EXPECT_FALSE(got->speculative);
}

TEST(ChoosePayload, TheFullImageWhenNoDeltaFits) {
  Choose c;
  c.m.payloads = {delta_from("from-1", 500, 1), delta_from("too-big", 5000, 9), full_image()};
  c.bank_digest = filled(7);
  auto got = c.run();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->index, 2u);
  EXPECT_EQ(c.hashes, 1) << "only the delta that fits the bank is checked";
}

TEST(ChoosePayload, NoPayloadAppliesIsItsOwnCode) {
  Choose c;
  c.m.payloads = {delta_from("from-1", 500, 1)};
  c.bank_digest = filled(7);
  auto got = c.run();
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code, ErrorCode::kNoPayload);
}

TEST(ChoosePayload, SpeculatesOnTheOnlyDeltaWhenNoHashIsCached) {
  Choose c;
  c.m.payloads = {full_image(), delta_from("from-1", 500, 1)};
  c.speculate = true;
  auto got = c.run();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->index, 1u);
  EXPECT_TRUE(got->speculative);
  EXPECT_EQ(c.hashes, 0) << "the base is checked while patching instead";
}

TEST(ChoosePayload, DoesNotSpeculateWithACachedHashOrSeveralDeltas) {
  Choose cached;
  cached.m.payloads = {full_image(), delta_from("from-1", 500, 1)};
  cached.speculate = true;
  cached.active = BankInfo{"1.0.0", 500, filled(3)};  // a known image that is not the base
  cached.bank_digest = filled(3);
  auto got = cached.run();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->index, 0u) << "the cached hash says the delta does not apply";
  EXPECT_FALSE(got->speculative);

  Choose two;
  two.m.payloads = {full_image(), delta_from("from-1", 500, 1), delta_from("from-2", 600, 2)};
  two.speculate = true;
  two.bank_digest = filled(1);
  got = two.run();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->index, 1u);
  EXPECT_FALSE(got->speculative);
}

TEST(ChoosePayload, ResumingKeepsThePayloadInProgress) {
  Choose c;
  c.m.payloads = {full_image(), delta_from("from-1", 500, 1)};
  c.bank_digest = filled(1);  // the delta would apply
  const std::string in_progress = "full";
  c.resuming = &in_progress;
  auto got = c.run();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->index, 0u);
  EXPECT_EQ(c.hashes, 0);
  const std::string gone = "from-9";
  c.resuming = &gone;
  EXPECT_EQ(c.run().error().code, ErrorCode::kNoPayload);
}

TEST(ChoosePayload, AHashingErrorIsReported) {
  Choose c;
  c.m.payloads = {delta_from("from-1", 500, 1), full_image()};
  ChooseInput in;
  in.manifest = &c.m;
  in.active = &c.active;
  in.active_bank_size = 1000;
  in.active_hash = [](std::uint64_t) -> Result<Digest> { return fail(ErrorCode::kIo, "bank unreadable"); };
  auto got = agent::choose_payload(in);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code, ErrorCode::kIo);
  EXPECT_NE(got.error().message.find("hashing the active bank"), std::string::npos);
}

// ---- 4. stream_payload ----

// Records what it is fed; asks to start at `start` (a resume point).
class RecordingSink final : public delta::PayloadSink {
 public:
  explicit RecordingSink(std::uint64_t start = 0) : start_(start) {}
  Status feed(ByteSpan chunk) override {
    fed.insert(fed.end(), chunk.begin(), chunk.end());
    offset_ += chunk.size();
    ++feeds;
    return ok();
  }
  Status finish() override { return ok(); }
  std::uint64_t new_written() const override { return 0; }
  std::uint64_t next_offset() const override { return std::max(offset_, start_); }
  Status skip(std::uint64_t n) override {
    if (offset_ + n > start_) return fail(ErrorCode::kUsage, "skip past the resume point");
    offset_ += n;
    skipped += n;
    return ok();
  }
  Bytes fed;
  std::uint64_t skipped = 0;
  int feeds = 0;

 private:
  std::uint64_t start_, offset_ = 0;
};

TEST_F(InstallSteps, StreamPayloadFeedsTheChosenPayloadWithoutCopyingIt) {
  const Bytes b = bundle();
  test::write_bytes(dir_.file("b.otb"), b);
  auto trust = test::store_from(root_);
  storage::PowerCut power;
  storage::SimulatedStateStore state{power};
  auto file = FileReader::open(dir_.file("b.otb"));  // a file: chunks are read into the reader's buffer
  ASSERT_TRUE(file);
  auto v = agent::verify_bundle(**file, trust, state, policy());
  ASSERT_TRUE(v);
  const std::size_t last = v->manifest.payloads.size() - 1;
  RecordingSink sink;
  const std::uint64_t copies = bytes_copied();
  std::uint64_t progress_calls = 0, last_done = 0;
  ASSERT_TRUE(agent::stream_payload(*v->reader, v->manifest, last, sink, [&](std::uint64_t done, std::uint64_t total) {
    ++progress_calls;
    last_done = done;
    EXPECT_EQ(total, v->manifest.payloads[last].size);
  }));
  EXPECT_EQ(bytes_copied(), copies) << "chunks are handed to the sink where the reader checked them";
  EXPECT_EQ(sink.fed, payload_bytes(b, last));
  EXPECT_EQ(last_done, v->manifest.payloads[last].size);
  EXPECT_GT(progress_calls, 1u);
}

TEST_F(InstallSteps, StreamPayloadJumpsToWhereAResumingSinkStarts) {
  const Bytes b = bundle();
  auto v = verify(b);
  ASSERT_TRUE(v);
  const Bytes all = payload_bytes(b, 0);
  const std::uint64_t start = all.size() / 2 + 123;  // inside a chunk
  RecordingSink sink(start);
  ASSERT_TRUE(agent::stream_payload(*v->reader, v->manifest, 0, sink));
  EXPECT_EQ(sink.skipped, start);
  EXPECT_EQ(sink.fed, Bytes(all.begin() + static_cast<std::ptrdiff_t>(start), all.end()));
}

TEST_F(InstallSteps, StreamPayloadStopsWhenCancelled) {
  const Bytes b = bundle();
  auto v = verify(b);
  ASSERT_TRUE(v);
  RecordingSink sink;
  Status st = agent::stream_payload(*v->reader, v->manifest, 0, sink, {}, [] { return true; });
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kCancelled);
  EXPECT_EQ(sink.feeds, 1);
}

TEST_F(InstallSteps, StreamPayloadRefusesAResumePointBeyondThePayload) {
  const Bytes b = bundle();
  auto v = verify(b);
  ASSERT_TRUE(v);
  RecordingSink sink(v->manifest.payloads[0].size + 1);
  Status st = agent::stream_payload(*v->reader, v->manifest, 0, sink);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kUsage);
}

// ---- 5. check_target ----

TEST(CheckTarget, TheBankHoldsTheImageOrItIsAMismatch) {
  storage::PowerCut power;
  Bytes content = test::random_bytes(20'000, 710);
  storage::SimulatedBank bank(content, power);
  const Bytes image(content.begin(), content.begin() + 12'345);
  EXPECT_TRUE(agent::check_target(bank, image.size(), content_hash(image)));
  Status changed = agent::check_target(bank, image.size(), content_hash(content));
  ASSERT_FALSE(changed);
  EXPECT_EQ(changed.error().code, ErrorCode::kPayloadMismatch);
  Status past = agent::check_target(bank, content.size() + 1, content_hash(content));
  ASSERT_FALSE(past);
  EXPECT_EQ(past.error().code, ErrorCode::kIo) << "a size past the bank is not a mismatch";
}

// ---- write_payload: a checkpointed prefix that no longer holds ----

// An install interrupted after its first checkpoints leaves a resume point;
// if the bank's prefix is then damaged, the resumed install fails on the
// final hash (a delta: kNewMismatch; a full image: kPayloadMismatch) and
// drops the resume point, so the next install starts over and succeeds.
class DamagedPrefix : public InstallSteps, public testing::WithParamInterface<bool> {};

TEST_P(DamagedPrefix, IsDroppedAndTheNextInstallStartsOver) {
  const bool delta = GetParam();
  test::TempDir dir;
  test::write_bytes(dir.file("b.otb"), bundle());  // 4 KiB frames: a checkpoint every 4 KiB of image
  test::FileDevice dev(dir, delta ? base_ : Bytes(1000, 0x5a), root_);
  auto open = [&] { return std::move(*FileReader::open(dir.file("b.otb"))); };

  // 1. Cancelled past half of the payload.
  bool half = false;
  agent::Device d = dev.device(kNow);
  d.progress = [&](std::uint64_t done, std::uint64_t total) { half |= done > total / 2; };
  d.cancelled = [&] { return half; };
  agent::Agent first(std::move(d));
  auto in = open();
  auto r = first.install(*in);
  ASSERT_FALSE(r);
  ASSERT_EQ(r.error().code, ErrorCode::kCancelled) << r.error().message;
  auto s = first.state();
  ASSERT_TRUE(s && s->install.resume);
  ASSERT_GT(s->install.resume->new_offset, 4096u);

  // 2. A byte of the synced prefix changes.
  Bytes bank = test::read_bytes(dir.file("bank_b"));
  bank[100] ^= 0x40;
  test::write_bytes(dir.file("bank_b"), bank);
  auto second = dev.agent(kNow);
  in = open();
  r = second.install(*in);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, delta ? ErrorCode::kNewMismatch : ErrorCode::kPayloadMismatch) << r.error().message;
  s = second.state();
  ASSERT_TRUE(s);
  EXPECT_FALSE(s->install.resume) << "the damaged prefix is not resumed from again";

  // 3. Started over.
  in = open();
  r = second.install(*in);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->delta, delta);
  EXPECT_FALSE(r->resumed);
  EXPECT_TRUE(dev.bank_b_prefix(image_.size()) == image_);
}

INSTANTIATE_TEST_SUITE_P(InstallSteps, DamagedPrefix, testing::Values(true, false),
                         [](const testing::TestParamInfo<bool>& p) { return p.param ? "Delta" : "FullImage"; });

// ---- copies per byte, on real file banks ----

// Installs bundle `b` from a file into a fresh device whose bank a holds
// `active`; returns user-space bytes copied per byte of the image.
double copies_per_byte(const Bytes& b, const Bytes& active, const trust::Envelope& root, const Bytes& image,
                       bool expect_delta) {
  test::TempDir dir;
  test::write_bytes(dir.file("b.otb"), b);
  test::FileDevice dev(dir, active, root);
  auto a = dev.agent(kNow);
  auto file = FileReader::open(dir.file("b.otb"));
  EXPECT_TRUE(file);
  if (!file) return 1e9;
  const std::uint64_t before = bytes_copied();
  auto rep = a.install(**file);
  const std::uint64_t copied = bytes_copied() - before;
  EXPECT_TRUE(rep) << rep.error().message;
  if (!rep) return 1e9;
  EXPECT_EQ(rep->delta, expect_delta);
  EXPECT_TRUE(dev.bank_b_prefix(image.size()) == image);
  return static_cast<double>(copied) / static_cast<double>(image.size());
}

TEST_F(InstallSteps, AtMostTwoUserSpaceCopiesPerByte) {
  // Delta: OLD's bytes are copied once into the output buffer (COPY, ADD) or
  // a record's literal bytes are (INSERT); the patch's bytes reach the
  // patcher where the bundle reader checked them.
  const double delta = copies_per_byte(bundle(0, true, true), base_, root_, image_, true);
  // Full image, zstd: decoded straight into the output buffer, written from there.
  const double full = copies_per_byte(bundle(0, true, true), Bytes(1000, 0x5a), root_, image_, false);
  // Full image, stored: the checked chunk goes to the bank as it is.
  const double stored = copies_per_byte(bundle(0, /*compress=*/false, true), Bytes(1000, 0x5a), root_, image_, false);
  std::printf("user-space copies per byte of the image: delta %.3f, full zstd %.3f, full stored %.3f\n", delta, full,
              stored);
  EXPECT_LE(delta, 2.0);
  EXPECT_LE(full, 2.0);
  EXPECT_LE(stored, 2.0);
  EXPECT_LE(stored, 0.25) << "stored bytes are not copied except at buffer edges";
}

}  // namespace
}  // namespace ota
