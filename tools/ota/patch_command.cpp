#include "patch_command.hpp"

#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "error_text.hpp"
#include "json_text.hpp"
#include "ota/core/hash.hpp"
#include "ota/core/io.hpp"
#include "ota/delta/bsdiff40.hpp"
#include "progress.hpp"

namespace ota::cli {

const char* const kPatchUsage =
    "Apply a patch (ota or BSDIFF40, detected by magic) to OLD\n"
    "Usage: ota patch [OPTIONS] OLD PATCH\n"
    "\n"
    "Positionals:\n"
    "  OLD                   The image the patch was made from\n"
    "  PATCH                 The patch ('-' reads an ota patch from standard input)\n"
    "\n"
    "Options:\n"
    "  -h,--help             Print this help message and exit\n"
    "  -o,--output TEXT      Where to write NEW (written atomically)\n"
    "  --max-window-log INT  Refuse patches that need a larger decoder window than 2^N bytes (10..31)\n"
    "  -q,--quiet            No progress output\n"
    "  --json                Print a JSON summary on stdout\n"
    "\n"
    "Example:\n"
    "  ota patch firmware-1.0.bin 1.0-to-1.1.otd -o firmware-1.1.bin\n";

namespace {

tl::unexpected<Error> usage(std::string message) { return fail(ErrorCode::kUsage, std::move(message)); }

bool parse_int(const std::string& s, int& out) {
  if (s.empty() || s.size() > 9) return false;
  int v = 0;
  for (const char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  out = v;
  return true;
}

std::string hex(const Digest& d) { return to_hex(d); }

front_end::JsonObject file_json(const std::string& path, std::uint64_t size, const Digest* hash) {
  front_end::JsonObject o;
  o.add("path", path).add("size", size);
  if (hash) o.add("blake2b256", hex(*hash));
  return o;
}

// The patch itself; on success the --json summary's members go into doc.
Status apply(const PatchArgs& a, front_end::JsonObject& doc) {
  const auto t0 = std::chrono::steady_clock::now();
  auto old_image = FileSource::open(a.old_path);
  if (!old_image) return fail(old_image.error().with_context("opening OLD"));
  auto patch = FileReader::open(a.patch_path);
  if (!patch) return fail(patch.error().with_context("opening the patch"));

  // Peek at the magic to pick the format.
  Bytes head(8);
  std::size_t have = 0;
  while (have < head.size()) {
    auto n = (*patch)->read(MutableByteSpan(head.data() + have, head.size() - have));
    if (!n) return fail(n.error().with_context("reading the patch"));
    if (*n == 0) break;
    have += *n;
  }
  head.resize(have);

  OTA_TRY_ASSIGN(auto out, AtomicFileWriter::create(a.out_path));
  std::uint64_t patch_size = 0;
  if (bsdiff40::is_bsdiff40(head)) {
    if (a.patch_path == "-") return (usage("a BSDIFF40 patch cannot be read from standard input"));
    OTA_TRY_ASSIGN(auto src, FileSource::open(a.patch_path));
    patch_size = src->size();
    HashingWriter hashing(*out);
    OTA_TRY(bsdiff40::apply(**old_image, *src, hashing));
    OTA_TRY(out->commit());
    const Digest d = hashing.digest();
    doc.add("format", "bsdiff40").add("new", file_json(a.out_path, hashing.position(), &d));
  } else {
    delta::PatchOptions opt;
    opt.max_window_log = static_cast<std::uint8_t>(a.max_window_log);
    // NEW goes to a temporary file and its hash decides success, so OLD is
    // hashed only to name the cause when the patch fails.
    opt.base_check = delta::BaseCheck::kHashOnFailure;
    opt.hash_in_background = std::thread::hardware_concurrency() > 1;
    Progress progress(a.quiet || a.json, "patch");
    opt.progress = [&](std::uint64_t d, std::uint64_t t) { progress.update(d, t); };
    OTA_TRY_ASSIGN(auto p, delta::Patcher::create(**old_image, *out, opt));
    OTA_TRY(p->feed(head));
    patch_size = head.size();
    Bytes buf(16 * 1024);
    for (;;) {
      auto n = (*patch)->read(buf);
      if (!n) return fail(n.error().with_context("reading the patch"));
      if (*n == 0) break;
      patch_size += *n;
      OTA_TRY(p->feed(ByteSpan(buf.data(), *n)));
    }
    OTA_TRY(p->finish());
    progress.done();
    OTA_TRY(out->commit());
    const auto* h = p->header();
    doc.add("format", "ota")
        .add("old", file_json(a.old_path, h->old_size, &h->old_hash))
        .add("new", file_json(a.out_path, h->new_size, &h->new_hash));
  }
  doc.add("patch", file_json(a.patch_path, patch_size, nullptr));
  front_end::JsonObject timings;
  timings.add("total_s", seconds_since(t0));
  doc.add("timings", timings);
  return ok();
}

}  // namespace

Result<ParsedPatchArgs> parse_patch_args(const std::vector<std::string>& argv) {
  ParsedPatchArgs r;
  std::vector<std::string> positionals;
  bool have_output = false, only_positionals = false;
  for (std::size_t i = 0; i < argv.size(); ++i) {
    const std::string& s = argv[i];
    auto value = [&](const std::string& name) -> Result<std::string> {
      if (i + 1 >= argv.size()) return (usage(name + " needs a value"));
      return argv[++i];
    };
    if (only_positionals || s == "-" || s.empty() || s[0] != '-') {
      positionals.push_back(s);
    } else if (s == "--") {
      only_positionals = true;
    } else if (s == "-h" || s == "--help") {
      r.help = true;
      return r;
    } else if (s == "-q" || s == "--quiet") {
      r.args.quiet = true;
    } else if (s == "--json") {
      r.args.json = true;
    } else if (s == "-o" || s == "--output") {
      OTA_TRY_ASSIGN(r.args.out_path, value("--output"));
      have_output = true;
    } else if (s.rfind("--output=", 0) == 0) {
      r.args.out_path = s.substr(9);
      have_output = true;
    } else if (s.size() > 2 && s.rfind("-o", 0) == 0) {
      r.args.out_path = s.substr(2);
      have_output = true;
    } else if (s == "--max-window-log" || s.rfind("--max-window-log=", 0) == 0) {
      std::string v;
      if (s == "--max-window-log") {
        OTA_TRY_ASSIGN(v, value("--max-window-log"));
      } else {
        v = s.substr(17);
      }
      int n = 0;
      if (!parse_int(v, n) || n < 10 || n > 31)
        return (usage("--max-window-log: " + v + " is not an integer from 10 to 31"));
      r.args.max_window_log = n;
    } else {
      return (usage("the option " + s + " is not known (ota patch --help lists them)"));
    }
  }
  if (positionals.size() < 2) return (usage(positionals.empty() ? "OLD is required" : "PATCH is required"));
  if (positionals.size() > 2)
    return (usage("the argument " + positionals[2] + " was not expected (OLD PATCH -o OUT)"));
  if (!have_output) return (usage("--output is required"));
  if (r.args.out_path.empty()) return (usage("--output needs a value"));
  r.args.old_path = positionals[0];
  r.args.patch_path = positionals[1];
  struct stat st {};
  if (::stat(r.args.old_path.c_str(), &st) != 0 || S_ISDIR(st.st_mode))
    return (usage("OLD: File does not exist: " + r.args.old_path));
  return r;
}

int run_patch_command(const PatchArgs& args) {
  front_end::JsonObject doc;
  doc.add("ok", true).add("command", "patch");
  auto summary = apply(args, doc);
  if (!summary) {
    std::fprintf(stderr, "ota patch: error: %s\n", summary.error().message.c_str());
    if (args.json) {
      const std::string line = front_end::error_document_text("patch", summary.error()) + "\n";
      std::fwrite(line.data(), 1, line.size(), stdout);
      std::fflush(stdout);
    }
    const int code = static_cast<int>(summary.error().code);
    return code == 0 ? static_cast<int>(ErrorCode::kInternal) : code;
  }
  if (args.json) {
    const std::string line = doc.str() + "\n";
    std::fwrite(line.data(), 1, line.size(), stdout);
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace ota::cli
