#include "delta/xz_tables.hpp"

#include <algorithm>
#include <cstring>
#include <string>
#include <unordered_map>

#include "core/varint.hpp"

namespace ota::delta::detail {

using ::ota::detail::get_varint;
using ::ota::detail::put_varint;
using ::ota::detail::VarintStatus;

namespace {

Error malformed(std::string what) { return Error{ErrorCode::kPatchMalformed, "xz tables: " + std::move(what)}; }

// Largest compressed form of a stream of kMaxXzSegment bytes (incompressible
// data grows by a few bytes per 64 KiB chunk, plus headers).
constexpr std::uint64_t kMaxXzComp = kMaxXzSegment + (std::uint64_t{64} << 10);

class TableReader {
 public:
  explicit TableReader(ByteSpan d) : d_(d) {}
  Result<std::uint64_t> varint() {
    std::uint64_t v = 0;
    std::size_t used = 0;
    if (get_varint(d_.subspan(pos_), v, used) != VarintStatus::kOk) return fail(malformed("truncated or invalid number"));
    pos_ += used;
    return v;
  }
  Result<std::uint8_t> byte() {
    if (pos_ >= d_.size()) return fail(malformed("truncated"));
    return d_[pos_++];
  }
  bool done() const { return pos_ == d_.size(); }

