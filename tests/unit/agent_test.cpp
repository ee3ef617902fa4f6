// The agent's install path and life cycle on simulated storage: banks and a
// state store under a PowerCut, a boot environment whose stores count as
// writes too, and U-Boot's bootcount rules (boot::simulate_boot) as the
// "reboot". The power-cut enumeration cuts at every write of a delta install
// (and with seeded random survivors and torn sectors), restarts a fresh agent
// on what survived, and checks: the active bank never changes, the device
// boots the old image or the verified new one, and the install completes.
#include <gtest/gtest.h>
#include <lzma.h>

#include <algorithm>
#include <string>
#include <vector>

#include "ota/core/hash.hpp"
#include "ota/delta/delta.hpp"
#include "ota/device/agent.hpp"
#include "ota/release/bundle.hpp"
#include "ota/testing/memory_environment.hpp"
#include "ota/testing/power_cut.hpp"
#include "support/device_sim.hpp"
#include "support/power_cuts.hpp"
#include "support/random.hpp"
#include "support/signing.hpp"
#include "support/temp_dir.hpp"

namespace ota {
namespace {

using agent::Agent;
using agent::Stage;
using boot::Slot;
using storage::LossMode;
using storage::PowerCut;

constexpr std::uint64_t kBankSize = 256 * 1024;
const trust::Time kNow = test::at("2026-06-01");

using test::CutEnvironment;
using test::prefix;

// Reads from memory and counts what was consumed.
class CountingReader final : public Reader {
 public:
  explicit CountingReader(ByteSpan b) : in_(b) {}
  Result<std::size_t> read(MutableByteSpan out) override {
    auto n = in_.read(out);
    if (n) count += *n;
    return n;
  }
  // Skipped bytes are not fetched (a seek, a Range request): not counted.
  Result<std::uint64_t> skip(std::uint64_t n) override { return in_.skip(n); }
  std::uint64_t count = 0;

