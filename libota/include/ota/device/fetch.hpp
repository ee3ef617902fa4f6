// Where the agent reads a bundle from: a local path, file://, or
// http(s):// through libcurl.
//
// Contract of an HTTP source:
//  - GETs streamed through a bounded buffer (256 KiB); nothing is stored.
//    A request asks for no more than the reader's hint(): the bundle reader
//    hints the tar headers, the manifest and the signature block, so no
//    payload byte is sent before the signatures and policy are checked; in a
//    payload, its first chunk, then the rest of it (never the next payload),
//    and for ranged reads (a chunks payload) each run of wanted bytes.
//    Without a hint, requests cover a window that doubles from 64 KiB to
//    16 MiB and starts over after a jump.
//  - A dropped connection, a stall, a refused connection or a 5xx/408/429
//    answer restarts the transfer with a Range request at the next byte it
//    needs, after a backoff, up to FetchOptions::retries attempts in a row
//    without progress (any byte received resets the count); 4xx answers,
//    TLS failures and bad URLs fail at once. Failures are kFetch (40).
//  - skip() jumps with a new Range request (a short gap is read over), so
//    the agent never downloads a payload it does not install or a part it
//    already wrote. A server that ignores Range (200) is read over up to
//    the wanted byte: slower, still correct.
//  - Nothing fetched is trusted: the bundle reader checks the signatures and
//    every chunk hash, so a server that changes the file mid-download causes
//    a kPayloadMismatch, never a wrong image.
//  - Only http and https, on redirects too; credentials in the URL are never
//    echoed in error messages.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "ota/core/error.hpp"
#include "ota/core/io.hpp"

namespace ota::fetch {

struct Options {
  std::string ca_file;                 // https: CA bundle (default: the system's)
  int retries = 8;                     // attempts in a row without progress
  long connect_timeout_s = 15;
  long stall_timeout_s = 30;           // no byte for this long: reconnect
  long backoff_ms = 250;               // first retry delay, doubled up to 8 s
  std::string user_agent = "ota-agent";
  // Optional: polled while waiting for bytes (at least once a second);
  // true stops the transfer with kCancelled (a campaign abort).
  std::function<bool()> cancelled;
  // agent::install_from_source only: keep what an http(s) source sent in a
  // download spool at this path (ota/device/spool.hpp), so a restarted
  // install fetches only what it never had; empty: no spool.
  std::string spool_path;
  std::uint64_t spool_bytes = std::uint64_t{64} << 20;  // the spool's capacity
};

// What a source transferred (for reports and benchmarks).
struct Stats {
  std::uint64_t bytes_received = 0;  // over the network, including bytes read over
  std::uint64_t requests = 0;        // HTTP requests made (1 + retries + Range jumps)
  std::uint64_t retries = 0;         // requests made after a failure
  std::uint64_t bytes_copied = 0;    // body bytes copied in user space (from libcurl's buffer on)
  std::uint64_t bytes_from_spool = 0;  // read from the download spool instead (ota/device/spool.hpp)
};

class SourceReader : public Reader {
 public:
  virtual const Stats& stats() const = 0;
};

// Opens SOURCE: a path, file://PATH, or http(s)://URL. Local files are
// opened here (kIo if missing); an HTTP source connects on the first read.
Result<std::unique_ptr<SourceReader>> open(const std::string& source, const Options& options = {});

}  // namespace ota::fetch
