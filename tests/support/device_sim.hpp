// A simulated device for the agent and daemon unit tests: a boot environment
// whose stores are writes under the same PowerCut as the banks and the state
// records, banks made from an image, and small signed bundles.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ota/device/boot.hpp"
#include "ota/release/bundle.hpp"
#include "ota/release/encryption.hpp"
#include "ota/core/hash.hpp"
#include "ota/core/io.hpp"
#include "ota/device/storage.hpp"
#include "ota/testing/memory_environment.hpp"
#include "ota/testing/power_cut.hpp"
#include "support/signing.hpp"

namespace ota::test {

// A boot environment in memory; each store is one write of the PowerCut.
class CutEnvironment final : public boot::Environment {
 public:
  CutEnvironment(boot::Vars vars, storage::PowerCut& power) : power_(power) { inner_.vars = std::move(vars); }
  Result<boot::Vars> read() override { return inner_.read(); }
  Status write(const std::map<std::string, std::optional<std::string>>& changes) override {
    OTA_TRY(power_.on_write());
    return inner_.write(changes);
  }
  boot::Vars& vars() { return inner_.vars; }
  const boot::Vars& vars() const { return inner_.vars; }

 private:
  boot::MemoryEnvironment inner_;
  storage::PowerCut& power_;
};

// A bank of `size` bytes that starts with `image`, zeros after it.
inline Bytes bank_with(const Bytes& image, std::uint64_t size) {
  Bytes b(size, 0);
  std::copy(image.begin(), image.end(), b.begin());
  return b;
}

inline Bytes prefix(const Bytes& b, std::size_t n) { return Bytes(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(n)); }

// Build options of the tests' small bundles: zstd in 4 KiB frames, a delta
// from each base in 4 KiB frames, 4 KiB chunks.
inline bundle::BuildOptions small_bundle(const std::string& image_path, std::vector<std::string> bases,
                                         const std::string& version, std::vector<std::string> hardware) {
  bundle::BuildOptions o;
  o.image_path = image_path;
  o.base_paths = std::move(bases);
  o.full_frame_log = 12;
  o.name = "fw";
  o.version = version;
  o.hardware = std::move(hardware);
  o.created = at("2026-01-01");
  o.delta_level = 3;
  o.delta_frame_log = 12;
  o.chunk_size = 4096;
  return o;
}

// Stages and writes the bundle, its manifest signed by `signers`. The
// manifest's hash goes to *manifest_hash when given.
inline Bytes signed_bundle(const bundle::BuildOptions& o, const std::vector<const keys::SecretKey*>& signers,
                           Digest* manifest_hash = nullptr) {
  auto staged = bundle::stage(o);
  EXPECT_TRUE(staged) << staged.error().message;
  if (!staged) return {};
  if (manifest_hash) *manifest_hash = content_hash((*staged)->manifest_bytes());
  bundle::SignatureBlock block;
  block.signatures = sign_all(signers, trust::kManifestType, (*staged)->manifest_bytes());
  VectorWriter out;
  auto st = (*staged)->write(out, block);
  EXPECT_TRUE(st) << st.error().message;
  return std::move(out).take();
}

// X25519 test key n of a device (encrypted bundles): the same on every run.
inline encryption::SecretKey test_decryption_key(std::uint8_t n) {
  Bytes secret(32);
  for (std::size_t i = 0; i < secret.size(); ++i) secret[i] = static_cast<std::uint8_t>(n * 53u + i * 7u + 3u);
  auto k = encryption::SecretKey::from_bytes(secret);
  EXPECT_TRUE(k) << k.error().message;
  return std::move(*k);
}

// Options that encrypt a bundle to these test keys.
inline void encrypt_to(bundle::BuildOptions& o, std::initializer_list<std::uint8_t> keys, std::uint32_t block = 4096) {
  for (auto n : keys) o.recipients.push_back(test_decryption_key(n).public_key().bytes);
  o.encryption_block = block;
}

}  // namespace ota::test
