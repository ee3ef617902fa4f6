// ota/release/bundle.hpp: the container (tar layout, canonical headers, readers other
// than ours), staging, streaming verification, and what tampering does.
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "delta/codec/zstd.hpp"
#include "ota/release/bundle.hpp"
#include "ota/delta/delta.hpp"
#include "support/random.hpp"
#include "support/signing.hpp"
#include "support/subprocess.hpp"
#include "support/temp_dir.hpp"

namespace ota {
namespace {

using bundle::BundleReader;
using bundle::Layout;
using bundle::SignatureBlock;
using bundle::VerifyOptions;
using test::at;
using test::code_of;
using test::message_of;
using test::to_bytes;
using test::to_text;

const char* tar_path() {
  if (test::is_executable("/usr/bin/tar")) return "/usr/bin/tar";
  if (test::is_executable("/bin/tar")) return "/bin/tar";
  return nullptr;
}

// ---- the shared world: keys, roots, and one staged bundle ----

struct World {
  test::Keyring k{12};
  trust::Time created = at("2026-01-02T03:04:05Z");
  trust::Time expires = at("2027-01-01");
  trust::Time now = at("2026-06-01T12:00:00Z");
  trust::Time far = at("2099-01-01");

  trust::Root v1() const { return test::make_root(1, far, 2, k.ptrs({0, 1, 2})); }
  trust::Envelope v1_env() const { return test::root_envelope(v1(), k.ptrs({0, 1})); }
  trust::Envelope v2_env() const {
    return test::root_envelope(test::make_root(2, far, 2, k.ptrs({3, 4, 5})), k.ptrs({0, 1, 3, 4}));
  }
  trust::Envelope v3_env() const {
    return test::root_envelope(test::make_root(3, far, 2, k.ptrs({6, 7, 8})), k.ptrs({3, 4, 6, 7}));
  }
  trust::TrustStore store() const { return test::store_from(v1_env()); }

  VerifyOptions opts() const {
    VerifyOptions o;
    o.policy.now = now;
    o.policy.hardware = "board-a";
    o.policy.installed_version = "1.9.0";
    o.policy.security_floor = 3;
    return o;
  }

  // The staged bundle: a full (zstd) and a delta payload, 4 KiB chunks.
  Bytes image = test::structured_bytes(12000, 101);
  Bytes base = test::with_random_edits(test::slice(image, 0, 11000), 40, 102);
  test::TempDir dir;
  std::unique_ptr<bundle::Staged> staged;
  SignatureBlock block;
  Bytes bytes;
  Bytes sig_bytes;

  bundle::BuildOptions build_options(unsigned threads) const {
    bundle::BuildOptions o;
    o.image_path = dir.file("image.bin");
    o.base_paths = {dir.file("base.bin")};
    o.name = "demo-firmware";
    o.version = "2.0.0";
    o.security_version = 3;
    o.hardware = {"board-a", "board-b"};
    o.created = created;
    o.expires = expires;
    o.threads = threads;
    o.chunk_size = 4096;
    o.temp_dir = dir.path();
    return o;
  }

  World() {
    test::write_bytes(dir.file("image.bin"), image);
    test::write_bytes(dir.file("base.bin"), base);
    auto s = bundle::stage(build_options(1));
    if (!s) throw std::runtime_error("stage: " + s.error().message);
    staged = std::move(*s);
    block.signatures = test::sign_all(k.ptrs({0, 1}), trust::kManifestType, staged->manifest_bytes());
    sig_bytes = bundle::encode_signature_block(block);
    VectorWriter out;
    auto st = staged->write(out, block);
    if (!st) throw std::runtime_error("write: " + st.error().message);
    bytes = std::move(out).take();
  }

