#include "ota/release/sbom.hpp"

#include <nlohmann/json.hpp>

namespace ota::sbom {

namespace {

using Json = nlohmann::json;
constexpr int kMaxDepth = 64;

Result<std::string> text_of(const Json& o, const char* key, bool required, const char* what) {
  auto it = o.find(key);
  if (it == o.end()) {
    if (required) return fail(ErrorCode::kMalformed, std::string("sbom: ") + what + " has no " + key);
    return std::string();
  }
  if (!it->is_string() || it->get_ref<const std::string&>().size() > 4096)
    return fail(ErrorCode::kMalformed, std::string("sbom: ") + what + "." + key + " is not a string");
  return it->get<std::string>();
}

Status components_of(const Json& doc, const char* key, const char* version_key, Summary& s) {
  auto it = doc.find(key);
  if (it == doc.end()) return ok();
  if (!it->is_array()) return fail(ErrorCode::kMalformed, std::string("sbom: ") + key + " is not an array");
  for (const auto& c : *it) {
    if (!c.is_object()) return fail(ErrorCode::kMalformed, std::string("sbom: an entry of ") + key + " is not an object");
    OTA_TRY_ASSIGN(auto name, text_of(c, "name", true, key));
    OTA_TRY_ASSIGN(auto version, text_of(c, version_key, false, key));
    s.components.push_back({name, version});
  }
  return ok();
}

}  // namespace

Result<Summary> check_sbom(ByteSpan bytes) {
  if (bytes.size() > manifest::kMaxSbomBytes)
    return fail(ErrorCode::kLimitExceeded, "sbom: more than " + std::to_string(manifest::kMaxSbomBytes) + " bytes");
  bool too_deep = false;
  Json doc = Json::parse(bytes.begin(), bytes.end(),
                         [&](int depth, Json::parse_event_t, Json&) {
                           if (depth > kMaxDepth) too_deep = true;
                           return !too_deep;
                         },
                         /*allow_exceptions=*/false);
  if (too_deep) return fail(ErrorCode::kMalformed, "sbom: nested more than 64 levels");
  if (doc.is_discarded() || !doc.is_object()) return fail(ErrorCode::kMalformed, "sbom: not a JSON object");
  Summary s;
  if (doc.contains("bomFormat")) {
    OTA_TRY_ASSIGN(auto f, text_of(doc, "bomFormat", true, "the document"));
    if (f != "CycloneDX") return fail(ErrorCode::kMalformed, "sbom: bomFormat is not CycloneDX");
    OTA_TRY_ASSIGN(auto v, text_of(doc, "specVersion", true, "the document"));
    if (v.rfind("1.", 0) != 0 || v.size() > 8)
      return fail(ErrorCode::kUnsupported, "sbom: CycloneDX specVersion is not 1.x");
    s.format = manifest::SbomFormat::kCycloneDx;
    s.spec_version = v;
    if (auto m = doc.find("metadata"); m != doc.end()) {
      if (!m->is_object()) return fail(ErrorCode::kMalformed, "sbom: metadata is not an object");
      if (auto c = m->find("component"); c != m->end()) {
        if (!c->is_object()) return fail(ErrorCode::kMalformed, "sbom: metadata.component is not an object");
        OTA_TRY_ASSIGN(auto n, text_of(*c, "name", true, "metadata.component"));
        s.name = n;
      }
    }
    OTA_TRY(components_of(doc, "components", "version", s));
  } else if (doc.contains("spdxVersion")) {
    OTA_TRY_ASSIGN(auto v, text_of(doc, "spdxVersion", true, "the document"));
    if (v.rfind("SPDX-2.", 0) != 0 || v.size() > 12)
      return fail(ErrorCode::kUnsupported, "sbom: spdxVersion is not SPDX-2.x");
    OTA_TRY_ASSIGN(auto id, text_of(doc, "SPDXID", true, "the document"));
    if (id != "SPDXRef-DOCUMENT") return fail(ErrorCode::kMalformed, "sbom: SPDXID is not SPDXRef-DOCUMENT");
    OTA_TRY_ASSIGN(auto name, text_of(doc, "name", true, "the document"));
    OTA_TRY_ASSIGN(auto lic, text_of(doc, "dataLicense", true, "the document"));
    (void)lic;
    auto ci = doc.find("creationInfo");
    if (ci == doc.end() || !ci->is_object()) return fail(ErrorCode::kMalformed, "sbom: SPDX creationInfo is missing");
    OTA_TRY_ASSIGN(auto created, text_of(*ci, "created", true, "creationInfo"));
    (void)created;
    s.format = manifest::SbomFormat::kSpdx;
    s.spec_version = v;
    s.name = name;
    OTA_TRY(components_of(doc, "packages", "versionInfo", s));
  } else {
    return fail(ErrorCode::kMalformed, "sbom: neither CycloneDX (bomFormat) nor SPDX (spdxVersion) JSON");
  }
  return s;
}

}  // namespace ota::sbom
