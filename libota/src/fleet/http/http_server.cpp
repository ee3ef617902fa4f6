// The listen address and the loader of the HTTP server module (ota/fleet/http_server.hpp).
#include "ota/fleet/http_server.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <mutex>

#include "core/module_path.hpp"
#include "fleet/http/http_module.hpp"

namespace ota::httpd {

Result<ListenAddress> parse_listen_address(std::string_view text) {
  const auto bad = [&](const std::string& why) {
    return fail(ErrorCode::kUsage, "bad listen address '" + std::string(text) + "': " + why +
                                       " (expected HOST:PORT, e.g. 127.0.0.1:9464 or [::1]:9464)");
  };
  ListenAddress a;
  std::string_view host, port;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return bad("an IPv6 host needs [HOST]:PORT");
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
    a.ipv6 = true;
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return bad("no port");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return bad("an IPv6 host goes in brackets");
  }
  unsigned value = 0;
  const auto r = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || r.ec != std::errc() || r.ptr != port.data() + port.size() || value > 65535)
    return bad("the port is a number from 0 to 65535");
  a.port = static_cast<std::uint16_t>(value);
  if (host == "localhost" && !a.ipv6) host = "127.0.0.1";
  if (host.empty()) return bad("no host");
  a.host = std::string(host);
  unsigned char buf[sizeof(in6_addr)];
  if (::inet_pton(a.ipv6 ? AF_INET6 : AF_INET, a.host.c_str(), buf) != 1)
    return bad(a.ipv6 ? "not an IPv6 address" : "the host is an IPv4 address, [IPv6] or localhost");
  return a;
}

namespace {

Result<ServeFn> load_httpd_module() {
  static std::mutex m;
  static ServeFn entry = nullptr;
  std::lock_guard<std::mutex> lock(m);
  if (entry) return entry;
  OTA_TRY_ASSIGN(auto fn, net::load_module<ServeFn>(
                              net::module_candidates(net::module_search("OTA_HTTPD_MODULE", OTA_BUILD_DIR,
                                                                        OTA_HTTPD_BUILD_PATH, OTA_HTTPD_INSTALL_PATH,
                                                                        OTA_MODULE_RELATIVE_DIR)),
                              kModuleEntry, "serving HTTP needs the libota-httpd.so module (libmicrohttpd)"));
  entry = fn;
  return entry;
}

}  // namespace

Result<std::unique_ptr<Server>> serve(std::string_view address, Handler handler) {
  OTA_TRY_ASSIGN(auto a, parse_listen_address(address));
  OTA_TRY_ASSIGN(auto fn, load_httpd_module());
  Server* out = nullptr;
  Error error{ErrorCode::kInternal, "http module: no result"};
  const ModuleArgs args{&a, &handler, &out, &error};
  if (fn(&args) != 0 || !out) return fail(error);
  return std::unique_ptr<Server>(out);
}

}  // namespace ota::httpd
