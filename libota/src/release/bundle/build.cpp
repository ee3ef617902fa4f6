// Staging a bundle: produce every payload once, hash it in chunks, then the
// manifest exists before the bundle's first byte is written.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "delta/codec/zstd.hpp"
#include "ota/delta/delta.hpp"
#include "ota/release/bundle.hpp"
#include "ota/release/encryption.hpp"
#include "ota/release/sbom.hpp"

namespace ota::bundle {

namespace {

using ota::Reader;

// Where a payload waits while the manifest is made: memory for payloads of
// images up to kMemoryStageMax, else an anonymous file (O_TMPFILE), gone when
// closed whatever happens.
class TempFile final : public Writer {
 public:
  // reserve: the expected size (address space only; pages are touched as written).
  static std::unique_ptr<TempFile> in_memory(std::size_t reserve) {
    auto t = std::unique_ptr<TempFile>(new TempFile(-1));
    t->buf_.reserve(reserve);
    return t;
  }
  static Result<std::unique_ptr<TempFile>> create(const std::string& dir) {
    int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) {
      // Filesystems without O_TMPFILE: a named file, unlinked at once.
      std::string path = dir + "/.ota-stage-XXXXXX";
      fd = ::mkostemp(path.data(), O_CLOEXEC);
      if (fd < 0)
        return fail(ErrorCode::kIo, "cannot create a temporary file in '" + dir + "': " + std::strerror(errno));
      ::unlink(path.c_str());
    }
    return std::unique_ptr<TempFile>(new TempFile(fd));
  }
  ~TempFile() override {
    if (fd_ >= 0) ::close(fd_);
  }
  Status write(ByteSpan data) override {
    buf_.insert(buf_.end(), data.begin(), data.end());
    if (fd_ >= 0 && buf_.size() >= (1u << 20)) return flush();
    return ok();
  }
  Status flush() {
    if (fd_ < 0) return ok();
    std::size_t off = 0;
    while (off < buf_.size()) {
      ssize_t n = ::pwrite(fd_, buf_.data() + off, buf_.size() - off, static_cast<off_t>(pos_ + off));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return fail(ErrorCode::kIo, std::string("writing a temporary file: ") + std::strerror(errno));
      off += static_cast<std::size_t>(n);
    }
    pos_ += buf_.size();
    buf_.clear();
    return ok();
  }
  std::uint64_t position() const override { return pos_ + buf_.size(); }

  // Reads the file from the start.
  class In final : public Reader {
   public:
    explicit In(int fd) : fd_(fd) {}
    Result<std::size_t> read(MutableByteSpan out) override {
      while (true) {
        ssize_t n = ::pread(fd_, out.data(), out.size(), static_cast<off_t>(off_));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return fail(ErrorCode::kIo, std::string("reading a temporary file: ") + std::strerror(errno));
        off_ += static_cast<std::uint64_t>(n);
        return static_cast<std::size_t>(n);
      }
    }

   private:
    int fd_;
    std::uint64_t off_ = 0;
  };
  std::unique_ptr<Reader> reader() const {
    if (fd_ < 0) return std::make_unique<MemoryReader>(buf_);
    return std::make_unique<In>(fd_);
  }

 private:
  explicit TempFile(int fd) : fd_(fd) {}
  int fd_;
  std::uint64_t pos_ = 0;
  Bytes buf_;
};

// Hashes what passes through in chunks, and forwards it.
class ChunkHasher final : public Writer {
 public:
  ChunkHasher(Writer* next, std::uint32_t chunk_size) : next_(next), chunk_size_(chunk_size) {}
  Status write(ByteSpan data) override {
    std::size_t off = 0;
    while (off < data.size()) {
      const std::size_t k = std::min<std::size_t>(data.size() - off, chunk_size_ - in_chunk_);
      chunk_.update(data.subspan(off, k));
      in_chunk_ += k;
      off += k;
      if (in_chunk_ == chunk_size_) {
        chunks_.push_back(chunk_.finish());
        chunk_ = Hasher();
        in_chunk_ = 0;
      }
    }
    pos_ += data.size();
    return next_ ? next_->write(data) : ok();
  }
  std::uint64_t position() const override { return pos_; }
  // Completes the hashes into p.
  void finish(manifest::Payload& p) {
    if (in_chunk_) chunks_.push_back(chunk_.finish());
    p.size = pos_;
    p.chunk_size = chunk_size_;
    p.chunks = std::move(chunks_);
    p.hash = manifest::chunk_tree_hash(p.chunks);
  }

