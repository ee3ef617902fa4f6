// Bundle sources: local files here; HTTP(S) in the libota-fetch-http.so
// module (fetch_http.cpp), loaded on first use (see fetch.hpp).
#include "ota/device/fetch.hpp"
#include "ota/core/url.hpp"

#include "device/fetch/fetch_module.hpp"
#include "core/module_path.hpp"

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

namespace ota::fetch {

namespace {

class LocalReader final : public SourceReader {
 public:
  explicit LocalReader(std::unique_ptr<FileReader> f) : f_(std::move(f)) {}
  Result<std::size_t> read(MutableByteSpan out) override {
    auto n = f_->read(out);
    if (n) stats_.bytes_received += *n;
    return n;
  }
  Result<std::uint64_t> skip(std::uint64_t n) override { return f_->skip(n); }
  const Stats& stats() const override { return stats_; }

 private:
  std::unique_ptr<FileReader> f_;
  Stats stats_{0, 1, 0};
};

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

// The HTTP module (net/module_path.hpp for where it is looked up).
Result<OpenFn> load_http_module() {
  static std::mutex m;
  static OpenFn entry = nullptr;
  std::lock_guard<std::mutex> lock(m);
  if (entry) return entry;
  OTA_TRY_ASSIGN(auto fn,
                 net::load_module<OpenFn>( net::module_candidates(net::module_search("OTA_FETCH_HTTP_MODULE", OTA_BUILD_DIR, OTA_FETCH_HTTP_BUILD_PATH, OTA_FETCH_HTTP_INSTALL_PATH, OTA_MODULE_RELATIVE_DIR)), kModuleEntry, "HTTP(S) needs the libota-fetch-http.so module (libcurl)"));
  entry = fn;
  return entry;
}

}  // namespace


Result<std::unique_ptr<SourceReader>> open(const std::string& source, const Options& options) {
  if (starts_with(source, "http://") || starts_with(source, "https://")) {
    OTA_TRY_ASSIGN(auto entry, load_http_module());
    SourceReader* reader = nullptr;
    Error error;
    ModuleArgs args{&source, &options, &reader, &error};
    if ((entry)(&args) != 0) return fail(std::move(error));
    return std::unique_ptr<SourceReader>(reader);
  }
  std::string path = source;
  if (starts_with(source, "file://")) {
    path = source.substr(7);
    if (starts_with(path, "localhost/")) path = path.substr(9);
    if (path.empty() || path[0] != '/')
      return fail(ErrorCode::kUsage, "a file:// URL needs an absolute path (file:///path/to/bundle)");
  } else if (source.find("://") != std::string::npos) {
    return fail(ErrorCode::kUsage, "unsupported source " + redact_url(source) + ": use a path, file://, http:// or https://");
  }
  OTA_TRY_ASSIGN(auto f, FileReader::open(path));
  return std::unique_ptr<SourceReader>(std::make_unique<LocalReader>(std::move(f)));
}

}  // namespace ota::fetch
