// A bundle over 4 GiB through the real binary. Slow (hashes and writes
// several GB), so it is its own executable labelled `large`: the release test
// run includes it, the sanitizer run skips it.
#include <gtest/gtest.h>
#include <sys/statvfs.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "support/subprocess.hpp"
#include "support/temp_dir.hpp"

namespace ota {
namespace {

using test::run_process;
using test::TempDir;

const std::string kOta = OTA_CLI_PATH;

// A stored (uncompressed) 4.5 GiB sparse image: sizes and offsets past 4 GiB
// all the way through build, verify and inspect. Slow (hashes 9 GB), so it is
// labelled `large`; skipped when the disk cannot hold the bundle.
TEST(BundleCliLarge, BundleOver4GiB) {
  TempDir dir;
  struct statvfs vfs {};
  ASSERT_EQ(::statvfs(dir.path().c_str(), &vfs), 0);
  const std::uint64_t image_size = (4ull << 30) + (512ull << 20) + 12345;
  if (static_cast<std::uint64_t>(vfs.f_bavail) * vfs.f_frsize < image_size + (2ull << 30))
    GTEST_SKIP() << "not enough free disk for a 4.5 GiB bundle";
  const std::string img = dir.file("big.img");
  {
    std::ofstream f(img, std::ios::binary);
    f.seekp(static_cast<std::streamoff>(image_size - 6));
    f.write("tail!\n", 6);
    f.seekp(1000);
    f.write("head", 4);
  }
  auto r = run_process({kOta, "keygen", "-o", dir.file("k")});
  ASSERT_EQ(r.exit_code, 0);
  ASSERT_EQ(run_process({kOta, "root", "init", "--key", dir.file("k.pub"), "--threshold", "1", "--expires",
                         "2099-01-01", "-o", dir.file("root.json"), "-q"})
                .exit_code,
            0);
  ASSERT_EQ(run_process({kOta, "root", "sign", dir.file("root.json"), "--key", dir.file("k.key")}).exit_code, 0);
  test::ProcessOptions slow;
  slow.timeout_seconds = 600;
  r = run_process({kOta, "build", "--image", img, "--version", "1.0.0", "--hw", "x", "--no-compress", "--key",
                   dir.file("k.key"), "-q", "-o", dir.file("big.otb")},
                  slow);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_process({kOta, "inspect", "--json", dir.file("big.otb")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto doc = nlohmann::json::parse(r.out);
  EXPECT_EQ(doc["manifest"]["target"]["size"].get<std::uint64_t>(), image_size);
  EXPECT_EQ(doc["manifest"]["payloads"][0]["size"].get<std::uint64_t>(), image_size);
  EXPECT_GT(doc["size"].get<std::uint64_t>(), image_size);
  r = run_process({kOta, "verify", dir.file("big.otb"), "--trust", dir.file("root.json"), "-q"}, slow);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // A flipped byte beyond 4 GiB is found.
  {
    std::fstream f(dir.file("big.otb"), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(doc["members"][2]["offset"].get<std::uint64_t>() + image_size - 3));
    f.write("X", 1);
  }
  r = run_process({kOta, "verify", dir.file("big.otb"), "--trust", dir.file("root.json"), "-q"}, slow);
  EXPECT_EQ(r.exit_code, 26) << r.err;
}

}  // namespace
}  // namespace ota
