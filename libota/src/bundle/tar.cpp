// The bundle container's tar headers, rendered by libarchive. Nothing here
// parses untrusted bytes: the reader renders the header it expects and
// compares bytes.
#include <archive.h>
#include <archive_entry.h>

#include <memory>

#include "ota/bundle.hpp"

namespace ota::bundle {

namespace {

la_ssize_t collect(struct archive*, void* user, const void* buf, std::size_t n) {
  auto* out = static_cast<Bytes*>(user);
  const auto* p = static_cast<const std::uint8_t*>(buf);
  out->insert(out->end(), p, p + n);
  return static_cast<la_ssize_t>(n);
}

std::uint64_t padded(std::uint64_t n) { return (n + 511) / 512 * 512; }

}  // namespace

Result<Bytes> member_header(const std::string& path, std::uint64_t size, trust::Time mtime) {
  Bytes out;
  std::unique_ptr<struct archive, int (*)(struct archive*)> a(archive_write_new(), archive_write_free);
  std::unique_ptr<archive_entry, void (*)(archive_entry*)> e(archive_entry_new(), archive_entry_free);
  if (!a || !e) return fail(ErrorCode::kOutOfMemory, "libarchive: cannot allocate");
  // pax_restricted is plain ustar unless a field does not fit (8 GiB sizes).
  if (archive_write_set_format_pax_restricted(a.get()) != ARCHIVE_OK ||
      archive_write_set_bytes_per_block(a.get(), 0) != ARCHIVE_OK ||
      archive_write_open2(a.get(), &out, nullptr, collect, nullptr, nullptr) != ARCHIVE_OK)
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
  // Stop here: a clean close would pad the entry's data with zeros.
  archive_write_fail(a.get());
  if (out.size() % 512 != 0 || out.empty())
    return fail(ErrorCode::kInternal, "libarchive: unexpected header size " + std::to_string(out.size()));
  return out;
}

Layout layout(std::uint64_t manifest_size, std::uint64_t signature_block_size, const manifest::Manifest& m) {
  Layout l;
  std::uint64_t off = 0;
  auto add = [&](std::string path, std::uint64_t size) {
    const std::uint64_t header = size >= (8ull << 30) ? 1536 : 512;
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
