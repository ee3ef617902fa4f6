#include "broker.hpp"

#include <unistd.h>

#include <cstdio>

#include "ota/core/hash.hpp"
#include "ota/fleet/campaign.hpp"
#include "ota/release/keys.hpp"

namespace ota::cli {

Result<mqtt::Options> BrokerArgs::options(const std::string& default_id) const {
  mqtt::Options o;
  o.ca_file = ca;
  o.cert_file = cert;
  o.key_file = key;
  o.tls = !ca.empty() || !cert.empty();
  o.username = username;
  o.client_id = client_id.empty() ? default_id : client_id;
  if (!password_file.empty()) {
    PassphraseSource src;
    src.file = password_file;
    auto p = read_passphrase(src);
    if (!p) return fail(p.error().with_context("--password-file"));
    if (*p) o.password = **p;
  }
  return mqtt::parse_broker_urls(url, o);
}

Result<std::chrono::milliseconds> BrokerArgs::wait() const {
  auto d = campaign::parse_duration(timeout);
  if (!d) return fail(d.error().with_context("--timeout"));
  return std::chrono::milliseconds(*d * 1000);
}

std::string random_suffix() {
  auto k = keys::SecretKey::generate();
  if (!k) return std::to_string(::getpid());
  return to_hex(ByteSpan(k->public_key().bytes.data(), 6));
}

Result<std::unique_ptr<mqtt::Client>> connect_broker(const BrokerArgs& b, const std::string& id,
                                                     void (*adjust)(mqtt::Options&)) {
  OTA_TRY_ASSIGN(auto o, b.options(id));
  if (adjust) adjust(o);
  // A password to a broker without TLS (mqtt.hpp: none for loopback hosts).
  if (auto w = mqtt::insecure_password_warning(o)) std::fprintf(stderr, "ota: %s\n", w->c_str());
  OTA_TRY_ASSIGN(auto wait, b.wait());
  auto c = mqtt::connect(o);
  if (!c) return fail(c.error());
  OTA_TRY(mqtt::wait_connected(**c, wait));
  return c;
}

}  // namespace ota::cli
