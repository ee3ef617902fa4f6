// The HTTP server module (libota-httpd.so): libmicrohttpd behind
// ota/fleet/http_server.hpp. One internal polling thread; GET and HEAD only.
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>
#include <exception>
#include <string>

#include "fleet/http/http_module.hpp"

namespace ota::httpd {
namespace {

constexpr unsigned kMaxConnections = 64;
constexpr unsigned kIdleTimeoutS = 10;
constexpr std::size_t kMaxPathBytes = 1024;
constexpr std::size_t kConnectionMemory = 8 * 1024;  // the request's headers must fit

MHD_Result send(MHD_Connection* c, const Response& r, bool allow_header = false) {
  MHD_Response* resp =
      MHD_create_response_from_buffer(r.body.size(), const_cast<char*>(r.body.data()), MHD_RESPMEM_MUST_COPY);
  if (!resp) return MHD_NO;
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r.content_type.c_str());
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
  if (allow_header) MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
  const MHD_Result ok = MHD_queue_response(c, static_cast<unsigned>(r.status), resp);
  MHD_destroy_response(resp);
  return ok;
}

class MhdServer final : public Server {
 public:
  MhdServer(const ListenAddress& a, Handler h) : address_(a), handler_(std::move(h)) {}
  ~MhdServer() override {
    if (daemon_) MHD_stop_daemon(daemon_);
  }

  Status start() {
    sockaddr_storage ss{};
    socklen_t len = 0;
    if (address_.ipv6) {
      auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
      s6->sin6_family = AF_INET6;
      s6->sin6_port = htons(address_.port);
      ::inet_pton(AF_INET6, address_.host.c_str(), &s6->sin6_addr);
      len = sizeof *s6;
    } else {
      auto* s4 = reinterpret_cast<sockaddr_in*>(&ss);
      s4->sin_family = AF_INET;
      s4->sin_port = htons(address_.port);
      ::inet_pton(AF_INET, address_.host.c_str(), &s4->sin_addr);
      len = sizeof *s4;
    }
    (void)len;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO;
    if (address_.ipv6) flags |= MHD_USE_IPv6;
    daemon_ = MHD_start_daemon(flags, address_.port, nullptr, nullptr, &MhdServer::on_request, this,
                               MHD_OPTION_SOCK_ADDR, reinterpret_cast<sockaddr*>(&ss),
                               MHD_OPTION_CONNECTION_LIMIT, kMaxConnections,
                               MHD_OPTION_CONNECTION_TIMEOUT, kIdleTimeoutS,
                               MHD_OPTION_CONNECTION_MEMORY_LIMIT, kConnectionMemory,
                               MHD_OPTION_END);
    if (!daemon_) {
      const int e = errno;
      return fail(ErrorCode::kIo, "cannot listen on " + shown() + (e ? std::string(": ") + std::strerror(e) : ""));
    }
    const MHD_DaemonInfo* info = MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_BIND_PORT);
    port_ = info ? info->port : address_.port;
    return ok();
  }

  std::uint16_t port() const override { return port_; }
  std::string url() const override {
    return "http://" + (address_.ipv6 ? "[" + address_.host + "]" : address_.host) + ":" + std::to_string(port_);
  }

 private:
  std::string shown() const {
    return (address_.ipv6 ? "[" + address_.host + "]" : address_.host) + ":" + std::to_string(address_.port);
  }

  static MHD_Result on_request(void* cls, MHD_Connection* c, const char* url, const char* method, const char*,
                               const char*, size_t* upload_size, void**) {
    auto* self = static_cast<MhdServer*>(cls);
    // Answered on the first call, with the headers: a request with a body
    // is refused before its body is read.
    const bool get = std::strcmp(method, MHD_HTTP_METHOD_GET) == 0;
    const bool head = std::strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
    if (!get && !head) return send(c, {405, "text/plain; charset=utf-8", "only GET and HEAD\n"}, true);
    const char* length = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if ((length && std::strcmp(length, "0") != 0) ||
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING) || *upload_size != 0)
      return send(c, {413, "text/plain; charset=utf-8", "no request body\n"});
    const std::string path = url ? url : "/";
    if (path.size() > kMaxPathBytes) return send(c, {414, "text/plain; charset=utf-8", "path too long\n"});
    try {
      return send(c, self->handler_(path));
    } catch (const std::exception&) {
      return send(c, {500, "text/plain; charset=utf-8", "internal error\n"});
    }
  }

  ListenAddress address_;
  Handler handler_;
  MHD_Daemon* daemon_ = nullptr;
  std::uint16_t port_ = 0;
};

}  // namespace
}  // namespace ota::httpd

// The module's one entry point (http_module.hpp).
extern "C" __attribute__((visibility("default"))) int ota_httpd_serve_v1(const ota::httpd::ModuleArgs* a) {
  using namespace ota::httpd;
  try {
    auto server = std::make_unique<MhdServer>(*a->address, *a->handler);
    if (auto st = server->start(); !st) {
      *a->error = st.error();
      return 1;
    }
    *a->out = server.release();
    return 0;
  } catch (const std::exception& e) {
    *a->error = ota::Error{ota::ErrorCode::kInternal, std::string("http module: ") + e.what()};
    return 1;
  }
}
