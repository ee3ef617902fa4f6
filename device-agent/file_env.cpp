#include "file_env.hpp"

#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "ota/core/io.hpp"

namespace ota::agent_cli {

namespace {

class FileEnvironment final : public boot::Environment {
 public:
  explicit FileEnvironment(std::string path) : path_(std::move(path)) {}
  Result<boot::Vars> read() override {
    struct stat st {};
    if (::stat(path_.c_str(), &st) != 0) return boot::Vars{};
    OTA_TRY_ASSIGN(auto bytes, read_file(path_));
    auto j = nlohmann::json::parse(bytes.begin(), bytes.end(), nullptr, false);
    if (j.is_discarded() || !j.is_object()) return fail(ErrorCode::kMalformed, path_ + ": not a JSON object");
    boot::Vars v;
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (!it.value().is_string()) return fail(ErrorCode::kMalformed, path_ + ": values must be strings");
      v[it.key()] = it.value().get<std::string>();
    }
    return v;
  }
  Status write(const std::map<std::string, std::optional<std::string>>& changes) override {
    OTA_TRY_ASSIGN(auto v, read());
    for (const auto& [k, val] : changes) {
      if (val) (v)[k] = *val;
      else v.erase(k);
    }
    nlohmann::json j(v);
    std::string text = j.dump(2) + "\n";
    return write_file_atomic(path_, ByteSpan(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
  }

 private:
  std::string path_;
};

}  // namespace

Result<std::unique_ptr<boot::Environment>> open_file_env(const std::string& path) {
  return std::unique_ptr<boot::Environment>(new FileEnvironment(path));
}

}  // namespace ota::agent_cli
