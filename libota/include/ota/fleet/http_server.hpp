// A small read-only HTTP server for operators: `ota campaign run --metrics`
// serves Prometheus metrics with it (metrics.hpp).
//
// Contract:
// - serve() listens on one address, "HOST:PORT": an IPv4 literal, an IPv6
//   literal in brackets ("[::1]:9464") or "localhost" (127.0.0.1); port 0
//   takes a free port, which port() tells. A bad address is kUsage; an
//   address that cannot be bound (in use, not local) is kIo. Nothing is
//   resolved through DNS.
// - Only GET and HEAD are served (405 otherwise, with Allow); a request
//   body, a path over 1 KiB or a header section over 8 KiB is refused (413,
//   414 or 431 by the library) without reaching the handler.
// - The handler runs on the server's own thread, one request at a time; it
//   must be thread-safe against the caller's other threads. It gets the path
//   without the query string. An exception it throws becomes a 500.
// - At most 64 connections at once, each closed after 10 s idle.
// - The server (libmicrohttpd) is a module, libota-httpd.so, loaded on
//   first use, so that commands that never serve do not map it and GnuTLS.
// - Destroying the Server stops it: no handler call starts afterwards, and
//   one in progress finishes first.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "ota/core/error.hpp"

namespace ota::httpd {

struct Response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};
using Handler = std::function<Response(const std::string& path)>;

struct ListenAddress {
  std::string host;  // a numeric address, without brackets
  std::uint16_t port = 0;
  bool ipv6 = false;
};
// Parses "HOST:PORT" as above.
Result<ListenAddress> parse_listen_address(std::string_view text);

class Server {
 public:
  virtual ~Server() = default;
  virtual std::uint16_t port() const = 0;
  // http://HOST:PORT (brackets around an IPv6 host).
  virtual std::string url() const = 0;
};

Result<std::unique_ptr<Server>> serve(std::string_view address, Handler handler);

}  // namespace ota::httpd
