#include "ota/delta/bsdiff40.hpp"

#include <bzlib.h>

#include <algorithm>
#include <cstring>


namespace ota::bsdiff40 {

namespace {


// Sign-magnitude decoding; false for "negative zero" overflow cases we refuse.
std::int64_t get_off(const std::uint8_t* buf) {
  std::uint64_t y = 0;
  for (int i = 7; i >= 0; --i) y = y << 8 | (i == 7 ? (buf[i] & 0x7f) : buf[i]);
  auto v = static_cast<std::int64_t>(y);
  return (buf[7] & 0x80) ? -v : v;
}


// Decodes one bzip2 stream stored in [begin, end) of a Source.
class BzReader {
 public:
  BzReader(const Source& src, std::uint64_t begin, std::uint64_t end)
      : src_(src), pos_(begin), end_(end), in_(16 * 1024) {}
  ~BzReader() {
    if (started_) BZ2_bzDecompressEnd(&s_);
  }
  BzReader(const BzReader&) = delete;
  BzReader& operator=(const BzReader&) = delete;

  // Fills out exactly, or fails (a short stream is a corrupt patch).
  Status read_exact(MutableByteSpan out, const char* what) {
    OTA_TRY(start());
    std::size_t done = 0;
    while (done < out.size()) {
      if (ended_) return fail(ErrorCode::kPatchTruncated, std::string("BSDIFF40 ") + what + " stream ends early");
      OTA_TRY(refill(what));
      s_.next_out = reinterpret_cast<char*>(out.data() + done);
      s_.avail_out = static_cast<unsigned>(std::min<std::size_t>(out.size() - done, 1u << 30));
      unsigned before = s_.avail_out;
      int rc = BZ2_bzDecompress(&s_);
      done += before - s_.avail_out;
      if (rc == BZ_STREAM_END) {
        ended_ = true;
      } else if (rc != BZ_OK) {
        return fail(ErrorCode::kDecompress, std::string("BSDIFF40 ") + what + " stream is corrupt (bzip2)");
      }
    }
    return ok();
  }

  // After the last byte was read: the stream must end exactly here, and (for the
  // last stream of the patch) nothing may follow it.
  Status expect_end(const char* what, bool last) {
    std::uint8_t extra = 0;
    while (!ended_) {
      OTA_TRY_ASSIGN(auto st, read_some(&extra, what));
      if (st) return fail(ErrorCode::kPatchMalformed, std::string("BSDIFF40 ") + what + " stream has bytes past the end of NEW");
    }
    if (last && (s_.avail_in != 0 || pos_ != end_))
      return fail(ErrorCode::kPatchMalformed, "BSDIFF40 patch has bytes after its last stream");
    return ok();
  }

 private:
  Status start() {
    if (started_) return ok();
    if (BZ2_bzDecompressInit(&s_, 0, 1) != BZ_OK)
      return fail(ErrorCode::kOutOfMemory, "bzip2: cannot start a decompressor");
    started_ = true;
    return ok();
  }

  // Gives the decompressor more compressed bytes when it has none left.
  Status refill(const char* what) {
    if (s_.avail_in != 0) return ok();
    std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(in_.size(), end_ - pos_));
    if (n == 0) return fail(ErrorCode::kPatchTruncated, std::string("BSDIFF40 ") + what + " stream is truncated");
    OTA_TRY(src_.read_at(pos_, MutableByteSpan(in_.data(), n)));
    pos_ += n;
    s_.next_in = reinterpret_cast<char*>(in_.data());
    s_.avail_in = static_cast<unsigned>(n);
    return ok();
  }

  // Decodes at most one byte into out; returns how many were produced.
  Result<std::size_t> read_some(std::uint8_t* out, const char* what) {
    OTA_TRY(start());
    OTA_TRY(refill(what));
    s_.next_out = reinterpret_cast<char*>(out);
    s_.avail_out = 1;
    int rc = BZ2_bzDecompress(&s_);
    if (rc == BZ_STREAM_END) ended_ = true;
    else if (rc != BZ_OK) return fail(ErrorCode::kDecompress, std::string("BSDIFF40 ") + what + " stream is corrupt (bzip2)");
    return static_cast<std::size_t>(1 - s_.avail_out);
  }

  const Source& src_;
  std::uint64_t pos_, end_;
  Bytes in_;
  bz_stream s_{};
  bool started_ = false;
  bool ended_ = false;
};

}  // namespace

bool is_bsdiff40(ByteSpan data) {
  return data.size() >= 8 && std::memcmp(data.data(), kMagic, 8) == 0;
}