 private:
  MemoryReader in_;
};

Bytes bank_with(const Bytes& image) { return test::bank_with(image, kBankSize); }

class AgentTest : public testing::Test {
 protected:
  void SetUp() override {
    base_ = test::structured_bytes(64 * 1024, 500);
    image_ = test::with_insertion(test::with_random_edits(base_, 200, 501), 20'000, test::random_bytes(3000, 502));
    test::write_bytes(dir_.file("base.img"), base_);
    test::write_bytes(dir_.file("new.img"), image_);
    root_ = test::root_envelope(test::make_root(1, test::at("2030-01-01"), 1, keys_.ptrs({0})), keys_.ptrs({0}));
  }

  // A signed bundle of new.img (zstd in 4 KiB frames) with a delta from base.img (4 KiB frames).
  Bytes make_bundle(const std::string& version = "1.1.0", std::vector<std::string> hw = {"board"},
                    std::optional<trust::Time> expires = {}, std::size_t signer = 0, bool with_delta = true) {
    auto o = test::small_bundle(dir_.file("new.img"), {}, version, std::move(hw));
    if (with_delta) o.base_paths = {dir_.file("base.img")};
    o.expires = expires;
    if (encrypted_) test::encrypt_to(o, {1, 2});
    return test::signed_bundle(o, keys_.ptrs({signer}));
  }

  // A bundle of new.img with a chunks payload (512 B to 4 KiB chunks) and the
  // full image, no delta: a device on base.img takes the reuse path.
  // new.img becomes an image closer to base.img (a few edits and an
  // insertion), as between releases.
  Bytes make_reuse_bundle(bool with_full = true) {
    image_ = test::with_insertion(test::with_random_edits(base_, 6, 601), 30'000, test::random_bytes(2000, 602));
    test::write_bytes(dir_.file("new.img"), image_);
    auto o = test::small_bundle(dir_.file("new.img"), {}, "1.1.0", {"board"});
    o.reuse = true;
    o.reuse_params = chunks::Params{512, 10, 4096};
    o.reuse_level = 3;
    o.include_full = with_full;
    if (encrypted_) test::encrypt_to(o, {1, 2});
    return test::signed_bundle(o, keys_.ptrs({0}));
  }

  // One boot of the device: durable storage in, an agent over it.
  struct Device {
    Device(const Bytes& a, const Bytes& b, std::map<std::string, Bytes> records, boot::Vars env_vars,
           const trust::Envelope& root, PowerCut&& pc)
        : power(std::move(pc)),
          bank_a(a, power),
          bank_b(b, power),
          state(power, std::move(records)),
          env(std::move(env_vars), power),
          trust(test::store_from(root)) {}
    Agent agent(std::function<Status()> health = [] { return ok(); }) {
      agent::Device d;
      d.banks[0] = &bank_a;
      d.banks[1] = &bank_b;
      d.state = &state;
      d.env = &env;
      d.trust = &trust;
      d.hardware_id = "board";
      d.now = [] { return kNow; };
      d.health_check = std::move(health);
      d.reboot = [] { return ok(); };
      d.reuse_checkpoint_bytes = 8192;  // many chunk checkpoints to cut between
      d.record_previous = record_previous;
      // This device holds X25519 key 1 (asked only for an encrypted bundle).
      if (decryption_key) d.decryption_key = [n = *decryption_key] { return Result<encryption::SecretKey>(test::test_decryption_key(n)); };
      return Agent(std::move(d));
    }
    PowerCut power;
    storage::SimulatedBank bank_a, bank_b;
    storage::SimulatedStateStore state;
    CutEnvironment env;
    trust::TrustStore trust;
    bool record_previous = false;
    std::optional<std::uint8_t> decryption_key = 1;
  };

  std::unique_ptr<Device> fresh(const Bytes& bank_a_content, PowerCut pc = PowerCut()) {
    return std::make_unique<Device>(bank_with(bank_a_content), Bytes(kBankSize, 0), std::map<std::string, Bytes>{},
                                    boot::Vars{{"ota_slot", "a"}}, root_, std::move(pc));
  }

  test::Keyring keys_{2};
  test::TempDir dir_;
  Bytes base_, image_;
  trust::Envelope root_;
  bool encrypted_ = false;  // bundles encrypted to X25519 test keys 1 and 2
};

TEST_F(AgentTest, DeltaInstallTrialAndCommit) {
  auto dev = fresh(base_);
  Agent a = dev->agent();
  Bytes bundle = make_bundle();
  CountingReader in(bundle);
  auto rep = a.install(in);
  ASSERT_TRUE(rep) << rep.error().message;
  EXPECT_TRUE(rep->delta);
  EXPECT_EQ(rep->bytes_written, image_.size());
  EXPECT_EQ(dev->env.vars().at("ota_slot"), "b");
  EXPECT_EQ(dev->env.vars().at("upgrade_available"), "1");
  ASSERT_TRUE(dev->bank_b.sync());
  EXPECT_EQ(prefix(dev->bank_b.survivors(), image_.size()), image_);
  // Reboot: the bootloader boots b once; boot-check commits.
  auto booted = boot::simulate_boot(dev->env);
  ASSERT_TRUE(booted);
  EXPECT_EQ(*booted, Slot::kB);
  ASSERT_TRUE(a.boot_check());
  auto s = a.state();
  ASSERT_TRUE(s);
  EXPECT_EQ(s->install.stage, Stage::kNone);
  EXPECT_EQ(s->last_result, "installed 1.1.0");
  ASSERT_TRUE(s->banks[1]);
  EXPECT_EQ(s->banks[1]->version, "1.1.0");
  EXPECT_EQ(dev->env.vars().count("upgrade_available") ? dev->env.vars().at("upgrade_available") : "0", "0");
  EXPECT_EQ(*boot::simulate_boot(dev->env), Slot::kB);
  // The same bundle again is not newer than what runs now.
  CountingReader again(bundle);
  auto r2 = a.install(again);
  ASSERT_FALSE(r2);
  EXPECT_EQ(r2.error().code, ErrorCode::kDowngrade);
}

TEST_F(AgentTest, WrongBaseFallsBackToTheFullPayload) {
  Bytes other = test::random_bytes(64 * 1024, 77);
  auto dev = fresh(other);
  Agent a = dev->agent();
  Bytes bundle = make_bundle();
  CountingReader in(bundle);
  auto rep = a.install(in);
  ASSERT_TRUE(rep) << rep.error().message;
  EXPECT_FALSE(rep->delta);
  EXPECT_EQ(rep->payload, "full.zst");
  ASSERT_TRUE(dev->bank_b.sync());
  EXPECT_EQ(prefix(dev->bank_b.survivors(), image_.size()), image_);
}

// A signed delta whose records make other bytes than the image it names, as
// a device whose compression library re-encodes a version-6 stream
// differently sees it: the agent abandons it and installs the full image,
// in the same call through reopen, else at the next install.
TEST_F(AgentTest, ADeltaThatDoesNotMakeItsTargetFallsBackToTheFullImage) {
  delta::DiffOptions o;
  o.compression = delta::Compression::kNone;  // the inserted bytes stay literal in the patch
  o.frame_log = 12;
  VectorWriter w;
  ASSERT_TRUE(delta::diff(base_, image_, w, o));
  Bytes bad = w.data();
  const Bytes inserted = test::random_bytes(3000, 502);  // as SetUp inserts
  auto at = std::search(bad.begin(), bad.end(), inserted.begin() + 100, inserted.begin() + 132);
  ASSERT_NE(at, bad.end());
  *at ^= 0x5a;
  manifest::Manifest m = test::simple_manifest(image_, 4096);
  m.hardware = {"board"};
  manifest::Payload d = test::payload_for("delta.otd", bad, 4096, manifest::PayloadKind::kDelta,
                                          manifest::Compression::kOtaDelta);
  d.base_size = base_.size();
  d.base_hash = content_hash(base_);
  m.payloads.insert(m.payloads.begin(), d);
  const Bytes bundle = test::write_mem_bundle(m, {bad, image_}, keys_.ptrs({0})).bytes;
  auto reopen = [&]() -> Result<std::unique_ptr<Reader>> {
    return std::unique_ptr<Reader>(std::make_unique<CountingReader>(bundle));
  };
  for (bool with_reopen : {true, false}) {
    SCOPED_TRACE(with_reopen ? "reopen" : "next install");
    auto dev = fresh(base_);
    Agent a = dev->agent();
    CountingReader in(bundle);
    auto rep = with_reopen ? a.install(in, reopen) : a.install(in);
    if (!with_reopen) {
      ASSERT_FALSE(rep);
      EXPECT_EQ(rep.error().code, ErrorCode::kNewMismatch);
      EXPECT_EQ(prefix(dev->bank_a.survivors(), base_.size()), base_);
      auto st = a.state();
      ASSERT_TRUE(st);
      EXPECT_EQ(st->install.stage, Stage::kNone);  // abandoned: nothing to resume
      CountingReader again(bundle);
      rep = a.install(again);
    }
    ASSERT_TRUE(rep) << rep.error().message;
    EXPECT_FALSE(rep->delta);
    EXPECT_EQ(rep->payload, "full.img");
    ASSERT_TRUE(dev->bank_b.sync());
    EXPECT_EQ(prefix(dev->bank_b.survivors(), image_.size()), image_);
    EXPECT_EQ(prefix(dev->bank_a.survivors(), base_.size()), base_);
  }
}

// With a way to reopen the bundle, the agent takes the only delta at once and
// checks its base while patching: a wrong base falls back to the full image
// within the same call; a right one leaves the active bank's hash cached.
TEST_F(AgentTest, SpeculativeDeltaChecksItsBaseWhilePatching) {
  Bytes bundle = make_bundle();
  int reopened = 0;
  auto reopen = [&]() -> Result<std::unique_ptr<Reader>> {
    ++reopened;
    return std::unique_ptr<Reader>(std::make_unique<CountingReader>(bundle));
  };
  {
    auto dev = fresh(test::random_bytes(64 * 1024, 78));  // not the base, same size
    Agent a = dev->agent();
    CountingReader in(bundle);
    auto rep = a.install(in, reopen);
    ASSERT_TRUE(rep) << rep.error().message;
    EXPECT_EQ(reopened, 1);
    EXPECT_FALSE(rep->delta);
    EXPECT_EQ(prefix(dev->bank_b.survivors(), image_.size()), image_);
    EXPECT_EQ(*boot::simulate_boot(dev->env), Slot::kB);
  }
  reopened = 0;
  {
    auto dev = fresh(base_);
    Agent a = dev->agent();
    CountingReader in(bundle);
    auto rep = a.install(in, reopen);
    ASSERT_TRUE(rep) << rep.error().message;
    EXPECT_EQ(reopened, 0);
    EXPECT_TRUE(rep->delta);
    auto s = a.state();
    ASSERT_TRUE(s);
    ASSERT_TRUE(s->banks[0].has_value());
    EXPECT_EQ(s->banks[0]->hash, content_hash(base_));
    EXPECT_EQ(prefix(dev->bank_b.survivors(), image_.size()), image_);
  }
}

TEST_F(AgentTest, TamperedChunkNeverReachesTheBank) {
  auto dev = fresh(base_);
  Agent a = dev->agent();
  Bytes bundle = make_bundle();
  // Corrupt a byte in the middle of the delta payload.
  MemoryReader probe(bundle);
  auto rd = bundle::BundleReader::open(probe);
  ASSERT_TRUE(rd);
  auto m = (*rd)->parse_unverified();
  ASSERT_TRUE(m);
  const auto lay = bundle::layout((*rd)->manifest_bytes().size(),
                                  bundle::encode_signature_block((*rd)->signature_block()).size(), *m);
  const auto& delta_member = lay.members[3];
  ASSERT_GT(delta_member.size, 100u);
  bundle[delta_member.data_offset + delta_member.size / 2] ^= 0x20;
  CountingReader in(bundle);
  auto rep = a.install(in);
  ASSERT_FALSE(rep);
  EXPECT_EQ(rep.error().code, ErrorCode::kPayloadMismatch);
  // The corrupted chunk is the delta's first: not one byte reached bank b.
  Bytes b(kBankSize);
  ASSERT_TRUE(dev->bank_b.read_at(0, b));
  EXPECT_EQ(b, Bytes(kBankSize, 0));
  // And no trial was begun.
  EXPECT_EQ(dev->env.vars().count("upgrade_available") ? dev->env.vars().at("upgrade_available") : "0", "0");
  EXPECT_EQ(dev->env.vars().at("ota_slot"), "a");
}

TEST_F(AgentTest, RejectedBeforeAnyPayloadByteIsRead) {
  struct Case {
    const char* what;
    Bytes bundle;
    ErrorCode code;
  };
  std::vector<Case> cases;
  cases.push_back({"wrong hardware", make_bundle("1.1.0", {"other-board"}), ErrorCode::kIncompatibleHardware});
  cases.push_back({"expired", make_bundle("1.1.0", {"board"}, test::at("2026-03-01")), ErrorCode::kExpired});
  cases.push_back({"unknown signer", make_bundle("1.1.0", {"board"}, std::nullopt, 1), ErrorCode::kUnknownKey});
  cases.push_back({"downgrade", make_bundle("0.9.0"), ErrorCode::kDowngrade});
  for (auto& c : cases) {
    auto dev = fresh(base_);
    // The device runs 1.0.0 (known), so 0.9.0 is a downgrade.
    agent::State s;
    s.banks[0] = agent::BankInfo{"1.0.0", base_.size(), content_hash(base_)};
    ASSERT_TRUE(dev->state.replace("state.json", agent::encode_state(s)));
    Agent a = dev->agent();
    CountingReader in(c.bundle);
    auto rep = a.install(in);
    ASSERT_FALSE(rep) << c.what;
    EXPECT_EQ(rep.error().code, c.code) << c.what << ": " << rep.error().message;
    // Only the manifest and signature members were read.
    MemoryReader probe(c.bundle);
    auto rd = bundle::BundleReader::open(probe);
    ASSERT_TRUE(rd);
    EXPECT_LE(in.count, (*rd)->offset()) << c.what;
    EXPECT_EQ(dev->bank_b.survivors(), Bytes(kBankSize, 0)) << c.what;
  }
}

TEST_F(AgentTest, FailedHealthCheckRollsBack) {
  auto dev = fresh(base_);
  Agent a = dev->agent([] { return Status(fail(ErrorCode::kIo, "service did not start")); });
  Bytes bundle = make_bundle();
  CountingReader in(bundle);
  ASSERT_TRUE(a.install(in));
  EXPECT_EQ(*boot::simulate_boot(dev->env), Slot::kB);
  ASSERT_TRUE(a.boot_check());
  auto s = a.state();
  ASSERT_TRUE(s);
  EXPECT_EQ(s->install.stage, Stage::kNone);
  EXPECT_NE(s->last_result.find("rolled-back 1.1.0: health check failed"), std::string::npos) << s->last_result;
  EXPECT_EQ(*boot::simulate_boot(dev->env), Slot::kA);
}

TEST_F(AgentTest, RebootLoopIsBrokenByTheBootcount) {
  auto dev = fresh(base_);
  Agent a = dev->agent();
  Bytes bundle = make_bundle();
  CountingReader in(bundle);
  ASSERT_TRUE(a.install(in));
  // The new image crashes before boot-check, every time.
  Slot booted = Slot::kB;
  int boots = 0;
  while (booted == Slot::kB && boots < 10) {
    booted = *boot::simulate_boot(dev->env);
    ++boots;
  }
  EXPECT_EQ(booted, Slot::kA);
  EXPECT_EQ(boots, 4);  // bootlimit 3: three tries, the fourth boot falls back
  ASSERT_TRUE(a.boot_check());
  auto s = a.state();
  ASSERT_TRUE(s);
  EXPECT_NE(s->last_result.find("fell back"), std::string::npos) << s->last_result;
}

// ---- power cuts ----

struct Survivors {
  Bytes a, b;
  std::map<std::string, Bytes> records;
  boot::Vars env;
};

class PowerCutTest : public AgentTest {
 protected:
  // Runs an install with power cut at write n (0: never); returns what survives.
  Survivors run(std::uint64_t n, LossMode mode, std::uint64_t seed, const Survivors* from, std::uint64_t* writes,
                bool* completed) {
    PowerCut pc(n, mode, seed);
    std::unique_ptr<Device> dev;
    if (from)
      dev = std::make_unique<Device>(from->a, from->b, from->records, from->env, root_, std::move(pc));
    else
      dev = fresh(base_, std::move(pc));
    Agent a = dev->agent();
    // A device runs boot-check on every boot, before anything else.
    if (from && !a.boot_check()) {
      EXPECT_TRUE(dev->power.cut());
    }
    CountingReader in(bundle_);
    // With reopen: the agent checks the delta's base while patching, as ota-agent does.
    auto reopen = [this]() -> Result<std::unique_ptr<Reader>> {
      return std::unique_ptr<Reader>(std::make_unique<CountingReader>(bundle_));
    };
    auto rep = dev->power.cut() ? Result<agent::InstallReport>(fail(ErrorCode::kIo, "power cut")) : a.install(in, reopen);
    if (writes) *writes = dev->power.writes();
    if (completed) *completed = static_cast<bool>(rep);
    if (!rep) {
      EXPECT_TRUE(dev->power.cut()) << "failed without a power cut: " << rep.error().message;
    }
    return Survivors{dev->bank_a.survivors(), dev->bank_b.survivors(), dev->state.records(), dev->env.vars()};
  }

  // After a cut: the device boots old or verified-new; a fresh agent finishes the job.
  void check_and_finish(const Survivors& s, const std::string& where) {
    ASSERT_EQ(prefix(s.a, base_.size()), base_) << where << ": the active bank changed";
    boot::MemoryEnvironment env;
    env.vars = s.env;
    auto booted = boot::simulate_boot(env);
    ASSERT_TRUE(booted) << where;
    if (*booted == Slot::kB) {
      ASSERT_EQ(prefix(s.b, image_.size()), image_) << where << ": booted an unverified bank";
    }
    Survivors next = s;
    next.env = env.vars;
    Device dev(next.a, next.b, next.records, next.env, root_, PowerCut());
    Agent a = dev.agent();
    if (*booted == Slot::kA) {
      ASSERT_TRUE(a.boot_check()) << where;  // a trial that never began or fell back: nothing to commit
      CountingReader in(bundle_);
      auto rep = a.install(in);
      ASSERT_TRUE(rep) << where << ": " << rep.error().message;
      ASSERT_EQ(*boot::simulate_boot(dev.env), Slot::kB) << where;
    }
    ASSERT_TRUE(a.boot_check()) << where;
    auto st = a.state();
    ASSERT_TRUE(st) << where;
    EXPECT_EQ(st->last_result, "installed 1.1.0") << where;
    EXPECT_EQ(prefix(dev.bank_b.survivors(), image_.size()), image_) << where;
    EXPECT_EQ(prefix(dev.bank_a.survivors(), base_.size()), base_) << where;
  }

  // Installs bundle_ once to count its writes (more than min_writes), then
  // cuts power at each of them in every loss mode and lets a fresh agent
  // finish (check_and_finish).
  void every_cut(std::uint64_t min_writes, std::uint64_t seed_factor) {
    std::uint64_t total = 0;
    bool completed = false;
    run(0, LossMode::kDropUnsynced, 1, nullptr, &total, &completed);
    ASSERT_TRUE(completed);
    ASSERT_GT(total, min_writes) << "expected a write per frame (or chunk) and checkpoint";
    RecordProperty("writes_per_install", static_cast<int>(total));
    test::for_each_cut(total, [&](const test::Cut& c) {
      check_and_finish(run(c.n, c.mode, c.n * seed_factor, nullptr, nullptr, nullptr), c.where);
    });
  }

  Bytes bundle_;
};

TEST_F(PowerCutTest, EveryWriteOfADeltaInstall) {
  bundle_ = make_bundle();
  every_cut(20, 7919);
}

// An image of xz streams (as a squashfs with xz blocks): 2 KiB blocks, each
// one stream as mksquashfs writes them, behind a raw header.
Bytes xz_image(const std::vector<Bytes>& blocks) {
  Bytes img = test::random_bytes(300, 900);
  for (const Bytes& b : blocks) {
    lzma_options_lzma lz{};
    lzma_lzma_preset(&lz, 6);
    lz.dict_size = 8192;
    lzma_filter f[] = {{LZMA_FILTER_LZMA2, &lz}, {LZMA_VLI_UNKNOWN, nullptr}};
    Bytes out(b.size() + 512);
    std::size_t n = 0;
    EXPECT_EQ(lzma_stream_buffer_encode(f, LZMA_CHECK_CRC32, nullptr, b.data(), b.size(), out.data(), &n, out.size()),
              LZMA_OK);
    img.insert(img.end(), out.begin(), out.begin() + static_cast<std::ptrdiff_t>(n));
  }
  return img;
}

// Format version 6: the patcher expands OLD's streams and re-encodes NEW's;
// every cut still leaves old or verified-new, and a fresh agent finishes.
TEST_F(PowerCutTest, EveryWriteOfAnXzStreamDeltaInstall) {
  std::vector<Bytes> blocks;
  for (std::uint64_t i = 0; i < 24; ++i) blocks.push_back(test::random_bytes(2000, 910 + i));
  base_ = xz_image(blocks);
  blocks[5] = test::with_random_edits(blocks[5], 30, 950);
  blocks[17] = test::with_random_edits(blocks[17], 30, 951);
  blocks.insert(blocks.begin() + 9, test::random_bytes(1500, 952));
  image_ = xz_image(blocks);
  test::write_bytes(dir_.file("base.img"), base_);
  test::write_bytes(dir_.file("new.img"), image_);
  {
    VectorWriter w;
    delta::DiffOptions o;
    o.frame_log = 12;  // as the bundle's deltas
    o.level = 3;
    auto st = delta::diff(base_, image_, w, o);
    ASSERT_TRUE(st);
    ASSERT_EQ(st->version, delta::kRecompressFormatVersion);
    ASSERT_LT(w.data().size() * 4, image_.size());
  }
  bundle_ = make_bundle();
  const std::uint8_t v6[] = {'O', 'T', 'D', delta::kRecompressFormatVersion};
  ASSERT_NE(std::search(bundle_.begin(), bundle_.end(), std::begin(v6), std::end(v6)), bundle_.end());
  every_cut(10, 7919);
}

// Encrypted (XChaCha20-Poly1305 blocks of 4 KiB, frames of 4 KiB): the
// same guarantees at every write; a resumed install decrypts from the block
// holding its frame.
TEST_F(PowerCutTest, EveryWriteOfAnEncryptedDeltaInstall) {
  encrypted_ = true;
  bundle_ = make_bundle();
  every_cut(20, 7919);
}

TEST_F(PowerCutTest, EveryWriteOfAnEncryptedFullInstall) {
  encrypted_ = true;
  bundle_ = make_bundle("1.1.0", {"board"}, {}, 0, /*with_delta=*/false);
  every_cut(20, 104729);
}

TEST_F(PowerCutTest, EveryWriteOfAnEncryptedReuseInstall) {
  encrypted_ = true;
  bundle_ = make_reuse_bundle();
  every_cut(8, 6151);
}

TEST_F(AgentTest, AnEncryptedBundleInstallsWithEitherRecipientsKey) {
  encrypted_ = true;
  const Bytes b = make_bundle();
  for (std::uint8_t key : {1, 2}) {
    SCOPED_TRACE(key);
    auto dev = fresh(base_);
    dev->decryption_key = key;
    Agent a = dev->agent();
    CountingReader in(b);
    auto rep = a.install(in);
    ASSERT_TRUE(rep) << rep.error().message;
    EXPECT_TRUE(rep->delta);
    EXPECT_EQ(prefix(dev->bank_b.survivors(), image_.size()), image_);
    ASSERT_EQ(*boot::simulate_boot(dev->env), Slot::kB);
    ASSERT_TRUE(a.boot_check());
    EXPECT_EQ(a.state()->last_result, "installed 1.1.0");
  }
}

// No key, or a key the bundle is not encrypted to: exit 31 once the
// signatures verified, before a byte of any payload is read or a bank written.
TEST_F(AgentTest, AnEncryptedBundleWithoutItsKeyIsRefusedBeforeAnyPayloadByte) {
  encrypted_ = true;
  const Bytes b = make_bundle();
  std::uint64_t payloads_at = 0;
  {
    MemoryReader probe(b);
    auto rd = bundle::BundleReader::open(probe);
    ASSERT_TRUE(rd);
    payloads_at = (*rd)->offset();
  }
  for (std::optional<std::uint8_t> key : {std::optional<std::uint8_t>(), std::optional<std::uint8_t>(0),
                                          std::optional<std::uint8_t>(3)}) {
    SCOPED_TRACE(key ? int(*key) : -1);
    auto dev = fresh(base_);
    dev->decryption_key = key;
    CountingReader in(b);
    auto rep = dev->agent().install(in);
    ASSERT_FALSE(rep);
    EXPECT_EQ(rep.error().code, ErrorCode::kDecryptionKey) << rep.error().message;
    EXPECT_LE(in.count, payloads_at) << "a payload byte was read";
    EXPECT_EQ(dev->bank_b.survivors(), Bytes(kBankSize, 0)) << "the inactive bank was written";
    EXPECT_EQ(prefix(dev->bank_a.survivors(), base_.size()), base_);
  }
}

// A byte of ciphertext changed anywhere in the payloads (tags included) is
// refused by its signed chunk hash before it is decrypted: the install fails
// with payload_mismatch and nothing is marked bootable.
TEST_F(AgentTest, TamperedCiphertextIsRefusedBeforeDecryption) {
  encrypted_ = true;
  const Bytes b = make_bundle("1.1.0", {"board"}, {}, 0, /*with_delta=*/false);  // every payload byte is read
  std::uint64_t payloads_at = 0;
  {
    MemoryReader probe(b);
    auto rd = bundle::BundleReader::open(probe);
    ASSERT_TRUE(rd);
    payloads_at = (*rd)->offset();
  }
  int tried = 0;
  for (std::uint64_t at = payloads_at + 512; at + 1024 < b.size(); at += 997) {
    Bytes t = b;
    t[at] ^= 0x20;
    auto dev = fresh(base_);
    CountingReader in(t);
    auto rep = dev->agent().install(in);
    if (rep) {
      // A byte of tar padding or of a payload the device did not read.
      EXPECT_EQ(prefix(dev->bank_b.survivors(), image_.size()), image_);
      continue;
    }
    ++tried;
    EXPECT_TRUE(rep.error().code == ErrorCode::kPayloadMismatch || rep.error().code == ErrorCode::kMalformed)
        << "offset " << at << ": " << rep.error().message;
    EXPECT_EQ(rep.error().message.find("decrypt"), std::string::npos) << "reached the cipher: " << rep.error().message;
    EXPECT_EQ(*boot::simulate_boot(dev->env), Slot::kA);
  }
  EXPECT_GT(tried, 20);
}

TEST_F(PowerCutTest, EveryWriteOfAFullInstall) {
  bundle_ = make_bundle("1.1.0", {"board"}, {}, 0, /*with_delta=*/false);
  every_cut(20, 104729);
}

// Cut late in the write phase, then resume: the resumed run writes less than
// the image and fetches less of the payload than a fresh install (what it
// already wrote is skipped in the stream, not read).
TEST_F(PowerCutTest, ResumeFetchesNoFrameTwice) {
  for (int variant = 0; variant < 4; ++variant) {
    const bool with_delta = variant % 2 == 0;
    encrypted_ = variant >= 2;
    SCOPED_TRACE(std::string(with_delta ? "delta" : "full") + (encrypted_ ? ", encrypted" : ""));
    bundle_ = make_bundle("1.1.0", {"board"}, {}, 0, with_delta);
    std::uint64_t total = 0;
    bool completed = false;
    run(0, LossMode::kDropUnsynced, 1, nullptr, &total, &completed);
    Device clean(bank_with(base_), Bytes(kBankSize, 0), {}, boot::Vars{{"ota_slot", "a"}}, root_, PowerCut());
    CountingReader clean_in(bundle_);
    auto clean_rep = clean.agent().install(clean_in);
    ASSERT_TRUE(clean_rep) << clean_rep.error().message;

    Survivors s = run(total * 3 / 4, LossMode::kDropUnsynced, 1, nullptr, nullptr, nullptr);
    Device dev(s.a, s.b, s.records, s.env, root_, PowerCut());
    Agent a = dev.agent();
    CountingReader in(bundle_);
    auto rep = a.install(in);
    ASSERT_TRUE(rep) << rep.error().message;
    EXPECT_TRUE(rep->resumed);
    EXPECT_LT(rep->bytes_written, image_.size() / 2);
    // The delta here fits in two chunks, and a resumed patcher reads the
    // first for the header; the full image spans nine.
    if (with_delta)
      EXPECT_LE(in.count, clean_in.count);
    else
      EXPECT_LT(in.count, clean_in.count / 2) << "the resumed install fetched what it had already written";
    EXPECT_EQ(prefix(dev.bank_b.survivors(), image_.size()), image_);
  }
}

TEST_F(AgentTest, ReuseCopiesTheActiveBanksChunksAndFetchesLess) {
  const Bytes b = make_reuse_bundle();
  const Bytes full_only = make_bundle("1.1.0", {"board"}, {}, 0, /*with_delta=*/false);
  auto plain = fresh(base_);
  CountingReader plain_in(full_only);
  auto full_rep = plain->agent().install(plain_in);
  ASSERT_TRUE(full_rep) << full_rep.error().message;

  auto dev = fresh(base_);
  Agent a = dev->agent();
  CountingReader in(b);
  auto rep = a.install(in);
  ASSERT_TRUE(rep) << rep.error().message;
  EXPECT_TRUE(rep->reuse);
  EXPECT_FALSE(rep->delta);
  EXPECT_EQ(rep->payload, "chunks.otc");
  EXPECT_GT(rep->bytes_reused, image_.size() / 2);
  EXPECT_LT(in.count, plain_in.count) << "reuse read less of the bundle than the full image";
  EXPECT_EQ(prefix(dev->bank_b.survivors(), image_.size()), image_);
  ASSERT_EQ(*boot::simulate_boot(dev->env), Slot::kB);
  ASSERT_TRUE(a.boot_check());
  EXPECT_EQ(a.state()->last_result, "installed 1.1.0");

  // A device whose bank holds nothing of the image takes the full image.
  auto other = fresh(test::random_bytes(64 * 1024, 77));
  CountingReader other_in(b);
  auto other_rep = other->agent().install(other_in);
  ASSERT_TRUE(other_rep) << other_rep.error().message;
  EXPECT_FALSE(other_rep->reuse);
  EXPECT_EQ(other_rep->payload, "full.zst");
}

TEST_F(PowerCutTest, EveryWriteOfAReuseInstall) {
  bundle_ = make_reuse_bundle();
  every_cut(8, 6151);
}

TEST_F(PowerCutTest, ReuseResumesAtItsLastChunkCheckpoint) {
  bundle_ = make_reuse_bundle(/*with_full=*/false);
  std::uint64_t total = 0;
  bool completed = false;
  run(0, LossMode::kDropUnsynced, 1, nullptr, &total, &completed);
  ASSERT_TRUE(completed);
  Survivors s = run(total * 3 / 4, LossMode::kDropUnsynced, 1, nullptr, nullptr, nullptr);
  Device dev(s.a, s.b, s.records, s.env, root_, PowerCut());
  Agent a = dev.agent();
  CountingReader in(bundle_);
  auto rep = a.install(in);
  ASSERT_TRUE(rep) << rep.error().message;
  EXPECT_TRUE(rep->reuse);
  EXPECT_TRUE(rep->resumed);
  EXPECT_LT(rep->bytes_written, image_.size() / 2);
  EXPECT_EQ(prefix(dev.bank_b.survivors(), image_.size()), image_);
}

TEST_F(PowerCutTest, SeededMultiCutsOfAReuseInstall) {
  bundle_ = make_reuse_bundle();
  std::uint64_t total = 0;
  bool completed = false;
  run(0, LossMode::kDropUnsynced, 1, nullptr, &total, &completed);
  std::mt19937_64 rng(4242);
  for (int trial = 0; trial < 20; ++trial) {
    Survivors s;
    bool have = false;
    for (int cut = 0; cut < 4; ++cut) {
      const std::uint64_t n = 1 + rng() % (total / 3 + 1);
      const auto mode = static_cast<LossMode>(rng() % 3);
      bool done = false;
      s = run(n, mode, rng(), have ? &s : nullptr, nullptr, &done);
      have = true;
      if (done) break;
      ASSERT_EQ(prefix(s.a, base_.size()), base_) << "trial " << trial << " cut " << cut;
      boot::MemoryEnvironment env;
      env.vars = s.env;
      auto booted = boot::simulate_boot(env);
      ASSERT_TRUE(booted);
      s.env = env.vars;
      if (*booted == Slot::kB) break;
    }
    check_and_finish(s, "reuse trial " + std::to_string(trial));
    if (HasFatalFailure()) return;
  }
}

TEST_F(PowerCutTest, SeededMultiCuts) {
  bundle_ = make_bundle();
  std::uint64_t total = 0;
  bool completed = false;
  run(0, LossMode::kDropUnsynced, 1, nullptr, &total, &completed);
  std::mt19937_64 rng(42);
  for (int trial = 0; trial < 20; ++trial) {
    Survivors s;
    bool have = false;
    // Up to four cuts in a row, each a few writes into the resumed install.
    for (int cut = 0; cut < 4; ++cut) {
      const std::uint64_t n = 1 + rng() % (total / 3 + 1);
      const auto mode = static_cast<LossMode>(rng() % 3);
      bool done = false;
      s = run(n, mode, rng(), have ? &s : nullptr, nullptr, &done);
      have = true;
      if (done) break;
      ASSERT_EQ(prefix(s.a, base_.size()), base_) << "trial " << trial << " cut " << cut;
      // The reboot after the cut: the bootloader decides what runs.
      boot::MemoryEnvironment env;
      env.vars = s.env;
      auto booted = boot::simulate_boot(env);
      ASSERT_TRUE(booted);
      s.env = env.vars;
      if (*booted == Slot::kB) break;  // the trial began: check_and_finish takes over
    }
    check_and_finish(s, "trial " + std::to_string(trial));
    if (HasFatalFailure()) return;
  }
}

// ---- revert on abort (Agent::revert) ----

class RevertTest : public AgentTest {
 protected:
  // Installs 1.1.0 (full image, or with its delta), reboots into it and commits.
  void install_and_commit(Device& dev, bool with_delta) {
    Agent a = dev.agent();
    Bytes bundle = make_bundle("1.1.0", {"board"}, {}, 0, with_delta);
    CountingReader in(bundle);
    ASSERT_TRUE(a.install(in));
    ASSERT_EQ(*boot::simulate_boot(dev.env), Slot::kB);
    ASSERT_TRUE(a.boot_check());
    auto s = a.state();
    ASSERT_TRUE(s);
    ASSERT_EQ(s->last_result, "installed 1.1.0");
  }
  static std::string var(const Device& dev, const std::string& k) {
    auto it = dev.env.vars().find(k);
    return it == dev.env.vars().end() ? "0" : it->second;
  }
};

TEST_F(RevertTest, ACommittedFullInstallRevertsToThePreviousImageOnce) {
  auto dev = fresh(base_);
  dev->record_previous = true;  // a full image: the running bank is hashed before the trial
  install_and_commit(*dev, false);
  ASSERT_FALSE(HasFatalFailure());
  Agent a = dev->agent();
  {
    auto s = a.state();
    ASSERT_TRUE(s);
    ASSERT_TRUE(s->banks[0]) << "the previous image was recorded at install";
    EXPECT_EQ(s->banks[0]->size, kBankSize);  // an unknown factory image: the whole bank
  }
  ASSERT_TRUE(a.revert("1.1.0"));
  // The same trial as an install: boot a once.
  EXPECT_EQ(var(*dev, "ota_slot"), "a");
  EXPECT_EQ(var(*dev, "upgrade_available"), "1");
  {
    auto s = a.state();
    ASSERT_TRUE(s);
    EXPECT_EQ(s->install.stage, Stage::kTrial);
    EXPECT_EQ(s->install.payload, agent::kRevertPayload);
  }
  ASSERT_EQ(*boot::simulate_boot(dev->env), Slot::kA);
  ASSERT_TRUE(a.boot_check());
  auto s = a.state();
  ASSERT_TRUE(s);
  EXPECT_EQ(s->install.stage, Stage::kNone);
  EXPECT_EQ(s->last_result, "reverted to ");  // the factory image has no version
  EXPECT_EQ(s->outcome, agent::Outcome::kInstalled);
  EXPECT_EQ(var(*dev, "upgrade_available"), "0");
  EXPECT_EQ(*boot::simulate_boot(dev->env), Slot::kA);
  EXPECT_EQ(prefix(dev->bank_a.survivors(), base_.size()), base_);
  // Once: the device no longer runs 1.1.0, so a second revert changes nothing.
  auto again = a.revert("1.1.0");
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, ErrorCode::kUsage);
  EXPECT_EQ(var(*dev, "ota_slot"), "a");
  EXPECT_EQ(var(*dev, "upgrade_available"), "0");
}

TEST_F(RevertTest, ADeltaInstallKnowsItsBaseWithoutHashingAndReverts) {
  auto dev = fresh(base_);  // record_previous off: the delta's base is the record
  install_and_commit(*dev, true);
  ASSERT_FALSE(HasFatalFailure());
  Agent a = dev->agent();
  auto s = a.state();
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->banks[0]);
  EXPECT_EQ(s->banks[0]->size, base_.size());
  EXPECT_EQ(s->banks[0]->hash, content_hash(base_));
  ASSERT_TRUE(a.revert("1.1.0"));
  ASSERT_EQ(*boot::simulate_boot(dev->env), Slot::kA);
  ASSERT_TRUE(a.boot_check());
  EXPECT_EQ(a.state()->last_result, "reverted to ");
  EXPECT_EQ(*boot::simulate_boot(dev->env), Slot::kA);
}

// The running bank is not the delta's base: the hash checked for the delta
// covers only the base's size, so the whole bank is recorded before the trial
// of the full image, and a change past that prefix still refuses the revert.
TEST_F(RevertTest, AWrongDeltaBaseIsNotTakenForThePreviousImage) {
  const Bytes other = test::random_bytes(64 * 1024, 77);
  auto dev = fresh(other);
  dev->record_previous = true;
  {
    Agent a = dev->agent();
    Bytes bundle = make_bundle();
    CountingReader in(bundle);
    auto rep = a.install(in);
    ASSERT_TRUE(rep) << rep.error().message;
    ASSERT_FALSE(rep->delta);
    ASSERT_EQ(*boot::simulate_boot(dev->env), Slot::kB);
    ASSERT_TRUE(a.boot_check());
    auto s = a.state();
    ASSERT_TRUE(s);
    ASSERT_TRUE(s->banks[0]);
    EXPECT_EQ(s->banks[0]->size, kBankSize);
  }
  const std::uint8_t junk[1] = {0x5a};
  ASSERT_TRUE(dev->bank_a.write_at(kBankSize - 10, ByteSpan(junk, 1)));  // past any base size
  ASSERT_TRUE(dev->bank_a.sync());
  auto st = dev->agent().revert("1.1.0");
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kPayloadMismatch);
  EXPECT_EQ(var(*dev, "ota_slot"), "b");
}

TEST_F(RevertTest, AFullInstallThatDidNotRecordThePreviousImageIsNotReverted) {
  auto dev = fresh(base_);
  install_and_commit(*dev, false);
  ASSERT_FALSE(HasFatalFailure());
  Agent a = dev->agent();
  auto st = a.revert("1.1.0");
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kUsage);
  EXPECT_NE(st.error().message.find("no previous image was recorded"), std::string::npos) << st.error().message;
  EXPECT_EQ(var(*dev, "ota_slot"), "b");
  EXPECT_EQ(var(*dev, "upgrade_available"), "0");
  EXPECT_EQ(a.state()->install.stage, Stage::kNone);
}

