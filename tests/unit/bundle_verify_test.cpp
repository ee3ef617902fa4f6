// ota/release/bundle.hpp: streaming verification and the policy, the
// reader (skipping, seeking), files on disk, and the container's structure.
#include "unit/bundle_world.hpp"

namespace ota {
namespace {

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

}  // namespace
}  // namespace ota