Result<std::uint64_t> new_size(const Source& patch) {
  std::uint8_t header[32];
  if (patch.size() < 32) return fail(ErrorCode::kPatchTruncated, "BSDIFF40 header is truncated");
  OTA_TRY(patch.read_at(0, header));
  if (!is_bsdiff40(ByteSpan(header, 8))) return fail(ErrorCode::kPatchMalformed, "not a BSDIFF40 patch");
  std::int64_t n = get_off(header + 24);
  if (n < 0) return fail(ErrorCode::kPatchMalformed, "BSDIFF40 header has a negative size");
  return static_cast<std::uint64_t>(n);
}

Status apply(const Source& old_image, const Source& patch, Writer& out) {
  std::uint8_t header[32];
  if (patch.size() < 32) return fail(ErrorCode::kPatchTruncated, "BSDIFF40 header is truncated");
  OTA_TRY(patch.read_at(0, header));
  if (!is_bsdiff40(ByteSpan(header, 8))) return fail(ErrorCode::kPatchMalformed, "not a BSDIFF40 patch");
  const std::int64_t ctrl_len = get_off(header + 8), data_len = get_off(header + 16),
                     new_len = get_off(header + 24);
  if (ctrl_len < 0 || data_len < 0 || new_len < 0)
    return fail(ErrorCode::kPatchMalformed, "BSDIFF40 header has a negative length");
  const auto body = patch.size() - 32;
  if (static_cast<std::uint64_t>(ctrl_len) > body || static_cast<std::uint64_t>(data_len) > body - static_cast<std::uint64_t>(ctrl_len))
    return fail(ErrorCode::kPatchTruncated, "BSDIFF40 streams extend past the end of the patch");

  const std::uint64_t c0 = 32, d0 = c0 + static_cast<std::uint64_t>(ctrl_len),
                      e0 = d0 + static_cast<std::uint64_t>(data_len);
  BzReader ctrl(patch, c0, d0), dif(patch, d0, e0), extra(patch, e0, patch.size());
  const std::int64_t old_size = static_cast<std::int64_t>(old_image.size());
  Bytes buf(64 * 1024), oldbuf(64 * 1024);
  std::int64_t newpos = 0, oldpos = 0;
  while (newpos < new_len) {
    std::uint8_t triple[24];
    OTA_TRY(ctrl.read_exact(triple, "control"));
    std::int64_t x = get_off(triple), y = get_off(triple + 8), z = get_off(triple + 16);
    if (x < 0 || y < 0 || x > new_len - newpos || y > new_len - newpos - x)
      return fail(ErrorCode::kPatchMalformed, "BSDIFF40 control record runs past the end of NEW");
    for (std::int64_t left = x; left > 0;) {
      std::size_t n = static_cast<std::size_t>(std::min<std::int64_t>(left, static_cast<std::int64_t>(buf.size())));
      OTA_TRY(dif.read_exact(MutableByteSpan(buf.data(), n), "diff"));
      // bspatch treats OLD bytes outside the file as zero; so do we. (|oldpos| stays
      // below 2^62, so none of this overflows.)
      const auto len = static_cast<std::int64_t>(n);
      if (oldpos < old_size && oldpos > -len) {
        const std::int64_t lo = std::max<std::int64_t>(oldpos, 0), hi = std::min<std::int64_t>(oldpos + len, old_size);
        OTA_TRY(old_image.read_at(static_cast<std::uint64_t>(lo), MutableByteSpan(oldbuf.data(), static_cast<std::size_t>(hi - lo))));
        for (std::int64_t i = lo; i < hi; ++i) buf[static_cast<std::size_t>(i - oldpos)] += oldbuf[static_cast<std::size_t>(i - lo)];
      }
      OTA_TRY(out.write(ByteSpan(buf.data(), n)));
      oldpos += static_cast<std::int64_t>(n);
      newpos += static_cast<std::int64_t>(n);
      left -= static_cast<std::int64_t>(n);
    }
    for (std::int64_t left = y; left > 0;) {
      std::size_t n = static_cast<std::size_t>(std::min<std::int64_t>(left, static_cast<std::int64_t>(buf.size())));
      OTA_TRY(extra.read_exact(MutableByteSpan(buf.data(), n), "extra"));
      OTA_TRY(out.write(ByteSpan(buf.data(), n)));
      newpos += static_cast<std::int64_t>(n);
      left -= static_cast<std::int64_t>(n);
    }
    // Positions far outside OLD can never read it again: refuse them rather than overflow.
    constexpr std::int64_t kLimit = std::int64_t{1} << 61;
    if (z > kLimit || z < -kLimit || oldpos + z > kLimit || oldpos + z < -kLimit)
      return fail(ErrorCode::kPatchMalformed, "BSDIFF40 seek moves too far outside OLD");
    oldpos += z;
  }
  OTA_TRY(ctrl.expect_end("control", false));
  OTA_TRY(dif.expect_end("diff", false));
  OTA_TRY(extra.expect_end("extra", true));
  return ok();
}

}  // namespace ota::bsdiff40
