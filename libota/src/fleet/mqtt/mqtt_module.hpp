// Internal: the boundary between libota (mqtt_client.cpp) and the
// libmosquitto module (mqtt.cpp, libota-mqtt.so). Both are built from this
// tree by the same compiler, so C++ types cross it; the client is deleted
// through its virtual destructor, which lives in the module.
#pragma once

#include "ota/fleet/mqtt.hpp"

namespace ota::mqtt {

struct ModuleArgs {
  const Options* options;
  Client** out;  // set on success (0)
  Error* error;  // set on failure (non-zero)
};
using ConnectFn = int (*)(const ModuleArgs*);
inline constexpr char kModuleEntry[] = "ota_mqtt_connect_v1";

}  // namespace ota::mqtt