  const manifest::Manifest& m() const { return staged->manifest(); }
  Layout layout() const { return bundle::layout(staged->manifest_bytes().size(), sig_bytes.size(), m()); }
  ByteSpan member_data(std::size_t i) const {
    const Layout l = layout();
    const auto& mem = l.members.at(i);
    return ByteSpan(bytes).subspan(mem.data_offset, mem.size);
  }
};

// Built on first use, shared by every test, removed at exit.
const World& world() {
  static const World w;
  return w;
}

// A small in-memory bundle with uncompressed payloads.
test::MemBundle small_bundle(std::uint64_t seed, std::size_t size = 5000, std::uint32_t chunk = 4096,
                             std::vector<std::size_t> signers = {0, 1}) {
  const World& w = world();
  const Bytes image = test::random_bytes(size, seed);
  manifest::Manifest m = test::simple_manifest(image, chunk);
  m.version = "2.0.0";
  m.security_version = 3;
  test::Signers s;
  for (auto i : signers) s.push_back(w.k.ptr(i));
  return test::write_mem_bundle(m, {image}, s);
}

Bytes splice(const Bytes& data, std::size_t from, std::size_t len, ByteSpan with) {
  Bytes out(data.begin(), data.begin() + static_cast<std::ptrdiff_t>(from));
  out.insert(out.end(), with.begin(), with.end());
  out.insert(out.end(), data.begin() + static_cast<std::ptrdiff_t>(from + len), data.end());
  return out;
}

// ---- the staged bundle ----

TEST(Bundle, StagedBundleVerifies) {
  const World& w = world();
  const auto& m = w.m();
  ASSERT_EQ(m.payloads.size(), 2u);
  EXPECT_EQ(m.payloads[0].kind, manifest::PayloadKind::kFull);
  EXPECT_EQ(m.payloads[0].name, "full.zst");
  EXPECT_EQ(m.payloads[0].compression, manifest::Compression::kZstd);
  EXPECT_EQ(m.payloads[1].kind, manifest::PayloadKind::kDelta);
  EXPECT_EQ(m.payloads[1].compression, manifest::Compression::kOtaDelta);
  EXPECT_EQ(m.payloads[1].base_hash, content_hash(w.base));
  EXPECT_EQ(m.payloads[1].base_size, w.base.size());
  EXPECT_EQ(m.target_size, w.image.size());
  EXPECT_EQ(m.target_hash, content_hash(w.image));
  EXPECT_EQ(m.created, w.created);
  EXPECT_EQ(w.staged->manifest_bytes(), manifest::encode_manifest(m));
  EXPECT_GE(m.payloads[0].chunks.size(), 1u);
  RecordProperty("bundle_bytes", static_cast<int>(w.bytes.size()));

  auto store = w.store();
  std::vector<Bytes> payloads;
  auto st = test::read_bundle(w.bytes, store, w.opts(), &payloads);
  ASSERT_TRUE(st) << st.error().message;
  ASSERT_EQ(payloads.size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(payloads[i].size(), m.payloads[i].size);
    EXPECT_EQ(test::payload_hash(payloads[i], m.payloads[i].chunk_size), m.payloads[i].hash);
  }
  // The payloads are what they claim: the image, compressed, and a delta from the base.
  auto full = codec::zstd_decompress(payloads[0], w.image.size());
  ASSERT_TRUE(full) << full.error().message;
  EXPECT_EQ(*full, w.image);
  MemorySource base(w.base);
  MemoryReader patch(payloads[1]);
  VectorWriter patched;
  auto applied = delta::apply(base, patch, patched);
  ASSERT_TRUE(applied) << applied.error().message;
  EXPECT_EQ(patched.data(), w.image);
}

TEST(Bundle, StagedUncompressed) {
  const World& w = world();
  auto o = w.build_options(1);
  o.compress = false;
  o.base_paths.clear();
  auto s = bundle::stage(o);
  ASSERT_TRUE(s) << s.error().message;
  const auto& m = (*s)->manifest();
  ASSERT_EQ(m.payloads.size(), 1u);
  EXPECT_EQ(m.payloads[0].name, "full.img");
  EXPECT_EQ(m.payloads[0].compression, manifest::Compression::kNone);
  EXPECT_EQ(m.payloads[0].hash, test::payload_hash(w.image, m.payloads[0].chunk_size));
  EXPECT_EQ(m.target_hash, content_hash(w.image));
  EXPECT_EQ(m.target_hash, content_hash(w.image));
  SignatureBlock block;
  block.signatures = test::sign_all(w.k.ptrs({1, 2}), trust::kManifestType, (*s)->manifest_bytes());
  VectorWriter out;
  ASSERT_TRUE((*s)->write(out, block));
  auto store = w.store();
  std::vector<Bytes> payloads;
  ASSERT_TRUE(test::read_bundle(out.data(), store, w.opts(), &payloads));
  ASSERT_EQ(payloads.size(), 1u);
  EXPECT_EQ(payloads[0], w.image);
}

TEST(Bundle, StageIsReproducibleAcrossThreadCounts) {
  const World& w = world();
  auto a = bundle::stage(w.build_options(1));
  auto b = bundle::stage(w.build_options(2));
  ASSERT_TRUE(a && b);
  EXPECT_EQ((*a)->manifest_bytes(), (*b)->manifest_bytes());
  EXPECT_EQ((*a)->manifest_bytes(), w.staged->manifest_bytes());
  // Ed25519 is deterministic: the same keys sign the same bytes the same way.
  SignatureBlock block;
  block.signatures = test::sign_all(w.k.ptrs({0, 1}), trust::kManifestType, (*b)->manifest_bytes());
  VectorWriter out_a, out_b;
  ASSERT_TRUE((*a)->write(out_a, block));
  ASSERT_TRUE((*b)->write(out_b, block));
  EXPECT_EQ(out_a.data(), out_b.data());
  EXPECT_EQ(out_a.data(), w.bytes);
  // Writing the same staged bundle twice gives the same bytes too.
  VectorWriter again;
  ASSERT_TRUE((*a)->write(again, block));
  EXPECT_EQ(again.data(), out_a.data());
}

TEST(Bundle, StageErrors) {
  const World& w = world();
  auto o = w.build_options(1);
  o.image_path = w.dir.file("missing.bin");
  EXPECT_EQ(code_of(bundle::stage(o)), ErrorCode::kIo);
  o = w.build_options(1);
  o.version = "2.0";
  EXPECT_EQ(code_of(bundle::stage(o)), ErrorCode::kMalformed);
  o = w.build_options(1);
  o.hardware.clear();
  EXPECT_EQ(code_of(bundle::stage(o)), ErrorCode::kMalformed);
  o = w.build_options(1);
  o.base_paths = {w.dir.file("base.bin"), w.dir.file("base.bin")};
  EXPECT_FALSE(bundle::stage(o)) << "the same base twice";
  // Nothing is left in the staging directory.
  EXPECT_EQ(w.dir.list(), (std::vector<std::string>{"base.bin", "image.bin"}));
}

// ---- the container ----

TEST(Bundle, LayoutMatchesTheBytes) {
  const World& w = world();
  const Layout l = w.layout();
  ASSERT_EQ(l.total_size, w.bytes.size());
  ASSERT_EQ(l.members.size(), 4u);
  EXPECT_EQ(l.members[0].path, "manifest.json");
  EXPECT_EQ(l.members[1].path, "signatures.json");
  EXPECT_EQ(l.members[2].path, "payloads/full.zst");
  EXPECT_EQ(l.members[3].path, "payloads/" + w.m().payloads[1].name);
  EXPECT_EQ(l.members[0].header_offset, 0u);
  std::uint64_t expect_next = 0;
  for (const auto& mem : l.members) {
    EXPECT_EQ(mem.header_offset, expect_next) << mem.path;
    EXPECT_EQ(mem.header_offset % 512, 0u) << mem.path;
    EXPECT_EQ(mem.data_offset, mem.header_offset + 512) << mem.path;
    auto h = bundle::member_header(mem.path, mem.size, w.created);
    ASSERT_TRUE(h);
    EXPECT_TRUE(std::equal(h->begin(), h->end(), w.bytes.begin() + static_cast<std::ptrdiff_t>(mem.header_offset)))
        << mem.path << ": the header is not the canonical one";
    const std::uint64_t end = mem.data_offset + mem.size;
    const std::uint64_t padded = (end + 511) / 512 * 512;
    for (std::uint64_t i = end; i < padded; ++i) ASSERT_EQ(w.bytes[i], 0) << mem.path << " padding at " << i;
    expect_next = padded;
  }
  EXPECT_EQ(l.end_offset, expect_next);
  EXPECT_EQ(l.total_size, l.end_offset + 1024);
  for (std::uint64_t i = l.end_offset; i < l.total_size; ++i) ASSERT_EQ(w.bytes[i], 0) << i;

  const ByteSpan manifest_member = w.member_data(0), signature_member = w.member_data(1);
  EXPECT_EQ(Bytes(manifest_member.begin(), manifest_member.end()), w.staged->manifest_bytes());
  EXPECT_EQ(Bytes(signature_member.begin(), signature_member.end()), w.sig_bytes);
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(l.members[2 + i].size, w.m().payloads[i].size);
    EXPECT_EQ(test::payload_hash(w.member_data(2 + i), w.m().payloads[i].chunk_size), w.m().payloads[i].hash);
  }
}

TEST(Bundle, LibarchiveListsTheMembersInOrder) {
  const World& w = world();
  std::unique_ptr<archive, int (*)(archive*)> a(archive_read_new(), archive_read_free);
  ASSERT_TRUE(a);
  archive_read_support_format_all(a.get());
  archive_read_support_filter_none(a.get());
  ASSERT_EQ(archive_read_open_memory(a.get(), w.bytes.data(), w.bytes.size()), ARCHIVE_OK)
      << archive_error_string(a.get());
  std::vector<std::string> names;
  std::vector<Bytes> contents;
  archive_entry* e = nullptr;
  int r;
  while ((r = archive_read_next_header(a.get(), &e)) == ARCHIVE_OK) {
    names.emplace_back(archive_entry_pathname(e));
    EXPECT_EQ(archive_entry_filetype(e), static_cast<unsigned>(AE_IFREG)) << names.back();
    EXPECT_EQ(archive_entry_perm(e), 0644u) << names.back();
    EXPECT_EQ(archive_entry_uid(e), 0) << names.back();
    EXPECT_EQ(archive_entry_gid(e), 0) << names.back();
    EXPECT_EQ(archive_entry_mtime(e), w.created) << names.back();
    Bytes data(static_cast<std::size_t>(archive_entry_size(e)));
    if (!data.empty()) {
      ASSERT_EQ(archive_read_data(a.get(), data.data(), data.size()), static_cast<la_ssize_t>(data.size()));
    }
    contents.push_back(std::move(data));
  }
  EXPECT_EQ(r, ARCHIVE_EOF) << archive_error_string(a.get());
  EXPECT_EQ(archive_format(a.get()) & ARCHIVE_FORMAT_BASE_MASK, ARCHIVE_FORMAT_TAR);
  const std::vector<std::string> expect = {"manifest.json", "signatures.json", "payloads/full.zst",
                                           "payloads/" + w.m().payloads[1].name};
  EXPECT_EQ(names, expect);
  ASSERT_EQ(contents.size(), 4u);
  EXPECT_EQ(contents[0], w.staged->manifest_bytes());
  EXPECT_EQ(contents[1], w.sig_bytes);
  EXPECT_EQ(test::payload_hash(contents[2], w.m().payloads[0].chunk_size), w.m().payloads[0].hash);
  EXPECT_EQ(test::payload_hash(contents[3], w.m().payloads[1].chunk_size), w.m().payloads[1].hash);
}

TEST(Bundle, GnuTarListsAndExtracts) {
  const char* tar = tar_path();
  if (!tar) GTEST_SKIP() << "no GNU tar";
  const World& w = world();
  test::TempDir dir;
  test::write_bytes(dir.file("b.otab"), w.bytes);
  auto r = test::run_process({tar, "--utc", "-tvf", dir.file("b.otab")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  const auto lines = test::split_lines(r.out);
  const std::vector<std::string> names = {"manifest.json", "signatures.json", "payloads/full.zst",
                                          "payloads/" + w.m().payloads[1].name};
  ASSERT_EQ(lines.size(), names.size()) << r.out;
  const Layout l = w.layout();
  for (std::size_t i = 0; i < lines.size(); ++i) {
    std::istringstream in(lines[i]);
    std::string mode, owner, size, date, time, name;
    in >> mode >> owner >> size >> date >> time >> name;
    EXPECT_EQ(mode, "-rw-r--r--") << lines[i];
    EXPECT_EQ(owner, "0/0") << lines[i];
    EXPECT_EQ(size, std::to_string(l.members[i].size)) << lines[i];
    EXPECT_EQ(date + " " + time, "2026-01-02 03:04") << lines[i];
    EXPECT_EQ(name, names[i]) << lines[i];
  }
  auto x = test::run_process({tar, "-xOf", dir.file("b.otab"), "manifest.json"});
  ASSERT_EQ(x.exit_code, 0) << x.err;
  EXPECT_EQ(to_bytes(x.out), w.staged->manifest_bytes());
  auto p = test::run_process({tar, "-xOf", dir.file("b.otab"), "payloads/full.zst"});
  ASSERT_EQ(p.exit_code, 0) << p.err;
  EXPECT_EQ(test::payload_hash(to_bytes(p.out), w.m().payloads[0].chunk_size), w.m().payloads[0].hash);
}

TEST(Bundle, MemberHeaderFor9GiBIsPax) {
  const std::uint64_t nine = 9ull << 30;
  const trust::Time t = world().created;
  auto h = bundle::member_header("payloads/big.img", nine, t);
  ASSERT_TRUE(h) << h.error().message;
  ASSERT_EQ(h->size(), 1536u);
  EXPECT_EQ((*h)[156], 'x') << "first block: a pax extended header";
  const std::string ext(h->begin() + 512, h->begin() + 1024);
  EXPECT_NE(ext.find(" size=9663676416\n"), std::string::npos) << ext;
  EXPECT_EQ((*h)[1024 + 156], '0') << "third block: the regular file's ustar header";
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(h->data()) + 1024), "payloads/big.img");
  EXPECT_EQ(std::memcmp(h->data() + 1024 + 257, "ustar", 5), 0);
  // Just under 8 GiB is still plain ustar.
  auto small = bundle::member_header("payloads/big.img", (8ull << 30) - 1, t);
  ASSERT_TRUE(small);
  EXPECT_EQ(small->size(), 512u);
  auto eight = bundle::member_header("payloads/big.img", 8ull << 30, t);
  ASSERT_TRUE(eight);
  EXPECT_EQ(eight->size(), 1536u);

  // layout() accounts for the extra blocks.
  manifest::Manifest m = test::simple_manifest(to_bytes("x"));
  m.payloads[0].size = nine;
  const Layout l = bundle::layout(100, 200, m);
  ASSERT_EQ(l.members.size(), 3u);
  EXPECT_EQ(l.members[2].data_offset - l.members[2].header_offset, 1536u);
  EXPECT_EQ(l.end_offset, l.members[2].data_offset + nine);
  EXPECT_EQ(l.total_size, l.end_offset + 1024);

  // libarchive reads it back.
  std::unique_ptr<archive, int (*)(archive*)> a(archive_read_new(), archive_read_free);
  archive_read_support_format_tar(a.get());
  ASSERT_EQ(archive_read_open_memory(a.get(), h->data(), h->size()), ARCHIVE_OK);
  archive_entry* e = nullptr;
  ASSERT_EQ(archive_read_next_header(a.get(), &e), ARCHIVE_OK) << archive_error_string(a.get());
  EXPECT_EQ(std::string(archive_entry_pathname(e)), "payloads/big.img");
  EXPECT_EQ(archive_entry_size(e), static_cast<la_int64_t>(nine));
  EXPECT_EQ(archive_entry_mtime(e), t);

  // GNU tar lists it from a sparse file (header, 9 GiB of holes, end blocks).
  const char* tar = tar_path();
  if (!tar) GTEST_SKIP() << "no GNU tar";
  test::TempDir dir;
  const std::string path = dir.file("big.tar");
  test::write_bytes(path, *h);
  if (::truncate(path.c_str(), static_cast<off_t>(h->size() + nine + 1024)) != 0)
    GTEST_SKIP() << "cannot extend a file to 9 GiB here";
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  if (static_cast<std::uint64_t>(st.st_blocks) * 512 > (1u << 20)) {
    ::unlink(path.c_str());
    GTEST_SKIP() << "this file system does not keep the 9 GiB as a hole";
  }
  auto r = test::run_process({tar, "--utc", "-tvf", path}, {.stdin_path = "", .timeout_seconds = 60});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("9663676416"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("payloads/big.img"), std::string::npos) << r.out;
  EXPECT_EQ(test::split_lines(r.out).size(), 1u) << r.out;
}

// ---- signature blocks ----

TEST(Bundle, SignatureBlockRoundTrip) {
  const World& w = world();
  SignatureBlock b;
  b.signatures = test::sign_all(w.k.ptrs({0, 1, 2}), trust::kManifestType, to_bytes("m"));
  b.roots = {w.v2_env(), w.v3_env()};
  const Bytes enc = bundle::encode_signature_block(b);
  auto back = bundle::parse_signature_block(enc);
  ASSERT_TRUE(back) << back.error().message;
  ASSERT_EQ(back->signatures.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(back->signatures[i].key_id, b.signatures[i].key_id);
    EXPECT_EQ(back->signatures[i].sig, b.signatures[i].sig);
  }
  ASSERT_EQ(back->roots.size(), 2u);
  EXPECT_EQ(back->roots[0].payload, b.roots[0].payload);
  EXPECT_EQ(back->roots[1].payload, b.roots[1].payload);
  EXPECT_EQ(back->roots[1].signatures.size(), 4u);
  EXPECT_EQ(bundle::encode_signature_block(*back), enc);
  // Without roots there is no "roots" field.
  SignatureBlock plain;
  EXPECT_EQ(to_text(bundle::encode_signature_block(plain)).find("roots"), std::string::npos);
  EXPECT_TRUE(bundle::parse_signature_block(bundle::encode_signature_block(plain)));
}

TEST(Bundle, SignatureBlockIsStrict) {
  const World& w = world();
  const std::string text = to_text(w.sig_bytes);
  auto bad = [](std::string t) { return code_of(bundle::parse_signature_block(to_bytes(t))); };
  auto rep = [&](const std::string& from, const std::string& to) {
    std::string t = text;
    auto pos = t.find(from);
    EXPECT_NE(pos, std::string::npos) << from;
    if (pos != std::string::npos) t.replace(pos, from.size(), to);
    return t;
  };
  EXPECT_EQ(bad(rep("{", "{\"extra\": 1,")), ErrorCode::kMalformed);
  EXPECT_EQ(bad(rep("{", "{\"format\": \"ota-signatures-v1\",")), ErrorCode::kMalformed);
  EXPECT_EQ(bad(rep("ota-signatures-v1", "ota-signatures-v2")), ErrorCode::kMalformed);
  EXPECT_EQ(bad(rep("\"sig\"", "\"x\": 1, \"sig\"")), ErrorCode::kMalformed);
  EXPECT_EQ(bad(rep("\"signatures\": [", "\"roots\": [{}], \"signatures\": [")), ErrorCode::kMalformed);
  EXPECT_EQ(bad(text + "x"), ErrorCode::kMalformed);
  EXPECT_EQ(bad(""), ErrorCode::kMalformed);
  EXPECT_EQ(bad(text + std::string(bundle::kMaxSignatureBlockBytes, ' ')), ErrorCode::kMalformed);
}

// ---- verification and policy ----

TEST(Bundle, PolicyFailures) {
  const World& w = world();
  auto run = [&](auto edit) {
    auto store = w.store();
    VerifyOptions o = w.opts();
    edit(o);
    return code_of(test::read_bundle(w.bytes, store, o));
  };
  EXPECT_EQ(run([](VerifyOptions&) {}), ErrorCode::kOk);
  EXPECT_EQ(run([](VerifyOptions& o) { o.policy.installed_version = "2.0.0"; }), ErrorCode::kDowngrade);
  EXPECT_EQ(run([](VerifyOptions& o) { o.policy.installed_version = "2.0.1"; }), ErrorCode::kDowngrade);
  EXPECT_EQ(run([](VerifyOptions& o) { o.policy.installed_version = "2.0.0-rc.1"; }), ErrorCode::kOk);
  EXPECT_EQ(run([](VerifyOptions& o) { o.policy.security_floor = 4; }), ErrorCode::kDowngrade);
  EXPECT_EQ(run([](VerifyOptions& o) { o.policy.hardware = "board-z"; }), ErrorCode::kIncompatibleHardware);
  EXPECT_EQ(run([&](VerifyOptions& o) { o.policy.now = w.expires; }), ErrorCode::kExpired);
  EXPECT_EQ(run([&](VerifyOptions& o) { o.policy.now = w.expires + 86400; }), ErrorCode::kExpired);
  EXPECT_EQ(run([&](VerifyOptions& o) {
              o.policy.now = w.expires + 86400;
              o.check_expiry = false;
            }),
            ErrorCode::kOk);
}

TEST(Bundle, ExpiredRoot) {
  const World& w = world();
  const trust::Root old = test::make_root(1, at("2026-03-01"), 2, w.k.ptrs({0, 1, 2}));
  auto store = test::store_from(test::root_envelope(old, w.k.ptrs({0, 1})));
  EXPECT_EQ(code_of(test::read_bundle(w.bytes, store, w.opts())), ErrorCode::kExpired);
  VerifyOptions o = w.opts();
  o.check_expiry = false;
  EXPECT_TRUE(test::read_bundle(w.bytes, store, o));
}

TEST(Bundle, RootUpdatesInTheSignatureBlock) {
  const World& w = world();
  const Bytes image = test::random_bytes(3000, 7);
  manifest::Manifest m = test::simple_manifest(image);
  m.version = "2.0.0";
  // Signed only by v3's keys, carrying v3 and v2 (in that order).
  auto b = test::write_mem_bundle(m, {image}, w.k.ptrs({6, 7}), {w.v3_env(), w.v2_env()});
  {
    auto store = w.store();
    trust::ThresholdReport report;
    MemoryReader in(b.bytes);
    auto r = BundleReader::open(in);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ((*r)->signature_block().roots.size(), 2u);
    auto v = (*r)->verify(store, w.opts(), &report);
    ASSERT_TRUE(v) << v.error().message;
    EXPECT_EQ(store.root().version, 3u) << "the store walked to v3";
    EXPECT_EQ(report.valid, 2u);
  }
  {
    auto store = w.store();
    ASSERT_TRUE(test::read_bundle(b.bytes, store, w.opts()));
  }
  {
    // With an expired anchor: the walk happens before the freshness check.
    auto store = test::store_from(
        test::root_envelope(test::make_root(1, at("2026-03-01"), 2, w.k.ptrs({0, 1, 2})), w.k.ptrs({0, 1})));
    auto st = test::read_bundle(b.bytes, store, w.opts());
    EXPECT_TRUE(st) << message_of(st);
  }
  {
    // Only v3: does not chain from v1, so v3's keys are unknown.
    auto only3 = test::write_mem_bundle(m, {image}, w.k.ptrs({6, 7}), {w.v3_env()});
    auto store = w.store();
    EXPECT_EQ(code_of(test::read_bundle(only3.bytes, store, w.opts())), ErrorCode::kUnknownKey);
    EXPECT_EQ(store.root().version, 1u);
  }
  {
    // A bogus update is ignored; v1's signatures still verify.
    auto bogus = test::root_envelope(test::make_root(2, w.far, 1, w.k.ptrs({9})), w.k.ptrs({9}));
    auto b2 = test::write_mem_bundle(m, {image}, w.k.ptrs({0, 2}), {bogus});
    auto store = w.store();
    EXPECT_TRUE(test::read_bundle(b2.bytes, store, w.opts()));
    EXPECT_EQ(store.root().version, 1u);
  }
}

TEST(Bundle, SignatureFailuresThroughTheReader) {
  const World& w = world();
  const Bytes image = test::random_bytes(3000, 8);
  manifest::Manifest m = test::simple_manifest(image);
  m.version = "2.0.0";
  struct Case {
    std::vector<std::size_t> signers;
    ErrorCode code;
  };
  for (const auto& c : std::vector<Case>{{{0}, ErrorCode::kTooFewSignatures},
                                         {{}, ErrorCode::kTooFewSignatures},
                                         {{0, 0}, ErrorCode::kTooFewSignatures},
                                         {{0, 9}, ErrorCode::kUnknownKey},
                                         {{9, 10, 11}, ErrorCode::kUnknownKey},
                                         {{2, 1}, ErrorCode::kOk}}) {
    test::Signers s;
    for (auto i : c.signers) s.push_back(w.k.ptr(i));
    auto b = test::write_mem_bundle(m, {image}, s);
    auto store = w.store();
    EXPECT_EQ(code_of(test::read_bundle(b.bytes, store, w.opts())), c.code) << c.signers.size();
  }
}

TEST(Bundle, ValidlySignedManifestWithDuplicateKeysIsMalformed) {
  const World& w = world();
  const Bytes image = test::random_bytes(3000, 9);
  manifest::Manifest m = test::simple_manifest(image);
  m.version = "2.0.0";
  std::string text = to_text(manifest::encode_manifest(m));
  text.replace(text.find('{'), 1, "{\n  \"version\": \"9.9.9\",");
  auto b = test::write_mem_bundle(m, {image}, w.k.ptrs({0, 1}), {}, to_bytes(text));
  auto store = w.store();
  MemoryReader in(b.bytes);
  auto r = BundleReader::open(in);
  ASSERT_TRUE(r) << r.error().message;
  trust::ThresholdReport report;
  auto v = (*r)->verify(store, w.opts(), &report);
  EXPECT_EQ(code_of(v), ErrorCode::kMalformed) << message_of(v);
  EXPECT_EQ(report.valid, 2u) << "the signatures were checked, and passed, before the JSON was parsed";
  EXPECT_EQ(code_of((*r)->next_payload()), ErrorCode::kUsage) << "no payload before a successful verify";
  // Not JSON at all, validly signed: the same.
  auto junk = test::write_mem_bundle(m, {image}, w.k.ptrs({0, 1}), {}, to_bytes("not json"));
  auto store2 = w.store();
  EXPECT_EQ(code_of(test::read_bundle(junk.bytes, store2, w.opts())), ErrorCode::kMalformed);
}

TEST(Bundle, TarTimesMustMatchTheManifest) {
  const World& w = world();
  const Bytes image = test::random_bytes(3000, 10);
  manifest::Manifest m = test::simple_manifest(image);
  m.version = "2.0.0";
  const Bytes signed_bytes = manifest::encode_manifest(m);
  manifest::Manifest shifted = m;
  shifted.created += 1;  // write_bundle stamps the headers with this
  auto b = test::write_mem_bundle(shifted, {image}, w.k.ptrs({0, 1}), {}, signed_bytes);
  auto store = w.store();
  EXPECT_EQ(code_of(test::read_bundle(b.bytes, store, w.opts())), ErrorCode::kMalformed);
}

TEST(Bundle, ReaderUsageErrors) {
  const World& w = world();
  MemoryReader in(w.bytes);
  auto r = BundleReader::open(in);
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)->manifest_bytes().size(), w.staged->manifest_bytes().size());
  EXPECT_EQ((*r)->signature_block().signatures.size(), 2u);
  EXPECT_EQ((*r)->offset(), w.layout().members[2].header_offset) << "open reads only the first two members";
  EXPECT_EQ(code_of((*r)->next_payload()), ErrorCode::kUsage);
  Bytes buf(10);
  EXPECT_EQ(code_of((*r)->read(buf)), ErrorCode::kUsage);
  auto unverified = (*r)->parse_unverified();
  ASSERT_TRUE(unverified) << unverified.error().message;
  EXPECT_EQ(unverified->version, "2.0.0");
  // For tools: payloads may be read after parse_unverified, each chunk still
  // checked against the (unverified) manifest.
  std::vector<std::size_t> sizes;
  while (true) {
    auto idx = (*r)->next_payload();
    ASSERT_TRUE(idx) << idx.error().message;
    if (!*idx) break;
    std::size_t total = 0;
    Bytes chunk(4096);
    while (true) {
      auto n = (*r)->read(chunk);
      ASSERT_TRUE(n) << n.error().message;
      if (*n == 0) break;
      total += *n;
    }
    sizes.push_back(total);
  }
  EXPECT_EQ(sizes, (std::vector<std::size_t>{w.m().payloads[0].size, w.m().payloads[1].size}));
  EXPECT_EQ((*r)->offset(), w.bytes.size());

  // Unverified does not mean unchecked: a corrupt chunk is still refused.
  Bytes bad = w.bytes;
  bad[w.layout().members[2].data_offset + 5] ^= 0x01;
  MemoryReader in2(bad);
  auto r2 = BundleReader::open(in2);
  ASSERT_TRUE(r2);
  ASSERT_TRUE((*r2)->parse_unverified());
  auto idx = (*r2)->next_payload();
  ASSERT_TRUE(idx && *idx);
  EXPECT_EQ(code_of((*r2)->read(buf)), ErrorCode::kPayloadMismatch);
}

