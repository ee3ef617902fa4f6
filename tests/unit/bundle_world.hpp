// The bundle suites' shared world (bundle_test, bundle_verify_test,
// bundle_tamper_test): keys, roots, one staged bundle with a full and a delta
// payload, and small helpers. Each suite's file gets its own world, built on
// first use.
#pragma once

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
namespace {  // each test file its own world

using bundle::BundleReader;
using bundle::Layout;
using bundle::SignatureBlock;
using bundle::VerifyOptions;
using test::at;
using test::code_of;
using test::message_of;
using test::to_bytes;
using test::to_text;

inline const char* tar_path() {
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
inline const World& world() {
  static const World w;
  return w;
}

// A small in-memory bundle with uncompressed payloads.
inline test::MemBundle small_bundle(std::uint64_t seed, std::size_t size = 5000, std::uint32_t chunk = 4096,
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

inline Bytes splice(const Bytes& data, std::size_t from, std::size_t len, ByteSpan with) {
  Bytes out(data.begin(), data.begin() + static_cast<std::ptrdiff_t>(from));
  out.insert(out.end(), with.begin(), with.end());
  out.insert(out.end(), data.begin() + static_cast<std::ptrdiff_t>(from + len), data.end());
  return out;
}

}  // namespace
}  // namespace ota
