// The signing commands end to end through the real `ota` binary: keygen,
// root init/sign/rotate, build, sign (own keys, export/import, an external
// signer), verify exit codes per failure, inspect, reproducibility across
// directory, time zone, umask and thread count, listing with GNU tar, and a
// bundle over 4 GiB (bundle_large_test.cpp).
#include <gtest/gtest.h>

#include <filesystem>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "support/random.hpp"
#include "support/subprocess.hpp"
#include "support/temp_dir.hpp"

namespace ota {
namespace {

using test::run_process;
using test::TempDir;

const std::string kOta = OTA_CLI_PATH;

class BundleCli : public testing::Test {
 protected:
  void SetUp() override {
    // Fixed creation time: bundles built in different seconds compare equal.
    ::setenv("SOURCE_DATE_EPOCH", "1800000000", 1);
    base_ = test::structured_bytes(60'000, 11);
    image_ = test::with_insertion(test::with_random_edits(base_, 80, 12), 30'000, test::random_bytes(1500, 13));
    test::write_bytes(path("base.img"), base_);
    test::write_bytes(path("new.img"), image_);
  }

  std::string path(const std::string& name) const { return dir_.file(name); }

  test::ProcessResult ota(std::vector<std::string> args) {
    args.insert(args.begin(), kOta);
    auto r = run_process(args);
    EXPECT_FALSE(r.crashed()) << "ota was killed by signal " << r.term_signal << "\n" << r.err;
    return r;
  }
  test::ProcessResult sh(const std::string& script) {
    auto r = run_process({"/bin/sh", "-c", script});
    EXPECT_FALSE(r.crashed()) << r.err;
    return r;
  }

  std::string keygen(const std::string& name) {
    auto r = ota({"keygen", "-o", path(name)});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::string id = r.out.substr(0, r.out.find('\n'));
    EXPECT_EQ(id.size(), 64u);
    return id;
  }

  // root.json: keys a, b, c; threshold 2; signed by a and b.
  void make_root() {
    ids_["a"] = keygen("a");
    ids_["b"] = keygen("b");
    ids_["c"] = keygen("c");
    ASSERT_EQ(ota({"root", "init", "--key", path("a.pub"), "--key", path("b.pub"), "--key", path("c.pub"),
                   "--threshold", "2", "--expires", "2099-01-01", "-o", path("root.json"), "-q"})
                  .exit_code,
              0);
    ASSERT_EQ(ota({"root", "sign", path("root.json"), "--key", path("a.key"), "--key", path("b.key")}).exit_code, 0);
  }

  // bundle.otb: full + delta from base.img, signed by the given keys.
  void build(const std::string& out, std::vector<std::string> keys, std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"build", "--image", path("new.img"), "--version", "1.2.0", "--hw", "board-a",
                                  "--hw",  "board-b", "--base", path("base.img"), "--security-version", "3",
                                  "--chunk-size", "4096", "-q", "-o", path(out)};
    for (const auto& k : keys) {
      args.push_back("--key");
      args.push_back(path(k + ".key"));
    }
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = ota(args);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }

  int verify(const std::string& bundle, std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"verify", path(bundle), "--trust", path("root.json"), "-q"};
    args.insert(args.end(), extra.begin(), extra.end());
    return ota(args).exit_code;
  }

  nlohmann::json inspect(const std::string& bundle) {
    auto r = ota({"inspect", "--json", path(bundle)});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return nlohmann::json::parse(r.out);
  }