TEST_F(RevertTest, APreviousBankThatNoLongerVerifiesIsNotSwitchedTo) {
  auto dev = fresh(base_);
  install_and_commit(*dev, true);
  ASSERT_FALSE(HasFatalFailure());
  // Bank a changed after the install (overwritten, corrupted).
  const std::uint8_t junk[4] = {1, 2, 3, 4};
  ASSERT_TRUE(dev->bank_a.write_at(1000, ByteSpan(junk, sizeof junk)));
  ASSERT_TRUE(dev->bank_a.sync());
  const auto writes = dev->power.writes();
  Agent a = dev->agent();
  auto st = a.revert("1.1.0");
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kPayloadMismatch);
  EXPECT_NE(st.error().message.find("no longer holds"), std::string::npos) << st.error().message;
  EXPECT_EQ(dev->power.writes(), writes) << "a refused revert writes nothing";
  EXPECT_EQ(var(*dev, "ota_slot"), "b");
  EXPECT_EQ(var(*dev, "upgrade_available"), "0");
  EXPECT_EQ(*boot::simulate_boot(dev->env), Slot::kB);
  EXPECT_EQ(a.state()->install.stage, Stage::kNone);
}

TEST_F(RevertTest, APreviousImageFailingItsHealthCheckGoesBackToTheNewImage) {
  auto dev = fresh(base_);
  install_and_commit(*dev, true);
  ASSERT_FALSE(HasFatalFailure());
  ASSERT_TRUE(dev->agent().revert("1.1.0"));
  ASSERT_EQ(*boot::simulate_boot(dev->env), Slot::kA);
  Agent sick = dev->agent([] { return Status(fail(ErrorCode::kIo, "service did not start")); });
  ASSERT_TRUE(sick.boot_check());
  auto s = sick.state();
  ASSERT_TRUE(s);
  EXPECT_EQ(s->install.stage, Stage::kNone);
  EXPECT_EQ(s->outcome, agent::Outcome::kRolledBack);
  EXPECT_NE(s->last_result.find("health check failed"), std::string::npos) << s->last_result;
  // The new image boots again, committed (no trial), and still verifies.
  EXPECT_EQ(var(*dev, "ota_slot"), "b");
  EXPECT_EQ(var(*dev, "upgrade_available"), "0");
  EXPECT_EQ(*boot::simulate_boot(dev->env), Slot::kB);
  EXPECT_EQ(prefix(dev->bank_b.survivors(), image_.size()), image_);
  ASSERT_TRUE(s->banks[1]);
  EXPECT_EQ(s->banks[1]->version, "1.1.0");
}

