// Internal: libsodium initialisation (idempotent, thread-safe).
#pragma once

namespace ota {
void ensure_sodium();
}