 private:
  Writer* next_;
  std::uint32_t chunk_size_;
  Hasher chunk_;
  std::uint64_t in_chunk_ = 0, pos_ = 0;
  std::vector<Digest> chunks_;
};

// Hashes what is read through it.
class HashingReader final : public Reader {
 public:
  HashingReader(Reader& in, std::function<void(std::uint64_t)> progress) : in_(in), progress_(std::move(progress)) {}
  Result<std::size_t> read(MutableByteSpan out) override {
    auto n = in_.read(out);
    if (n && *n) {
      hash_.update(ByteSpan(out.data(), *n));
      total_ += *n;
      if (progress_) progress_(total_);
    }
    return n;
  }
  Digest digest() { return hash_.finish(); }
  std::uint64_t total() const { return total_; }

 private:
  Reader& in_;
  std::function<void(std::uint64_t)> progress_;
  Hasher hash_;
  std::uint64_t total_ = 0;
};

// The chunks payload in memory: the encoded index, then each chunk's stored
// bytes, in target order.
struct StagedChunks {
  Bytes index;
  std::vector<Bytes> stored;
};

Result<StagedChunks> stage_chunks(const Bytes& image, const chunks::Params& params, int level, unsigned threads) {
  chunks::Index ix;
  ix.params = params;
  ix.target_size = image.size();
  std::vector<std::pair<std::size_t, std::size_t>> cuts;  // offset, length
  for (std::size_t at = 0; at < image.size();) {
    const std::size_t n = chunks::next_cut(ByteSpan(image).subspan(at), params);
    cuts.emplace_back(at, n);
    at += n;
  }
  if (cuts.size() > chunks::kMaxIndexEntries) return fail(ErrorCode::kLimitExceeded, "too many chunks for the index");
  ix.entries.resize(cuts.size());
  StagedChunks out;
  out.stored.resize(cuts.size());
  std::vector<Status> errors(std::max(1u, threads), ok());
  auto work = [&](unsigned w) {
    for (std::size_t i = w; i < cuts.size(); i += errors.size()) {
      const ByteSpan plain = ByteSpan(image).subspan(cuts[i].first, cuts[i].second);
      chunks::Entry& e = ix.entries[i];
      e.plain_size = static_cast<std::uint32_t>(plain.size());
      e.plain_hash = content_hash(plain);
      codec::ZstdParams zp;
      zp.level = level;
      zp.window_log = 10;
      while ((std::size_t{1} << zp.window_log) < plain.size()) ++zp.window_log;
      auto z = codec::zstd_compress(plain, zp);
      if (!z) {
        errors[w] = fail(z.error());
        return;
      }
      if (z->size() < plain.size()) {
        e.mode = chunks::Mode::kZstd;
        e.stored_size = static_cast<std::uint32_t>(z->size());
        e.stored_hash = content_hash(*z);
        out.stored[i] = std::move(*z);
      } else {
        e.mode = chunks::Mode::kRaw;
        e.stored_size = e.plain_size;
        e.stored_hash = e.plain_hash;
        out.stored[i].assign(plain.begin(), plain.end());
      }
    }
  };
  std::vector<std::thread> pool;
  for (unsigned w = 1; w < errors.size(); ++w) pool.emplace_back(work, w);
  work(0);
  for (auto& t : pool) t.join();
  for (auto& e : errors) OTA_TRY(e);
  out.index = chunks::encode_index(ix);
  return out;
}

std::string short_hex(const Digest& d) { return to_hex(ByteSpan(d.data(), 8)); }

// Payloads of images up to this size are staged in memory (a build machine
// has it; the disk round trip costs more than the compression at level 3).
constexpr std::uint64_t kMemoryStageMax = 256ull << 20;

class StagedImpl final : public Staged {
 public:
  const manifest::Manifest& manifest() const override { return m_; }
  const Bytes& manifest_bytes() const override { return bytes_; }

