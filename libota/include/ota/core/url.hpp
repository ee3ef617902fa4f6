// URLs in messages: a URL is shown without its user:password@ (errors,
// logs and JSON never carry a credential; docs/security.md).
#pragma once

#include <string>

namespace ota {

// The URL with "user:password@" (any userinfo before the host) replaced by
// "***@"; a string without "://" is returned as it is.
std::string redact_url(const std::string& url);

}  // namespace ota
