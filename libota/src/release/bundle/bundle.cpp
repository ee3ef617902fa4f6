#include "ota/release/bundle.hpp"

#include <algorithm>
#include <cstring>
#include <limits>

#include "core/json.hpp"
#include "release/sign/signatures.hpp"

namespace ota::bundle {

namespace {

constexpr std::string_view kSignatureFormat = "ota-signatures-v1";
constexpr std::size_t kMaxBlockSignatures = 256;
constexpr std::size_t kMaxBlockRoots = 64;
constexpr char kManifestPath[] = "manifest.json";
constexpr char kSignaturesPath[] = "signatures.json";

std::uint64_t pad_of(std::uint64_t n) { return (512 - n % 512) % 512; }

std::string_view as_text(ByteSpan b) { return std::string_view(reinterpret_cast<const char*>(b.data()), b.size()); }

tl::unexpected<Error> malformed(std::string msg) { return fail(ErrorCode::kMalformed, "bundle: " + std::move(msg)); }

}  // namespace

std::string_view check_name(Check c) {
  switch (c) {
    case Check::kContainer: return "container";
    case Check::kTrustRoot: return "trust_root";
    case Check::kSignatures: return "signatures";
    case Check::kManifest: return "manifest";
    case Check::kExpiry: return "expiry";
    case Check::kHardware: return "hardware";
    case Check::kVersion: return "version";
    case Check::kPayloads: return "payloads";
  }
  return "unknown";
}

Bytes encode_signature_block(const SignatureBlock& block) {
  json::Ordered doc;
  doc["format"] = kSignatureFormat;
  doc["signatures"] = trust::detail::encode_signatures(block.signatures);
  if (!block.roots.empty()) {
    doc["roots"] = json::Ordered::array();
    for (const auto& r : block.roots) doc["roots"].push_back(json::Ordered::parse(trust::encode_envelope(r)));
  }
  std::string text = doc.dump(2) + "\n";
  return Bytes(text.begin(), text.end());
}

Result<SignatureBlock> parse_signature_block(ByteSpan bytes) {
  OTA_TRY_ASSIGN(auto j, json::parse_strict(as_text(bytes), kMaxSignatureBlockBytes, "signature block"));
  OTA_TRY_ASSIGN(auto o, json::Object::of(j, "signature block"));
  OTA_TRY(o.only({"format", "signatures", "roots"}));
  OTA_TRY_ASSIGN(auto format, o.string("format", 32));
  if (format != kSignatureFormat)
    return fail(ErrorCode::kMalformed, "signature block: format is not " + std::string(kSignatureFormat));
  SignatureBlock b;
  OTA_TRY_ASSIGN(auto sigs, o.array("signatures", kMaxBlockSignatures));
  OTA_TRY_ASSIGN(auto parsed, trust::detail::parse_signatures(*sigs, "signature block.signatures"));
  b.signatures = std::move(parsed);
  if (o.has("roots")) {
    OTA_TRY_ASSIGN(auto roots, o.array("roots", kMaxBlockRoots));
    for (const auto& rj : *roots) {
      auto env = trust::parse_envelope(rj.dump());
      if (!env) return fail(env.error().with_context("signature block.roots[]"));
      b.roots.push_back(std::move(*env));
    }
  }
  return b;
}

Status write_bundle(Writer& out, ByteSpan manifest_bytes, const SignatureBlock& block, const manifest::Manifest& m,
                    const std::vector<ota::Reader*>& payloads,
                    const std::function<void(std::uint64_t, std::uint64_t)>& progress) {
  if (payloads.size() != m.payloads.size())
    return fail(ErrorCode::kInternal, "write_bundle: one reader per payload is needed");
  const Bytes sig_bytes = encode_signature_block(block);
  static const std::uint8_t kZeros[1024] = {};
  std::uint64_t total = 0, done = 0;
  for (const auto& p : m.payloads) total += p.size;

  auto member = [&](const std::string& path, ByteSpan data) -> Status {
    OTA_TRY_ASSIGN(auto h, member_header(path, data.size(), m.created));
    OTA_TRY(out.write(h));
    OTA_TRY(out.write(data));
    return out.write(ByteSpan(kZeros, pad_of(data.size())));
  };
  OTA_TRY(member(kManifestPath, manifest_bytes));
  OTA_TRY(member(kSignaturesPath, sig_bytes));
  Bytes buf(1u << 20);
  for (std::size_t i = 0; i < payloads.size(); ++i) {
    const auto& p = m.payloads[i];
    OTA_TRY_ASSIGN(auto h, member_header("payloads/" + p.name, p.size, m.created));
    OTA_TRY(out.write(h));
    std::uint64_t left = p.size;
    while (left) {
      OTA_TRY_ASSIGN(auto n,
                     payloads[i]->read(MutableByteSpan(buf.data(), static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), left)))));
      if (n == 0) return fail(ErrorCode::kIo, "payload " + p.name + " ended before its " + std::to_string(p.size) + " bytes");
      OTA_TRY(out.write(ByteSpan(buf.data(), n)));
      left -= n;
      done += n;
      if (progress) progress(done, total);
    }
    OTA_TRY(out.write(ByteSpan(kZeros, pad_of(p.size))));
  }
  return out.write(ByteSpan(kZeros, 1024));
}

