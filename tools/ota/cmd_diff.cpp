// ota diff OLD NEW -o PATCH
#include <thread>

#include "cli.hpp"
#include "ota/delta/bsdiff40.hpp"
#include "ota/delta/delta.hpp"
#include "ota/core/hash.hpp"

namespace ota::cli {

namespace {

struct DiffArgs {
  std::string old_path, new_path, out_path;
  std::string format = "ota";
  std::string predictor = "auto";
  std::string layout = "blocks";
  std::string compression;  // lzma (default) or zstd (the default with --layout interleaved)
  int level = 19;
  int window_log = delta::kDefaultWindowLog;
  std::uint64_t frame_size = std::uint64_t{1} << delta::kDefaultFrameLog;
  unsigned threads = 0;
  bool elf_tables = true;
  bool recompress = true;
};

Status run_diff(const Context& ctx, const DiffArgs& a) {
  auto t0 = std::chrono::steady_clock::now();
  auto old_image = read_file(a.old_path);
  if (!old_image) return fail(old_image.error().with_context("reading OLD"));
  auto new_image = read_file(a.new_path);
  if (!new_image) return fail(new_image.error().with_context("reading NEW"));
  OTA_TRY_ASSIGN(auto out, AtomicFileWriter::create(a.out_path));

  nlohmann::ordered_json doc;
  doc["ok"] = true;
  doc["command"] = "diff";
  doc["format"] = a.format;
  if (a.format == "bsdiff40") {
    OTA_TRY_ASSIGN(auto st, bsdiff40::diff(*old_image, *new_image, *out));
    OTA_TRY((out)->commit());
    doc["old"] = {{"path", a.old_path}, {"size", old_image->size()}, {"blake2b256", to_hex(content_hash(*old_image))}};
    doc["new"] = {{"path", a.new_path}, {"size", new_image->size()}, {"blake2b256", to_hex(content_hash(*new_image))}};
    doc["patch"] = {{"path", a.out_path}, {"size", st.patch_size}, {"records", st.records}};
  } else {
    delta::DiffOptions opt;
    opt.level = a.level;
    opt.window_log = static_cast<std::uint8_t>(a.window_log);
    unsigned log = 0;
    while ((std::uint64_t{1} << log) < a.frame_size && log < 63) ++log;
    if ((std::uint64_t{1} << log) != a.frame_size)
      return fail(ErrorCode::kUsage, "--frame-size must be a power of two");
    opt.frame_log = static_cast<std::uint8_t>(log);
    opt.threads = a.threads;
    opt.elf_tables = a.elf_tables;
    opt.recompress = a.recompress;
    opt.predictor = a.predictor == "none"    ? delta::PredictorChoice::kNone
                    : a.predictor == "x86"   ? delta::PredictorChoice::kX86
                    : a.predictor == "thumb" ? delta::PredictorChoice::kThumb
                    : a.predictor == "arm64" ? delta::PredictorChoice::kArm64
                                             : delta::PredictorChoice::kAuto;
    opt.layout = a.layout == "interleaved" ? delta::RecordLayout::kInterleaved : delta::RecordLayout::kBlocks;
    if (a.compression == "lzma" && opt.layout == delta::RecordLayout::kInterleaved)
      return fail(ErrorCode::kUsage, "--compression lzma needs format version 4; --layout interleaved writes versions 1-2 (zstd)");
    const bool zstd = a.compression == "zstd" || (a.compression.empty() && opt.layout == delta::RecordLayout::kInterleaved);
    opt.compression = zstd ? delta::Compression::kZstd : delta::Compression::kLzma;
    Progress progress(ctx.quiet || ctx.json, "diff");
    opt.progress = [&](std::uint64_t d, std::uint64_t t) { progress.update(d, t); };
    auto st = delta::diff(*old_image, *new_image, *out, opt);
    progress.done();
    if (!st) return fail(st.error());
    OTA_TRY((out)->commit());
    doc["old"] = {{"path", a.old_path}, {"size", old_image->size()}, {"blake2b256", to_hex(st->old_hash)}};
    doc["new"] = {{"path", a.new_path}, {"size", new_image->size()}, {"blake2b256", to_hex(st->new_hash)}};
    doc["patch"] = {{"path", a.out_path},
                    {"size", st->patch_size},
                    {"frames", st->frames},
                    {"version", st->version},
                    {"compression", delta::compression_name(st->compression)},
                    {"records", st->records},
                    {"blocks", st->blocks},
                    {"copy_bytes", st->copy_bytes},
                    {"add_bytes", st->add_bytes},
                    {"insert_bytes", st->insert_bytes},
                    {"predictor", delta::predictor_name(st->predictor)},
                    {"map_entries", st->map_entries},
                    {"map_bytes", st->map_bytes},
                    {"level", a.level},
                    {"window_log", a.window_log},
                    {"frame_size", a.frame_size}};
    if (st->version == delta::kRecompressFormatVersion)
      doc["patch"]["xz_streams"] = {{"old", st->old_streams},
                                    {"new", st->new_streams},
                                    {"expanded_old_size", st->expanded_old_size},
                                    {"expanded_new_size", st->expanded_new_size}};
  }
  std::uint64_t psize = doc["patch"]["size"].get<std::uint64_t>();
  double ratio = new_image->empty() ? 0.0 : static_cast<double>(psize) / static_cast<double>(new_image->size());
  doc["ratio"] = ratio;
  doc["timings"] = {{"total_s", seconds_since(t0)}};
  if (ctx.json) {
    print_json(doc);
  } else if (!ctx.quiet) {
    std::printf("%s: %llu bytes (%.3f%% of NEW, %llu bytes)\n", a.out_path.c_str(),
                static_cast<unsigned long long>(psize), ratio * 100.0,
                static_cast<unsigned long long>(new_image->size()));
  }
  return ok();
}

}  // namespace

void add_diff_command(CLI::App& app, Context& ctx, int& exit_code) {
  auto args = std::make_shared<DiffArgs>();
  auto* cmd = app.add_subcommand("diff", "Write a patch that turns OLD into NEW");
  cmd->footer("Example:\n  ota diff firmware-1.0.bin firmware-1.1.bin -o 1.0-to-1.1.otd\n"
              "  ota diff --format bsdiff40 old.bin new.bin -o old-to-new.bsdiff");
  cmd->add_option("OLD", args->old_path, "The image the device has")->required()->check(CLI::ExistingFile);
  cmd->add_option("NEW", args->new_path, "The image the device should get")->required()->check(CLI::ExistingFile);
  cmd->add_option("-o,--output", args->out_path, "Where to write the patch")->required();
  cmd->add_option("--format", args->format, "Patch format: ota (default) or bsdiff40 (classic bsdiff 4)")
      ->check(CLI::IsMember({"ota", "bsdiff40"}));
  cmd->add_option("--compression", args->compression,
                  "Entropy stage of the records: lzma (default, LZMA2, format version 4, or 5 with ELF tables) or zstd (format version 3, "
                  "or 1-2 with --layout interleaved, for patchers that predate version 4)")
      ->check(CLI::IsMember({"lzma", "zstd"}));
  cmd->add_option("--level", args->level, "Compression level 1-22 (zstd's scale; LZMA2 preset level*9/19, extreme from 19)")
      ->check(CLI::Range(1, 22));
  cmd->add_option("--window-log", args->window_log,
                  "log2 of the decoder window (LZMA2 dictionary) the device needs (10-27; 12-27 with lzma)")
      ->check(CLI::Range(10, 27));
  cmd->add_option("--frame-size", args->frame_size,
                  "NEW bytes per independent frame (power of two; the resume granularity)");
  cmd->add_option("--threads", args->threads, "Worker threads (default: one per core)");
  cmd->add_option("--predictor", args->predictor,
                  "Reference predictor for executables: auto (default), none, x86, thumb, arm64")
      ->check(CLI::IsMember({"auto", "none", "x86", "thumb", "arm64"}));
  cmd->add_option("--layout", args->layout,
                  "Record layout: blocks (default, format version 3 or 4) or interleaved (versions 1 and 2, "
                  "for devices whose patcher predates version 3; implies --compression zstd)")
      ->check(CLI::IsMember({"blocks", "interleaved"}));
  cmd->add_flag("--no-elf-tables{false}", args->elf_tables,
                "Keep an LZMA2 patch at format version 4: the x86/arm64 predictor leaves OLD's ELF tables "
                "(.eh_frame_hdr, .eh_frame, data pointers, x86-64 code addresses) alone, for patchers that predate version 5");
  cmd->add_flag("--no-recompress{false}", args->recompress,
                "Diff compressed streams (a squashfs' xz, zstd or gzip blocks) as they are, not expanded and re-encoded on the device "
                "(format version 6), for patchers that predate version 6");
  cmd->add_flag("-q,--quiet", ctx.quiet, "No progress and no summary");
  cmd->add_flag("--json", ctx.json, "Print a JSON summary (sizes, hashes, timings) on stdout");
  cmd->callback([&ctx, &exit_code, args] {
    auto st = run_diff(ctx, *args);
    exit_code = st ? 0 : report(ctx, "diff", st.error());
  });
}

}  // namespace ota::cli
