// Where libota looks for its modules (libota/src/core/module_path.hpp): an
// installed binary never tries a build-tree path; a build-tree binary tries
// its own build's module first.
#include <gtest/gtest.h>

#include "core/module_path.hpp"

namespace ota::net {
namespace {

ModuleSearch search(std::string exe, std::string env = {}) {
  ModuleSearch s;
  s.env = std::move(env);
  s.exe = std::move(exe);
  s.build_dir = "/home/dev/ota/build";
  s.build_path = "/home/dev/ota/build/libota/libota-mqtt.so";
  s.install_path = "/usr/lib/x86_64-linux-gnu/ota/libota-mqtt.so";
  s.relative_dir = "lib/x86_64-linux-gnu/ota";
  return s;
}

bool mentions_build_tree(const std::vector<std::string>& paths) {
  for (const auto& p : paths)
    if (p.rfind("/home/dev/ota/build/", 0) == 0) return true;
  return false;
}

TEST(ModulePath, InstalledBinaryNeverTriesTheBuildTree) {
  const auto c = module_candidates(search("/usr/bin/ota-agent"));
  EXPECT_FALSE(mentions_build_tree(c));
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0], "/usr/bin/../lib/x86_64-linux-gnu/ota/libota-mqtt.so");  // the install path, relative
  EXPECT_EQ(c[1], "/usr/lib/x86_64-linux-gnu/ota/libota-mqtt.so");
}

TEST(ModulePath, RelocatedInstallTriesItsOwnTreeThenTheInstallPath) {
  const auto c = module_candidates(search("/opt/ota/bin/ota"));
  EXPECT_FALSE(mentions_build_tree(c));
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0], "/opt/ota/bin/../lib/x86_64-linux-gnu/ota/libota-mqtt.so");
  EXPECT_EQ(c[1], "/usr/lib/x86_64-linux-gnu/ota/libota-mqtt.so");
}

TEST(ModulePath, BuildTreeBinaryTriesItsBuildsModuleFirst) {
  const auto c = module_candidates(search("/home/dev/ota/build/tools/ota"));
  ASSERT_EQ(c.size(), 3u);
  EXPECT_EQ(c[0], "/home/dev/ota/build/libota/libota-mqtt.so");
  EXPECT_EQ(c[2], "/usr/lib/x86_64-linux-gnu/ota/libota-mqtt.so");
}

TEST(ModulePath, ASiblingDirectoryWithTheSamePrefixIsNotTheBuildTree) {
  EXPECT_FALSE(mentions_build_tree(module_candidates(search("/home/dev/ota/build2/tools/ota"))));
  EXPECT_FALSE(mentions_build_tree(module_candidates(search("/home/dev/ota/build"))));
  EXPECT_FALSE(mentions_build_tree(module_candidates(search(""))));  // /proc/self/exe unreadable
  EXPECT_EQ(module_candidates(search("")).back(), "/usr/lib/x86_64-linux-gnu/ota/libota-mqtt.so");
  EXPECT_TRUE(is_below("/b/build/x", "/b/build/"));
  EXPECT_FALSE(is_below("/x", "/"));
  EXPECT_FALSE(is_below("/x", ""));
}

TEST(ModulePath, EnvironmentOverrideComesFirst) {
  const auto c = module_candidates(search("/usr/bin/ota", "/srv/modules/libota-mqtt.so"));
  ASSERT_EQ(c.size(), 3u);
  EXPECT_EQ(c[0], "/srv/modules/libota-mqtt.so");
  EXPECT_FALSE(mentions_build_tree(c));
}

// This test executable runs from the build tree: the real search sees it so.
TEST(ModulePath, ThisTestRunsFromTheBuildTree) {
  const auto s = module_search("OTA_TEST_NO_SUCH_VARIABLE", OTA_BUILD_DIR, OTA_BUILD_DIR "/libota/m.so",
                               "/usr/lib/ota/m.so", "lib/ota");
  EXPECT_TRUE(s.env.empty());
  ASSERT_FALSE(s.exe.empty());
  const auto c = module_candidates(s);
  EXPECT_EQ(c.front(), OTA_BUILD_DIR "/libota/m.so") << s.exe << " vs " << s.build_dir;
}

}  // namespace
}  // namespace ota::net