namespace {

// Parses an unsigned octal tar number field (NUL/space terminated).
std::optional<std::uint64_t> octal_field(const std::uint8_t* f, std::size_t n) {
  std::uint64_t v = 0;
  std::size_t i = 0;
  for (; i < n && f[i] >= '0' && f[i] <= '7'; ++i) {
    if (v >> 60) return std::nullopt;
    v = v * 8 + (f[i] - '0');
  }
  if (i == 0) return std::nullopt;
  for (; i < n; ++i)
    if (f[i] != 0 && f[i] != ' ') return std::nullopt;
  return v;
}

class StreamReader final : public BundleReader {
 public:
  explicit StreamReader(ota::Reader& in) : in_(in) {}

  Status read_exact(MutableByteSpan out, const char* what) {
    std::size_t have = 0;
    while (have < out.size()) {
      OTA_TRY_ASSIGN(auto n, in_.read(MutableByteSpan(out.data() + have, out.size() - have)));
      if (n == 0)
        return malformed("truncated in " + std::string(what) + " at offset " + std::to_string(offset_ + have));
      have += n;
    }
    offset_ += have;
    return ok();
  }

  // Moves over n bytes of the current payload in the stream.
  Status skip_stream(std::uint64_t n) {
    if (n > left_) return fail(ErrorCode::kInternal, "bundle: skip past the payload");
    OTA_TRY_ASSIGN(auto k, in_.skip(n));
    if (k != n) return malformed("truncated in payload at offset " + std::to_string(offset_ + k));
    offset_ += n;
    left_ -= n;
    return ok();
  }

  Status read_zeros(std::uint64_t n, const char* what) {
    std::uint8_t buf[1024];
    while (n) {
      std::size_t k = static_cast<std::size_t>(std::min<std::uint64_t>(n, sizeof buf));
      const std::uint64_t at = offset_;
      OTA_TRY(read_exact(MutableByteSpan(buf, k), what));
      for (std::size_t i = 0; i < k; ++i)
        if (buf[i]) return malformed("non-zero byte in " + std::string(what) + " at offset " + std::to_string(at + i));
      n -= k;
    }
    return ok();
  }