  TempDir dir_;
  Bytes base_, image_;
  std::map<std::string, std::string> ids_;
};

TEST_F(BundleCli, KeygenWritesASecretOnlyTheOwnerCanRead) {
  auto r = sh("umask 000 && " + kOta + " keygen -o " + path("k"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  struct stat st {};
  ASSERT_EQ(::stat(path("k.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat(path("k.pub").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
  // The printed key id is the one in the public key file; the secret never reaches stdout.
  auto pub = nlohmann::json::parse(test::read_bytes(path("k.pub")));
  EXPECT_EQ(r.out, pub["keyid"].get<std::string>() + "\n");
  auto sec = nlohmann::json::parse(test::read_bytes(path("k.key")));
  EXPECT_EQ(r.out.find(sec["seed"].get<std::string>()), std::string::npos);
  EXPECT_EQ(r.err.find(sec["seed"].get<std::string>()), std::string::npos);
  // An existing key is never overwritten silently.
  EXPECT_EQ(ota({"keygen", "-o", path("k")}).exit_code, 2);
}

TEST_F(BundleCli, PassphraseComesFromAFileOrTheEnvironmentNeverArgv) {
  test::write_bytes(path("pp"), Bytes{'h', 'u', 'n', 't', 'e', 'r', '2', '\n'});
  ASSERT_EQ(ota({"keygen", "-o", path("s"), "--passphrase-file", path("pp")}).exit_code, 0);
  auto text = test::read_bytes(path("s.key"));
  EXPECT_EQ(std::string(text.begin(), text.end()).find("\"seed\""), std::string::npos);
  EXPECT_EQ(ota({"keygen", "-o", path("t"), "--passphrase", "hunter2"}).exit_code, 2);
  // Signing with it: no passphrase or a wrong one is exit 29, the right one works.
  auto no = ota({"build", "--image", path("new.img"), "--version", "1.0.0", "--hw", "x", "--key", path("s.key"), "-o",
                 path("s.otb")});
  EXPECT_EQ(no.exit_code, 29);
  EXPECT_FALSE(test::file_exists(path("s.otb")));
  auto wrong = sh("OTA_PP=hunter3 " + kOta + " build --image " + path("new.img") +
                  " --version 1.0.0 --hw x --passphrase-env OTA_PP --key " + path("s.key") + " -o " + path("s.otb"));
  EXPECT_EQ(wrong.exit_code, 29);
  EXPECT_EQ(wrong.err.find("hunter"), std::string::npos);
  auto right = sh("OTA_PP=hunter2 " + kOta + " build -q --image " + path("new.img") +
                  " --version 1.0.0 --hw x --passphrase-env OTA_PP --key " + path("s.key") + " -o " + path("s.otb"));
  EXPECT_EQ(right.exit_code, 0) << right.err;
}

TEST_F(BundleCli, ThresholdTwoOfThree) {
  make_root();
  build("one.otb", {"a"});
  EXPECT_EQ(verify("one.otb"), 22);
  // Signing again with the same key changes nothing: still one signature.
  ASSERT_EQ(ota({"sign", path("one.otb"), "--key", path("a.key"), "-q"}).exit_code, 0);
  EXPECT_EQ(verify("one.otb"), 22);
  ASSERT_EQ(ota({"sign", path("one.otb"), "--key", path("c.key"), "-q"}).exit_code, 0);
  EXPECT_EQ(verify("one.otb"), 0);
  // Signing touched only the signature block: the payload members are byte-identical.
  build("two.otb", {"a", "c"});
  EXPECT_EQ(test::read_bytes(path("one.otb")), test::read_bytes(path("two.otb")));
  // Unknown key.
  keygen("z");
  build("z.otb", {"z"});
  EXPECT_EQ(verify("z.otb"), 23);
  // Unsigned.
  build("u.otb", {});
  EXPECT_EQ(verify("u.otb"), 22);
  // Verifying without a trust root is a usage error, never a pass.
  EXPECT_EQ(ota({"verify", path("two.otb")}).exit_code, 2);
}

TEST_F(BundleCli, ExitCodePerFailure) {
  make_root();
  build("b.otb", {"a", "b"});
  ASSERT_EQ(verify("b.otb"), 0);
  auto doc = inspect("b.otb");
  const auto bytes = test::read_bytes(path("b.otb"));
  auto tampered = [&](std::uint64_t offset) {
    Bytes t = bytes;
    t[offset] ^= 0x01;
    test::write_bytes(path("t.otb"), t);
    return verify("t.otb");
  };
  const auto& members = doc["members"];
  EXPECT_EQ(tampered(members[0]["offset"].get<std::uint64_t>() + 10), 21);   // manifest
  EXPECT_EQ(tampered(members[0]["offset"].get<std::uint64_t>() - 500), 20);  // its tar header
  EXPECT_EQ(tampered(members[2]["offset"].get<std::uint64_t>() + 100), 26);  // full payload
  EXPECT_EQ(tampered(members[3]["offset"].get<std::uint64_t>() + 7), 26);    // delta payload
  EXPECT_EQ(tampered(bytes.size() - 3), 20);                                 // end of archive
  // Truncated and appended.
  test::write_bytes(path("t.otb"), Bytes(bytes.begin(), bytes.end() - 1));
  EXPECT_EQ(verify("t.otb"), 20);
  Bytes longer = bytes;
  longer.push_back(0);
  test::write_bytes(path("t.otb"), longer);
  EXPECT_EQ(verify("t.otb"), 20);
  // Policy.
  EXPECT_EQ(verify("b.otb", {"--hw", "board-a"}), 0);
  EXPECT_EQ(verify("b.otb", {"--hw", "board-z"}), 27);
  EXPECT_EQ(verify("b.otb", {"--installed-version", "1.2.0"}), 28);
  EXPECT_EQ(verify("b.otb", {"--installed-version", "1.10.0"}), 28);
  EXPECT_EQ(verify("b.otb", {"--installed-version", "1.2.0-rc.1"}), 0);
  EXPECT_EQ(verify("b.otb", {"--security-floor", "4"}), 28);
  EXPECT_EQ(verify("b.otb", {"--security-floor", "3"}), 0);
  // Expiry: of the root, and of the manifest.
  EXPECT_EQ(verify("b.otb", {"--at", "2099-01-02"}), 25);
  build("e.otb", {"a", "b"}, {"--expires", "2098-01-01"});
  EXPECT_EQ(verify("e.otb"), 0);
  EXPECT_EQ(verify("e.otb", {"--at", "2098-06-01"}), 25);
  // A missing bundle is an I/O error.
  EXPECT_EQ(verify("missing.otb"), 3);
}

TEST_F(BundleCli, JsonVerdictListsEveryCheck) {
  make_root();
  build("b.otb", {"a"});
  auto r = ota({"verify", path("b.otb"), "--trust", path("root.json"), "--json"});
  ASSERT_EQ(r.exit_code, 22);
  auto doc = nlohmann::json::parse(r.out);
  EXPECT_EQ(doc["ok"], false);
  EXPECT_EQ(doc["verdict"], "rejected");
  EXPECT_EQ(doc["error"]["code"], 22);
  bool saw = false;
  for (const auto& c : doc["checks"])
    if (c["check"] == "signatures") {
      saw = true;
      EXPECT_EQ(c["ok"], false);
      EXPECT_EQ(c["valid"], 1);
      EXPECT_EQ(c["threshold"], 2);
    }
  EXPECT_TRUE(saw);
  ASSERT_EQ(ota({"sign", path("b.otb"), "--key", path("b.key"), "-q"}).exit_code, 0);
  r = ota({"verify", path("b.otb"), "--trust", path("root.json"), "--json", "--metadata-only"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  doc = nlohmann::json::parse(r.out);
  EXPECT_EQ(doc["verdict"], "metadata-valid");
  EXPECT_EQ(doc["metadata_only"], true);
  for (const auto& c : doc["checks"]) EXPECT_NE(c["check"], "payloads");
}

TEST_F(BundleCli, RootRotationAndRevocation) {
  make_root();
  ids_["d"] = keygen("d");
  ids_["e"] = keygen("e");
  // v2: drop a (revoked), add d; signed by b and c (threshold of v1 and of v2).
  ASSERT_EQ(ota({"root", "rotate", "--from", path("root.json"), "--key", path("b.pub"), "--key", path("c.pub"),
                 "--key", path("d.pub"), "--revoke", ids_["a"], "--expires", "2099-01-01", "-o", path("root2.json"), "-q"})
                .exit_code,
            0);
  // Signed by new keys only (d): not a threshold of v1.
  ASSERT_EQ(ota({"root", "sign", path("root2.json"), "--key", path("d.key"), "-o", path("bad2.json")}).exit_code, 0);
  EXPECT_EQ(ota({"root", "verify", path("bad2.json"), "--trust", path("root.json"), "-q"}).exit_code, 30);
  ASSERT_EQ(ota({"root", "sign", path("root2.json"), "--key", path("b.key"), "--key", path("c.key")}).exit_code, 0);
  EXPECT_EQ(ota({"root", "verify", path("root2.json"), "--trust", path("root.json"), "-q"}).exit_code, 0);
  // v3: d and e, threshold 1; signed by d and b (2 of v2) and d (1 of v3).
  ASSERT_EQ(ota({"root", "rotate", "--from", path("root2.json"), "--key", path("d.pub"), "--key", path("e.pub"),
                 "--threshold", "1", "--expires", "2099-01-01", "-o", path("root3.json"), "-q"})
                .exit_code,
            0);
  ASSERT_EQ(ota({"root", "sign", path("root3.json"), "--key", path("d.key"), "--key", path("b.key")}).exit_code, 0);
  // Skipping v2 is refused.
  EXPECT_EQ(ota({"root", "verify", path("root3.json"), "--trust", path("root.json"), "-q"}).exit_code, 30);

  // A bundle signed under v3 only: a device on v1 rejects it, then accepts it
  // after walking v2 and v3 (given on the command line, or carried in the bundle).
  build("v3.otb", {"e"});
  EXPECT_EQ(verify("v3.otb"), 23);
  EXPECT_EQ(verify("v3.otb", {"--root", path("root2.json"), "--root", path("root3.json")}), 0);
  ASSERT_EQ(ota({"sign", path("v3.otb"), "--attach-root", path("root3.json"), "--attach-root", path("root2.json"), "-q"})
                .exit_code,
            0);
  EXPECT_EQ(verify("v3.otb", {"--save-root", path("saved.json")}), 0);
  auto shown = ota({"root", "show", "--json", path("saved.json")});
  ASSERT_EQ(shown.exit_code, 0);
  EXPECT_EQ(nlohmann::json::parse(shown.out)["root"]["version"], 3);
  // The revoked key: rejected once the device knows v2.
  build("a.otb", {"a"});
  EXPECT_EQ(ota({"verify", path("a.otb"), "--trust", path("root2.json"), "-q"}).exit_code, 24);
}

// Rotation (issue 14): v2 revokes a, and a still signs v2 as one of v1's
// keys. `ota root sign` needs the previous root to know that (--previous).
TEST_F(BundleCli, RevokedKeySignsARotationAsOneOfThePreviousRootsKeys) {
  make_root();
  ids_["d"] = keygen("d");
  // v2: b, c, d, threshold 2; a revoked.
  ASSERT_EQ(ota({"root", "rotate", "--from", path("root.json"), "--key", path("b.pub"), "--key", path("c.pub"),
                 "--key", path("d.pub"), "--revoke", ids_["a"], "--threshold", "2", "--expires", "2099-01-01", "-o",
                 path("root2.json"), "-q"})
                .exit_code,
            0);
  std::filesystem::copy_file(path("root2.json"), path("root2-unsigned.json"));
  // Without the previous root the command cannot tell, and says how.
  auto refused = ota({"root", "sign", path("root2.json"), "--key", path("a.key"), "-o", path("x.json")});
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_NE(refused.err.find("--previous"), std::string::npos) << refused.err;
  // A previous root of the wrong version is refused.
  EXPECT_EQ(ota({"root", "sign", path("root2.json"), "--key", path("a.key"), "--previous", path("root2.json"), "-o",
                 path("x.json")})
                .exit_code,
            2);
  // a and b: v1's threshold (2 of a, b, c); b and d: v2's (2 of b, c, d).
  auto signed_a = ota({"root", "sign", path("root2.json"), "--key", path("a.key"), "--previous", path("root.json")});
  ASSERT_EQ(signed_a.exit_code, 0) << signed_a.err;
  ASSERT_EQ(ota({"root", "sign", path("root2.json"), "--key", path("b.key"), "--key", path("d.key")}).exit_code, 0);
  auto v = ota({"root", "verify", path("root2.json"), "--trust", path("root.json")});
  EXPECT_EQ(v.exit_code, 0) << v.err;
  // a with d is not v1's threshold (a, b, c: 2): refused by the chain check.
  ASSERT_EQ(ota({"root", "sign", path("root2-unsigned.json"), "--key", path("a.key"), "--key", path("d.key"),
                 "--previous", path("root.json"), "-o", path("ad.json")})
                .exit_code,
            0);
  EXPECT_EQ(ota({"root", "verify", path("ad.json"), "--trust", path("root.json"), "-q"}).exit_code, 30);
}

TEST_F(BundleCli, ExternalSignersExportImportAndCommand) {
  make_root();
  build("x.otb", {"a"});
  ASSERT_EQ(ota({"sign", path("x.otb"), "--export-payload", path("x.tbs")}).exit_code, 0);
  // The payload is the domain-separated manifest: it names its type.
  auto tbs = test::read_bytes(path("x.tbs"));
  EXPECT_EQ(std::string(tbs.begin(), tbs.begin() + 11), "OTA-SIG-V1 ");
  // A signature made elsewhere with key b's seed, by openssl (PKCS#8 of the seed).
  auto sec = nlohmann::json::parse(test::read_bytes(path("b.key")));
  const std::string pem_script =
      "printf '302e020100300506032b657004220420%s' '" + sec["seed"].get<std::string>() +
      "' | xxd -r -p | openssl pkey -inform DER -out " + path("b.pem") + " 2>&1";
  if (sh("command -v openssl >/dev/null && command -v xxd >/dev/null").exit_code != 0)
    GTEST_SKIP() << "openssl or xxd not installed";
  ASSERT_EQ(sh(pem_script).exit_code, 0);
  ASSERT_EQ(sh("openssl pkeyutl -sign -rawin -inkey " + path("b.pem") + " -in " + path("x.tbs") + " -out " +
               path("x.sig"))
                .exit_code,
            0);
  // A wrong key id with --pub is refused; the right one attaches and verifies.
  EXPECT_EQ(ota({"sign", path("x.otb"), "--import-signature", path("x.sig"), "--pub", path("c.pub"), "-q"}).exit_code,
            21);
  ASSERT_EQ(ota({"sign", path("x.otb"), "--import-signature", path("x.sig"), "--key-id", ids_["b"], "-q"}).exit_code, 0);
  EXPECT_EQ(verify("x.otb"), 0);
  // --sign-command: openssl again, reading $OTA_SIGN_PAYLOAD.
  build("y.otb", {"a"});
  auto r = ota({"sign", path("y.otb"), "--pub", path("b.pub"), "--sign-command",
                "openssl pkeyutl -sign -rawin -inkey " + path("b.pem") + " -in \"$OTA_SIGN_PAYLOAD\"", "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(verify("y.otb"), 0);
  // A failing signer changes nothing.
  const auto before = test::read_bytes(path("y.otb"));
  EXPECT_NE(ota({"sign", path("y.otb"), "--key-id", ids_["c"], "--sign-command", "exit 3", "-q"}).exit_code, 0);
  EXPECT_EQ(test::read_bytes(path("y.otb")), before);
}

TEST_F(BundleCli, ReproducibleWhateverDirectoryTimeZoneUmaskOrThreads) {
  make_root();
  ASSERT_EQ(::mkdir(path("d1").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(path("d2").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(path("d2/deeper").c_str(), 0755), 0);
  const std::string common = " build --image ../new.img --version 1.0.0 --hw x --base ../base.img -q --key ../a.key";
  auto r1 = sh("cd " + path("d1") + " && umask 022 && SOURCE_DATE_EPOCH=1700000000 TZ=UTC " + kOta + common +
               " --threads 1 -o out.otb");
  auto r2 = sh("cd " + path("d2/deeper") + " && umask 077 && SOURCE_DATE_EPOCH=1700000000 TZ=Pacific/Chatham " + kOta +
               " build --image " + path("new.img") + " --version 1.0.0 --hw x --base " + path("base.img") +
               " -q --key " + path("a.key") + " --threads 2 -o out.otb");
  ASSERT_EQ(r1.exit_code, 0) << r1.err;
  ASSERT_EQ(r2.exit_code, 0) << r2.err;
  EXPECT_EQ(test::read_bytes(path("d1/out.otb")), test::read_bytes(path("d2/deeper/out.otb")));
  EXPECT_EQ(inspect("d1/out.otb")["manifest"]["created"], "2023-11-14T22:13:20Z");
}

TEST_F(BundleCli, StandardToolsListAndExtractTheBundle) {
  make_root();
  build("b.otb", {"a", "b"});
  auto r = sh("tar -tf " + path("b.otb"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto lines = test::split_lines(r.out);
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[0], "manifest.json");
  EXPECT_EQ(lines[1], "signatures.json");
  EXPECT_EQ(lines[2], "payloads/full.zst");
  EXPECT_EQ(lines[3].rfind("payloads/delta-", 0), 0u);
  // The extracted full payload decompresses to the image.
  ASSERT_EQ(sh("cd " + dir_.path() + " && mkdir x && tar -xf b.otb -C x && zstd -q -d x/payloads/full.zst -o x/img")
                .exit_code,
            0);
  EXPECT_EQ(test::read_bytes(path("x/img")), image_);
  // And the delta applies to the base with `ota patch`.
  ASSERT_EQ(sh("cd " + dir_.path() + " && " + kOta + " patch -q base.img x/" + lines[3] + " -o x/img2").exit_code, 0);
  EXPECT_EQ(test::read_bytes(path("x/img2")), image_);
}

TEST_F(BundleCli, DeltaCompressionAndLayoutChooseTheDeltasFormatVersion) {
  make_root();
  struct Case {
    std::vector<std::string> extra;
    int version;
  };
  int n = 0;
  for (const Case& c : std::vector<Case>{{{}, 4},
                                         {{"--delta-compression", "zstd"}, 3},
                                         {{"--delta-layout", "interleaved"}, 1},
                                         {{"--delta-compression", "lzma"}, 4},
                                         // Not an ELF image: version 4 either way; the flag is accepted.
                                         {{"--no-delta-elf-tables"}, 4}}) {
    const std::string name = "b" + std::to_string(n++) + ".otb", x = "x" + std::to_string(n);
    build(name, {"a", "b"}, c.extra);
    auto r = sh("cd " + dir_.path() + " && mkdir " + x + " && tar -xf " + name + " -C " + x + " && ls " + x +
                "/payloads/delta-*");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const std::string delta = test::split_lines(r.out).at(0);
    const Bytes patch = test::read_bytes(path(delta));
    ASSERT_GT(patch.size(), 4u);
    EXPECT_EQ(patch[3], c.version) << name;
    ASSERT_EQ(sh("cd " + dir_.path() + " && " + kOta + " patch -q base.img " + delta + " -o " + x + "/img").exit_code, 0);
    EXPECT_EQ(test::read_bytes(path(x + "/img")), image_);
  }
  // LZMA2 deltas need format version 4, which the interleaved layout is not.
  auto bad = ota({"build", "--image", path("new.img"), "--version", "1.2.0", "--hw", "board-a", "--base",
                  path("base.img"), "--delta-compression", "lzma", "--delta-layout", "interleaved", "--key",
                  path("a.key"), "-q", "-o", path("bad.otb")});
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
}

TEST_F(BundleCli, InspectShowsEverythingAndSaysItIsUnverified) {
  make_root();
  build("b.otb", {"a", "b"}, {"--expires", "2098-01-01"});
  auto doc = inspect("b.otb");
  EXPECT_EQ(doc["verified"], false);
  EXPECT_EQ(doc["manifest"]["version"], "1.2.0");
  EXPECT_EQ(doc["manifest"]["security_version"], 3);
  EXPECT_EQ(doc["manifest"]["hardware"], nlohmann::json({"board-a", "board-b"}));
  EXPECT_EQ(doc["manifest"]["expires"], "2098-01-01T00:00:00Z");
  ASSERT_EQ(doc["manifest"]["payloads"].size(), 2u);
  EXPECT_EQ(doc["manifest"]["payloads"][0]["kind"], "full");
  EXPECT_EQ(doc["manifest"]["payloads"][1]["kind"], "delta");
  EXPECT_EQ(doc["manifest"]["payloads"][1]["compression"], "ota-delta");
  EXPECT_EQ(doc["signatures"].size(), 2u);
  EXPECT_EQ(doc["size"], test::read_bytes(path("b.otb")).size());
  auto text = ota({"inspect", path("b.otb")});
  EXPECT_NE(text.out.find("signatures not checked"), std::string::npos);
}

}  // namespace
}  // namespace ota