 private:
  ByteSpan d_;
  std::size_t pos_ = 0;
};

}  // namespace

std::vector<XzPiece> pieces_of(std::uint64_t size, const std::vector<codec::XzStream>& streams, bool pad,
                               std::uint8_t frame_log) {
  std::vector<XzPiece> out;
  const std::uint64_t frame = std::uint64_t{1} << frame_log;
  std::uint64_t real = 0, exp = 0;
  auto raw = [&](std::uint64_t n) {
    if (n == 0) return;
    out.push_back(XzPiece{XzPiece::kRaw, real, n, exp, n, {}});
    real += n;
    exp += n;
  };
  for (const auto& s : streams) {
    raw(s.offset - real);
    if (pad && s.exp_size <= frame && exp % frame + s.exp_size > frame) {
      const std::uint64_t n = frame - exp % frame;
      out.push_back(XzPiece{XzPiece::kPad, real, 0, exp, n, {}});
      exp += n;
    }
    codec::XzParams params = s.params.value_or(codec::XzParams{});
    params.codec = s.codec;
    out.push_back(XzPiece{XzPiece::kXz, real, s.comp_size, exp, s.exp_size, params});
    real += s.comp_size;
    exp += s.exp_size;
  }
  raw(size - real);
  return out;
}

std::uint64_t expanded_size(const std::vector<XzPiece>& pieces) {
  return pieces.empty() ? 0 : pieces.back().exp_offset + pieces.back().exp_size;
}

Result<Bytes> expand(ByteSpan image, const std::vector<XzPiece>& pieces) {
  Bytes out(static_cast<std::size_t>(expanded_size(pieces)));
  for (const auto& p : pieces) {
    MutableByteSpan dst(out.data() + p.exp_offset, static_cast<std::size_t>(p.exp_size));
    const ByteSpan src = image.subspan(static_cast<std::size_t>(p.real_offset), static_cast<std::size_t>(p.real_size));
    if (p.kind == XzPiece::kRaw) std::memcpy(dst.data(), src.data(), src.size());
    else if (p.kind == XzPiece::kXz) OTA_TRY(codec::xz_decode(src, dst, p.params.codec));
  }
  return out;
}

Bytes encode_tables(const XzTables& t) {
  Bytes out;
  put_varint(out, t.old_streams);
  std::uint64_t real = 0;
  for (const auto& p : t.old_pieces) {
    if (p.kind != XzPiece::kXz) continue;
    put_varint(out, p.real_offset - real);
    put_varint(out, p.real_size);
    put_varint(out, p.exp_size);
    out.push_back(static_cast<std::uint8_t>(p.params.codec));
    real = p.real_offset + p.real_size;
  }
  put_varint(out, t.new_streams);
  real = 0;
  std::uint64_t pad = 0;
  for (const auto& p : t.new_pieces) {
    if (p.kind == XzPiece::kPad) pad = p.exp_size;
    if (p.kind != XzPiece::kXz) continue;
    put_varint(out, p.real_offset - real);
    put_varint(out, pad);
    put_varint(out, p.real_size);
    put_varint(out, p.exp_size);
    out.push_back(static_cast<std::uint8_t>(p.params.codec));
    if (p.params.codec == codec::StreamCodec::kZstd) {
      out.push_back(p.params.preset);
    } else if (p.params.codec == codec::StreamCodec::kZlib) {
      out.push_back(p.params.preset);
      out.push_back(p.params.zlib_strategy);
      out.push_back(p.params.zlib_mem_level);
      out.push_back(p.params.zlib_window);
    } else {
      out.push_back(static_cast<std::uint8_t>(p.params.preset | (p.params.extreme ? 0x10 : 0) |
                                              (p.params.stream_encoder ? 0x20 : 0)));
      out.push_back(p.params.check);
      out.push_back(p.params.bcj);
      put_varint(out, p.params.dict_size);
    }
    real = p.real_offset + p.real_size;
    pad = 0;
  }
  return out;
}

Result<XzTables> parse_tables(ByteSpan data, const PatchHeader& h) {
  TableReader r(data);
  XzTables t;
  const std::uint64_t frame = std::uint64_t{1} << h.frame_log;
  // OLD: gap, compressed size, expanded size per stream.
  OTA_TRY_ASSIGN(t.old_streams, r.varint());
  if (t.old_streams > data.size() / 4) return fail(malformed("more OLD streams than the table holds"));
  std::uint64_t real = 0, exp = 0;
  auto raw = [](std::vector<XzPiece>& v, std::uint64_t& rl, std::uint64_t& ex, std::uint64_t n) {
    if (n == 0) return;
    v.push_back(XzPiece{XzPiece::kRaw, rl, n, ex, n, {}});
    rl += n;
    ex += n;
  };
  for (std::uint64_t i = 0; i < t.old_streams; ++i) {
    OTA_TRY_ASSIGN(auto gap, r.varint());
    OTA_TRY_ASSIGN(auto comp, r.varint());
    OTA_TRY_ASSIGN(auto ex, r.varint());
    OTA_TRY_ASSIGN(auto kind, r.byte());
    if (kind > static_cast<std::uint8_t>(codec::StreamCodec::kZlib))
      return fail(malformed("OLD stream " + std::to_string(i) + " has an unknown codec"));
    if (comp < 9 || comp > kMaxXzComp || ex == 0 || ex > kMaxXzSegment)
      return fail(malformed("OLD stream " + std::to_string(i) + " has sizes out of range"));
    if (gap > h.old_size || comp > h.old_size - gap || real > h.old_size - gap - comp)
      return fail(malformed("OLD stream " + std::to_string(i) + " lies outside OLD"));
    raw(t.old_pieces, real, exp, gap);
    codec::XzParams oldp;
    oldp.codec = static_cast<codec::StreamCodec>(kind);
    t.old_pieces.push_back(XzPiece{XzPiece::kXz, real, comp, exp, ex, oldp});
    real += comp;
    exp += ex;
  }
  raw(t.old_pieces, real, exp, h.old_size - real);
  if (exp != h.expanded_old_size) return fail(malformed("OLD's expanded size differs from the header's"));
  // NEW: raw bytes before, pad bytes before, compressed and expanded size, settings.
  OTA_TRY_ASSIGN(t.new_streams, r.varint());
  if (t.new_streams > data.size() / 6) return fail(malformed("more NEW streams than the table holds"));
  real = exp = 0;
  for (std::uint64_t i = 0; i < t.new_streams; ++i) {
    OTA_TRY_ASSIGN(auto gap, r.varint());
    OTA_TRY_ASSIGN(auto pad, r.varint());
    OTA_TRY_ASSIGN(auto comp, r.varint());
    OTA_TRY_ASSIGN(auto ex, r.varint());
    OTA_TRY_ASSIGN(auto kind, r.byte());
    OTA_TRY_ASSIGN(auto flags, r.byte());
    codec::XzParams p;
    if (kind == static_cast<std::uint8_t>(codec::StreamCodec::kZstd)) {
      p.codec = codec::StreamCodec::kZstd;
      p.preset = flags;
    } else if (kind == static_cast<std::uint8_t>(codec::StreamCodec::kZlib)) {
      p.codec = codec::StreamCodec::kZlib;
      p.preset = flags;
      OTA_TRY_ASSIGN(p.zlib_strategy, r.byte());
      OTA_TRY_ASSIGN(p.zlib_mem_level, r.byte());
      OTA_TRY_ASSIGN(p.zlib_window, r.byte());
    } else {
      if (kind != static_cast<std::uint8_t>(codec::StreamCodec::kXz) || (flags & 0xc0) != 0)
        return fail(malformed("NEW stream " + std::to_string(i) + " has unknown settings"));
      p.preset = flags & 0x0f;
      p.extreme = flags & 0x10;
      p.stream_encoder = flags & 0x20;
      OTA_TRY_ASSIGN(p.check, r.byte());
      OTA_TRY_ASSIGN(p.bcj, r.byte());
      OTA_TRY_ASSIGN(auto dict, r.varint());
      if (dict > codec::kXzMaxDict) return fail(malformed("NEW stream " + std::to_string(i) + " has unknown settings"));
      p.dict_size = static_cast<std::uint32_t>(dict);
    }
    if (!codec::xz_params_valid(p)) return fail(malformed("NEW stream " + std::to_string(i) + " has unknown settings"));
    if (comp < 9 || comp > kMaxXzComp || ex == 0 || ex > kMaxXzSegment || pad >= frame)
      return fail(malformed("NEW stream " + std::to_string(i) + " has sizes out of range"));
    if (gap > h.new_size || comp > h.new_size - gap || real > h.new_size - gap - comp)
      return fail(malformed("NEW stream " + std::to_string(i) + " lies outside NEW"));
    raw(t.new_pieces, real, exp, gap);
    if (pad > 0) {
      t.new_pieces.push_back(XzPiece{XzPiece::kPad, real, 0, exp, pad, {}});
      exp += pad;
    }
    t.new_pieces.push_back(XzPiece{XzPiece::kXz, real, comp, exp, ex, p});
    real += comp;
    exp += ex;
    t.encoder_memory = std::max(t.encoder_memory, codec::xz_encoder_memory(p, ex));
  }
  raw(t.new_pieces, real, exp, h.new_size - real);
  if (exp != h.expanded_new_size) return fail(malformed("NEW's expanded size differs from the header's"));
  if (!r.done()) return fail(malformed("unexpected bytes after the tables"));
  return t;
}

std::size_t piece_at(const std::vector<XzPiece>& pieces, std::uint64_t off) {
  auto it = std::upper_bound(pieces.begin(), pieces.end(), off,
                             [](std::uint64_t o, const XzPiece& p) { return o < p.exp_offset; });
  return static_cast<std::size_t>(it - pieces.begin()) - 1;
}

std::size_t xz_cache_slots(const std::vector<XzPiece>& old_pieces) {
  std::uint64_t largest = 1;
  for (const auto& p : old_pieces)
    if (p.kind == XzPiece::kXz) largest = std::max(largest, p.exp_size);
  return static_cast<std::size_t>(std::max<std::uint64_t>(2, kXzCacheBytes / largest));
}

void keep_covers_local(const std::vector<XzPiece>& old_pieces, std::size_t slots, std::vector<Block>& blocks) {
  if (old_pieces.empty()) return;
  const std::uint64_t old_size = expanded_size(old_pieces);
  // The streams of OLD a block copies from, with the bytes of its cover in each.
  auto reads = [&](const Block& b, std::vector<std::pair<std::size_t, std::uint64_t>>& out) {
    out.clear();
    const std::uint64_t hi = std::min(old_size, b.old_pos + b.add_len);
    for (std::size_t i = piece_at(old_pieces, b.old_pos); i < old_pieces.size() && old_pieces[i].exp_offset < hi; ++i) {
      const XzPiece& p = old_pieces[i];
      if (p.kind != XzPiece::kXz) continue;
      const std::uint64_t from = std::max(b.old_pos, p.exp_offset);
      const std::uint64_t to = std::min(hi, p.exp_offset + p.exp_size);
      out.emplace_back(i, to - from);
    }
  };
  // Cover bytes still to come in this frame, per stream: a stream is worth
  // decoding when at least kXzMissCover of them read it.
  std::unordered_map<std::size_t, std::uint64_t> to_come;
  std::vector<std::pair<std::size_t, std::uint64_t>> r;
  for (const Block& b : blocks) {
    if (b.add_len == 0) continue;
    reads(b, r);
    for (const auto& [i, n] : r) to_come[i] += n;
  }
  std::vector<std::pair<std::size_t, std::uint64_t>> cache;  // stream, last use
  std::uint64_t tick = 0;
  auto use = [&](std::size_t i) {
    auto it = std::find_if(cache.begin(), cache.end(), [&](const auto& c) { return c.first == i; });
    if (it != cache.end()) {
      it->second = ++tick;
    } else if (cache.size() < slots) {
      cache.emplace_back(i, ++tick);
    } else {
      *std::min_element(cache.begin(), cache.end(), [](const auto& x, const auto& y) { return x.second < y.second; }) =
          {i, ++tick};
    }
  };
  std::vector<Block> out;
  out.reserve(blocks.size());
  auto literal = [&](std::uint64_t new_pos, std::uint64_t old_pos, std::uint64_t n) {
    if (n == 0) return;
    if (out.empty()) out.push_back(Block{new_pos, old_pos, 0, n});
    else out.back().insert_len += n;
  };
  for (const Block& b : blocks) {
    if (b.add_len == 0) {
      literal(b.new_pos, b.old_pos, b.insert_len);
      continue;
    }
    reads(b, r);
    // The cover in runs: bytes of raw pieces and of streams worth reading
    // stay a cover; bytes of the others become literal bytes.
    const std::uint64_t end = b.old_pos + b.add_len;
    std::uint64_t pos = b.old_pos, run_start = b.old_pos;
    bool run_ok = true;
    auto flush = [&] {
      if (pos == run_start) return;
      const std::uint64_t new_pos = b.new_pos + (run_start - b.old_pos);
      if (run_ok) out.push_back(Block{new_pos, run_start, pos - run_start, 0});
      else literal(new_pos, run_start, pos - run_start);
    };
    auto segment = [&](std::uint64_t len, bool ok) {
      if (len == 0) return;
      if (ok != run_ok) {
        flush();
        run_start = pos;
        run_ok = ok;
      }
      pos += len;
    };
    for (const auto& entry : r) {
      const std::size_t i = entry.first;  // not a structured binding: the lambda below captures it
      const std::uint64_t n = entry.second;
      const std::uint64_t from = std::max(b.old_pos, old_pieces[i].exp_offset);
      segment(from - pos, true);  // raw bytes before the stream
      const bool cached = std::any_of(cache.begin(), cache.end(), [&](const auto& c) { return c.first == i; });
      const bool ok = cached || to_come[i] >= kXzMissCover;
      to_come[i] -= n;
      if (ok) use(i);
      segment(n, ok);
    }
    segment(end - pos, true);
    flush();
    literal(b.new_pos + b.add_len, b.old_pos + b.add_len, b.insert_len);
  }
  blocks = std::move(out);
}

std::uint64_t ExpandedSource::read_ahead_end(std::uint64_t offset) const {
  if (offset >= size_) return size_;
  const XzPiece& p = pieces_[piece_at(pieces_, offset)];
  return p.exp_offset + p.exp_size;
}

Result<ByteSpan> ExpandedSource::decoded(std::size_t i) const {
  Slot* victim = &slots_[0];
  for (auto& s : slots_) {
    if (s.piece == i) {
      s.used = ++tick_;
      return ByteSpan(s.bytes);
    }
    if (s.used < victim->used) victim = &s;
  }
  const XzPiece& p = pieces_[i];
  Slot& s = *victim;
  s.piece = SIZE_MAX;
  s.used = ++tick_;
  ++decodes_;
  comp_.resize(static_cast<std::size_t>(p.real_size));
  s.bytes.resize(static_cast<std::size_t>(p.exp_size));
  OTA_TRY(real_.read_at(p.real_offset, comp_));
  if (auto st = codec::xz_decode(comp_, s.bytes, p.params.codec); !st) {
    if (!lenient_) return fail(st.error().with_context("the compressed stream at offset " + std::to_string(p.real_offset)));
    std::fill(s.bytes.begin(), s.bytes.end(), std::uint8_t{0});
  }
  s.piece = i;
  return ByteSpan(s.bytes);
}

Status ExpandedSource::read_at(std::uint64_t offset, MutableByteSpan out) const {
  if (offset > size_ || out.size() > size_ - offset)
    return fail(ErrorCode::kInternal, "read past the end of an expanded image");
  std::size_t done = 0;
  std::size_t i = out.empty() ? 0 : piece_at(pieces_, offset);
  while (done < out.size()) {
    const XzPiece& p = pieces_[i];
    const std::uint64_t off = offset + done, in = off - p.exp_offset;
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(p.exp_size - in, out.size() - done));
    if (p.kind == XzPiece::kRaw) {
      OTA_TRY(real_.read_at(p.real_offset + in, out.subspan(done, n)));
    } else if (p.kind == XzPiece::kPad) {
      std::memset(out.data() + done, 0, n);
    } else {
      OTA_TRY_ASSIGN(auto bytes, decoded(i));
      std::memcpy(out.data() + done, bytes.data() + in, n);
    }
    done += n;
    ++i;
  }
  return ok();
}

