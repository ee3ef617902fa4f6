// ota device provision: a device's own key and its entry in the fleet
// registry (ota/fleet/identity.hpp, docs/security.md "Device identity").
#include <unistd.h>

#include <cstdio>
#include <memory>

#include "cli.hpp"
#include "ota/core/hash.hpp"
#include "ota/core/io.hpp"
#include "ota/fleet/campaign.hpp"
#include "ota/fleet/identity.hpp"
#include "ota/release/keys.hpp"

namespace ota::cli {

namespace {

using OJson = nlohmann::ordered_json;
namespace cp = ota::campaign;

struct ProvisionArgs {
  std::string id, fleet, registry, out;
  bool replace = false;
};

Status run_provision(const ProvisionArgs& a, OJson& doc) {
  if (!cp::is_valid_name(a.id)) return fail(ErrorCode::kUsage, "ID is a name: [A-Za-z0-9._-]{1,64}");
  cp::Registry reg;
  if (::access(a.registry.c_str(), F_OK) == 0) {
    OTA_TRY_ASSIGN(auto bytes, read_file(a.registry));
    auto parsed = cp::parse_registry(bytes);
    if (!parsed) return fail(parsed.error().with_context(a.registry));
    reg = std::move(*parsed);
    if (!a.fleet.empty() && a.fleet != reg.fleet)
      return fail(ErrorCode::kUsage, a.registry + " is the registry of fleet " + reg.fleet + ", not " + a.fleet);
  } else {
    if (!cp::is_valid_name(a.fleet)) return fail(ErrorCode::kUsage, "--fleet: a new registry needs its fleet name");
    reg.fleet = a.fleet;
  }
  OTA_TRY_ASSIGN(auto key, keys::SecretKey::generate());
  OTA_TRY(cp::register_device(reg, a.id, key.public_key(), a.replace));
  const std::string base = a.out.empty() ? a.id : a.out;
  // The device key first (0600, never printed): a registry naming a key
  // nobody holds would be worse than no entry.
  OTA_TRY(keys::write_key_pair(base, key, std::nullopt));
  OTA_TRY_ASSIGN(auto w, AtomicFileWriter::create(a.registry, 0644));
  OTA_TRY(w->write(cp::encode_registry(reg)));
  OTA_TRY(w->commit());
  doc["ok"] = true;
  doc["command"] = "device provision";
  doc["device"] = a.id;
  doc["fleet"] = reg.fleet;
  doc["key_id"] = key.public_key().id_hex();
  doc["secret_key"] = base + ".key";
  doc["public_key"] = base + ".pub";
  doc["registry"] = a.registry;
  doc["devices"] = reg.devices.size();
  return ok();
}

}  // namespace

void add_device_command(CLI::App& app, Context& ctx, int& exit_code) {
  auto* dev = app.add_subcommand("device", "Device identity: provision a device key into the fleet registry");
  dev->require_subcommand(1);
  dev->footer("Example:\n  ota device provision meter-17 --fleet meters --registry registry.json -o keys/meter-17");
  auto a = std::make_shared<ProvisionArgs>();
  auto* prov = dev->add_subcommand("provision", "Make a device's key (OUT.key 0600, OUT.pub) and add it to the fleet registry");
  prov->footer(
      "The registry is what `ota publish --registry` pins (by hash) in the release-signed campaign: only\n"
      "reports signed by a registered device key count. Install OUT.key on the device (agent config\n"
      "mqtt.device_key) and keep the registry with the release engineers.\n"
      "Example:\n  ota device provision meter-17 --fleet meters --registry registry.json -o keys/meter-17");
  prov->add_option("ID", a->id, "Device id")->required();
  prov->add_option("--registry", a->registry, "The fleet registry (created when missing)")->required();
  prov->add_option("--fleet", a->fleet, "Fleet name (required for a new registry)");
  prov->add_option("-o,--out", a->out, "Write OUT.key and OUT.pub (default: ID)");
  prov->add_flag("--replace", a->replace, "Give an already registered device a new key");
  prov->add_flag("-q,--quiet", ctx.quiet, "No output on success");
  prov->add_flag("--json", ctx.json, "Print the result as JSON");
  prov->callback([&ctx, &exit_code, a] {
    OJson doc;
    auto st = run_provision(*a, doc);
    if (!st) {
      exit_code = report(ctx, "device provision", st.error());
      return;
    }
    if (ctx.json) print_json(doc);
    else if (!ctx.quiet)
      std::printf("device %s: key %s registered in %s (%zu devices)\n", a->id.c_str(),
                  doc["key_id"].get<std::string>().c_str(), a->registry.c_str(), doc["devices"].get<std::size_t>());
    exit_code = 0;
  });
}

}  // namespace ota::cli