TEST(Bundle, SkippingPayloadsStillChecksTheRest) {
  const World& w = world();
  MemoryReader in(w.bytes);
  auto r = BundleReader::open(in);
  ASSERT_TRUE(r);
  auto store = w.store();
  ASSERT_TRUE((*r)->verify(store, w.opts()));
  auto i0 = (*r)->next_payload();
  ASSERT_TRUE(i0 && *i0 && **i0 == 0);
  auto i1 = (*r)->next_payload();  // skips payload 0 unread
  ASSERT_TRUE(i1 && *i1 && **i1 == 1);
  auto end = (*r)->next_payload();
  ASSERT_TRUE(end) << end.error().message;
  EXPECT_FALSE(*end);
  EXPECT_EQ((*r)->offset(), w.bytes.size());
  auto again = (*r)->next_payload();
  ASSERT_TRUE(again);
  EXPECT_FALSE(*again);
  // Trailing garbage is still found when the payloads are skipped.
  Bytes longer = w.bytes;
  longer.push_back(0);
  MemoryReader in2(longer);
  auto r2 = BundleReader::open(in2);
  ASSERT_TRUE(r2);
  auto store2 = w.store();
  ASSERT_TRUE((*r2)->verify(store2, w.opts()));
  Result<std::optional<std::size_t>> step = (*r2)->next_payload();
  while (step && *step) step = (*r2)->next_payload();
  EXPECT_EQ(code_of(step), ErrorCode::kMalformed);
}