TEST_F(RevertTest, ARevertRefusesWhileATrialIsPending) {
  auto dev = fresh(base_);
  Agent a = dev->agent();
  Bytes bundle = make_bundle();
  CountingReader in(bundle);
  ASSERT_TRUE(a.install(in));
  auto st = a.revert("1.1.0");
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kTrialPending);
  EXPECT_EQ(a.state()->install.stage, Stage::kTrial);
}

// Power cut at every write of a revert (the record, the environment store,
// the trial's record, then the boot check's commit), three loss modes: the
// device boots either verified image after every cut, and a restarted agent
// (boot check, then revert() again as the daemon asks) ends reverted.
class RevertPowerCut : public RevertTest {
 protected:
  Survivors committed() {
    auto dev = fresh(base_);
    install_and_commit(*dev, true);
    return Survivors{dev->bank_a.survivors(), dev->bank_b.survivors(), dev->state.records(), dev->env.vars()};
  }
  // Revert then boot and boot-check, with power cut at write n (0: never).
  Survivors run(const Survivors& from, std::uint64_t n, LossMode mode, std::uint64_t seed, std::uint64_t* writes) {
    Device dev(from.a, from.b, from.records, from.env, root_, PowerCut(n, mode, seed));
    Agent a = dev.agent();
    if (a.revert("1.1.0") && !dev.power.cut()) {
      boot::MemoryEnvironment env;  // the reboot is not a write
      env.vars = dev.env.vars();
      EXPECT_EQ(*boot::simulate_boot(env), Slot::kA);
      Device after(dev.bank_a.survivors(), dev.bank_b.survivors(), dev.state.records(), env.vars, root_,
                   PowerCut(n == 0 ? 0 : n - std::min(n, dev.power.writes()), mode, seed));
      Agent b = after.agent();
      const bool done = static_cast<bool>(b.boot_check());
      if (!done) {
        EXPECT_TRUE(after.power.cut());
      }
      if (writes) *writes = dev.power.writes() + after.power.writes();
      return Survivors{after.bank_a.survivors(), after.bank_b.survivors(), after.state.records(), after.env.vars()};
    }
    EXPECT_TRUE(dev.power.cut()) << "the revert failed without a cut";
    if (writes) *writes = dev.power.writes();
    return Survivors{dev.bank_a.survivors(), dev.bank_b.survivors(), dev.state.records(), dev.env.vars()};
  }
  // After the cut: boots a verified image; a fresh agent finishes the revert.
  void check_and_finish(const Survivors& s, const std::string& where) {
    ASSERT_EQ(prefix(s.a, base_.size()), base_) << where;
    ASSERT_EQ(prefix(s.b, image_.size()), image_) << where;
    boot::MemoryEnvironment env;
    env.vars = s.env;
    auto booted = boot::simulate_boot(env);
    ASSERT_TRUE(booted) << where;
    Device dev(s.a, s.b, s.records, env.vars, root_, PowerCut());
    Agent a = dev.agent();
    ASSERT_TRUE(a.boot_check()) << where;  // every boot
    auto st = a.state();
    ASSERT_TRUE(st) << where;
    if (st->last_result != "reverted to ") {
      // Not reverted yet (or cut before the trial): the daemon asks again.
      ASSERT_TRUE(a.revert("1.1.0")) << where;
      ASSERT_EQ(*boot::simulate_boot(dev.env), Slot::kA) << where;
      ASSERT_TRUE(a.boot_check()) << where;
      st = a.state();
      ASSERT_TRUE(st) << where;
    }
    EXPECT_EQ(st->last_result, "reverted to ") << where;
    EXPECT_EQ(st->install.stage, Stage::kNone) << where;
    EXPECT_EQ(*boot::simulate_boot(dev.env), Slot::kA) << where;
    EXPECT_EQ(dev.env.vars().at("upgrade_available"), "0") << where;
  }
};

TEST_F(RevertPowerCut, EveryWriteOfARevertInThreeLossModes) {
  const Survivors start = committed();
  ASSERT_FALSE(HasFatalFailure());
  std::uint64_t total = 0;
  check_and_finish(run(start, 0, LossMode::kDropUnsynced, 1, &total), "no cut");
  ASSERT_FALSE(HasFatalFailure());
  ASSERT_GE(total, 4u) << "the record, the environment, the trial's record, the commit";
  RecordProperty("writes_per_revert", static_cast<int>(total));
  test::for_each_cut(total, [&](const test::Cut& c) {
    check_and_finish(run(start, c.n, c.mode, c.n * 7919, nullptr), c.where);
  });
}

}  // namespace
}  // namespace ota