  Status write(Writer& out, const SignatureBlock& block,
               const std::function<void(std::uint64_t, std::uint64_t)>& progress) override {
    std::vector<std::unique_ptr<Reader>> owned;
    std::vector<Reader*> readers;
    for (std::size_t i = 0; i < m_.payloads.size(); ++i) {
      if (files_[i]) {
        owned.push_back(files_[i]->reader());
      } else {
        OTA_TRY_ASSIGN(auto f, FileReader::open(image_path_));
        owned.push_back(std::move(f));
      }
      readers.push_back(owned.back().get());
    }
    return write_bundle(out, bytes_, block, m_, readers, progress);
  }

  manifest::Manifest m_;
  Bytes bytes_;
  std::vector<std::unique_ptr<TempFile>> files_;  // null: the image itself (stored)
  std::string image_path_;
};

}  // namespace

Result<std::unique_ptr<Staged>> stage(const BuildOptions& o) {
  auto st = std::make_unique<StagedImpl>();
  manifest::Manifest& m = st->m_;
  m.name = o.name;
  m.version = o.version;
  m.security_version = o.security_version;
  m.hardware = o.hardware;
  m.created = o.created;
  m.expires = o.expires;
  st->image_path_ = o.image_path;
  const std::string dir = o.temp_dir.empty() ? "/tmp" : o.temp_dir;
  const unsigned threads = o.threads ? o.threads : std::max(1u, std::thread::hardware_concurrency());

  for (std::uint8_t log : {o.full_frame_log, o.delta_frame_log})
    if (log < delta::kMinFrameLog || log > delta::kMaxFrameLog)
      return fail(ErrorCode::kUsage, "frame size must be 2^" + std::to_string(delta::kMinFrameLog) + " to 2^" +
                                         std::to_string(delta::kMaxFrameLog) + " bytes");
  auto image = FileSource::open(o.image_path);
  if (!image) return fail(image.error().with_context("the image"));
  const std::uint64_t image_size = (*image)->size();
  auto report = [&](const std::string& stage_name, std::uint64_t d, std::uint64_t t) {
    if (o.progress) o.progress(stage_name, d, t);
  };
  // The chunk size follows from the image size (a bound on every payload
  // worth shipping), so chunks are hashed while each payload is produced.
  const std::uint32_t chunk_size = o.chunk_size ? o.chunk_size : manifest::default_chunk_size(image_size);
  auto new_stage = [&]() -> Result<std::unique_ptr<TempFile>> {
    if (image_size <= kMemoryStageMax)
      return TempFile::in_memory(static_cast<std::size_t>(image_size + image_size / 128 + (1u << 16)));
    return TempFile::create(dir);
  };

  // The full image: read once, hashed whole (the target) and, stored or
  // compressed, in chunks. Without it (deltas only), just hashed.
  if (!o.include_full) {
    if (o.base_paths.empty() && !o.reuse)
      return fail(ErrorCode::kUsage, "a bundle without the full image needs a delta (a base) or --reuse");
    auto h = content_hash(**image);
    if (!h) return fail(h.error().with_context("the image"));
    m.target_hash = *h;
    m.target_size = image_size;
  } else {
    manifest::Payload p;
    p.kind = manifest::PayloadKind::kFull;
    auto in = FileReader::open(o.image_path);
    if (!in) return fail(in.error().with_context("the image"));
    HashingReader hashing(**in, [&](std::uint64_t d) { report("compress", d, image_size); });
    std::unique_ptr<TempFile> tmp;
    if (o.compress) {
      p.name = "full.zst";
      p.compression = manifest::Compression::kZstd;
      p.window_log = static_cast<std::uint8_t>(o.window_log);
      OTA_TRY_ASSIGN(auto t, new_stage());
      tmp = std::move(t);
      ChunkHasher chunks(tmp.get(), chunk_size);
      codec::StreamParams zp;
      zp.level = o.level;
      zp.window_log = o.window_log;
      zp.workers = static_cast<int>(threads);
      zp.pledged_size = image_size;
      zp.frame_size = std::uint64_t{1} << o.full_frame_log;
      auto n = codec::zstd_compress_stream(hashing, chunks, zp);
      if (!n) return fail(n.error().with_context("compressing the image"));
      OTA_TRY(tmp->flush());
      chunks.finish(p);
      m.target_hash = hashing.digest();
    } else {
      p.name = "full.img";
      p.compression = manifest::Compression::kNone;
      p.window_log = 0;
      ChunkHasher chunks(nullptr, chunk_size);  // the image itself is the payload
      Bytes buf(1u << 20);
      while (true) {
        OTA_TRY_ASSIGN(auto n, hashing.read(buf));
        if (n == 0) break;
        OTA_TRY(chunks.write(ByteSpan(buf.data(), n)));
      }
      chunks.finish(p);
      m.target_hash = hashing.digest();
    }
    if (hashing.total() != image_size) return fail(ErrorCode::kIo, "the image changed size while it was read");
    m.target_size = image_size;
    st->files_.push_back(std::move(tmp));  // null: the image itself (stored)
    m.payloads.push_back(std::move(p));
  }

  // One delta per base.
  if (!o.base_paths.empty()) {
    OTA_TRY_ASSIGN(auto new_image, read_file(o.image_path));
    if (new_image.size() != image_size || content_hash(new_image) != m.target_hash)
      return fail(ErrorCode::kIo, "the image changed while it was read");
    for (const auto& base_path : o.base_paths) {
      auto base = read_file(base_path);
      if (!base) return fail(base.error().with_context("base image"));
      manifest::Payload p;
      p.kind = manifest::PayloadKind::kDelta;
      p.compression = manifest::Compression::kOtaDelta;
      p.base_size = base->size();
      p.base_hash = content_hash(*base);
      p.name = "delta-" + short_hex(p.base_hash) + ".otd";
      for (const auto& q : m.payloads)
        if (q.kind == manifest::PayloadKind::kDelta && q.base_hash == p.base_hash)
          return fail(ErrorCode::kUsage, "base image '" + base_path + "' is given twice (same content)");
      OTA_TRY_ASSIGN(auto tmp, new_stage());
      ChunkHasher chunks(tmp.get(), chunk_size);
      delta::DiffOptions dopt;
      dopt.level = o.delta_level;
      dopt.frame_log = o.delta_frame_log;
      dopt.layout = o.delta_layout;
      dopt.compression = o.delta_compression;
      dopt.elf_tables = o.delta_elf_tables;
      dopt.recompress = o.delta_recompress;
      dopt.threads = threads;
      dopt.progress = [&](std::uint64_t d, std::uint64_t t) { report("delta", d, t); };
      auto stats = delta::diff(*base, new_image, chunks, dopt);
      if (!stats) return fail(stats.error().with_context("delta from " + base_path));
      OTA_TRY((tmp)->flush());
      chunks.finish(p);
      // The window the patcher needs is the header's (OLD as a dictionary widens it).
      {
        auto head = (tmp)->reader();
        auto h = delta::read_header(*head);
        if (!h) return fail(h.error().with_context("reading back the delta header"));
        p.window_log = h->window_log;
      }
      st->files_.push_back(std::move(tmp));
      m.payloads.push_back(std::move(p));
    }
  }
  if (o.reuse) {
    OTA_TRY(chunks::check_params(o.reuse_params));
    OTA_TRY_ASSIGN(auto new_image, read_file(o.image_path));
    if (new_image.size() != image_size || content_hash(new_image) != m.target_hash)
      return fail(ErrorCode::kIo, "the image changed while it was read");
    OTA_TRY_ASSIGN(auto staged, stage_chunks(new_image, o.reuse_params, o.reuse_level, threads));
    manifest::Payload p;
    p.kind = manifest::PayloadKind::kChunks;
    p.compression = manifest::Compression::kOtaChunks;
    p.name = "chunks.otc";
    std::uint8_t wl = 10;
    while ((std::uint64_t{1} << wl) < o.reuse_params.max_size) ++wl;
    p.window_log = wl;
    p.index_size = staged.index.size();
    p.index_hash = content_hash(staged.index);
    OTA_TRY_ASSIGN(auto tmp, new_stage());
    ChunkHasher hashed(tmp.get(), chunk_size);
    OTA_TRY(hashed.write(staged.index));
    for (const auto& c : staged.stored) OTA_TRY(hashed.write(c.empty() ? ByteSpan{} : ByteSpan(c)));
    OTA_TRY(tmp->flush());
    hashed.finish(p);
    // First in the bundle: a device reads the index before it chooses, and
    // the stream only moves forward.
    st->files_.insert(st->files_.begin(), std::move(tmp));
    m.payloads.insert(m.payloads.begin(), std::move(p));
  }
  if (!o.sbom_path.empty()) {
    OTA_TRY_ASSIGN(auto bytes, read_file(o.sbom_path));
    auto summary = sbom::check_sbom(bytes);
    if (!summary) return fail(summary.error().with_context(o.sbom_path));
    manifest::Payload p;
    p.kind = manifest::PayloadKind::kSbom;
    p.compression = manifest::Compression::kNone;
    p.sbom_format = summary->format;
    p.name = summary->format == manifest::SbomFormat::kCycloneDx ? "sbom.cdx.json" : "sbom.spdx.json";
    auto tmp = TempFile::in_memory(bytes.size());
    ChunkHasher hashed(tmp.get(), chunk_size);
    OTA_TRY(hashed.write(bytes));
    hashed.finish(p);
    st->files_.push_back(std::move(tmp));
    m.payloads.push_back(std::move(p));
  }
  m.security = o.security;
  if (!o.recipients.empty()) {
    // Every payload once more, through the cipher: the manifest's chunk
    // hashes then name the ciphertext, plain.size/hash the plaintext.
    OTA_TRY_ASSIGN(auto key, encryption::ContentKey::generate());
    manifest::Encryption e;
    e.block_size = o.encryption_block;
    for (const auto& r : o.recipients) {
      encryption::PublicKey pk;
      pk.bytes = r;
      OTA_TRY_ASSIGN(auto sealed, encryption::seal(key, pk));
      e.recipients.push_back(sealed);
    }
    if (e.block_size < manifest::kMinEncryptionBlock || e.block_size > manifest::kMaxEncryptionBlock ||
        (e.block_size & (e.block_size - 1)))
      return fail(ErrorCode::kUsage, "the encryption block size must be a power of two from 4 KiB to 1 MiB");
    for (std::size_t i = 0; i < m.payloads.size(); ++i) {
      manifest::Payload& p = m.payloads[i];
      std::unique_ptr<Reader> in;
      if (st->files_[i]) {
        in = st->files_[i]->reader();
      } else {
        OTA_TRY_ASSIGN(auto f, FileReader::open(o.image_path));
        in = std::move(f);
      }
      OTA_TRY_ASSIGN(auto tmp, new_stage());
      ChunkHasher hashed(tmp.get(), chunk_size);
      encryption::EncryptingWriter sealer(hashed, key, i, e.block_size);
      Bytes buf(1u << 20);
      std::uint64_t done = 0;
      while (true) {
        OTA_TRY_ASSIGN(auto n, in->read(buf));
        if (n == 0) break;
        OTA_TRY(sealer.write(ByteSpan(buf.data(), n)));
        done += n;
        report("encrypt", done, p.size);
      }
      if (done != p.size) return fail(ErrorCode::kIo, "payload " + p.name + " changed size while it was encrypted");
      OTA_TRY(sealer.finish(p.plain_size, p.plain_hash));
      OTA_TRY(tmp->flush());
      hashed.finish(p);
      st->files_[i] = std::move(tmp);
    }
    m.encryption = std::move(e);
  }
  OTA_TRY(manifest::validate(m));
  st->bytes_ = manifest::encode_manifest(m);
  return std::unique_ptr<Staged>(std::move(st));
}

}  // namespace ota::bundle