// Reads the rest of the current payload.
Bytes drain(BundleReader& r) {
  Bytes out, buf(1000);
  while (true) {
    auto n = r.read(buf);
    if (!n) throw std::runtime_error(n.error().message);
    if (*n == 0) return out;
    out.insert(out.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(*n));
  }
}

TEST(Bundle, SkipToLandsOnTheByteAndFetchesOnlyItsChunk) {
  // Payload 0 of a 20,000-byte stored image in 4 KiB chunks.
  const test::MemBundle b = small_bundle(7, 20000, 4096);
  const Bytes& image = b.payloads.at(0);
  for (std::uint64_t at : {0ull, 1ull, 4095ull, 4096ull, 9000ull, 19999ull, 20000ull}) {
    SCOPED_TRACE("at " + std::to_string(at));
    MemoryReader mem(b.bytes);
    struct Counting final : Reader {
      explicit Counting(Reader& inner) : in(inner) {}
      Result<std::size_t> read(MutableByteSpan out) override {
        auto n = in.read(out);
        if (n) read_bytes += *n;
        return n;
      }
      Result<std::uint64_t> skip(std::uint64_t n) override { return in.skip(n); }
      Reader& in;
      std::uint64_t read_bytes = 0;
    } in(mem);
    auto r = BundleReader::open(in);
    ASSERT_TRUE(r);
    auto store = world().store();
    auto v = (*r)->verify(store, world().opts());
    ASSERT_TRUE(v) << v.error().message;
    auto idx = (*r)->next_payload();
    ASSERT_TRUE(idx && *idx);
    const std::uint64_t before = in.read_bytes;
    ASSERT_TRUE((*r)->skip_to(at));
    EXPECT_EQ((*r)->payload_position(), at);
    EXPECT_EQ(drain(**r), test::slice(image, at, 20000 - at));
    // Only from the start of at's chunk is fetched.
    EXPECT_EQ(in.read_bytes - before, 20000 - at / 4096 * 4096);
    auto end = (*r)->next_payload();
    ASSERT_TRUE(end) << end.error().message;
    EXPECT_FALSE(*end);
  }
}

