// ota-agent's configuration file (schemas/agent-config.schema.json).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "ota/core/error.hpp"

namespace ota::agent_cli {

struct Config {
  std::string device_id;
  std::string hardware_id;
  std::string bank_a, bank_b;
  std::string boot_backend;  // "uboot", "grub" or "file" (the simulator's environment)
  std::string boot_config;   // uboot: fw_env.config; grub: grubenv; file: the JSON environment
  // Boot evidence (which slot runs): the kernel command line holding
  // ota.slot=a|b. Default /proc/cmdline for uboot and grub; empty for file,
  // where the simulator's record in the environment is the evidence.
  std::string boot_cmdline;
  std::string trust_root;
  std::string state_dir;
  std::vector<std::string> health_command;  // empty: no health check
  int health_timeout_s = 60;
  // health_signals.counter_command: prints a number (crashes, a service's
  // restarts); regression campaigns report its increases. Empty: none.
  std::vector<std::string> counter_command;
  int counter_timeout_s = 30;
  std::vector<std::string> reboot_command;  // empty: no reboot (tests, demos)
  // After the reboot command succeeded, how long `run` waits to be stopped
  // before it calls the reboot failed (exit 44, the trial stays pending).
  int reboot_wait_s = 120;
  // Encrypted bundles: this device's X25519 key, from a file (0600) or
  // printed by a command (a TPM or secure element); at most one of the two.
  struct Decryption {
    std::string key_file;
    std::vector<std::string> command;
    int timeout_s = 30;
  } decryption;
  // HTTP(S) downloads (ota/device/fetch.hpp)
  std::string ca_file;     // empty: the system's CA store
  int retries = 8;         // attempts in a row without progress
  int stall_timeout_s = 30;
  // The download spool in the state directory (ota/device/spool.hpp): what
  // an interrupted http(s) install fetched, kept for the next attempt; 0: none.
  int spool_mib = 64;
  // Campaigns over MQTT (`ota-agent run`); broker empty: not configured.
  struct Mqtt {
    std::string broker;         // mqtt[s]://HOST[:PORT], or the nodes of one cluster joined by commas
    std::string fleet;
    std::string client_id;      // default: device_id
    std::string username;
    std::string password_file;  // first line is the password
    std::string ca_file, cert_file, key_file;
    int keepalive_s = 30;
    int failover_after_s = 10;  // with several brokers: the next one after this long without a connection
    int retry_delay_s = 10;     // after a failed download
    // The device's own secret key (`ota device provision`, 0600): signs
    // every report. Required by signed campaigns; empty: bare reports.
    std::string device_key;
  } mqtt;
  // The device's side of campaign rollout policies (ota/fleet/policy.hpp).
  struct Rollout {
    std::string timezone = "UTC";  // what a policy's "local" means: "UTC" or an IANA name
    int recheck_s = 60;            // a deferred campaign is looked at again at least this often
    // "security_updates": "anytime": a campaign marked as a security update
    // (its signed manifest's advisory) is not held by install windows.
    bool security_updates_anytime = false;
    // Condition name -> command: exit 0 when an install may go on, anything
    // else (or a timeout) when it must wait ("metered", "battery", "busy", ...).
    struct Condition {
      std::vector<std::string> command;
      int timeout_s = 30;
    };
    std::map<std::string, Condition> conditions;
  } rollout;
};

Result<Config> load_config(const std::string& path);

// Runs argv (no shell) and waits at most timeout_s seconds (0: no limit);
// ok on exit status 0, else an error naming the status, signal or timeout.
Status run_command(const std::vector<std::string>& argv, int timeout_s);
// Runs argv and reads the unsigned integer its standard output starts with
// (leading blanks skipped); fails on a non-zero exit, a timeout or no number.
Result<std::uint64_t> run_counter(const std::vector<std::string>& argv, int timeout_s);
// Runs argv (no shell) and returns what it printed on stdout (at most
// max_bytes); fails unless it exits 0 within timeout_s. The caller wipes the
// text when it is secret.
Result<std::string> run_capture(const std::vector<std::string>& argv, int timeout_s, std::size_t max_bytes);

}  // namespace ota::agent_cli
