// The bundle container's tar headers, rendered by libarchive. Nothing here
// parses untrusted bytes: the reader renders the header it expects and
// compares bytes.
#include <archive.h>
#include <archive_entry.h>

#include <memory>

#include "ota/release/bundle.hpp"

namespace ota::bundle {

namespace {

struct Collector {
  Bytes out;
  bool header_done = false;
};

// Keeps the header; refuses everything after it, so closing the archive (which
// frees libarchive's client state) stops at once instead of writing the
// entry's zero padding and end blocks.
la_ssize_t collect(struct archive*, void* user, const void* buf, std::size_t n) {
  auto* c = static_cast<Collector*>(user);
  if (c->header_done) return -1;
  const auto* p = static_cast<const std::uint8_t*>(buf);
  c->out.insert(c->out.end(), p, p + n);
  return static_cast<la_ssize_t>(n);
}

std::uint64_t padded(std::uint64_t n) { return (n + 511) / 512 * 512; }

constexpr std::uint64_t kPaxSize = 8ull << 30;  // ustar's size field holds 11 octal digits

}  // namespace

Result<Bytes> member_header(const std::string& path, std::uint64_t size, trust::Time mtime) {
  Collector c;
  std::unique_ptr<struct archive, int (*)(struct archive*)> a(archive_write_new(), archive_write_free);
  std::unique_ptr<archive_entry, void (*)(archive_entry*)> e(archive_entry_new(), archive_entry_free);
  if (!a || !e) return fail(ErrorCode::kOutOfMemory, "libarchive: cannot allocate");
  // ustar below 8 GiB (its size field's limit): one 512-byte header whatever
  // the mtime (pax_restricted would add an extended header from 2038 on).
  // From 8 GiB, pax: an extended header carries the size.
  const bool large = size >= kPaxSize;
  const int fmt = large ? archive_write_set_format_pax_restricted(a.get()) : archive_write_set_format_ustar(a.get());
  if (fmt != ARCHIVE_OK || archive_write_set_bytes_per_block(a.get(), 0) != ARCHIVE_OK ||
      archive_write_open2(a.get(), &c, nullptr, collect, nullptr, nullptr) != ARCHIVE_OK)
    return fail(ErrorCode::kInternal, std::string("libarchive: ") + archive_error_string(a.get()));
  archive_entry_set_pathname(e.get(), path.c_str());
  archive_entry_set_size(e.get(), static_cast<la_int64_t>(size));
  archive_entry_set_filetype(e.get(), AE_IFREG);
  archive_entry_set_perm(e.get(), 0644);
  archive_entry_set_mtime(e.get(), static_cast<time_t>(mtime), 0);
  archive_entry_set_uid(e.get(), 0);
  archive_entry_set_gid(e.get(), 0);
  if (archive_write_header(a.get(), e.get()) != ARCHIVE_OK)
    return fail(ErrorCode::kInternal, std::string("libarchive: ") + archive_error_string(a.get()));
  c.header_done = true;
  archive_write_close(a.get());  // fails at the first padding byte, by design
  if (c.out.size() != (large ? 1536u : 512u))
    return fail(ErrorCode::kInternal, "libarchive: unexpected header size " + std::to_string(c.out.size()));
  return std::move(c.out);
}

Layout layout(std::uint64_t manifest_size, std::uint64_t signature_block_size, const manifest::Manifest& m) {
  Layout l;
  std::uint64_t off = 0;
  auto add = [&](std::string path, std::uint64_t size) {
    const std::uint64_t header = size >= kPaxSize ? 1536 : 512;
    l.members.push_back({path, off, off + header, size});
    off += header + padded(size);
  };
  add("manifest.json", manifest_size);
  add("signatures.json", signature_block_size);
  for (const auto& p : m.payloads) add("payloads/" + p.name, p.size);
  l.end_offset = off;
  l.total_size = off + 1024;
  return l;
}

}  // namespace ota::bundle
