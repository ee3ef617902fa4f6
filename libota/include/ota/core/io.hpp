// Byte streams: the only way libota's core touches data.
//
// Reader: sequential input. Writer: sequential output with an explicit commit.
// Source: random-access input (read_at). File, memory and fd-backed
// implementations live here; a bank device or an HTTP body is just another
// implementation, so the same delta code runs on files, banks and test fakes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "ota/core/error.hpp"

namespace ota {

using Bytes = std::vector<std::uint8_t>;
using ByteSpan = std::span<const std::uint8_t>;
using MutableByteSpan = std::span<std::uint8_t>;

// Sequential input.
class Reader {
 public:
  virtual ~Reader() = default;
  // Reads up to out.size() bytes; returns the count, 0 only at end of stream.
  virtual Result<std::size_t> read(MutableByteSpan out) = 0;
  // Moves up to n bytes forward without returning them; returns how many,
  // fewer than n only at the end of stream. The default reads and discards;
  // a file seeks, an HTTP stream starts a Range request.
  virtual Result<std::uint64_t> skip(std::uint64_t n);
  // The caller will read at most `upcoming` more bytes before it decides
  // what it needs next (0: no bound). A network stream asks for no more;
  // others ignore it. Readers that wrap another forward it.
  virtual void hint(std::uint64_t upcoming) { (void)upcoming; }
};

// Sequential output. Nothing written is final until commit() succeeds.
class Writer {
 public:
  virtual ~Writer() = default;
  // Writes all of data or fails.
  virtual Status write(ByteSpan data) = 0;
  // Makes everything written so far durable (fsync for files); a checkpoint.
  virtual Status sync() { return ok(); }
  // Marks the output complete (for files: sync and rename into place).
  virtual Status commit() { return sync(); }
  // Bytes accepted so far.
  virtual std::uint64_t position() const = 0;
};

// Random-access input of a fixed size.
class Source {
 public:
  virtual ~Source() = default;
  virtual std::uint64_t size() const = 0;
  // Fills out exactly from offset; reading past size() is an error.
  virtual Status read_at(std::uint64_t offset, MutableByteSpan out) const = 0;
  // How far a read that starts at offset may run ahead at no extra cost (a
  // reader's read-ahead stops there): the end of the source, unless reading
  // on means more work (an expanded xz image: the end of the stream).
  virtual std::uint64_t read_ahead_end(std::uint64_t offset) const {
    (void)offset;
    return size();
  }
};

// ---- memory ----

// Reads a byte span it does not own.
class MemoryReader final : public Reader {
 public:
  explicit MemoryReader(ByteSpan data) : data_(data) {}
  Result<std::size_t> read(MutableByteSpan out) override;
  Result<std::uint64_t> skip(std::uint64_t n) override;

 private:
  ByteSpan data_;
  std::size_t pos_ = 0;
};

// Appends to a vector it owns.
class VectorWriter final : public Writer {
 public:
  Status write(ByteSpan data) override;
  std::uint64_t position() const override { return data_.size(); }
  const Bytes& data() const& { return data_; }
  Bytes take() && { return std::move(data_); }

 private:
  Bytes data_;
};

// A Source over a byte span it does not own.
class MemorySource final : public Source {
 public:
  explicit MemorySource(ByteSpan data) : data_(data) {}
  std::uint64_t size() const override { return data_.size(); }
  Status read_at(std::uint64_t offset, MutableByteSpan out) const override;

 private:
  ByteSpan data_;
};

// The bytes [offset, offset + size) of another Source, which must outlive it
// (the image at the front of a bank). Reads outside the slice are kIo.
class SliceSource final : public Source {
 public:
  SliceSource(const Source& base, std::uint64_t offset, std::uint64_t size)
      : base_(base), offset_(offset), size_(size) {}
  std::uint64_t size() const override { return size_; }
  Status read_at(std::uint64_t offset, MutableByteSpan out) const override;

 private:
  const Source& base_;
  std::uint64_t offset_, size_;
};

// ---- files ----

// A Source over a regular file or block device, read with pread (no mmap, so
// the resident memory of a patcher stays bounded).
class FileSource final : public Source {
 public:
  static Result<std::unique_ptr<FileSource>> open(const std::string& path);
  ~FileSource() override;
  FileSource(const FileSource&) = delete;
  FileSource& operator=(const FileSource&) = delete;
  std::uint64_t size() const override { return size_; }
  Status read_at(std::uint64_t offset, MutableByteSpan out) const override;

 private:
  FileSource(int fd, std::uint64_t size, std::string path)
      : fd_(fd), size_(size), path_(std::move(path)) {}
  int fd_;
  std::uint64_t size_;
  std::string path_;
};

// Sequential reader over a file; "-" is standard input.
class FileReader final : public Reader {
 public:
  static Result<std::unique_ptr<FileReader>> open(const std::string& path);
  ~FileReader() override;
  FileReader(const FileReader&) = delete;
  FileReader& operator=(const FileReader&) = delete;
  Result<std::size_t> read(MutableByteSpan out) override;
  Result<std::uint64_t> skip(std::uint64_t n) override;  // lseek; reads over a pipe

 private:
  FileReader(int fd, bool owned, std::string path) : fd_(fd), owned_(owned), path_(std::move(path)) {}
  int fd_;
  bool owned_;
  std::string path_;
};

// Writes a file atomically: data goes to a temporary file beside the target,
// and commit() fsyncs it, renames it over the target and fsyncs the directory.
// Destroyed without commit(), the temporary file is removed: the target is
// never left half-written under its final name.
class AtomicFileWriter final : public Writer {
 public:
  // mode: permission bits of the final file (e.g. 0600 for secrets).
  static Result<std::unique_ptr<AtomicFileWriter>> create(const std::string& path,
                                                          unsigned mode = 0644);
  ~AtomicFileWriter() override;
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;
  Status write(ByteSpan data) override;
  Status sync() override;
  Status commit() override;
  std::uint64_t position() const override { return pos_; }

 private:
  AtomicFileWriter(int fd, std::string path, std::string tmp)
      : fd_(fd), path_(std::move(path)), tmp_(std::move(tmp)) {}
  Status flush_buffer();
  void start_writeback();
  int fd_;
  std::string path_;
  std::string tmp_;
  std::uint64_t pos_ = 0;
  std::uint64_t writeback_ = 0;  // bytes handed to write-back so far
  bool committed_ = false;
  Bytes buf_;
};

// Reads a whole file into memory (for the generator, which needs it all).
Result<Bytes> read_file(const std::string& path);

// Writes a whole buffer to path atomically.
Status write_file_atomic(const std::string& path, ByteSpan data, unsigned mode = 0644);

// ---- copy accounting ----
// The install data path counts the bytes it copies in user space from one
// buffer to another (reads from the kernel, decompression and hashing are
// not copies), so tests and the agent benchmark measure copies per payload
// byte. One process-wide relaxed counter; a module that links the core
// statically (the HTTP fetcher) counts in its own statistics instead.
void count_copy(std::size_t n);
std::uint64_t bytes_copied();

// Copies a Reader to a Writer until end of stream; returns the byte count.
Result<std::uint64_t> copy(Reader& in, Writer& out);

}  // namespace ota
