// The agent's persistent state: one JSON record in the state store.
#include "core/json.hpp"
#include "ota/device/agent.hpp"

namespace ota::agent {

namespace {
constexpr std::string_view kFormat = "ota-agent-state-v1";
constexpr std::size_t kMaxState = 64 * 1024;

json::Ordered bank_json(const std::optional<BankInfo>& b) {
  if (!b) return nullptr;
  return {{"version", b->version}, {"size", b->size}, {"hash", to_hex(b->hash)}};
}

Result<std::optional<BankInfo>> parse_bank(const json::Json& j, const std::string& what) {
  if (j.is_null()) return std::optional<BankInfo>{};
  OTA_TRY_ASSIGN(auto o, json::Object::of(j, what));
  OTA_TRY(o.only({"version", "size", "hash"}));
  BankInfo b;
  auto v = o.string("version", 128);
  auto size = o.u64("size");
  auto hash = o.digest("hash");
  if (!v) return fail(v.error());
  if (!size) return fail(size.error());
  if (!hash) return fail(hash.error());
  b.version = *v;
  b.size = *size;
  b.hash = *hash;
  return std::optional<BankInfo>(b);
}
}  // namespace

Bytes encode_state(const State& s) {
  json::Ordered doc;
  doc["format"] = kFormat;
  doc["security_floor"] = s.security_floor;
  doc["banks"] = {{"a", bank_json(s.banks[0])}, {"b", bank_json(s.banks[1])}};
  const auto& in = s.install;
  json::Ordered ij;
  ij["stage"] = std::string(stage_name(in.stage));
  if (in.stage != Stage::kNone) {
    ij["manifest_hash"] = to_hex(in.manifest_hash);
    ij["target"] = boot::slot_name(in.target);
    ij["payload"] = in.payload;
    ij["version"] = in.version;
    ij["security_version"] = in.security_version;
    ij["target_size"] = in.target_size;
    ij["target_hash"] = to_hex(in.target_hash);
    ij["resume"] = in.resume ? json::Ordered{{"frame", in.resume->frame},
                                             {"patch_offset", in.resume->patch_offset},
                                             {"new_offset", in.resume->new_offset}}
                             : json::Ordered(nullptr);
  }
  doc["install"] = std::move(ij);
  doc["last_result"] = s.last_result;
  doc["outcome"] = s.outcome == Outcome::kInstalled ? "installed" : s.outcome == Outcome::kRolledBack ? "rolled-back" : "none";
  std::string text = doc.dump(2) + "\n";
  return Bytes(text.begin(), text.end());
}

Result<State> parse_state(ByteSpan bytes) {
  OTA_TRY_ASSIGN(auto j,
                 json::parse_strict(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), kMaxState, "agent state"));
  OTA_TRY_ASSIGN(auto o, json::Object::of(j, "agent state"));
  OTA_TRY(o.only({"format", "security_floor", "banks", "install", "last_result", "outcome"}));
  OTA_TRY_ASSIGN(auto format, o.string("format", 32));
  if (format != kFormat) return fail(ErrorCode::kMalformed, "agent state: format is not " + std::string(kFormat));
  State s;
  OTA_TRY_ASSIGN(auto floor, o.u64("security_floor"));
  s.security_floor = floor;
  OTA_TRY_ASSIGN(auto banks, o.object("banks"));
  OTA_TRY_ASSIGN(auto bo, json::Object::of(*banks, "agent state.banks"));
  OTA_TRY(bo.only({"a", "b"}));
  for (int i = 0; i < 2; ++i) {
    const char* name = i == 0 ? "a" : "b";
    if (!(banks)->contains(name)) continue;
    OTA_TRY_ASSIGN(auto b, parse_bank((*banks)[name], std::string("agent state.banks.") + name));
    s.banks[i] = b;
  }
  OTA_TRY_ASSIGN(auto last, o.string("last_result", 1024));
  s.last_result = last;
  // Absent in records written before the outcome was kept: taken from the text.
  if (o.has("outcome")) {
    OTA_TRY_ASSIGN(auto oc, o.string("outcome", 16));
    if (oc == "installed") s.outcome = Outcome::kInstalled;
    else if (oc == "rolled-back") s.outcome = Outcome::kRolledBack;
    else if (oc != "none") return fail(ErrorCode::kMalformed, "agent state: unknown outcome");
  } else if (s.last_result.rfind("installed ", 0) == 0) {
    s.outcome = Outcome::kInstalled;
  } else if (s.last_result.rfind("rolled-back ", 0) == 0) {
    s.outcome = Outcome::kRolledBack;
  }
  OTA_TRY_ASSIGN(auto ij, o.object("install"));
  OTA_TRY_ASSIGN(auto io, json::Object::of(*ij, "agent state.install"));
  OTA_TRY(io.only({"stage", "manifest_hash", "target", "payload", "version", "security_version", "target_size",
                    "target_hash", "resume"}));
  OTA_TRY_ASSIGN(auto stage, io.string("stage", 16));
  auto& in = s.install;
  if (stage == "none") return s;
  if (stage == "writing") in.stage = Stage::kWriting;
  else if (stage == "written") in.stage = Stage::kWritten;
  else if (stage == "trial") in.stage = Stage::kTrial;
  else return fail(ErrorCode::kMalformed, "agent state: unknown install stage");
  auto mh = io.digest("manifest_hash");
  auto target = io.string("target", 1);
  auto payload = io.string("payload", 64);
  auto version = io.string("version", 128);
  auto sv = io.u64("security_version");
  auto ts = io.u64("target_size");
  auto th = io.digest("target_hash");
  if (!mh) return fail(mh.error());
  if (!target) return fail(target.error());
  if (!payload) return fail(payload.error());
  if (!version) return fail(version.error());
  if (!sv) return fail(sv.error());
  if (!ts) return fail(ts.error());
  if (!th) return fail(th.error());
  if (*target != "a" && *target != "b") return fail(ErrorCode::kMalformed, "agent state: target slot is not a or b");
  in.manifest_hash = *mh;
  in.target = *target == "a" ? boot::Slot::kA : boot::Slot::kB;
  in.payload = *payload;
  in.version = *version;
  in.security_version = *sv;
  in.target_size = *ts;
  in.target_hash = *th;
  auto rj = io.object("resume");
  if (rj) {
    OTA_TRY_ASSIGN(auto ro, json::Object::of(**rj, "agent state.install.resume"));
    OTA_TRY_ASSIGN(auto f, ro.u64("frame"));
    OTA_TRY_ASSIGN(auto po, ro.u64("patch_offset"));
    OTA_TRY_ASSIGN(auto no, ro.u64("new_offset"));
    in.resume = delta::ResumePoint{f, po, no};
  }
  return s;
}

}  // namespace ota::agent
