// The `ota` binary's contract: exit codes (the pinned ErrorCode values), one
// line on stderr per failure, --json and --quiet output, stdin patches, and
// no output file or temp file left behind by a failure.
#include <gtest/gtest.h>

#include <fstream>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ota/delta/delta.hpp"
#include "ota/core/hash.hpp"
#include "support/patching.hpp"
#include "support/random.hpp"
#include "support/subprocess.hpp"
#include "support/synthetic_elf.hpp"
#include "support/temp_dir.hpp"

namespace ota {
namespace {

using test::run_process;
using test::TempDir;

const std::string kOta = OTA_CLI_PATH;

class Cli : public testing::Test {
 protected:
  void SetUp() override {
    old_image_ = test::structured_bytes(80'000, 400);
    new_image_ = test::with_insertion(test::with_random_edits(old_image_, 100, 401), 40'000,
                                      test::random_bytes(2000, 402));
    test::write_bytes(path("old"), old_image_);
    test::write_bytes(path("new"), new_image_);
  }

  std::string path(const std::string& name) const { return dir_.file(name); }

  test::ProcessResult ota(std::vector<std::string> args, const std::string& stdin_path = {}) {
    args.insert(args.begin(), kOta);
    test::ProcessOptions opt;
    opt.stdin_path = stdin_path;
    auto r = run_process(args, opt);
    EXPECT_FALSE(r.crashed()) << "ota was killed by signal " << r.term_signal << "\n" << r.err;
    return r;
  }

  // Makes path("patch") with a small frame size so there are several frames.
  void make_patch() {
    auto r = ota({"diff", "-q", "--frame-size", "4096", path("old"), path("new"), "-o", path("patch")});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }

  // After a failure: OUT is absent and nothing named OUT.tmp.* is left over.
  void expect_no_output(const std::string& name = "out") {
    EXPECT_FALSE(test::file_exists(path(name))) << name << " exists after a failure";
    for (const auto& entry : dir_.list())
      EXPECT_NE(entry.rfind(name + ".tmp.", 0), 0u) << "temp file left behind: " << entry;
  }

  // A failure prints exactly one line on stderr: "ota <cmd>: error: <cause>".
  void expect_one_error_line(const test::ProcessResult& r, const std::string& command, const std::string& cause) {
    auto lines = test::split_lines(r.err);
    ASSERT_EQ(lines.size(), 1u) << "stderr:\n" << r.err;
    EXPECT_EQ(lines[0].rfind("ota " + command + ": error: ", 0), 0u) << lines[0];
    EXPECT_NE(lines[0].find(cause), std::string::npos) << lines[0];
  }

  TempDir dir_;
  Bytes old_image_, new_image_;
};

// ---- success ----

TEST_F(Cli, DiffThenPatchIsByteIdentical) {
  auto d = ota({"diff", path("old"), path("new"), "-o", path("patch")});
  ASSERT_EQ(d.exit_code, 0) << d.err;
  EXPECT_TRUE(d.err.empty()) << d.err;
  EXPECT_EQ(test::split_lines(d.out).size(), 1u) << "one summary line: " << d.out;
  auto p = ota({"patch", path("old"), path("patch"), "-o", path("out")});
  ASSERT_EQ(p.exit_code, 0) << p.err;
  EXPECT_TRUE(p.err.empty()) << p.err;
  EXPECT_TRUE(test::read_bytes(path("out")) == new_image_);
  EXPECT_EQ(dir_.list(), (std::vector<std::string>{"new", "old", "out", "patch"})) << "no temp files";
}

TEST_F(Cli, DiffOptionsRoundTrip) {
  for (std::vector<std::string> opts : std::vector<std::vector<std::string>>{
           {"--frame-size", "4096", "--threads", "1"},
           {"--frame-size", "4096", "--threads", "4", "--level", "1"},
           {"--window-log", "10", "--level", "22", "--compression", "zstd"},
           {"--window-log", "12", "--compression", "lzma"},
           {"--layout", "interleaved"},
           {"--format", "ota"}}) {
    std::vector<std::string> args = {"diff", "-q", path("old"), path("new"), "-o", path("patch")};
    args.insert(args.end(), opts.begin(), opts.end());
    auto d = ota(args);
    ASSERT_EQ(d.exit_code, 0) << d.err;
    auto p = ota({"patch", "-q", path("old"), path("patch"), "-o", path("out")});
    ASSERT_EQ(p.exit_code, 0) << p.err;
    EXPECT_TRUE(test::read_bytes(path("out")) == new_image_) << opts[0];
  }
}

TEST_F(Cli, ThreadCountDoesNotChangeThePatch) {
  ASSERT_EQ(ota({"diff", "-q", "--frame-size", "4096", "--threads", "1", path("old"), path("new"), "-o", path("p1")}).exit_code, 0);
  ASSERT_EQ(ota({"diff", "-q", "--frame-size", "4096", "--threads", "4", path("old"), path("new"), "-o", path("p4")}).exit_code, 0);
  EXPECT_TRUE(test::read_bytes(path("p1")) == test::read_bytes(path("p4")));
}

TEST_F(Cli, CliPatchEqualsLibraryPatch) {
  auto d = ota({"diff", "-q", "--level", "5", "--window-log", "16", "--frame-size", "4096", "--threads", "2",
                path("old"), path("new"), "-o", path("patch")});
  ASSERT_EQ(d.exit_code, 0) << d.err;
  delta::DiffOptions opt;
  opt.level = 5;
  opt.window_log = 16;
  opt.frame_log = 12;
  opt.threads = 2;
  auto lib = test::make_patch(old_image_, new_image_, opt);
  ASSERT_TRUE(lib);
  EXPECT_TRUE(test::read_bytes(path("patch")) == *lib);
}

TEST_F(Cli, PatchFromStdin) {
  make_patch();
  auto p = ota({"patch", path("old"), "-", "-o", path("out")}, path("patch"));
  ASSERT_EQ(p.exit_code, 0) << p.err;
  EXPECT_TRUE(test::read_bytes(path("out")) == new_image_);
}

TEST_F(Cli, OverwritesAnExistingOutput) {
  make_patch();
  test::write_bytes(path("out"), test::random_bytes(10, 1));
  auto p = ota({"patch", path("old"), path("patch"), "-o", path("out")});
  ASSERT_EQ(p.exit_code, 0) << p.err;
  EXPECT_TRUE(test::read_bytes(path("out")) == new_image_);
}

TEST_F(Cli, EmptyImages) {
  test::write_bytes(path("empty"), {});
  ASSERT_EQ(ota({"diff", "-q", path("empty"), path("new"), "-o", path("p1")}).exit_code, 0);
  ASSERT_EQ(ota({"patch", path("empty"), path("p1"), "-o", path("o1")}).exit_code, 0);
  EXPECT_TRUE(test::read_bytes(path("o1")) == new_image_);
  ASSERT_EQ(ota({"diff", "-q", path("old"), path("empty"), "-o", path("p2")}).exit_code, 0);
  ASSERT_EQ(ota({"patch", path("old"), path("p2"), "-o", path("o2")}).exit_code, 0);
  EXPECT_TRUE(test::read_bytes(path("o2")).empty());
}

// ---- --json and --quiet ----

TEST_F(Cli, DiffJson) {
  auto d = ota({"diff", "--json", "--frame-size", "4096", path("old"), path("new"), "-o", path("patch")});
  ASSERT_EQ(d.exit_code, 0) << d.err;
  auto lines = test::split_lines(d.out);
  ASSERT_EQ(lines.size(), 1u) << "exactly one JSON line: " << d.out;
  auto doc = nlohmann::json::parse(lines[0]);
  EXPECT_EQ(doc["ok"], true);
  EXPECT_EQ(doc["command"], "diff");
  EXPECT_EQ(doc["format"], "ota");
  EXPECT_EQ(doc["old"]["size"], old_image_.size());
  EXPECT_EQ(doc["new"]["size"], new_image_.size());
  EXPECT_EQ(doc["old"]["blake2b256"], to_hex(content_hash(old_image_)));
  EXPECT_EQ(doc["new"]["blake2b256"], to_hex(content_hash(new_image_)));
  EXPECT_EQ(doc["patch"]["size"], test::read_bytes(path("patch")).size());
  EXPECT_EQ(doc["patch"]["frames"], (new_image_.size() + 4095) / 4096);
  EXPECT_EQ(doc["patch"]["frame_size"], 4096);
  EXPECT_EQ(doc["patch"]["copy_bytes"].get<std::uint64_t>() + doc["patch"]["add_bytes"].get<std::uint64_t>() +
                doc["patch"]["insert_bytes"].get<std::uint64_t>(),
            new_image_.size());
  EXPECT_TRUE(doc["ratio"].is_number());
  EXPECT_TRUE(doc["timings"]["total_s"].is_number());
  // The default: LZMA2 with OLD as its dictionary (a small OLD), format version 4, as the header says.
  EXPECT_EQ(doc["patch"]["version"], 4);
  EXPECT_EQ(doc["patch"]["compression"], "lzma-old");
  EXPECT_EQ(test::read_bytes(path("patch")).at(3), 4);
}

TEST_F(Cli, DiffCompressionChoosesTheFormatVersion) {
  struct Case {
    std::vector<std::string> opts;
    int version;
    const char* compression;
  };
  for (const Case& c : std::vector<Case>{{{"--compression", "zstd"}, 3, "zstd-old"},
                                         {{"--layout", "interleaved"}, 1, "zstd-old"},
                                         {{"--compression", "lzma"}, 4, "lzma-old"}}) {
    std::vector<std::string> args = {"diff", "--json", path("old"), path("new"), "-o", path("patch")};
    args.insert(args.end(), c.opts.begin(), c.opts.end());
    auto d = ota(args);
    ASSERT_EQ(d.exit_code, 0) << d.err;
    auto doc = nlohmann::json::parse(test::split_lines(d.out).at(0));
    EXPECT_EQ(doc["patch"]["version"], c.version) << c.opts[0] << " " << c.opts[1];
    EXPECT_EQ(doc["patch"]["compression"], c.compression) << c.opts[0] << " " << c.opts[1];
    EXPECT_EQ(test::read_bytes(path("patch")).at(3), c.version);
  }
  // LZMA2 exists only in version 4: with the layout of versions 1 and 2 it is a usage error.
  auto bad = ota({"diff", "-q", "--compression", "lzma", "--layout", "interleaved", path("old"), path("new"), "-o",
                  path("patch")});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--compression lzma"), std::string::npos) << bad.err;
  // LZMA2's smallest dictionary is 4 KiB.
  auto small = ota({"diff", "-q", "--window-log", "10", path("old"), path("new"), "-o", path("patch")});
  EXPECT_EQ(small.exit_code, 2);
  EXPECT_NE(small.err.find("2^12"), std::string::npos) << small.err;
}

TEST_F(Cli, AnElfExecutableGetsVersion5UnlessToldOtherwise) {
  // A synthetic x86-64 executable whose functions move: the default patch
  // re-points its ELF tables (version 5); --no-elf-tables keeps version 4,
  // --compression zstd version 3. Each applies through ota patch.
  std::vector<test::Function> funcs;
  for (std::uint32_t i = 0; i < 1200; ++i) funcs.push_back({i, test::random_bytes(20 + i * 7 % 60, 500 + i)});
  const Bytes old_elf = test::make_elf(funcs, 2000, 1201).image;
  funcs.insert(funcs.begin() + 1, test::Function{1200, test::random_bytes(150, 42)});
  const Bytes new_elf = test::make_elf(funcs, 2000, 1201).image;
  test::write_bytes(path("old.elf"), old_elf);
  test::write_bytes(path("new.elf"), new_elf);
  std::vector<std::uint64_t> sizes;
  for (const auto& [opts, version] : std::vector<std::pair<std::vector<std::string>, int>>{
           {{}, 5}, {{"--no-elf-tables"}, 4}, {{"--compression", "zstd"}, 3}}) {
    std::vector<std::string> args = {"diff", "--json", path("old.elf"), path("new.elf"), "-o", path("elf.otd")};
    args.insert(args.end(), opts.begin(), opts.end());
    auto d = ota(args);
    ASSERT_EQ(d.exit_code, 0) << d.err;
    auto doc = nlohmann::json::parse(test::split_lines(d.out).at(0));
    EXPECT_EQ(doc["patch"]["version"], version);
    if (version == 5) {
      EXPECT_EQ(doc["patch"]["predictor"], "x86") << "auto: the tables pay for the map";
    }
    sizes.push_back(doc["patch"]["size"].get<std::uint64_t>());
    auto p = ota({"patch", "-q", path("old.elf"), path("elf.otd"), "-o", path("elf.out")});
    ASSERT_EQ(p.exit_code, 0) << p.err;
    EXPECT_TRUE(test::read_bytes(path("elf.out")) == new_elf) << version;
    auto i = ota({"inspect", "--json", path("elf.otd")});
    ASSERT_EQ(i.exit_code, 0) << i.err;
    const auto header = nlohmann::json::parse(test::split_lines(i.out).at(0))["header"];
    EXPECT_EQ(header["version"], version);
    EXPECT_EQ(header["elf_tables"], version == 5);
  }
  EXPECT_LT(sizes[0], sizes[1]) << "the tables' prediction pays";
}

TEST_F(Cli, InspectShowsAPatchsHeader) {
  ASSERT_EQ(ota({"diff", "-q", "--window-log", "16", "--frame-size", "65536", path("old"), path("new"), "-o",
                 path("patch")})
                .exit_code,
            0);
  auto j = ota({"inspect", "--json", path("patch")});
  ASSERT_EQ(j.exit_code, 0) << j.err;
  auto doc = nlohmann::json::parse(test::split_lines(j.out).at(0));
  EXPECT_EQ(doc["command"], "inspect");
  EXPECT_EQ(doc["size"], test::read_bytes(path("patch")).size());
  EXPECT_EQ(doc["header"]["version"], 4);
  EXPECT_EQ(doc["header"]["compression"], "lzma-old");
  EXPECT_EQ(doc["header"]["frame_size"], 65536);
  EXPECT_EQ(doc["header"]["frames"], (new_image_.size() + 65535) / 65536);
  EXPECT_GE(doc["header"]["window_log"].get<int>(), 16);
  EXPECT_EQ(doc["header"]["decoder_window"], std::uint64_t{1} << doc["header"]["window_log"].get<int>());
  EXPECT_EQ(doc["header"]["old"]["size"], old_image_.size());
  EXPECT_EQ(doc["header"]["new"]["blake2b256"], to_hex(content_hash(new_image_)));
  auto text = ota({"inspect", path("patch")});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("ota delta format version 4"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("decoder window"), std::string::npos) << text.out;
  // A patch cut inside its header: a clear error, not a bundle error.
  Bytes cut = test::read_bytes(path("patch"));
  cut.resize(20);
  test::write_bytes(path("cut"), cut);
  auto bad = ota({"inspect", path("cut")});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("patch header is truncated"), std::string::npos) << bad.err;
}

TEST_F(Cli, PatchJson) {
  make_patch();
  auto p = ota({"patch", "--json", path("old"), path("patch"), "-o", path("out")});
  ASSERT_EQ(p.exit_code, 0) << p.err;
  auto lines = test::split_lines(p.out);
  ASSERT_EQ(lines.size(), 1u) << p.out;
  auto doc = nlohmann::json::parse(lines[0]);
  EXPECT_EQ(doc["ok"], true);
  EXPECT_EQ(doc["command"], "patch");
  EXPECT_EQ(doc["format"], "ota");
  EXPECT_EQ(doc["new"]["size"], new_image_.size());
  EXPECT_EQ(doc["new"]["blake2b256"], to_hex(content_hash(new_image_)));
  EXPECT_EQ(doc["old"]["blake2b256"], to_hex(content_hash(old_image_)));
  EXPECT_EQ(doc["patch"]["size"], test::read_bytes(path("patch")).size());
}

TEST_F(Cli, Bsdiff40Json) {
  auto d = ota({"diff", "--json", "--format", "bsdiff40", path("old"), path("new"), "-o", path("patch")});
  ASSERT_EQ(d.exit_code, 0) << d.err;
  auto doc = nlohmann::json::parse(test::split_lines(d.out).at(0));
  EXPECT_EQ(doc["ok"], true);
  EXPECT_EQ(doc["format"], "bsdiff40");
  EXPECT_EQ(doc["new"]["blake2b256"], to_hex(content_hash(new_image_)));
  auto p = ota({"patch", "--json", path("old"), path("patch"), "-o", path("out")});
  ASSERT_EQ(p.exit_code, 0) << p.err;
  auto pdoc = nlohmann::json::parse(test::split_lines(p.out).at(0));
  EXPECT_EQ(pdoc["format"], "bsdiff40");
  EXPECT_EQ(pdoc["new"]["size"], new_image_.size());
  EXPECT_EQ(pdoc["new"]["blake2b256"], to_hex(content_hash(new_image_)));
  EXPECT_TRUE(test::read_bytes(path("out")) == new_image_);
}

TEST_F(Cli, JsonOnFailure) {
  make_patch();
  Bytes wrong = old_image_;
  wrong[0] ^= 1;
  test::write_bytes(path("wrong"), wrong);
  auto p = ota({"patch", "--json", path("wrong"), path("patch"), "-o", path("out")});
  EXPECT_EQ(p.exit_code, 12);
  auto lines = test::split_lines(p.out);
  ASSERT_EQ(lines.size(), 1u) << p.out;
  auto doc = nlohmann::json::parse(lines[0]);
  EXPECT_EQ(doc["ok"], false);
  EXPECT_EQ(doc["command"], "patch");
  EXPECT_EQ(doc["error"]["code"], 12);
  EXPECT_EQ(doc["error"]["name"], "old_mismatch");
  EXPECT_TRUE(doc["error"]["message"].is_string());
  expect_no_output();
}

TEST_F(Cli, QuietDiffPrintsNothing) {
  auto d = ota({"diff", "--quiet", path("old"), path("new"), "-o", path("patch")});
  ASSERT_EQ(d.exit_code, 0) << d.err;
  EXPECT_EQ(d.out, "");
  EXPECT_EQ(d.err, "");
  auto q = ota({"diff", "-q", "--format", "bsdiff40", path("old"), path("new"), "-o", path("patch2")});
  ASSERT_EQ(q.exit_code, 0) << q.err;
  EXPECT_EQ(q.out, "");
}

TEST_F(Cli, QuietPatchPrintsNothing) {
  make_patch();
  auto p = ota({"patch", "-q", path("old"), path("patch"), "-o", path("out")});
  ASSERT_EQ(p.exit_code, 0) << p.err;
  EXPECT_EQ(p.out, "");
  EXPECT_EQ(p.err, "");
}

// ---- failures: exit code, one stderr line, no OUT, no temp file ----

TEST_F(Cli, WrongOldSameSizeIsExit12) {
  make_patch();
  Bytes wrong = old_image_;
  wrong[wrong.size() / 2] ^= 0x40;
  test::write_bytes(path("wrong"), wrong);
  auto p = ota({"patch", path("wrong"), path("patch"), "-o", path("out")});
  EXPECT_EQ(p.exit_code, 12);
  expect_one_error_line(p, "patch", "OLD");
  EXPECT_TRUE(p.out.empty());
  expect_no_output();
}

TEST_F(Cli, WrongOldSizeIsExit12) {
  make_patch();
  test::write_bytes(path("wrong"), test::slice(old_image_, 0, 1000));
  auto p = ota({"patch", path("wrong"), path("patch"), "-o", path("out")});
  EXPECT_EQ(p.exit_code, 12);
  expect_one_error_line(p, "patch", "OLD");
  expect_no_output();
}

TEST_F(Cli, TruncatedPatchIsExit11) {
  make_patch();
  Bytes patch = test::read_bytes(path("patch"));
  for (std::size_t len : {std::size_t{0}, std::size_t{5}, std::size_t{80}, patch.size() / 2, patch.size() - 1}) {
    test::write_bytes(path("cut"), Bytes(patch.begin(), patch.begin() + static_cast<std::ptrdiff_t>(len)));
    auto p = ota({"patch", path("old"), path("cut"), "-o", path("out")});
    EXPECT_EQ(p.exit_code, 11) << "prefix " << len << ": " << p.err;
    expect_one_error_line(p, "patch", "");
    expect_no_output();
  }
}

TEST_F(Cli, TruncatedPatchFromStdinIsExit11) {
  make_patch();
  Bytes patch = test::read_bytes(path("patch"));
  test::write_bytes(path("cut"), Bytes(patch.begin(), patch.end() - 10));
  auto p = ota({"patch", path("old"), "-", "-o", path("out")}, path("cut"));
  EXPECT_EQ(p.exit_code, 11) << p.err;
  expect_no_output();
}

TEST_F(Cli, CorruptedPatchIsADocumentedCode) {
  make_patch();
  const Bytes patch = test::read_bytes(path("patch"));
  auto header = delta::parse_header(patch);
  ASSERT_TRUE(header);
  const std::size_t h = header->second;
  struct Corruption {
    const char* what;
    std::size_t offset;
    std::uint8_t x;
    int expected;  // 0: any of 10/11/13/14
  };
  const std::vector<Corruption> cases = {
      {"magic", 0, 0x20, 10},
      {"new hash", h - 1, 0x01, 13},
      {"frame mode", h, 0x10, 10},
      {"inside frame 0", h + 20, 0x55, 0},
      {"middle", patch.size() / 2, 0xff, 0},
      {"last byte", patch.size() - 1, 0x81, 0},
  };
  for (const auto& c : cases) {
    Bytes bad = patch;
    bad[c.offset] ^= c.x;
    test::write_bytes(path("bad"), bad);
    auto p = ota({"patch", path("old"), path("bad"), "-o", path("out")});
    if (c.expected) {
      EXPECT_EQ(p.exit_code, c.expected) << c.what << ": " << p.err;
    } else {
      EXPECT_TRUE(p.exit_code == 10 || p.exit_code == 11 || p.exit_code == 13 || p.exit_code == 14)
          << c.what << ": exit " << p.exit_code << " " << p.err;
    }
    expect_one_error_line(p, "patch", "");
    expect_no_output();
  }
}

TEST_F(Cli, TrailingGarbageIsExit10) {
  make_patch();
  Bytes bad = test::concat(test::read_bytes(path("patch")), Bytes{0x00, 0x01});
  test::write_bytes(path("bad"), bad);
  auto p = ota({"patch", path("old"), path("bad"), "-o", path("out")});
  EXPECT_EQ(p.exit_code, 10) << p.err;
  expect_no_output();
}

TEST_F(Cli, WindowLimitIsExit6) {
  make_patch();  // window 2^20
  auto p = ota({"patch", "--max-window-log", "15", path("old"), path("patch"), "-o", path("out")});
  EXPECT_EQ(p.exit_code, 6) << p.err;
  expect_one_error_line(p, "patch", "window");
  expect_no_output();
}

TEST_F(Cli, UnwritableOutputIsExit3) {
  auto d = ota({"diff", "-q", path("old"), path("new"), "-o", path("missing/dir/patch")});
  EXPECT_EQ(d.exit_code, 3) << d.err;
  expect_one_error_line(d, "diff", "missing/dir");
}

TEST_F(Cli, FailedDiffLeavesNoTempFile) {
  // --frame-size that is not a power of two fails after the output was opened.
  auto d = ota({"diff", "-q", "--frame-size", "5000", path("old"), path("new"), "-o", path("patch")});
  EXPECT_EQ(d.exit_code, 2) << d.err;
  expect_no_output("patch");
}

// Broker credentials (security review, issue 14): a password in the URL is
// refused without being echoed.
TEST_F(Cli, BrokerUrlWithAPasswordIsRefusedWithoutEchoingIt) {
  auto r = ota({"campaign", "status", "c1", "--fleet", "f", "--broker", "mqtt://release:Sesame-77aa@127.0.0.1:1"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(r.err.find("Sesame"), std::string::npos) << r.err;
  EXPECT_EQ(r.out.find("Sesame"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("mqtt://***@127.0.0.1:1"), std::string::npos) << r.err;
}

// A password to a loopback broker without TLS draws no warning (it never
// leaves the machine; mqtt::insecure_password_warning, whose decision for
// other hosts is tested in ota_mqtt_tests: tests may not leave loopback).
TEST_F(Cli, NoPlainTextPasswordWarningForALoopbackBroker) {
  {
    std::ofstream(path("pw")) << "Sesame-77aa\n";
  }
  for (const char* url : {"mqtt://127.0.0.1:1", "mqtt://localhost:1", "mqtt://[::1]:1"}) {
    auto r = ota({"campaign", "status", "c1", "--fleet", "f", "--broker", url, "--username", "release",
                  "--password-file", path("pw"), "--timeout", "1s"});
    EXPECT_NE(r.exit_code, 0) << url;  // nothing listens on port 1
    EXPECT_EQ(r.err.find("without TLS"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("Sesame"), std::string::npos) << r.err;
  }
}

TEST_F(Cli, UsageErrorsAreExit2) {
  const std::vector<std::vector<std::string>> cases = {
      {},
      {"frobnicate"},
      {"diff"},
      {"diff", path("old"), path("new")},                                  // no -o
      {"diff", path("old"), path("nope"), "-o", path("p")},                // NEW missing
      {"diff", path("old"), path("new"), "-o", path("p"), "--level", "0"},
      {"diff", path("old"), path("new"), "-o", path("p"), "--level", "23"},
      {"diff", path("old"), path("new"), "-o", path("p"), "--window-log", "9"},
      {"diff", path("old"), path("new"), "-o", path("p"), "--format", "xdelta"},
      {"diff", path("old"), path("new"), "-o", path("p"), "--frame-size", "1000"},
      {"diff", path("old"), path("new"), "-o", path("p"), "--bogus"},
      {"patch", path("old")},
      {"patch", path("nope"), path("new"), "-o", path("out")},              // OLD missing
      {"patch", path("old"), path("new"), "-o", path("out"), "--max-window-log", "40"},
  };
  for (const auto& args : cases) {
    auto r = ota(args);
    std::string joined;
    for (const auto& a : args) joined += a + " ";
    EXPECT_EQ(r.exit_code, 2) << joined << "\n" << r.err;
    EXPECT_FALSE(r.err.empty()) << joined;
  }
  EXPECT_FALSE(test::file_exists(path("p")));
  expect_no_output();
}

// `ota patch` runs ota-patch (the static patcher next to it) when it is
// there; in process otherwise. Both give the same files, messages and codes.
TEST_F(Cli, StaticPatcherAndInProcessPatchAgree) {
  make_patch();
  Bytes wrong = old_image_;
  wrong[10] ^= 1;
  test::write_bytes(path("wrong"), wrong);
  Bytes cut(test::read_bytes(path("patch")));
  cut.resize(cut.size() - 7);
  test::write_bytes(path("cut"), cut);
  const std::string self_dir = kOta.substr(0, kOta.rfind('/') + 1);
  const std::string sibling = self_dir + "ota-patch";
  struct Case {
    std::string old_name, patch_name;
    int code;
  };
  for (const Case& c : {Case{"old", "patch", 0}, Case{"wrong", "patch", 12}, Case{"old", "cut", 11}}) {
    std::vector<std::vector<std::string>> runs = {
        {kOta, "patch", path(c.old_name), path(c.patch_name), "-o", path("out")},
        {"/usr/bin/env", "OTA_PATCH_IN_PROCESS=1", kOta, "patch", path(c.old_name), path(c.patch_name), "-o",
         path("out")}};
    if (test::is_executable(sibling))
      runs.push_back({sibling, path(c.old_name), path(c.patch_name), "-o", path("out")});
    for (const auto& argv : runs) {
      auto r = run_process(argv);
      ASSERT_FALSE(r.crashed()) << argv[0];
      EXPECT_EQ(r.exit_code, c.code) << argv[0] << " " << argv[1] << "\n" << r.err;
      if (c.code == 0) {
        EXPECT_TRUE(test::read_bytes(path("out")) == new_image_) << argv[0];
        EXPECT_TRUE(r.err.empty()) << r.err;
      } else {
        expect_one_error_line(r, "patch", "");
        expect_no_output();
      }
      std::remove(path("out").c_str());
    }
  }
}

// ota-patch writes its --json documents and parses its options without
// ota's libraries (its memory budget): what it prints must be what the
// in-process command prints, field for field, for success and failure, and
// it refuses what ota's parser refuses.
TEST_F(Cli, StaticPatcherJsonAndOptionsMatchInProcess) {
  const std::string self_dir = kOta.substr(0, kOta.rfind('/') + 1);
  const std::string sibling = self_dir + "ota-patch";
  if (!test::is_executable(sibling)) GTEST_SKIP() << "no ota-patch in this build (sanitizer or fuzz build)";
  make_patch();
  Bytes cut(test::read_bytes(path("patch")));
  cut.resize(cut.size() - 7);
  test::write_bytes(path("cut"), cut);
  // A path that JSON must escape.
  const std::string odd = path("out \"q\" \\ \t");
  for (const std::string patch_name : {"patch", "cut"}) {
    std::vector<nlohmann::json> docs;
    std::vector<int> codes;
    for (bool in_process : {false, true}) {
      std::vector<std::string> argv = {sibling, "--json", path("old"), path(patch_name), "--output=" + odd};
      if (in_process)
        argv = {"/usr/bin/env", "OTA_PATCH_IN_PROCESS=1", kOta, "patch", "--json", path("old"), path(patch_name),
                "-o", odd};
      auto r = run_process(argv);
      ASSERT_FALSE(r.crashed());
      codes.push_back(r.exit_code);
      auto lines = test::split_lines(r.out);
      ASSERT_EQ(lines.size(), 1u) << r.out;
      auto doc = nlohmann::json::parse(lines[0]);
      if (doc.contains("timings")) {
        EXPECT_TRUE(doc["timings"]["total_s"].is_number());
        doc.erase("timings");
      }
      docs.push_back(doc);
      std::remove(odd.c_str());
    }
    EXPECT_EQ(codes[0], codes[1]) << patch_name;
    EXPECT_EQ(docs[0], docs[1]) << docs[0].dump() << "\n" << docs[1].dump();
    EXPECT_EQ(docs[0]["ok"], patch_name == "patch");
    if (patch_name == "cut") {  // the error document of docs/error-codes.md
      EXPECT_EQ(docs[0]["command"], "patch");
      EXPECT_EQ(docs[0]["error"]["code"], 11);
      EXPECT_EQ(docs[0]["error"]["name"], "patch_truncated") << docs[0].dump();
      EXPECT_TRUE(docs[0]["error"]["message"].is_string());
      EXPECT_EQ(codes[0], 11);
    }
  }
  EXPECT_EQ(nlohmann::json::parse(test::split_lines(run_process({sibling, "--json", path("old"), path("patch"),
                                                                 "-o", odd}).out).at(0))["new"]["path"],
            odd);
  std::remove(odd.c_str());
  // Options: the forms ota's parser takes work; what it refuses, ota-patch refuses (exit 2).
  for (const auto& args : std::vector<std::vector<std::string>>{
           {path("old"), path("patch"), "-o", path("o1")},
           {"-q", path("old"), "--max-window-log", "31", path("patch"), "-o" + path("o1")},
           {"--max-window-log=20", "--output", path("o1"), "--", path("old"), path("patch")}}) {
    std::vector<std::string> argv{sibling};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = run_process(argv);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(test::read_bytes(path("o1")) == new_image_);
    std::remove(path("o1").c_str());
  }
  for (const auto& args : std::vector<std::vector<std::string>>{
           {},
           {path("old")},
           {path("old"), path("patch")},
           {path("nope"), path("patch"), "-o", path("o1")},
           {path("old"), path("patch"), "-o", path("o1"), "--max-window-log", "9"},
           {path("old"), path("patch"), "-o", path("o1"), "--max-window-log", "x"},
           {path("old"), path("patch"), "-o", path("o1"), "--bogus"},
           {path("old"), path("patch"), path("extra"), "-o", path("o1")},
           {path("old"), path("patch"), "-o"}}) {
    std::vector<std::string> argv{sibling};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = run_process(argv);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find("ota patch: error: "), std::string::npos) << r.err;
    EXPECT_TRUE(r.out.empty());
    EXPECT_FALSE(test::file_exists(path("o1")));
  }
  auto h = run_process({sibling, "--help"});
  EXPECT_EQ(h.exit_code, 0);
  EXPECT_NE(h.out.find("--max-window-log"), std::string::npos);
}

TEST_F(Cli, HelpAndVersionAreExit0) {
  auto h = ota({"--help"});
  EXPECT_EQ(h.exit_code, 0);
  EXPECT_NE(h.out.find("diff"), std::string::npos);
  auto v = ota({"--version"});
  EXPECT_EQ(v.exit_code, 0);
  EXPECT_NE(v.out.find("ota "), std::string::npos) << v.out;
}

TEST_F(Cli, MissingPatchFileIsExit3) {
  auto p = ota({"patch", path("old"), path("no-such-patch"), "-o", path("out")});
  EXPECT_EQ(p.exit_code, 3) << p.err;
  expect_one_error_line(p, "patch", "no-such-patch");
  expect_no_output();
}

}  // namespace
}  // namespace ota
