#include "ota/release/verify.hpp"

namespace ota::bundle {

namespace {

VerifyReport empty_report() {
  VerifyReport r;
  for (std::size_t i = 0; i < kCheckCount; ++i) r.checks.push_back({static_cast<Check>(i), Outcome::kSkipped, {}});
  return r;
}

void pass(VerifyReport& r, Check c) { r.checks[static_cast<std::size_t>(c)].outcome = Outcome::kPassed; }

void failed(VerifyReport& r, Check c, Error e) {
  auto& check = r.checks[static_cast<std::size_t>(c)];
  check.outcome = Outcome::kFailed;
  check.error = e;
  r.error = std::move(e);
}

// Marks the checks from `first` to `last` passed, except those not asked for.
void pass_range(VerifyReport& r, Check first, Check last, const VerifyOptions& opts) {
  for (auto i = static_cast<std::size_t>(first); i <= static_cast<std::size_t>(last); ++i) {
    const auto c = static_cast<Check>(i);
    if (c == Check::kExpiry && !opts.check_expiry) continue;
    if (c == Check::kHardware && !opts.policy.hardware) continue;
    if (c == Check::kVersion && !opts.policy.installed_version && !opts.policy.security_floor) continue;
    pass(r, c);
  }
}

void verify_into(VerifyReport& r, ota::Reader& in, trust::TrustStore& trust, const VerifyOptions& opts,
                 bool metadata_only, const ProgressFn& progress) {
  auto reader = BundleReader::open(in);
  if (!reader) return failed(r, Check::kContainer, reader.error());
  pass(r, Check::kContainer);
  r.manifest_hash = content_hash((*reader)->manifest_bytes());
  r.root_version_before = trust.root().version;
  Check at = Check::kTrustRoot;
  auto m = (*reader)->verify(trust, opts, &r.signatures, &at);
  if (!m) {
    if (at != Check::kTrustRoot) pass_range(r, Check::kTrustRoot, static_cast<Check>(static_cast<std::size_t>(at) - 1), opts);
    return failed(r, at, m.error());
  }
  pass_range(r, Check::kTrustRoot, Check::kVersion, opts);
  r.manifest = *m;
  if (metadata_only) return;
  std::uint64_t total = 0;
  for (const auto& p : m->payloads) total += p.size;
  Bytes buf(256 * 1024);
  while (true) {
    auto idx = (*reader)->next_payload();
    if (!idx) return failed(r, Check::kPayloads, idx.error());
    if (!*idx) break;
    while (true) {
      auto n = (*reader)->read(buf);
      if (!n) return failed(r, Check::kPayloads, n.error());
      if (*n == 0) break;
      r.payload_bytes += *n;
      if (progress) progress(r.payload_bytes, total);
    }
  }
  pass(r, Check::kPayloads);
}

}  // namespace

std::string_view outcome_name(Outcome o) {
  switch (o) {
    case Outcome::kSkipped: return "skipped";
    case Outcome::kPassed: return "passed";
    case Outcome::kFailed: return "failed";
  }
  return "unknown";
}

VerifyReport verify_bundle(ota::Reader& in, trust::TrustStore& trust, const VerifyOptions& opts, bool metadata_only,
                           const ProgressFn& progress) {
  VerifyReport r = empty_report();
  verify_into(r, in, trust, opts, metadata_only, progress);
  return r;
}

VerifyReport verify_bundle_file(const std::string& path, const std::string& trust_path,
                                const std::vector<std::string>& root_updates, const VerifyOptions& opts,
                                bool metadata_only, const ProgressFn& progress) {
  VerifyReport r = empty_report();
  auto store = trust::TrustStore::load(trust_path);
  if (!store) {
    failed(r, Check::kTrustRoot, store.error());
    return r;
  }
  r.trust = std::move(*store);
  for (const auto& update : root_updates) {
    auto bytes = read_file(update);
    if (!bytes) {
      r.error = bytes.error();
      return r;
    }
    auto env = trust::parse_envelope(std::string(bytes->begin(), bytes->end()));
    if (!env) {
      failed(r, Check::kTrustRoot, env.error().with_context(update));
      return r;
    }
    if (auto st = r.trust->update(*env); !st) {
      failed(r, Check::kTrustRoot, st.error().with_context(update));
      return r;
    }
  }
  auto in = FileReader::open(path);
  if (!in) {
    r.error = in.error();
    return r;
  }
  verify_into(r, **in, *r.trust, opts, metadata_only, progress);
  return r;
}

Result<FileVerifyResult> verify_file(const std::string& path, trust::TrustStore& trust, const VerifyOptions& opts,
                                     bool metadata_only,
                                     const std::function<void(std::uint64_t, std::uint64_t)>& progress) {
  OTA_TRY_ASSIGN(auto file, FileReader::open(path));
  auto r = verify_bundle(*file, trust, opts, metadata_only, progress);
  if (r.error) return fail(*r.error);
  return FileVerifyResult{std::move(*r.manifest), std::move(r.signatures), r.payload_bytes};
}

}  // namespace ota::bundle
