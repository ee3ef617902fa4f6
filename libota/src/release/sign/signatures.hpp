// Internal: the JSON list of signatures shared by root envelopes and the
// bundle's signature block: [{"keyid": <64 hex>, "sig": <base64>}].
#pragma once

#include <string_view>
#include <vector>

#include "core/json.hpp"
#include "ota/release/trust.hpp"

namespace ota::trust::detail {

json::Ordered encode_signatures(const std::vector<SignatureEntry>& sigs);
// arr must already be a bounded JSON array; what names it in errors.
Result<std::vector<SignatureEntry>> parse_signatures(const json::Json& arr, std::string_view what);

}  // namespace ota::trust::detail