  // Reads one small member (manifest or signature block): the header must be
  // exactly the canonical one for its name, size and mtime.
  Status read_small_member(const char* path, std::size_t max, Bytes& data, trust::Time& mtime, bool header_follows) {
    std::uint8_t h[512];
    const std::uint64_t at = offset_;
    if (offset_ == 0) in_.hint(512);  // over HTTP: ask for no more than the first header
    OTA_TRY(read_exact(MutableByteSpan(h, 512), path));
    auto size = octal_field(h + 124, 12);
    auto mt = octal_field(h + 136, 12);
    if (!size || !mt || std::strncmp(reinterpret_cast<const char*>(h), path, 100) != 0)
      return malformed("expected member " + std::string(path) + " at offset " + std::to_string(at));
    // A canonical header's mtime fits ustar's 11 digits; anything else is
    // malformed (and libarchive would refuse to render it).
    if (*mt > 077777777777)
      return malformed("the tar header of " + std::string(path) + " is not canonical (offset " + std::to_string(at) + ")");
    if (*size > max)
      return malformed(std::string(path) + " is " + std::to_string(*size) + " bytes, over the limit of " +
                       std::to_string(max));
    OTA_TRY_ASSIGN(auto expect, member_header(path, *size, static_cast<trust::Time>(*mt)));
    if (expect.size() != 512 || std::memcmp(expect.data(), h, 512) != 0)
      return malformed("the tar header of " + std::string(path) + " is not canonical (offset " + std::to_string(at) + ")");
    mtime = static_cast<trust::Time>(*mt);
    in_.hint(*size + pad_of(*size) + (header_follows ? 512 : 0));
    data.resize(static_cast<std::size_t>(*size));
    OTA_TRY(read_exact(data, path));
    return read_zeros(pad_of(*size), "tar padding");
  }

  Status open() {
    OTA_TRY(read_small_member(kManifestPath, manifest::kMaxManifestBytes, manifest_, manifest_mtime_, true));
    Bytes sig;
    OTA_TRY(read_small_member(kSignaturesPath, kMaxSignatureBlockBytes, sig, sig_mtime_, false));
    OTA_TRY_ASSIGN(auto block, parse_signature_block(sig));
    block_ = std::move(block);
    return ok();
  }

  ByteSpan manifest_bytes() const override { return manifest_; }
  const SignatureBlock& signature_block() const override { return block_; }

  Result<manifest::Manifest> verify(trust::TrustStore& trust, const VerifyOptions& opts,
                                    trust::ThresholdReport* report, Check* failed) override {
    Check at = Check::kTrustRoot;
    auto m = verify_steps(trust, opts, report, at);
    if (!m && failed) *failed = at;
    return m;
  }

  // verify(), step by step; `at` follows the check being made.
  Result<manifest::Manifest> verify_steps(trust::TrustStore& trust, const VerifyOptions& opts,
                                          trust::ThresholdReport* report, Check& at) {
    at = Check::kTrustRoot;
    trust.update_all(block_.roots);
    if (opts.check_expiry) OTA_TRY(trust.check_fresh(opts.policy.now));
    at = Check::kSignatures;
    OTA_TRY(trust.verify(trust::kManifestType, manifest_, block_.signatures, report));
    at = Check::kManifest;
    auto m = manifest::parse_manifest(manifest_);
    if (!m) return fail(m.error());
    OTA_TRY(adopt(*m));
    // check_policy() checks expiry, hardware, the floor, then the version, and
    // each of its parts is empty unless asked for: one part at a time, in the
    // same order, so that a failure names its check.
    manifest::Policy policy;
    policy.now = opts.check_expiry ? opts.policy.now : std::numeric_limits<trust::Time>::min();
    at = Check::kExpiry;
    OTA_TRY(manifest::check_policy(*m, policy));
    at = Check::kHardware;
    policy.hardware = opts.policy.hardware;
    OTA_TRY(manifest::check_policy(*m, policy));
    at = Check::kVersion;
    policy.security_floor = opts.policy.security_floor;
    policy.installed_version = opts.policy.installed_version;
    OTA_TRY(manifest::check_policy(*m, policy));
    accepted_ = true;
    return m;
  }

  Result<manifest::Manifest> parse_unverified() override {
    auto m = manifest::parse_manifest(manifest_);
    if (!m) return fail(m.error());
    OTA_TRY(adopt(*m));
    accepted_ = true;  // "accepted": the caller chose to trust it unverified
    return m;
  }

  Status adopt(const manifest::Manifest& m) {
    if (manifest_mtime_ != m.created || sig_mtime_ != m.created)
      return malformed("tar header times differ from the manifest's creation time");
    m_ = m;
    return ok();
  }