Status Recompressor::put(ByteSpan real) {
  OTA_TRY(out_.write(real));
  hasher_.update(real);
  real_pos_ += real.size();
  return ok();
}

Status Recompressor::write(ByteSpan data) {
  while (!data.empty()) {
    if (piece_ >= pieces_.size()) return fail(malformed("more NEW bytes than the tables hold"));
    const XzPiece& p = pieces_[piece_];
    const std::uint64_t in = exp_pos_ - p.exp_offset;
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(p.exp_size - in, data.size()));
    const ByteSpan part = data.first(n);
    if (p.kind == XzPiece::kRaw) {
      OTA_TRY(put(part));
    } else if (p.kind == XzPiece::kPad) {
      if (std::any_of(part.begin(), part.end(), [](std::uint8_t b) { return b != 0; }))
        return fail(ErrorCode::kNewMismatch, "a pad byte of the expanded NEW is not zero");
    } else {
      gathered_.insert(gathered_.end(), part.begin(), part.end());
      if (gathered_.size() == p.exp_size) {
        encoded_.resize(static_cast<std::size_t>(p.real_size) + 1024);  // zstd wants room past the end
        auto len = codec::xz_encode(gathered_, p.params, encoded_);
        if (!len || *len != p.real_size)
          return fail(ErrorCode::kNewMismatch,
                      "re-encoding the compressed stream at NEW offset " + std::to_string(p.real_offset) +
                          " does not give its " + std::to_string(p.real_size) +
                          " bytes (this liblzma or libzstd encodes differently from the generator's)");
        OTA_TRY(put(ByteSpan(encoded_).first(static_cast<std::size_t>(p.real_size))));
        gathered_.clear();
      }
    }
    exp_pos_ += n;
    data = data.subspan(n);
    if (exp_pos_ == p.exp_offset + p.exp_size) ++piece_;
  }
  return ok();
}

void Recompressor::resume_at(std::uint64_t exp_offset, std::uint64_t real_offset) {
  exp_pos_ = exp_offset;
  real_pos_ = real_offset;
  piece_ = pieces_.empty() || exp_offset >= expanded_size(pieces_) ? pieces_.size() : piece_at(pieces_, exp_offset);
}

std::optional<std::uint64_t> real_offset_at(const std::vector<XzPiece>& pieces, std::uint64_t exp_offset) {
  if (pieces.empty() || exp_offset >= expanded_size(pieces))
    return exp_offset == expanded_size(pieces) ? std::optional<std::uint64_t>(
                                                     pieces.empty() ? 0 : pieces.back().real_offset + pieces.back().real_size)
                                               : std::nullopt;
  const XzPiece& p = pieces[piece_at(pieces, exp_offset)];
  const std::uint64_t in = exp_offset - p.exp_offset;
  if (p.kind == XzPiece::kRaw) return p.real_offset + in;
  if (in == 0) return p.real_offset;
  return std::nullopt;
}

}  // namespace ota::delta::detail
