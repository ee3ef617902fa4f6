// ota::mqtt::Client's non-pure members: built into libota and into the
// libmosquitto module (net/mqtt.cpp), which both derive from Client.
#include "ota/fleet/mqtt.hpp"

namespace ota::mqtt {

// ---- Client defaults -------------------------------------------------------

void Client::requeue(std::vector<Event> events) {
  std::lock_guard lock(requeued_mutex_);
  requeued_.insert(requeued_.begin(), std::make_move_iterator(events.begin()),
                   std::make_move_iterator(events.end()));
}

bool Client::subscribed(const std::string& /*filter*/) const { return false; }

Drops Client::dropped() const { return {}; }

std::optional<Event> Client::take_requeued() {
  std::lock_guard lock(requeued_mutex_);
  if (requeued_.empty()) return std::nullopt;
  Event e = std::move(requeued_.front());
  requeued_.pop_front();
  return e;
}

}  // namespace ota::mqtt