  Result<std::optional<std::size_t>> next_payload() override {
    if (!accepted_) return fail(ErrorCode::kUsage, "bundle: payloads are read only after verify()");
    if (done_) return std::optional<std::size_t>{};
    if (current_) {
      // Skip what the caller did not read (unchecked, never handed out).
      OTA_TRY(skip_stream(left_));
      OTA_TRY(read_zeros(pad_of(m_.payloads[*current_].size), "tar padding"));
    }
    const std::size_t next = current_ ? *current_ + 1 : 0;
    if (next == m_.payloads.size()) {
      in_.hint(1024 + 1);  // the end-of-archive blocks, and proof of the end of file
      OTA_TRY(read_zeros(1024, "end of archive"));
      std::uint8_t extra;
      OTA_TRY_ASSIGN(auto n, in_.read(MutableByteSpan(&extra, 1)));
      if (n != 0) return malformed("bytes after the end of the archive at offset " + std::to_string(offset_));
      done_ = true;
      current_.reset();
      return std::optional<std::size_t>{};
    }
    const auto& p = m_.payloads[next];
    OTA_TRY_ASSIGN(auto expect, member_header("payloads/" + p.name, p.size, m_.created));
    Bytes h(expect.size());
    const std::uint64_t at = offset_;
    in_.hint(h.size());  // over HTTP: the header only, until the caller reads the payload
    payload_hinted_ = false;
    OTA_TRY(read_exact(h, "payload header"));
    if (h != expect)
      return malformed("the tar header of payloads/" + p.name + " is not the expected one (offset " +
                       std::to_string(at) + ")");
    current_ = next;
    ranged_ = false;
    skip_in_chunk_ = 0;
    left_ = p.size;
    chunk_index_ = 0;
    chunk_.clear();
    chunk_pos_ = 0;
    return std::optional<std::size_t>{next};
  }

  Result<std::size_t> read(MutableByteSpan out) override {
    OTA_TRY_ASSIGN(auto view, read_view(out.size()));
    if (!view.empty()) std::memcpy(out.data(), view.data(), view.size());
    count_copy(view.size());
    return view.size();
  }

  Result<ByteSpan> read_view() override { return read_view(SIZE_MAX); }

  // Up to max verified bytes of the current chunk (the next one read and checked first).
  Result<ByteSpan> read_view(std::size_t max) {
    if (!current_) return fail(ErrorCode::kUsage, "bundle: no current payload");
    if (ranged_) return fail(ErrorCode::kUsage, "bundle: a payload read by ranges is read by ranges only");
    if (chunk_pos_ == chunk_.size()) {
      if (left_ == 0) return ByteSpan{};
      const auto& p = m_.payloads[*current_];
      const std::size_t k = static_cast<std::size_t>(std::min<std::uint64_t>(left_, p.chunk_size));
      chunk_.resize(k);
      // Over HTTP: the first chunk the caller reads alone (a resuming
      // patcher needs only its header and then jumps), then the rest of the
      // payload, and never the payload after it (which the caller may skip).
      in_.hint(payload_hinted_ ? left_ : k);
      payload_hinted_ = true;
      const std::uint64_t at = offset_;
      OTA_TRY(read_exact(chunk_, "payload"));
      left_ -= k;
      if (content_hash(chunk_) != p.chunks[chunk_index_]) {
        chunk_.clear();
        chunk_pos_ = 0;
        return fail(ErrorCode::kPayloadMismatch, "payload " + p.name + ": chunk " + std::to_string(chunk_index_) +
                                                     " (bundle offset " + std::to_string(at) +
                                                     ") does not match its signed hash");
      }
      ++chunk_index_;
      chunk_pos_ = skip_in_chunk_;
      skip_in_chunk_ = 0;
    }
    const std::size_t n = std::min(max, chunk_.size() - chunk_pos_);
    const ByteSpan view(chunk_.data() + chunk_pos_, n);
    chunk_pos_ += n;
    return view;
  }

