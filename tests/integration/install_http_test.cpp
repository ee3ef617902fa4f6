// The agent's install over HTTP, in process, from a real nginx on a loopback
// port into real file banks: the user-space copies per byte of the image,
// counted where the install path copies (count_copy in libota, and the HTTP
// module's own count of body bytes it copied, fetch::Stats::bytes_copied),
// for the three payload kinds with the chunks and frames of a real release
// (64 KiB chunks, 1 MiB frames). HTTP adds at most one copy per byte (libcurl's
// receive buffer into the reader's), so the bound of two holds end to end.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdio>
#include <memory>

#include "ota/device/agent.hpp"
#include "ota/device/fetch.hpp"
#include "support/device_sim.hpp"
#include "support/file_device.hpp"
#include "support/nginx.hpp"
#include "support/random.hpp"
#include "support/signing.hpp"
#include "support/temp_dir.hpp"

namespace ota {
namespace {

const trust::Time kNow = test::at("2026-06-01");

class InstallOverHttp : public testing::Test {
 protected:
  void SetUp() override {
    if (test::find_nginx().empty()) GTEST_SKIP() << "nginx is not installed (scripts/install-deps.sh)";
    base_ = test::structured_bytes(300 * 1024, 720);
    image_ = test::with_insertion(test::with_random_edits(base_, 600, 721), 90'000, test::random_bytes(9000, 722));
    test::write_bytes(dir_.file("base.img"), base_);
    test::write_bytes(dir_.file("new.img"), image_);
    root_ = test::root_envelope(test::make_root(1, test::at("2030-01-01"), 1, keys_.ptrs({0})), keys_.ptrs({0}));
    ::mkdir(dir_.file("srv").c_str(), 0755);
    server_ = std::make_unique<test::Nginx>(dir_.file("srv"));
    ASSERT_TRUE(server_->running()) << server_->error_log();
  }

  // Serves a bundle of a real release's chunk and frame sizes as `name`.
  std::string serve(const std::string& name, bool compress) {
    auto o = test::small_bundle(dir_.file("new.img"), {dir_.file("base.img")}, "1.1.0", {"board"});
    o.compress = compress;
    o.chunk_size = 64 * 1024;
    o.full_frame_log = 20;
    o.delta_frame_log = 20;
    test::write_bytes(server_->www() + "/" + name, test::signed_bundle(o, keys_.ptrs({0})));
    return server_->url(name);
  }

  // Installs from `url` into a fresh device whose bank a holds `active`;
  // returns user-space bytes copied per byte of the image.
  double copies_per_byte(const std::string& url, const Bytes& active, bool expect_delta) {
    test::TempDir dir;
    test::FileDevice dev(dir, active, root_);
    auto agent = dev.agent(kNow);
    auto in = fetch::open(url);
    EXPECT_TRUE(in) << in.error().message;
    if (!in) return 1e9;
    const std::uint64_t before = bytes_copied();
    auto rep = agent.install(**in);
    const std::uint64_t copied = bytes_copied() - before + (*in)->stats().bytes_copied;
    EXPECT_TRUE(rep) << rep.error().message;
    if (!rep) return 1e9;
    EXPECT_EQ(rep->delta, expect_delta);
    EXPECT_GT((*in)->stats().bytes_copied, 0u) << "the HTTP module counts what it copies";
    EXPECT_TRUE(dev.bank_b_prefix(image_.size()) == image_);
    return static_cast<double>(copied) / static_cast<double>(image_.size());
  }

  test::Keyring keys_{1};
  test::TempDir dir_;
  Bytes base_, image_;
  trust::Envelope root_;
  std::unique_ptr<test::Nginx> server_;
};

TEST_F(InstallOverHttp, AtMostTwoUserSpaceCopiesPerByte) {
  const std::string zstd = serve("fw.otb", true), stored = serve("stored.otb", false);
  const double delta = copies_per_byte(zstd, base_, true);
  const double full = copies_per_byte(zstd, Bytes(1000, 0x5a), false);
  const double plain = copies_per_byte(stored, Bytes(1000, 0x5a), false);
  std::printf("over HTTP, user-space copies per byte of the image: delta %.3f, full zstd %.3f, full stored %.3f\n",
              delta, full, plain);
  EXPECT_LE(delta, 2.0);
  EXPECT_LE(full, 2.0);
  EXPECT_LE(plain, 2.0);
}

// A device two versions back (r1 installed; the bundle of r3 carries a delta
// from r2, the full image and a chunks payload): no delta applies, so it
// reuses what its banks hold and fetches the rest with Range requests.
// nginx's access log counts the body bytes sent.
TEST_F(InstallOverHttp, ADeviceTwoVersionsBackFetchesLittleByReuse) {
  const Bytes r1 = test::structured_bytes(test::FileDevice::kBankSize - 64 * 1024, 730);
  const Bytes r2 = test::with_insertion(test::with_random_edits(r1, 4, 731), 200'000, test::random_bytes(5000, 732));
  const Bytes r3 = test::with_insertion(test::with_random_edits(r2, 4, 733), 350'000, test::random_bytes(7000, 734));
  test::write_bytes(dir_.file("r1.img"), r1);
  test::write_bytes(dir_.file("r2.img"), r2);
  test::write_bytes(dir_.file("r3.img"), r3);
  auto o = test::small_bundle(dir_.file("r3.img"), {dir_.file("r2.img")}, "1.1.0", {"board"});
  o.chunk_size = 64 * 1024;
  o.full_frame_log = 20;
  o.delta_frame_log = 20;
  o.reuse = true;
  o.reuse_params = chunks::Params{4096, 12, 65536};  // ~8 KiB chunks for a 450 KiB image
  auto staged = bundle::stage(o);
  ASSERT_TRUE(staged) << staged.error().message;
  std::uint64_t full_size = 0, chunks_size = 0;
  for (const auto& p : (*staged)->manifest().payloads) {
    if (p.kind == manifest::PayloadKind::kFull) full_size = p.size;
    if (p.kind == manifest::PayloadKind::kChunks) chunks_size = p.size;
  }
  test::write_bytes(server_->www() + "/r3.otb", test::signed_bundle(o, keys_.ptrs({0})));
  // The direct delta r1 -> r3, for comparison.
  auto direct = test::small_bundle(dir_.file("r3.img"), {dir_.file("r1.img")}, "1.1.0", {"board"});
  direct.delta_frame_log = 20;
  direct.include_full = false;
  auto ds = bundle::stage(direct);
  ASSERT_TRUE(ds) << ds.error().message;
  const std::uint64_t delta_size = ds.value()->manifest().payloads.at(0).size;

  test::TempDir dir;
  test::FileDevice dev(dir, r1, root_);
  auto agent = dev.agent(kNow);
  auto in = fetch::open(server_->url("r3.otb"));
  ASSERT_TRUE(in) << in.error().message;
  auto rep = agent.install(**in);
  ASSERT_TRUE(rep) << rep.error().message;
  EXPECT_TRUE(rep->reuse);
  EXPECT_EQ(rep->payload, "chunks.otc");
  EXPECT_TRUE(dev.bank_b_prefix(r3.size()) == r3);
  std::uint64_t served = 0, requests = 0;
  for (const auto& e : server_->access_log()) {
    served += e.bytes;
    ++requests;
  }
  std::printf("two versions back over HTTP: served %llu bytes in %llu requests; full payload %llu, chunks payload %llu, "
              "direct delta %llu, image %zu\n",
              static_cast<unsigned long long>(served), static_cast<unsigned long long>(requests),
              static_cast<unsigned long long>(full_size), static_cast<unsigned long long>(chunks_size),
              static_cast<unsigned long long>(delta_size), r3.size());
  // Eight edits and two insertions across ~60 chunks: most of the image is copied.
  EXPECT_LT(served, full_size / 2) << "reuse fetched most of the image";
  EXPECT_GT(rep->bytes_reused, r3.size() / 2);
}

}  // namespace
}  // namespace ota