TEST(Bundle, SkipToWithinAReadChunkAndBackwards) {
  const test::MemBundle b = small_bundle(8, 10000, 4096);
  MemoryReader in(b.bytes);
  auto r = BundleReader::open(in);
  ASSERT_TRUE(r);
  auto store = world().store();
  ASSERT_TRUE((*r)->verify(store, world().opts()));
  ASSERT_TRUE((*r)->next_payload());
  Bytes buf(100);
  ASSERT_TRUE((*r)->read(buf));        // loads chunk 0, hands out 100 bytes
  ASSERT_TRUE((*r)->skip_to(3000));   // inside the loaded chunk
  EXPECT_EQ((*r)->payload_position(), 3000u);
  EXPECT_EQ(code_of((*r)->skip_to(2999)), ErrorCode::kUsage);
  EXPECT_EQ(code_of((*r)->skip_to(10001)), ErrorCode::kUsage);
  EXPECT_EQ(drain(**r).size(), 7000u);
  // A skip into a chunk that does not match its hash still fails on read.
  Bytes bad = b.bytes;
  const auto l = bundle::layout(b.manifest_bytes.size(), bundle::encode_signature_block(b.block).size(), b.m);
  bad[l.members[2].data_offset + 8200] ^= 1;
  MemoryReader in2(bad);
  auto r2 = BundleReader::open(in2);
  ASSERT_TRUE(r2);
  auto store2 = world().store();
  ASSERT_TRUE((*r2)->verify(store2, world().opts()));
  ASSERT_TRUE((*r2)->next_payload());
  ASSERT_TRUE((*r2)->skip_to(9000));
  EXPECT_EQ(code_of((*r2)->read(buf)), ErrorCode::kPayloadMismatch);
}

