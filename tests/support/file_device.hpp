// A device on real files, for tests that install through the whole agent:
// two 512 KiB file banks (bank a, read-only, holds the running image), a
// state directory, a boot environment in memory that says slot a runs, and
// a trust store from a root.
#pragma once

#include <algorithm>
#include <memory>
#include <string>

#include "ota/device/agent.hpp"
#include "ota/device/storage.hpp"
#include "ota/release/trust.hpp"
#include "ota/testing/memory_environment.hpp"
#include "support/signing.hpp"
#include "support/temp_dir.hpp"

namespace ota::test {

struct FileDevice {
  static constexpr std::size_t kBankSize = 512 * 1024;

  FileDevice(TempDir& dir, const Bytes& a_image, const trust::Envelope& root, std::string hardware = "board")
      : trust(store_from(root)), hardware_id(std::move(hardware)) {
    Bytes a(kBankSize, 0), b(kBankSize, 0);
    std::copy(a_image.begin(), a_image.end(), a.begin());
    write_bytes(dir.file("bank_a"), a);
    write_bytes(dir.file("bank_b"), b);
    bank_a = std::move(*storage::open_file_bank(dir.file("bank_a"), storage::Access::kReadOnly));
    bank_b = std::move(*storage::open_file_bank(dir.file("bank_b")));
    state = std::move(*storage::open_state_dir(dir.file("state")));
    env.vars = {{"ota_slot", "a"}};
  }

  // The agent's view of this device at `now`.
  agent::Device device(trust::Time now) {
    agent::Device d;
    d.banks[0] = bank_a.get();
    d.banks[1] = bank_b.get();
    d.state = state.get();
    d.env = &env;
    d.trust = &trust;
    d.hardware_id = hardware_id;
    d.now = [now] { return now; };
    return d;
  }
  agent::Agent agent(trust::Time now) { return agent::Agent(device(now)); }

  // The first n bytes of bank b (the inactive bank).
  Bytes bank_b_prefix(std::size_t n) const {
    Bytes out(n);
    EXPECT_TRUE(bank_b->read_at(0, out));
    return out;
  }

  std::unique_ptr<storage::BlockStore> bank_a, bank_b;
  std::unique_ptr<storage::StateStore> state;
  boot::MemoryEnvironment env;
  trust::TrustStore trust;
  std::string hardware_id;
};

}  // namespace ota::test
