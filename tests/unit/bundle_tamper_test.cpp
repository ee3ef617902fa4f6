// ota/release/bundle.hpp: what tampering does: every byte flipped fails with
// its region's code, swapped payloads, a manifest from another bundle, and no
// byte of a corrupt chunk is ever released.
#include "unit/bundle_world.hpp"

namespace ota {
namespace {

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