TEST(Bundle, VerifyFileOnDisk) {
  const World& w = world();
  test::TempDir dir;
  test::write_bytes(dir.file("b.otab"), w.bytes);
  auto store = w.store();
  std::uint64_t last_progress = 0;
  auto res = bundle::verify_file(dir.file("b.otab"), store, w.opts(), false,
                                 [&](std::uint64_t done, std::uint64_t) { last_progress = done; });
  ASSERT_TRUE(res) << res.error().message;
  EXPECT_EQ(res->bytes_checked, w.m().payloads[0].size + w.m().payloads[1].size);
  EXPECT_EQ(last_progress, res->bytes_checked);
  EXPECT_EQ(res->signatures.valid, 2u);
  EXPECT_EQ(res->manifest.version, "2.0.0");
  auto meta = bundle::verify_file(dir.file("b.otab"), store, w.opts(), true);
  ASSERT_TRUE(meta);
  EXPECT_EQ(meta->bytes_checked, 0u);

  Bytes bad = w.bytes;
  bad[w.layout().members[3].data_offset] ^= 0x01;
  test::write_bytes(dir.file("bad.otab"), bad);
  EXPECT_EQ(code_of(bundle::verify_file(dir.file("bad.otab"), store, w.opts(), false)), ErrorCode::kPayloadMismatch);
  EXPECT_TRUE(bundle::verify_file(dir.file("bad.otab"), store, w.opts(), true)) << "metadata only";
  test::write_bytes(dir.file("short.otab"), test::slice(w.bytes, 0, w.bytes.size() - 1));
  EXPECT_EQ(code_of(bundle::verify_file(dir.file("short.otab"), store, w.opts(), false)), ErrorCode::kMalformed);
  EXPECT_EQ(code_of(bundle::verify_file(dir.file("missing.otab"), store, w.opts(), false)), ErrorCode::kIo);
}

