// The power-loss simulator: a write counter that cuts power, and in-memory
// stores whose unsynced writes may be lost at the cut.
#include <algorithm>
#include <cstring>

#include "ota/testing/power_cut.hpp"
#include "device/storage/checks.hpp"

namespace ota::storage {

namespace {

constexpr std::uint64_t kSector = 512;

// Copies the part of a write [offset, offset+data.size()) that falls inside
// [window, window+out.size()) into out.
void overlay(std::uint64_t offset, ByteSpan data, std::uint64_t window, MutableByteSpan out) {
  std::uint64_t begin = std::max(offset, window);
  std::uint64_t end = std::min(offset + data.size(), window + out.size());
  if (begin >= end) return;
  std::memcpy(out.data() + (begin - window), data.data() + (begin - offset), static_cast<std::size_t>(end - begin));
}

void apply(Bytes& image, std::uint64_t offset, ByteSpan data) {
  if (!data.empty()) std::memcpy(image.data() + offset, data.data(), data.size());
}

}  // namespace

// ---- PowerCut ----

Status PowerCut::on_write() {
  ++writes_;
  if (cut_at_ != 0 && writes_ >= cut_at_) cut_ = true;
  if (cut_) return fail(ErrorCode::kIo, "power cut at write " + std::to_string(cut_at_));
  return ok();
}

// ---- SimulatedBank ----

Status SimulatedBank::read_at(std::uint64_t offset, MutableByteSpan out) const {
  OTA_TRY(detail::check_read(durable_.size(), offset, out.size(), "a simulated bank"));
  if (out.empty()) return ok();
  std::memcpy(out.data(), durable_.data() + offset, out.size());
  for (const Pending& p : pending_) overlay(p.offset, p.data, offset, out);
  return ok();
}

Status SimulatedBank::write_at(std::uint64_t offset, ByteSpan data) {
  OTA_TRY(detail::check_write(durable_.size(), offset, data.size(), "a simulated bank"));
  OTA_TRY(power_.on_write());
  pending_.push_back(Pending{offset, Bytes(data.begin(), data.end())});
  return ok();
}

Status SimulatedBank::sync() {
  if (power_.cut()) return fail(ErrorCode::kIo, "power cut: sync failed");
  for (const Pending& p : pending_) apply(durable_, p.offset, p.data);
  pending_.clear();
  return ok();
}

Bytes SimulatedBank::survivors() {
  Bytes image = durable_;
  if (pending_.empty()) return image;
  switch (power_.mode()) {
    case LossMode::kDropUnsynced:
      break;
    case LossMode::kRandomSubset:
      for (const Pending& p : pending_)
        if (power_.rng()() >> 63) apply(image, p.offset, p.data);
      break;
    case LossMode::kTornSector: {
      for (std::size_t i = 0; i + 1 < pending_.size(); ++i) apply(image, pending_[i].offset, pending_[i].data);
      const Pending& last = pending_.back();
      std::uint64_t end = last.offset + last.data.size();
      std::uint64_t first = (last.offset / kSector + 1) * kSector;  // the first boundary after the start
      if (first < end) {
        std::uint64_t boundaries = (end - 1 - first) / kSector + 1;
        std::uint64_t cut = first + (power_.rng()() % boundaries) * kSector;
        apply(image, last.offset, ByteSpan(last.data).first(static_cast<std::size_t>(cut - last.offset)));
      }
      break;
    }
  }
  return image;
}

// ---- SimulatedStateStore ----

Result<std::optional<Bytes>> SimulatedStateStore::get(const std::string& name) const {
  OTA_TRY(detail::check_record_name(name));
  auto it = records_.find(name);
  if (it == records_.end()) return std::optional<Bytes>();
  return std::optional<Bytes>(it->second);
}

Status SimulatedStateStore::replace(const std::string& name, ByteSpan data) {
  OTA_TRY(detail::check_record_name(name));
  OTA_TRY(power_.on_write());
  records_[name] = Bytes(data.begin(), data.end());
  return ok();
}

Status SimulatedStateStore::remove(const std::string& name) {
  OTA_TRY(detail::check_record_name(name));
  OTA_TRY(power_.on_write());
  records_.erase(name);
  return ok();
}

}  // namespace ota::storage
