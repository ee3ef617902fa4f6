// Topic names, campaign and device names, run-state names.
#include "ota/fleet/campaign.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace ota::campaign {

// ---- Topics and names ----

std::string campaign_topic(std::string_view fleet, std::string_view id) {
  return "ota/" + std::string(fleet) + "/campaigns/" + std::string(id);
}
std::string commands_topic(std::string_view fleet, std::string_view id) {
  return campaign_topic(fleet, id) + "/commands";
}
std::string status_topic(std::string_view fleet, std::string_view id) { return campaign_topic(fleet, id) + "/status"; }
std::string state_topic(std::string_view fleet, std::string_view device) {
  return "ota/" + std::string(fleet) + "/devices/" + std::string(device) + "/state";
}
std::string events_topic(std::string_view fleet, std::string_view device) {
  return "ota/" + std::string(fleet) + "/devices/" + std::string(device) + "/events";
}
std::string availability_topic(std::string_view fleet, std::string_view device) {
  return "ota/" + std::string(fleet) + "/devices/" + std::string(device) + "/availability";
}

std::string sync_topic(std::string_view fleet, std::string_view id) { return campaign_topic(fleet, id) + "/sync"; }
std::string sync_filter(std::string_view fleet) { return "ota/" + std::string(fleet) + "/campaigns/+/sync"; }
std::string device_campaign_topic(std::string_view fleet, std::string_view device, std::string_view id) {
  return "ota/" + std::string(fleet) + "/devices/" + std::string(device) + "/campaigns/" + std::string(id);
}
std::string device_campaigns_filter(std::string_view fleet, std::string_view device) {
  return "ota/" + std::string(fleet) + "/devices/" + std::string(device) + "/campaigns/+";
}

bool is_valid_name(std::string_view s) {
  if (s.empty() || s.size() > 64 || s == "." || s == "..") return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
  });
}

std::string_view run_state_name(RunState s) {
  switch (s) {
    case RunState::kRunning: return "running";
    case RunState::kPaused: return "paused";
    case RunState::kAborted: return "aborted";
    case RunState::kCompleted: return "completed";
  }
  return "running";
}

}  // namespace ota::campaign
