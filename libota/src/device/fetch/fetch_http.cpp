// The HTTP(S) bundle source: libcurl's multi interface pulled by read(),
// built as a module (libota-fetch-http.so) that ota-agent loads only for an
// http(s):// source, so installs from files never map libcurl and its ~30
// libraries (see fetch.hpp for the contract).
#include <curl/curl.h>

#include <cctype>
#include <strings.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <optional>
#include <thread>

#include "device/fetch/fetch_module.hpp"
#include "ota/core/url.hpp"

namespace ota::fetch {

namespace {

constexpr std::size_t kBufferCap = 256 * 1024;
constexpr std::uint64_t kReadOverGap = 64 * 1024;  // shorter jumps read over instead of a new request
constexpr long kMaxBackoffMs = 8000;
constexpr std::uint64_t kFirstWindow = 64 * 1024;
constexpr std::uint64_t kMaxWindow = 16 << 20;

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

// Whether url's scheme is https (schemes are case-insensitive).
bool starts_https(const std::string& url) {
  if (url.size() < 8) return false;
  std::string scheme = url.substr(0, 8);
  for (auto& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return scheme == "https://";
}

Status global_init() {
  static std::once_flag once;
  static CURLcode rc = CURLE_OK;
  std::call_once(once, [] { rc = curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (rc != CURLE_OK) return fail(ErrorCode::kInternal, std::string("libcurl: ") + curl_easy_strerror(rc));
  return ok();
}

class HttpReader final : public SourceReader {
 public:
  HttpReader(std::string url, Options o)
      : url_(std::move(url)), shown_(redact_url(url_)), https_(starts_https(url_)), o_(std::move(o)) {}
  ~HttpReader() override {
    if (multi_ && easy_ && active_) curl_multi_remove_handle(multi_, easy_);
    if (easy_) curl_easy_cleanup(easy_);
    if (multi_) curl_multi_cleanup(multi_);
  }
  HttpReader(const HttpReader&) = delete;
  HttpReader& operator=(const HttpReader&) = delete;

  Status init() {
    OTA_TRY(global_init());
    multi_ = curl_multi_init();
    easy_ = curl_easy_init();
    if (!multi_ || !easy_) return fail(ErrorCode::kOutOfMemory, "libcurl: cannot create a transfer");
    auto set = [&](CURLoption opt, auto value) -> Status {
      const CURLcode rc = curl_easy_setopt(easy_, opt, value);
      if (rc != CURLE_OK) return fail(ErrorCode::kInternal, std::string("libcurl: ") + curl_easy_strerror(rc));
      return ok();
    };
    OTA_TRY(set(CURLOPT_URL, url_.c_str()));
    OTA_TRY(set(CURLOPT_PROTOCOLS_STR, "http,https"));
    // A transfer that starts as https follows redirects to https only: a
    // redirect must not drop TLS (security review, issue 14).
    OTA_TRY(set(CURLOPT_REDIR_PROTOCOLS_STR, https_ ? "https" : "http,https"));
    OTA_TRY(set(CURLOPT_FOLLOWLOCATION, 1L));
    OTA_TRY(set(CURLOPT_MAXREDIRS, 5L));
    OTA_TRY(set(CURLOPT_NOSIGNAL, 1L));
    OTA_TRY(set(CURLOPT_CONNECTTIMEOUT, o_.connect_timeout_s));
    OTA_TRY(set(CURLOPT_LOW_SPEED_LIMIT, 1L));
    OTA_TRY(set(CURLOPT_LOW_SPEED_TIME, o_.stall_timeout_s));
    OTA_TRY(set(CURLOPT_USERAGENT, o_.user_agent.c_str()));
    OTA_TRY(set(CURLOPT_ERRORBUFFER, errbuf_));
    OTA_TRY(set(CURLOPT_WRITEFUNCTION, &HttpReader::on_body));
    OTA_TRY(set(CURLOPT_WRITEDATA, this));
    OTA_TRY(set(CURLOPT_HEADERFUNCTION, &HttpReader::on_header));
    OTA_TRY(set(CURLOPT_HEADERDATA, this));
    if (!o_.ca_file.empty()) OTA_TRY(set(CURLOPT_CAINFO, o_.ca_file.c_str()));
    return ok();
  }

  // Bytes buffered from an earlier transfer step come first; otherwise
  // libcurl's callback writes the body straight into `out` (one copy from
  // libcurl's receive buffer), and only what does not fit is buffered.
  Result<std::size_t> read(MutableByteSpan out) override {
    while (true) {
      if (pos_ < buf_.size()) {
        const std::size_t n = std::min(out.size(), buf_.size() - pos_);
        std::memcpy(out.data(), buf_.data() + pos_, n);
        stats_.bytes_copied += n;
        pos_ += n;
        return n;
      }
      buf_.clear();
      pos_ = 0;
      if (eof_ || out.empty()) return std::size_t{0};
      direct_ = out;
      direct_n_ = 0;
      Status st = pump();
      direct_ = {};
      if (!st) return fail(st.error());
      if (direct_n_) return direct_n_;
    }
  }

  Result<std::uint64_t> skip(std::uint64_t n) override {
    const std::uint64_t buffered = buf_.size() - pos_;
    if (n <= buffered) {
      pos_ += static_cast<std::size_t>(n);
      return n;
    }
    buf_.clear();
    pos_ = 0;
    std::uint64_t gap = n - buffered;
    if (total_ && fetch_pos_ + gap > *total_) gap = *total_ - std::min(*total_, fetch_pos_);
    if (active_ && gap <= kReadOverGap) {
      discard_ += gap;  // cheaper than a new request
    } else {
      stop();
      eof_ = false;
      window_ = kFirstWindow;
    }
    fetch_pos_ += gap;
    return buffered + gap;
  }

  void hint(std::uint64_t upcoming) override {
    const std::uint64_t at = fetch_pos_ - (buf_.size() - pos_);  // the reader's position
    if (upcoming == 0) hint_end_.reset();
    else hint_end_ = at + upcoming;
  }

  const Stats& stats() const override { return stats_; }

 private:
  // Makes progress on the transfer until bytes arrive, it ends, or it fails for good.
  Status pump() {
    if (o_.cancelled && o_.cancelled()) return fail(ErrorCode::kCancelled, "download cancelled");
    if (!active_) OTA_TRY(start());
    if (paused_) {
      paused_ = false;
      curl_easy_pause(easy_, CURLPAUSE_CONT);
    }
    int running = 0;
    const CURLMcode mc = curl_multi_perform(multi_, &running);
    if (mc != CURLM_OK) return fail(ErrorCode::kInternal, std::string("libcurl: ") + curl_multi_strerror(mc));
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
      if (msg->msg == CURLMSG_DONE) OTA_TRY(done(msg->data.result));
    }
    if (buf_.empty() && direct_n_ == 0 && active_ && !eof_) curl_multi_poll(multi_, nullptr, 0, 1000, nullptr);
    return ok();
  }

  Status start() {
    if (failures_ > 0) {
      const long delay = std::min(kMaxBackoffMs, o_.backoff_ms << std::min(failures_ - 1, 10));
      std::this_thread::sleep_for(std::chrono::milliseconds(delay));
      ++stats_.retries;
    }
    // Bounded by the reader's hint, else by a window that doubles with each
    // request from 64 KiB to 16 MiB and starts over after a jump: streaming
    // costs a few requests, a jump wastes at most one window in flight.
    std::uint64_t end = 0;
    if (hint_end_ && *hint_end_ > fetch_pos_) {
      end = *hint_end_;
    } else {
      end = fetch_pos_ + window_;
      window_ = std::min(window_ * 2, kMaxWindow);
    }
    range_ = std::to_string(fetch_pos_) + "-" + std::to_string(end - 1);
    window_end_.reset();
    curl_easy_setopt(easy_, CURLOPT_RANGE, range_.empty() ? nullptr : range_.c_str());
    request_at_ = fetch_pos_;
    received_ = 0;
    first_body_ = true;
    discard_ = 0;
    content_range_start_.reset();
    own_error_.reset();
    errbuf_[0] = 0;
    const CURLMcode mc = curl_multi_add_handle(multi_, easy_);
    if (mc != CURLM_OK) return fail(ErrorCode::kInternal, std::string("libcurl: ") + curl_multi_strerror(mc));
    active_ = true;
    ++stats_.requests;
    return ok();
  }

  void stop() {
    if (!active_) return;
    curl_multi_remove_handle(multi_, easy_);
    active_ = false;
    paused_ = false;
  }

  // The transfer ended: end of stream, a retry, or a failure.
  Status done(CURLcode rc) {
    long code = 0;
    curl_easy_getinfo(easy_, CURLINFO_RESPONSE_CODE, &code);
    stop();
    if (received_ > 0) failures_ = 0;  // progress: a fresh retry budget
    if (own_error_) return fail(*own_error_);
    if (rc == CURLE_OK && code == 416) {  // asked past the end
      eof_ = true;
      return ok();
    }
    const bool status_ok = code == 200 || code == 206;
    if (rc == CURLE_OK && status_ok) {
      if (first_body_) OTA_TRY(check_start(code));  // an empty body
      // The end of a bounded range that is not the end of the resource: go on.
      if (code == 206 && window_end_ && fetch_pos_ == *window_end_ && (!total_ || *total_ > fetch_pos_)) return ok();
      eof_ = true;
      return ok();
    }
    std::string why;
    bool retry = false;
    if (rc == CURLE_OK || (code >= 300 && rc == CURLE_WRITE_ERROR)) {
      why = "HTTP " + std::to_string(code);
      retry = code == 408 || code == 429 || code >= 500;
    } else {
      why = errbuf_[0] ? std::string(errbuf_) : std::string(curl_easy_strerror(rc));
      if (rc == CURLE_UNSUPPORTED_PROTOCOL && https_)
        why = "refused a redirect from https to a URL that is not https (" + why + ")";
      switch (rc) {
        case CURLE_COULDNT_CONNECT: case CURLE_COULDNT_RESOLVE_HOST: case CURLE_COULDNT_RESOLVE_PROXY:
        case CURLE_PARTIAL_FILE: case CURLE_OPERATION_TIMEDOUT: case CURLE_RECV_ERROR: case CURLE_SEND_ERROR:
        case CURLE_GOT_NOTHING: case CURLE_HTTP2: case CURLE_HTTP2_STREAM: case CURLE_SSL_CONNECT_ERROR:
          retry = true;
          break;
        default:
          break;
      }
    }
    if (!retry || ++failures_ > o_.retries)
      return fail(ErrorCode::kFetch, "fetching " + shown_ + " at byte " + std::to_string(fetch_pos_) + ": " + why +
                                         (retry ? " (gave up after " + std::to_string(o_.retries) + " retries)" : ""));
    return ok();  // pump() starts the next request at fetch_pos_
  }

  // Checks the answer to a request before its first byte is used.
  Status check_start(long code) {
    first_body_ = false;
    if (code == 206) {
      if (!content_range_start_ || *content_range_start_ != request_at_)
        return fail(ErrorCode::kFetch, shown_ + ": the server answered a different range than byte " +
                                           std::to_string(request_at_) + " onwards");
    } else if (code == 200) {
      discard_ += request_at_;  // Range ignored: read over what we have
      curl_off_t len = -1;
      if (curl_easy_getinfo(easy_, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &len) == CURLE_OK && len >= 0)
        total_ = static_cast<std::uint64_t>(len);
    } else {
      return fail(ErrorCode::kFetch, "fetching " + shown_ + ": HTTP " + std::to_string(code));
    }
    return ok();
  }

  static std::size_t on_body(char* data, std::size_t size, std::size_t nmemb, void* self_ptr) {
    auto* self = static_cast<HttpReader*>(self_ptr);
    const std::size_t len = size * nmemb;
    if (self->first_body_) {
      long code = 0;
      curl_easy_getinfo(self->easy_, CURLINFO_RESPONSE_CODE, &code);
      if (code != 200 && code != 206) return 0;  // an error page: done() reports the status
      if (Status st = self->check_start(code); !st) {
        self->own_error_ = st.error();
        return 0;
      }
    }
    if (!self->buf_.empty() && self->buf_.size() + len > kBufferCap) {
      self->paused_ = true;
      return CURL_WRITEFUNC_PAUSE;  // delivered again after the buffer is drained
    }
    self->stats_.bytes_received += len;
    self->received_ += len;
    std::size_t skip = static_cast<std::size_t>(std::min<std::uint64_t>(self->discard_, len));
    self->discard_ -= skip;
    // Dropped bytes are a gap skip() already counted or a prefix before request_at_.
    std::size_t from = skip;
    if (self->buf_.empty() && self->direct_n_ < self->direct_.size()) {  // straight into read()'s buffer
      const std::size_t k = std::min(len - from, self->direct_.size() - self->direct_n_);
      std::memcpy(self->direct_.data() + self->direct_n_, data + from, k);
      self->stats_.bytes_copied += k;
      self->direct_n_ += k;
      from += k;
    }
    self->stats_.bytes_copied += len - from;
    self->buf_.insert(self->buf_.end(), data + from, data + len);
    self->fetch_pos_ += len - skip;
    return len;
  }

  static std::size_t on_header(char* data, std::size_t size, std::size_t nmemb, void* self_ptr) {
    auto* self = static_cast<HttpReader*>(self_ptr);
    const std::size_t len = size * nmemb;
    std::string line(data, len);
    if (starts_with(line, "HTTP/")) {  // a new response (after a redirect or 100)
      self->content_range_start_.reset();
      return len;
    }
    static const char kName[] = "content-range:";
    if (line.size() > sizeof kName && strncasecmp(line.c_str(), kName, sizeof kName - 1) == 0) {
      // bytes START-END/TOTAL
      unsigned long long start = 0, end = 0, total = 0;
      const char* v = line.c_str() + sizeof kName - 1;
      while (*v == ' ') ++v;
      if (std::sscanf(v, "bytes %llu-%llu/%llu", &start, &end, &total) == 3) {
        self->content_range_start_ = start;
        self->window_end_ = end + 1;
        self->total_ = total;
      } else if (std::sscanf(v, "bytes %llu-%llu/*", &start, &end) == 2) {
        self->content_range_start_ = start;
        self->window_end_ = end + 1;
      }
    }
    return len;
  }

  std::string url_, shown_;
  bool https_;  // the transfer started as https: redirects to https only
  Options o_;
  CURLM* multi_ = nullptr;
  CURL* easy_ = nullptr;
  char errbuf_[CURL_ERROR_SIZE] = {};
  std::string range_;
  Bytes buf_;
  std::size_t pos_ = 0;
  MutableByteSpan direct_;    // read()'s buffer while it pumps
  std::size_t direct_n_ = 0;  // bytes the callback put there
  std::uint64_t fetch_pos_ = 0;   // stream offset of the next byte appended to buf_
  std::uint64_t request_at_ = 0;  // where the current request started
  std::uint64_t received_ = 0;    // body bytes of the current request
  std::uint64_t discard_ = 0;     // body bytes still to drop (read over)
  std::optional<std::uint64_t> total_;
  std::optional<std::uint64_t> content_range_start_;
  std::optional<std::uint64_t> window_end_;  // one past the last byte of a 206 answer
  std::optional<std::uint64_t> hint_end_;
  std::uint64_t window_ = kFirstWindow;    // the reader needs no byte beyond this, for now
  std::optional<Error> own_error_;
  bool active_ = false, paused_ = false, eof_ = false, first_body_ = true;
  int failures_ = 0;
  Stats stats_;
};

}  // namespace

}  // namespace ota::fetch

extern "C" __attribute__((visibility("default"))) int ota_fetch_http_open_v1(const ota::fetch::ModuleArgs* args) {
  using namespace ota::fetch;
  auto r = std::make_unique<HttpReader>(*args->url, *args->options);
  if (ota::Status st = r->init(); !st) {
    *args->error = st.error();
    return 1;
  }
  *args->out = r.release();
  return 0;
}
