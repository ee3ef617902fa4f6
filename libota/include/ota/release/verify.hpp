// Verifying a bundle as a report: every check with its outcome, for tools
// and audits (`ota verify` prints it). A device verifies through
// BundleReader::verify and stops at the first failure; the report runs the
// same checks in the same order and says which one failed and why.
//
// Contract:
// - The checks are the eight of bundle::Check, always all listed, in that
//   order: container, trust_root, signatures, manifest, expiry, hardware,
//   version, payloads. Each is kPassed, kFailed (with its Error) or
//   kSkipped: not reached after an earlier failure, not asked for (expiry
//   with check_expiry false, hardware without a hardware id, version without
//   an installed version or a floor, payloads with metadata_only), or not
//   begun because an input could not be read.
// - At most one check fails, and then every later one is kSkipped. The
//   report's error is that failure; it can also be an input that could not
//   be read (the bundle file, a root update file), which is no check of the
//   bundle: then no check failed.
// - The trust root is loaded (and walked through the given updates) before
//   the container is read, so a trust root that does not load fails
//   trust_root with container kSkipped; otherwise trust_root also covers the
//   root updates the bundle carries and the root's expiry.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ota/core/error.hpp"
#include "ota/core/hash.hpp"
#include "ota/core/io.hpp"
#include "ota/release/bundle.hpp"
#include "ota/release/manifest.hpp"
#include "ota/release/trust.hpp"

namespace ota::bundle {

enum class Outcome { kSkipped, kPassed, kFailed };
// "skipped", "passed", "failed".
std::string_view outcome_name(Outcome o);

struct CheckResult {
  Check check = Check::kContainer;
  Outcome outcome = Outcome::kSkipped;
  std::optional<Error> error;  // set exactly when outcome is kFailed
};

struct VerifyReport {
  std::vector<CheckResult> checks;  // all kCheckCount checks, in Check order
  // The failure (of a check, or of reading an input); nullopt when the bundle verified.
  std::optional<Error> error;
  // The trust reached (verify_bundle_file: set once the trust root loaded).
  std::optional<trust::TrustStore> trust;
  std::uint64_t root_version_before = 0;  // the root version before the bundle's updates were walked
  trust::ThresholdReport signatures;      // filled once the signatures check ran
  std::optional<manifest::Manifest> manifest;  // set once the manifest parsed and matched its headers
  Digest manifest_hash{};                 // content hash of the exact signed manifest bytes (once the container passed)
  std::uint64_t payload_bytes = 0;        // payload bytes checked

  bool ok() const { return !error.has_value(); }
  const CheckResult& at(Check c) const { return checks[static_cast<std::size_t>(c)]; }
  Outcome outcome(Check c) const { return at(c).outcome; }
};

using ProgressFn = std::function<void(std::uint64_t done, std::uint64_t total)>;

// Verifies the bundle read from `in` against `trust` (which walks the root
// updates the bundle carries, as a device's does): the container, trust_root
// (the bundle's root updates and freshness), signatures, manifest, expiry,
// hardware, version and, unless metadata_only, every payload to the end of
// the archive and of `in`. Never fails as a call: the outcome is the report.
// `progress` sees payload bytes checked against their total.
VerifyReport verify_bundle(ota::Reader& in, trust::TrustStore& trust, const VerifyOptions& opts,
                           bool metadata_only = false, const ProgressFn& progress = {});

// The same for a bundle file, starting from a trust root file: loads
// trust_path (a failure fails trust_root), walks each of root_updates in
// order (a file that cannot be read is an input error; one that does not
// parse or chain fails trust_root, with the file's path as context), opens
// the bundle (an input error when it cannot), then verifies it as above.
// The report's `trust` holds the trust reached.
VerifyReport verify_bundle_file(const std::string& path, const std::string& trust_path,
                                const std::vector<std::string>& root_updates, const VerifyOptions& opts,
                                bool metadata_only = false, const ProgressFn& progress = {});

}  // namespace ota::bundle
