// Reuse (ota/device/reuse.hpp): copy what the banks hold, fetch the rest.
#include "ota/device/reuse.hpp"

#include <algorithm>

#include "delta/codec/zstd.hpp"

namespace ota::reuse {

Result<chunks::Index> read_index(bundle::BundleReader& reader, const manifest::Payload& p,
                                 const manifest::Manifest& m) {
  if (p.kind != manifest::PayloadKind::kChunks) return fail(ErrorCode::kUsage, "payload " + p.name + " has no chunk index");
  Bytes bytes(static_cast<std::size_t>(p.index_size));
  OTA_TRY_CTX(reader.read_checked(0, bytes, p.index_hash, p.index_size), "the chunk index of " + p.name);
  auto ix = chunks::parse_index(bytes);
  if (!ix) return fail(ix.error().with_context("payload " + p.name));
  if (ix->target_size != m.target_size || ix->encoded_size() != p.index_size ||
      p.index_size + ix->stored_total() != manifest::readable_size(m, p))
    return fail(ErrorCode::kMalformed, "payload " + p.name + ": the chunk index does not describe the target and the payload");
  return std::move(*ix);
}

Result<LocalChunks> scan(const Source& bank, std::uint64_t size, const chunks::Params& params) {
  if (size > bank.size()) return fail(ErrorCode::kUsage, "scan: range past the bank");
  LocalChunks found;
  chunks::Chunker cut(params);
  auto add = [&](std::uint64_t offset, ByteSpan data) -> Status {
    found[content_hash(data)] = offset;
    return ok();
  };
  Bytes buf(std::size_t{1} << 20);
  for (std::uint64_t at = 0; at < size;) {
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), size - at));
    OTA_TRY(bank.read_at(at, MutableByteSpan(buf.data(), n)));
    OTA_TRY(cut.feed(ByteSpan(buf.data(), n), add));
    at += n;
  }
  OTA_TRY(cut.finish(add));
  return found;
}

Plan plan(const chunks::Index& index, const LocalChunks& active, const LocalChunks& inactive, std::size_t first) {
  Plan out;
  out.steps.resize(index.entries.size());
  LocalChunks written;  // target chunks before the current one: hash -> target offset
  std::uint64_t t = 0;
  for (std::size_t j = 0; j < index.entries.size(); ++j) {
    const chunks::Entry& e = index.entries[j];
    Step& s = out.steps[j];
    if (j >= first) {
      if (auto a = active.find(e.plain_hash); a != active.end()) {
        s = {Origin::kActive, a->second};
      } else if (auto w = written.find(e.plain_hash); w != written.end()) {
        s = {Origin::kWritten, w->second};
      } else if (auto i = inactive.find(e.plain_hash); i != inactive.end() && i->second >= t) {
        s = {Origin::kInactive, i->second};
      } else {
        s = {Origin::kFetch, 0};
      }
      if (s.origin == Origin::kFetch) {
        out.fetch_bytes += e.stored_size;
        ++out.fetch_chunks;
      } else {
        out.local_bytes += e.plain_size;
      }
    }
    written.emplace(e.plain_hash, t);
    t += e.plain_size;
  }
  return out;
}

Result<WriteReport> write_chunks(bundle::BundleReader& reader, const manifest::Payload& p,
                                 const chunks::Index& index, const Plan& plan, const Source& active,
                                 storage::BlockStore& target, storage::BankWriter& out, const WriteOptions& o) {
  const std::size_t n = index.entries.size();
  if (plan.steps.size() != n) return fail(ErrorCode::kInternal, "reuse: the plan is not for this index");
  // Where each chunk starts, in the target and in the payload.
  std::vector<std::uint64_t> t_at(n + 1), p_at(n + 1);
  t_at[0] = 0;
  p_at[0] = p.index_size;
  for (std::size_t j = 0; j < n; ++j) {
    t_at[j + 1] = t_at[j] + index.entries[j].plain_size;
    p_at[j + 1] = p_at[j] + index.entries[j].stored_size;
  }
  std::size_t first = 0;
  if (o.resume) {
    const auto& r = *o.resume;
    if (r.frame > n || t_at[r.frame] != r.new_offset || p_at[r.frame] != r.patch_offset)
      return fail(ErrorCode::kUsage, "reuse: the resume point is not a chunk boundary of this payload");
    first = static_cast<std::size_t>(r.frame);
  }
  if (out.position() != t_at[first]) return fail(ErrorCode::kInternal, "reuse: the writer is not at the resume offset");
  // Bytes to fetch in a row from each chunk on (one Range request per run).
  std::vector<std::uint64_t> run(n + 1, 0);
  for (std::size_t j = n; j-- > first;)
    run[j] = plan.steps[j].origin == Origin::kFetch ? index.entries[j].stored_size + run[j + 1] : 0;

  WriteReport rep;
  Bytes plain, stored;
  std::uint64_t since_checkpoint = 0;
  for (std::size_t j = first; j < n; ++j) {
    const chunks::Entry& e = index.entries[j];
    const Step& s = plan.steps[j];
    plain.resize(e.plain_size);
    bool have = false;
    if (s.origin != Origin::kFetch) {
      const Source& from = s.origin == Origin::kActive ? static_cast<const Source&>(active) : target;
      if (s.origin != Origin::kActive) OTA_TRY(out.flush());  // reads of the target see what was written
      if (s.offset + e.plain_size <= from.size()) {
        OTA_TRY(from.read_at(s.offset, plain));
        have = content_hash(plain) == e.plain_hash;
      }
      if (have) {
        rep.local_bytes += e.plain_size;
        ++rep.local_chunks;
      } else {
        ++rep.stale_sources;
      }
    }
    if (!have) {
      stored.resize(e.stored_size);
      OTA_TRY_CTX(reader.read_checked(p_at[j], stored, e.stored_hash, std::max<std::uint64_t>(run[j], e.stored_size)),
                  "chunk " + std::to_string(j));
      rep.fetched_bytes += e.stored_size;
      ++rep.fetched_chunks;
      if (e.mode == chunks::Mode::kZstd) {
        auto z = codec::zstd_decompress(stored, e.plain_size);
        if (!z) return fail(ErrorCode::kDecompress, "payload " + p.name + ": chunk " + std::to_string(j) + ": " + z.error().message);
        plain = std::move(*z);
      } else {
        plain = stored;
      }
      if (plain.size() != e.plain_size || content_hash(plain) != e.plain_hash)
        return fail(ErrorCode::kPayloadMismatch, "payload " + p.name + ": chunk " + std::to_string(j) +
                                                     " does not decode to its signed hash");
    }
    OTA_TRY(out.write(plain));
    since_checkpoint += e.plain_size;
    if (o.progress) o.progress(p_at[j + 1], p_at[n]);
    if (o.cancelled && o.cancelled()) return fail(ErrorCode::kCancelled, "install cancelled");
    if (o.on_checkpoint && j + 1 < n && since_checkpoint >= o.checkpoint_bytes) {
      OTA_TRY(o.on_checkpoint(delta::ResumePoint{j + 1, p_at[j + 1], t_at[j + 1]}));
      since_checkpoint = 0;
    }
  }
  return rep;
}

}  // namespace ota::reuse
