// Signing with a key inside a PKCS#11 token (issue 19, part 3): SoftHSM2 from
// Debian with a token the test makes (its own SOFTHSM2_CONF and token
// directory), an Ed25519 key generated inside it by OpenSC's pkcs11-tool, and
// the ota CLI naming it by an RFC 7512 URI (ota/release/pkcs11.hpp).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "support/random.hpp"
#include "support/subprocess.hpp"
#include "support/temp_dir.hpp"

namespace ota::test {
namespace {

const std::string kOta = OTA_CLI_PATH;
const std::string kSoftHsm = "/usr/lib/softhsm/libsofthsm2.so";

class Pkcs11Signing : public testing::Test {
 protected:
  void SetUp() override {
    for (const char* p : {"/usr/lib/softhsm/libsofthsm2.so", "/usr/bin/softhsm2-util", "/usr/bin/pkcs11-tool"})
      if (::access(p, R_OK) != 0) GTEST_SKIP() << p << " is not installed (scripts/install-deps.sh)";
    ::mkdir(path("tokens").c_str(), 0700);
    std::ofstream(path("softhsm2.conf")) << "directories.tokendir = " << path("tokens")
                                         << "\nobjectstore.backend = file\nlog.level = ERROR\n";
    ::setenv("SOFTHSM2_CONF", path("softhsm2.conf").c_str(), 1);
    ASSERT_EQ(run({"/usr/bin/softhsm2-util", "--init-token", "--free", "--label", "ota-release", "--pin", kPin, "--so-pin",
                   "87654321"})
                  .exit_code,
              0);
    auto gen = run({"/usr/bin/pkcs11-tool", "--module", kSoftHsm, "--token-label", "ota-release", "--login", "--pin", kPin,
                    "--keypairgen", "--key-type", "EC:edwards25519", "--label", "release", "--id", "01"});
    ASSERT_EQ(gen.exit_code, 0) << gen.out << gen.err;
    {
      std::ofstream pin(path("pin"));
      pin << kPin << "\n";
    }
    ::chmod(path("pin").c_str(), 0600);
    ::setenv("SOURCE_DATE_EPOCH", "1780000000", 1);
    write_bytes(path("base.img"), structured_bytes(60'000, 11));
    write_bytes(path("new.img"), with_random_edits(structured_bytes(60'000, 11), 20, 12));
  }

  std::string path(const std::string& n) const { return dir_.file(n); }
  std::string uri(const std::string& object = "release", const std::string& pin_file = "") const {
    return "pkcs11:token=ota-release;object=" + object + "?module-path=" + kSoftHsm +
           "&pin-source=file:" + (pin_file.empty() ? path("pin") : pin_file);
  }
  static ProcessResult run(std::vector<std::string> argv) {
    ProcessOptions po;
    po.timeout_seconds = 120;
    return run_process(argv, po);
  }
  ProcessResult ota(std::vector<std::string> args) {
    args.insert(args.begin(), kOta);
    return run(args);
  }

  static constexpr const char* kPin = "24681357";
  TempDir dir_;
};

TEST_F(Pkcs11Signing, ARootAndABundleSignedInsideTheTokenVerify) {
  // The root names the token's key (its public key object), and is signed by it.
  auto init = ota({"root", "init", "--key", uri(), "--threshold", "1", "--expires", "2099-01-01", "-o", path("root.json"), "-q"});
  ASSERT_EQ(init.exit_code, 0) << init.err;
  auto rs = ota({"root", "sign", path("root.json"), "--key", uri()});
  ASSERT_EQ(rs.exit_code, 0) << rs.err;
  // A bundle built and signed by the token verifies under that root.
  auto b = ota({"build", "--image", path("new.img"), "--version", "1.1.0", "--hw", "board", "--base", path("base.img"),
                "--key", uri(), "-q", "-o", path("fw.otb")});
  ASSERT_EQ(b.exit_code, 0) << b.err;
  auto v = ota({"verify", path("fw.otb"), "--trust", path("root.json")});
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
  // A file key and the token sign the same bundle: two signatures.
  ASSERT_EQ(ota({"keygen", "-o", path("second")}).exit_code, 0);
  auto s = ota({"sign", path("fw.otb"), "--key", path("second.key"), "--json"});
  ASSERT_EQ(s.exit_code, 0) << s.err;
  EXPECT_NE(s.out.find("\"signatures\":2"), std::string::npos) << s.out;
  // The token does not sign twice.
  auto again = ota({"sign", path("fw.otb"), "--key", uri(), "--json"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.out.find("\"signatures\":2"), std::string::npos) << again.out;
}

TEST_F(Pkcs11Signing, AWrongPinAMissingKeyAndABadUriAreClearErrorsThatNeverShowThePin) {
  std::ofstream(path("wrong-pin")) << "11112222\n";
  auto wrong = ota({"root", "init", "--key", uri("release", path("wrong-pin")), "--threshold", "1", "--expires",
                    "2099-01-01", "-o", path("root.json"), "-q"});
  EXPECT_EQ(wrong.exit_code, 29) << wrong.err;  // bad_passphrase
  EXPECT_NE(wrong.err.find("refused the PIN"), std::string::npos) << wrong.err;
  EXPECT_EQ(wrong.err.find("11112222"), std::string::npos) << wrong.err;
  EXPECT_EQ(wrong.err.find(kPin), std::string::npos) << wrong.err;
  auto missing = ota({"root", "init", "--key", uri("no-such-key"), "--threshold", "1", "--expires", "2099-01-01", "-o",
                      path("root.json"), "-q"});
  EXPECT_EQ(missing.exit_code, 2) << missing.err;
  EXPECT_NE(missing.err.find("no private key"), std::string::npos) << missing.err;
  auto bad = ota({"root", "init", "--key", "pkcs11:token=%zz", "--threshold", "1", "--expires", "2099-01-01", "-o",
                  path("root.json"), "-q"});
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
  auto no_module = ota({"root", "init", "--key", "pkcs11:token=ota-release?module-path=/nonexistent/libnone.so",
                        "--threshold", "1", "--expires", "2099-01-01", "-o", path("root.json"), "-q"});
  EXPECT_NE(no_module.exit_code, 0);
  EXPECT_NE(no_module.err.find("cannot load the module"), std::string::npos) << no_module.err;
}

// A key that is not Ed25519 (a P-256 key in the same token) and a label that
// names two key pairs are refused with a clear error, before anything is signed.
TEST_F(Pkcs11Signing, ANonEd25519KeyAndAnAmbiguousLabelAreRefused) {
  auto p256 = run({"/usr/bin/pkcs11-tool", "--module", kSoftHsm, "--token-label", "ota-release", "--login", "--pin", kPin,
                   "--keypairgen", "--key-type", "EC:prime256v1", "--label", "p256", "--id", "02"});
  ASSERT_EQ(p256.exit_code, 0) << p256.out << p256.err;
  auto r = ota({"root", "init", "--key", uri("p256"), "--threshold", "1", "--expires", "2099-01-01", "-o",
                path("root.json"), "-q"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(r.exit_code, 5) << r.err;  // unsupported
  EXPECT_NE(r.err.find("Ed25519"), std::string::npos) << r.err;
  auto twin = run({"/usr/bin/pkcs11-tool", "--module", kSoftHsm, "--token-label", "ota-release", "--login", "--pin", kPin,
                   "--keypairgen", "--key-type", "EC:edwards25519", "--label", "release", "--id", "03"});
  ASSERT_EQ(twin.exit_code, 0) << twin.out << twin.err;
  auto ambiguous = ota({"root", "init", "--key", uri(), "--threshold", "1", "--expires", "2099-01-01", "-o",
                        path("root.json"), "-q"});
  EXPECT_EQ(ambiguous.exit_code, 2) << ambiguous.err;
  EXPECT_EQ(ambiguous.err.find(kPin), std::string::npos) << ambiguous.err;
  EXPECT_NE(ambiguous.err.find("several private keys match"), std::string::npos) << ambiguous.err;
}

// The private key is generated inside the token, marked sensitive and never
// extractable there; ota reads only the public key object and gets back
// signatures.
TEST_F(Pkcs11Signing, ThePrivateKeyStaysInsideTheToken) {
  auto objects = run({"/usr/bin/pkcs11-tool", "--module", kSoftHsm, "--token-label", "ota-release", "--login", "--pin", kPin,
                      "--list-objects", "--type", "privkey"});
  ASSERT_EQ(objects.exit_code, 0) << objects.err;
  EXPECT_NE(objects.out.find("never extractable"), std::string::npos) << objects.out;
  auto init = ota({"root", "init", "--key", uri(), "--threshold", "1", "--expires", "2099-01-01", "-o", path("root.json"), "-q"});
  ASSERT_EQ(init.exit_code, 0) << init.err;
  ASSERT_EQ(ota({"root", "sign", path("root.json"), "--key", uri()}).exit_code, 0);
  // Still exactly one private key, still not extractable: nothing was copied out or in.
  auto after = run({"/usr/bin/pkcs11-tool", "--module", kSoftHsm, "--token-label", "ota-release", "--login", "--pin", kPin,
                    "--list-objects", "--type", "privkey"});
  EXPECT_EQ(after.out, objects.out);
}

}  // namespace
}  // namespace ota::test
