// ota patch OLD PATCH -o OUT
#include <thread>

#include "cli.hpp"
#include "ota/delta/bsdiff40.hpp"
#include "ota/delta/delta.hpp"
#include "ota/core/hash.hpp"

namespace ota::cli {

namespace {

struct PatchArgs {
  std::string old_path, patch_path, out_path;
  int max_window_log = delta::kMaxWindowLog;
};

Status run_patch(const Context& ctx, const PatchArgs& a) {
  auto t0 = std::chrono::steady_clock::now();
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

  nlohmann::ordered_json doc;
  doc["ok"] = true;
  doc["command"] = "patch";
  std::uint64_t patch_size = 0;
  if (bsdiff40::is_bsdiff40(head)) {
    if (a.patch_path == "-") return fail(ErrorCode::kUsage, "a BSDIFF40 patch cannot be read from standard input");
    OTA_TRY_ASSIGN(auto src, FileSource::open(a.patch_path));
    patch_size = (src)->size();
    HashingWriter hashing(*out);
    OTA_TRY(bsdiff40::apply(**old_image, *src, hashing));
    OTA_TRY((out)->commit());
    doc["format"] = "bsdiff40";
    doc["new"] = {{"path", a.out_path}, {"size", hashing.position()}, {"blake2b256", to_hex(hashing.digest())}};
  } else {
    delta::PatchOptions opt;
    opt.max_window_log = static_cast<std::uint8_t>(a.max_window_log);
    // NEW goes to a temporary file and its hash decides success, so OLD is
    // hashed only to name the cause when the patch fails.
    opt.base_check = delta::BaseCheck::kHashOnFailure;
    opt.hash_in_background = std::thread::hardware_concurrency() > 1;
    Progress progress(ctx, "patch");
    opt.progress = [&](std::uint64_t d, std::uint64_t t) { progress.update(d, t); };
    OTA_TRY_ASSIGN(auto p, delta::Patcher::create(**old_image, *out, opt));
    OTA_TRY((p)->feed(head));
    patch_size = head.size();
    Bytes buf(16 * 1024);
    for (;;) {
      auto n = (*patch)->read(buf);
      if (!n) return fail(n.error().with_context("reading the patch"));
      if (*n == 0) break;
      patch_size += *n;
      OTA_TRY((p)->feed(ByteSpan(buf.data(), *n)));
    }
    OTA_TRY((p)->finish());
    progress.done();
    OTA_TRY((out)->commit());
    const auto* h = (p)->header();
    doc["format"] = "ota";
    doc["old"] = {{"path", a.old_path}, {"size", h->old_size}, {"blake2b256", to_hex(h->old_hash)}};
    doc["new"] = {{"path", a.out_path}, {"size", h->new_size}, {"blake2b256", to_hex(h->new_hash)}};
  }
  doc["patch"] = {{"path", a.patch_path}, {"size", patch_size}};
  doc["timings"] = {{"total_s", seconds_since(t0)}};
  if (ctx.json) print_json(doc);
  return ok();
}

}  // namespace

void add_patch_command(CLI::App& app, Context& ctx, int& exit_code) {
  auto args = std::make_shared<PatchArgs>();
  auto* cmd = app.add_subcommand("patch", "Apply a patch (ota or BSDIFF40, detected by magic) to OLD");
  cmd->footer("Example:\n  ota patch firmware-1.0.bin 1.0-to-1.1.otd -o firmware-1.1.bin");
  cmd->add_option("OLD", args->old_path, "The image the patch was made from")->required()->check(CLI::ExistingFile);
  cmd->add_option("PATCH", args->patch_path, "The patch ('-' reads an ota patch from standard input)")->required();
  cmd->add_option("-o,--output", args->out_path, "Where to write NEW (written atomically)")->required();
  cmd->add_option("--max-window-log", args->max_window_log,
                  "Refuse patches that need a larger decoder window than 2^N bytes")
      ->check(CLI::Range(10, 31));
  cmd->add_flag("-q,--quiet", ctx.quiet, "No progress output");
  cmd->add_flag("--json", ctx.json, "Print a JSON summary on stdout");
  cmd->callback([&ctx, &exit_code, args] {
    auto st = run_patch(ctx, *args);
    exit_code = st ? 0 : report(ctx, "patch", st.error());
  });
}

}  // namespace ota::cli
