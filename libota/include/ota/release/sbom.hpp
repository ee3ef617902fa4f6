// Software bills of materials carried in a bundle (an `sbom` payload).
//
// Contract:
// - check_sbom() accepts a CycloneDX JSON BOM (bomFormat "CycloneDX",
//   specVersion 1.x) or an SPDX 2.x JSON document (spdxVersion "SPDX-2.N",
//   SPDXID "SPDXRef-DOCUMENT", name, dataLicense, creationInfo), at most
//   manifest::kMaxSbomBytes bytes, nesting at most 64 levels, and nothing
//   else (kMalformed, never quoting the document). It is a well-formedness
//   check, not a full schema validation: every component (CycloneDX) or
//   package (SPDX) must be an object with a string name.
// - A device never parses an SBOM; tools parse it only after its payload's
//   chunks matched the signed manifest (or, for `ota build`, before signing).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ota/core/error.hpp"
#include "ota/core/io.hpp"
#include "ota/release/manifest.hpp"

namespace ota::sbom {

struct Component {
  std::string name;
  std::string version;  // may be empty
};

struct Summary {
  manifest::SbomFormat format = manifest::SbomFormat::kNone;
  std::string spec_version;             // "1.5", "SPDX-2.3"
  std::string name;                     // the document's (SPDX) or metadata.component's (CycloneDX) name
  std::vector<Component> components;    // top-level components or packages, in document order
};

Result<Summary> check_sbom(ByteSpan bytes);

}  // namespace ota::sbom