  Status skip_to(std::uint64_t at) override {
    if (!current_) return fail(ErrorCode::kUsage, "bundle: no current payload");
    if (ranged_) return fail(ErrorCode::kUsage, "bundle: a payload read by ranges is read by ranges only");
    const auto& p = m_.payloads[*current_];
    const std::uint64_t fetched = p.size - left_;  // payload bytes taken from the stream
    const std::uint64_t pos = payload_position();
    if (at < pos || at > p.size)
      return fail(ErrorCode::kUsage, "bundle: cannot move from payload offset " + std::to_string(pos) + " to " +
                                         std::to_string(at));
    if (at < fetched) {  // inside the chunk already read and checked
      chunk_pos_ += static_cast<std::size_t>(at - pos);
      return ok();
    }
    const std::uint64_t chunk = at / p.chunk_size;
    OTA_TRY(skip_stream(chunk * p.chunk_size - fetched));
    chunk_index_ = static_cast<std::size_t>(chunk);
    chunk_.clear();
    chunk_pos_ = 0;
    skip_in_chunk_ = static_cast<std::size_t>(at - chunk * p.chunk_size);
    return ok();
  }

  Status read_checked(std::uint64_t at, MutableByteSpan out, const Digest& expect, std::uint64_t upcoming) override {
    if (!current_) return fail(ErrorCode::kUsage, "bundle: no current payload");
    const auto& p = m_.payloads[*current_];
    if (!ranged_ && (!chunk_.empty() || skip_in_chunk_ != 0 || left_ != p.size))
      return fail(ErrorCode::kUsage, "bundle: ranged reading starts before any other read of the payload");
    ranged_ = true;
    const std::uint64_t fetched = p.size - left_;
    if (at < fetched || at > p.size || out.size() > p.size - at)
      return fail(ErrorCode::kUsage, "bundle: cannot read " + std::to_string(out.size()) + " bytes at payload offset " +
                                         std::to_string(at) + " (at " + std::to_string(fetched) + " of " +
                                         std::to_string(p.size) + ")");
    if (at > fetched) OTA_TRY(skip_stream(at - fetched));
    in_.hint(std::max<std::uint64_t>(upcoming, out.size()));
    const std::uint64_t where = offset_;
    OTA_TRY(read_exact(out, "payload"));
    left_ -= out.size();
    if (content_hash(ByteSpan(out.data(), out.size())) != expect) {
      std::fill(out.begin(), out.end(), std::uint8_t{0});
      return fail(ErrorCode::kPayloadMismatch, "payload " + p.name + ": " + std::to_string(out.size()) +
                                                   " bytes at bundle offset " + std::to_string(where) +
                                                   " do not match their signed hash");
    }
    return ok();
  }

  std::uint64_t payload_position() const override {
    if (!current_) return 0;
    return m_.payloads[*current_].size - left_ - (chunk_.size() - chunk_pos_) + skip_in_chunk_;
  }

  std::uint64_t offset() const override { return offset_; }

 private:
  ota::Reader& in_;
  std::uint64_t offset_ = 0;
  Bytes manifest_;
  trust::Time manifest_mtime_ = 0, sig_mtime_ = 0;
  SignatureBlock block_;
  manifest::Manifest m_;
  bool accepted_ = false, done_ = false;
  std::optional<std::size_t> current_;
  std::uint64_t left_ = 0;
  std::size_t chunk_index_ = 0;
  Bytes chunk_;
  std::size_t chunk_pos_ = 0;
  std::size_t skip_in_chunk_ = 0;  // applied when the next chunk is loaded
  bool payload_hinted_ = false;
  bool ranged_ = false;  // the current payload is read by read_checked()
};

}  // namespace

Result<std::unique_ptr<BundleReader>> BundleReader::open(ota::Reader& in) {
  auto r = std::make_unique<StreamReader>(in);
  OTA_TRY(r->open());
  return std::unique_ptr<BundleReader>(std::move(r));
}

}  // namespace ota::bundle