TEST(Bundle, WriteBundleErrors) {
  const World& w = world();
  const Bytes image = test::random_bytes(3000, 11);
  const manifest::Manifest m = test::simple_manifest(image);
  const Bytes mb = manifest::encode_manifest(m);
  VectorWriter out;
  EXPECT_EQ(code_of(bundle::write_bundle(out, mb, {}, m, {})), ErrorCode::kInternal);
  const Bytes shorter = test::slice(image, 0, 2000);
  MemoryReader in(shorter);
  VectorWriter out2;
  EXPECT_EQ(code_of(bundle::write_bundle(out2, mb, {}, m, {&in})), ErrorCode::kIo);
  (void)w;
}

// ---- structure ----

TEST(Bundle, OpenRejectsBadStarts) {
  const World& w = world();
  MemoryReader empty{ByteSpan()};
  EXPECT_EQ(code_of(BundleReader::open(empty)), ErrorCode::kMalformed);
  // A manifest header claiming 5 MiB: rejected before reading (or allocating) it.
  auto h = bundle::member_header("manifest.json", 5u << 20, w.created);
  ASSERT_TRUE(h);
  MemoryReader in(*h);
  auto r = BundleReader::open(in);
  EXPECT_EQ(code_of(r), ErrorCode::kMalformed);
  EXPECT_NE(message_of(r).find("limit"), std::string::npos) << message_of(r);
  // Members in another order.
  const Layout l = w.layout();
  Bytes swapped;
  swapped.insert(swapped.end(), w.bytes.begin() + static_cast<std::ptrdiff_t>(l.members[1].header_offset),
                 w.bytes.begin() + static_cast<std::ptrdiff_t>(l.members[2].header_offset));
  swapped.insert(swapped.end(), w.bytes.begin(), w.bytes.begin() + static_cast<std::ptrdiff_t>(l.members[1].header_offset));
  swapped.insert(swapped.end(), w.bytes.begin() + static_cast<std::ptrdiff_t>(l.members[2].header_offset), w.bytes.end());
  MemoryReader in2(swapped);
  EXPECT_EQ(code_of(BundleReader::open(in2)), ErrorCode::kMalformed);
}

TEST(Bundle, TruncatedAtEveryLengthFails) {
  const World& w = world();
  std::map<ErrorCode, int> seen;
  std::vector<std::string> wrong;
  const auto store0 = w.store();
  for (std::size_t n = 0; n < w.bytes.size(); ++n) {
    auto store = store0;
    auto st = test::read_bundle(ByteSpan(w.bytes.data(), n), store, w.opts());
    ASSERT_FALSE(st) << "a bundle cut to " << n << " bytes was accepted";
    ++seen[st.error().code];
    if (st.error().code != ErrorCode::kMalformed && wrong.size() < 10)
      wrong.push_back(std::to_string(n) + ": " + st.error().message);
  }
  // Every cut is reported as malformed: the reader reads each chunk whole
  // before hashing it, so a cut inside a chunk is a truncation, not a mismatch.
  EXPECT_TRUE(wrong.empty()) << ::testing::PrintToString(wrong);
  EXPECT_EQ(seen[ErrorCode::kMalformed], static_cast<int>(w.bytes.size()));
}

TEST(Bundle, AppendedBytesFail) {
  const World& w = world();
  for (const Bytes& tail : {Bytes{0}, Bytes{'x'}, Bytes(512, 0), Bytes(1024, 0), w.bytes}) {
    Bytes longer = w.bytes;
    longer.insert(longer.end(), tail.begin(), tail.end());
    auto store = w.store();
    auto st = test::read_bundle(longer, store, w.opts());
    EXPECT_EQ(code_of(st), ErrorCode::kMalformed) << tail.size() << " bytes appended: " << message_of(st);
  }
}

// ---- the tamper table ----

enum class Region { kTar, kManifest, kSignatures, kPayload };

const char* region_name(Region r) {
  switch (r) {
    case Region::kTar: return "tar structure";
    case Region::kManifest: return "manifest";
    case Region::kSignatures: return "signature block";
    case Region::kPayload: return "payload data";
  }
  return "?";
}

Region region_of(const Layout& l, std::uint64_t off) {
  for (std::size_t i = 0; i < l.members.size(); ++i) {
    const auto& m = l.members[i];
    if (off >= m.data_offset && off < m.data_offset + m.size)
      return i == 0 ? Region::kManifest : i == 1 ? Region::kSignatures : Region::kPayload;
  }
  return Region::kTar;  // headers, padding, end-of-archive blocks
}

std::set<ErrorCode> expected_codes(Region r) {
  switch (r) {
    case Region::kTar: return {ErrorCode::kMalformed};
    case Region::kManifest: return {ErrorCode::kBadSignature};
    case Region::kSignatures:
      return {ErrorCode::kMalformed, ErrorCode::kBadSignature, ErrorCode::kTooFewSignatures, ErrorCode::kUnknownKey};
    case Region::kPayload: return {ErrorCode::kPayloadMismatch};
  }
  return {};
}

