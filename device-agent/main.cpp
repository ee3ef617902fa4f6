// ota-agent: installs signed bundles into the inactive bank, confirms or
// rolls back. Thin: parses the command line and the configuration, then calls
// one function per command (command.cpp) over libota's Agent.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "command.hpp"

int main(int argc, char** argv) {
  using namespace ota::agent_cli;
  CLI::App app{"ota-agent: verified A/B installs that confirm or roll back"};
  app.require_subcommand(1);
  app.footer("Example:\n  ota-agent -c /etc/ota/agent.json status");
  app.fallthrough();  // --json, --quiet and --config also after the command
  app.set_version_flag("--version", std::string("ota-agent ") + OTA_VERSION);
  std::string config_path;
  Options opt;
  app.add_option("-c,--config", config_path, "agent.json (schemas/agent-config.schema.json)")->required();
  app.add_flag("--json", opt.json, "Print one JSON document on stdout");
  app.add_flag("-q,--quiet", opt.quiet, "No output on success");
  std::string source, reason = "requested";
  auto* install = app.add_subcommand("install", "Install a bundle (a path or file://) into the inactive bank");
  install->footer("Example:\n  ota-agent -c /etc/ota/agent.json install https://updates.example.com/fw-1.1.otb");
  install->add_option("SOURCE", source, "The bundle")->required();
  auto* status = app.add_subcommand("status", "Banks, versions, the boot slot, trial or confirmed, an install in progress");
  status->footer("Example:\n  ota-agent -c /etc/ota/agent.json status --json");
  auto* boot_check = app.add_subcommand("boot-check", "Run on every boot: health check, then commit or roll back");
  boot_check->footer("Example:\n  ota-agent -c /etc/ota/agent.json boot-check");
  auto* commit = app.add_subcommand("commit", "Confirm the running trial without a health check");
  commit->footer("Example:\n  ota-agent -c /etc/ota/agent.json commit");
  auto* rollback = app.add_subcommand("rollback", "Abandon the trial or the install in progress");
  rollback->footer("Example:\n  ota-agent -c /etc/ota/agent.json rollback --reason \"field test failed\"");
  rollback->add_option("--reason", reason, "Recorded with the result");
  auto* run = app.add_subcommand("run", "The daemon: follow the fleet's campaigns over MQTT, install, report (config: mqtt)");
  run->footer("Example:\n  ota-agent -c /etc/ota/agent.json run");
  auto* sim = app.add_subcommand("simulate-boot", "Boot once under U-Boot's bootcount rules (file environment only)");
  sim->footer("Example:\n  ota-agent -c agent.json simulate-boot");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : static_cast<int>(ota::ErrorCode::kUsage);
  }
  auto config = load_config(config_path);
  if (!config) return report_error(opt, "config", config.error());
  try {
    if (*install) return cmd_install(*config, opt, source);
    if (*status) return cmd_status(*config, opt);
    if (*boot_check) return cmd_boot_check(*config, opt);
    if (*commit) return cmd_commit(*config, opt);
    if (*rollback) return cmd_rollback(*config, opt, reason);
    if (*sim) return cmd_simulate_boot(*config, opt);
    if (*run) return cmd_run(*config, opt);
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "ota-agent: error: out of memory\n");
    return static_cast<int>(ota::ErrorCode::kOutOfMemory);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ota-agent: internal error: %s\n", e.what());
    return static_cast<int>(ota::ErrorCode::kInternal);
  }
  return static_cast<int>(ota::ErrorCode::kUsage);
}
