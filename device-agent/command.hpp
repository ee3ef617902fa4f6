// The ota-agent commands: one function each, over the library's Agent.
#pragma once

#include <string>

#include "config.hpp"

namespace ota::agent_cli {

struct Options {
  bool json = false;
  bool quiet = false;
};

int cmd_install(const Config& c, const Options& o, const std::string& source);
int cmd_status(const Config& c, const Options& o);
int cmd_boot_check(const Config& c, const Options& o);
int cmd_commit(const Config& c, const Options& o);
int cmd_rollback(const Config& c, const Options& o, const std::string& reason);
int cmd_simulate_boot(const Config& c, const Options& o);
// The daemon: campaigns over MQTT until SIGTERM/SIGINT.
int cmd_run(const Config& c, const Options& o);

// One line on stderr (and a JSON document with --json); returns the exit code.
int report_error(const Options& o, const std::string& command, const Error& e);

}  // namespace ota::agent_cli
