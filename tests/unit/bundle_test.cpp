// ota/release/bundle.hpp: staging, the container (tar layout, canonical
// headers, readers other than ours) and signature blocks.
#include "unit/bundle_world.hpp"

namespace ota {
namespace {

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

}  // namespace
}  // namespace ota