TEST(BundleTamper, EverySingleByteFlipFailsWithItsRegionsCode) {
  const World& w = world();
  const Layout l = w.layout();
  ASSERT_EQ(l.total_size, w.bytes.size());
  const auto store0 = w.store();
  const VerifyOptions opts = w.opts();
  Bytes data = w.bytes;
  std::vector<std::string> wrong;
  std::map<std::pair<Region, ErrorCode>, int> histogram;
  const auto t0 = std::chrono::steady_clock::now();
  for (std::uint8_t mask : {std::uint8_t{0x01}, std::uint8_t{0xff}}) {
    for (std::size_t off = 0; off < data.size(); ++off) {
      data[off] ^= mask;
      auto store = store0;
      auto st = test::read_bundle(data, store, opts);
      data[off] ^= mask;
      const Region region = region_of(l, off);
      const ErrorCode code = code_of(st);
      ++histogram[{region, code}];
      if (!expected_codes(region).count(code) && wrong.size() < 20) {
        std::ostringstream s;
        s << "offset " << off << " (" << region_name(region) << ") ^0x" << std::hex << int(mask) << std::dec
          << ": code " << int(code) << (st ? " (accepted!)" : " " + st.error().message);
        wrong.push_back(s.str());
      }
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_TRUE(wrong.empty()) << wrong.size() << " flips with the wrong outcome, first ones:\n"
                             << ::testing::PrintToString(wrong);
  std::ostringstream summary;
  for (const auto& [key, n] : histogram) summary << region_name(key.first) << " -> " << int(key.second) << ": " << n << "\n";
  std::cout << "[ tamper   ] " << 2 * data.size() << " flips over " << data.size() << " bytes in " << secs << " s\n"
            << summary.str();
  EXPECT_EQ(histogram.count({Region::kTar, ErrorCode::kOk}) + histogram.count({Region::kManifest, ErrorCode::kOk}) +
                histogram.count({Region::kSignatures, ErrorCode::kOk}) + histogram.count({Region::kPayload, ErrorCode::kOk}),
            0u);
}

TEST(BundleTamper, SwappedPayloadsOfEqualSize) {
  // Same sizes, same names: the tar headers are identical, so only the chunk
  // hashes can tell.
  const auto a = small_bundle(21, 6000);
  const auto b = small_bundle(22, 6000);
  const Layout la = bundle::layout(a.manifest_bytes.size(), bundle::encode_signature_block(a.block).size(), a.m);
  const Layout lb = bundle::layout(b.manifest_bytes.size(), bundle::encode_signature_block(b.block).size(), b.m);
  ASSERT_EQ(la.members[2].size, lb.members[2].size);
  Bytes mixed = splice(a.bytes, la.members[2].data_offset, la.members[2].size,
                       ByteSpan(b.bytes).subspan(lb.members[2].data_offset, lb.members[2].size));
  ASSERT_EQ(mixed.size(), a.bytes.size());
  auto store = world().store();
  EXPECT_EQ(code_of(test::read_bundle(mixed, store, world().opts())), ErrorCode::kPayloadMismatch);
}

TEST(BundleTamper, SwappedPayloadsOfDifferentSize) {
  // Different sizes: the payload member's tar header states another size than
  // the signed manifest, so the header is not the expected one: kMalformed
  // before a byte of the payload is read.
  const auto a = small_bundle(23, 6000);
  const auto b = small_bundle(24, 7000);
  const Layout la = bundle::layout(a.manifest_bytes.size(), bundle::encode_signature_block(a.block).size(), a.m);
  const Layout lb = bundle::layout(b.manifest_bytes.size(), bundle::encode_signature_block(b.block).size(), b.m);
  const auto& ma = la.members[2];
  const auto& mb = lb.members[2];
  Bytes mixed = splice(a.bytes, ma.header_offset, la.end_offset - ma.header_offset,
                       ByteSpan(b.bytes).subspan(mb.header_offset, lb.end_offset - mb.header_offset));
  auto store = world().store();
  auto st = test::read_bundle(mixed, store, world().opts());
  EXPECT_EQ(code_of(st), ErrorCode::kMalformed) << message_of(st);
  // Only the data swapped (a's header kept, b's longer data cut to a's size): the chunks do not match.
  Bytes data_only = splice(a.bytes, ma.data_offset, ma.size, ByteSpan(b.bytes).subspan(mb.data_offset, ma.size));
  auto store2 = world().store();
  EXPECT_EQ(code_of(test::read_bundle(data_only, store2, world().opts())), ErrorCode::kPayloadMismatch);
}

TEST(BundleTamper, ManifestFromAnotherSignedBundle) {
  const auto a = small_bundle(25, 6000);
  const auto b = small_bundle(26, 6000);
  const Layout la = bundle::layout(a.manifest_bytes.size(), bundle::encode_signature_block(a.block).size(), a.m);
  const Layout lb = bundle::layout(b.manifest_bytes.size(), bundle::encode_signature_block(b.block).size(), b.m);
  // b's manifest member in a: a's signatures do not cover it.
  Bytes m_swapped = splice(a.bytes, 0, la.members[1].header_offset,
                           ByteSpan(b.bytes).subspan(0, lb.members[1].header_offset));
  auto s1 = world().store();
  EXPECT_EQ(code_of(test::read_bundle(m_swapped, s1, world().opts())), ErrorCode::kBadSignature);
  // b's manifest and signature block in a: verifies, but a's payload is not b's.
  Bytes head_swapped = splice(a.bytes, 0, la.members[2].header_offset,
                              ByteSpan(b.bytes).subspan(0, lb.members[2].header_offset));
  auto s2 = world().store();
  auto st = test::read_bundle(head_swapped, s2, world().opts());
  EXPECT_EQ(code_of(st), ErrorCode::kPayloadMismatch) << message_of(st);
  // The manifest of a different release (other version, other payload size).
  auto c = small_bundle(27, 9000);
  const Layout lc = bundle::layout(c.manifest_bytes.size(), bundle::encode_signature_block(c.block).size(), c.m);
  Bytes other = splice(a.bytes, 0, la.members[2].header_offset, ByteSpan(c.bytes).subspan(0, lc.members[2].header_offset));
  auto s3 = world().store();
  EXPECT_FALSE(test::read_bundle(other, s3, world().opts()));
}

TEST(BundleTamper, ReadNeverReleasesBytesOfACorruptChunk) {
  const std::size_t chunk = 4096;
  const Bytes image = test::random_bytes(3 * chunk + 1000, 31);
  manifest::Manifest m = test::simple_manifest(image, chunk);
  m.version = "2.0.0";
  const auto b = test::write_mem_bundle(m, {image}, world().k.ptrs({0, 1}));
  const Layout l = bundle::layout(b.manifest_bytes.size(), bundle::encode_signature_block(b.block).size(), b.m);
  const std::uint64_t data = l.members[2].data_offset;

  for (std::size_t bad_chunk : {std::size_t{0}, std::size_t{2}, std::size_t{3}}) {
    for (std::size_t buf_size : {std::size_t{1}, std::size_t{1000}, chunk, chunk + 1, std::size_t{65536}}) {
      Bytes corrupt = b.bytes;
      corrupt[data + bad_chunk * chunk + 17] ^= 0x40;
      MemoryReader in(corrupt);
      auto r = BundleReader::open(in);
      ASSERT_TRUE(r);
      auto store = world().store();
      ASSERT_TRUE((*r)->verify(store, world().opts()));
      auto idx = (*r)->next_payload();
      ASSERT_TRUE(idx && *idx);
      Bytes got, buf(buf_size);
      Result<std::size_t> n = std::size_t{0};
      while ((n = (*r)->read(buf)) && *n) got.insert(got.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(*n));
      EXPECT_EQ(code_of(n), ErrorCode::kPayloadMismatch) << bad_chunk << "/" << buf_size;
      EXPECT_EQ(got, test::slice(image, 0, bad_chunk * chunk))
          << "chunk " << bad_chunk << ", buffer " << buf_size << ": handed out " << got.size() << " bytes";
      // Reading on after the error never hands out anything either.
      for (int i = 0; i < 8; ++i) {
        auto more = (*r)->read(buf);
        if (more && *more == 0) break;
        EXPECT_FALSE(more) << "bytes handed out after a mismatch";
      }
    }
  }
}

}  // namespace
}  // namespace ota
