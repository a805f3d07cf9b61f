// Serverset JSON encode/decode on nlohmann::json (exceptions kept inside).
#include "webtier/common/serverset.h"

#include <nlohmann/json.hpp>

namespace webtier::serverset {

using nlohmann::json;

std::string Member::Address() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

std::string Encode(const Member& m) {
  json endpoint = {{"host", m.host}, {"port", m.port}};
  json j = {
      {"serviceEndpoint", endpoint},
      {"additionalEndpoints", {{"http", endpoint}}},
      {"status", "ALIVE"},
      {"shard", m.shard},
      {"id", m.id},
      {"zone", m.zone},
      {"weight", m.weight},
      {"version", m.version},
  };
  if (m.admin_port != 0) j["additionalEndpoints"]["admin"] = {{"host", m.host}, {"port", m.admin_port}};
  return j.dump();
}

namespace {

Status Invalid(std::string why) { return Status(ErrorCode::kInvalidArgument, "invalid serverset member: " + why); }

}  // namespace

Status Decode(std::string_view text, Member* out) {
  json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Invalid("not JSON");
  if (!j.is_object()) return Invalid("not a JSON object");
  auto ep = j.find("serviceEndpoint");
  if (ep == j.end() || !ep->is_object()) return Invalid("missing serviceEndpoint");
  auto host = ep->find("host");
  if (host == ep->end() || !host->is_string() || host->get_ref<const std::string&>().empty())
    return Invalid("missing serviceEndpoint.host");
  auto port = ep->find("port");
  if (port == ep->end() || !port->is_number_integer()) return Invalid("missing serviceEndpoint.port");
  int64_t p = port->get<int64_t>();
  if (p < 1 || p > 65535) return Invalid("port out of range: " + std::to_string(p));
  auto status = j.find("status");
  if (status == j.end() || !status->is_string() || status->get_ref<const std::string&>() != "ALIVE")
    return Invalid("status is not ALIVE");

  Member m;
  m.host = host->get<std::string>();
  m.port = static_cast<uint16_t>(p);
  if (auto w = j.find("weight"); w != j.end() && !w->is_null()) {
    if (!w->is_number_integer()) return Invalid("weight is not an integer");
    int64_t wv = w->get<int64_t>();
    if (wv < 1 || wv > 65535) return Invalid("weight out of range: " + std::to_string(wv));
    m.weight = static_cast<uint32_t>(wv);
  }
  auto str = [&](const char* key, std::string* dst) {
    if (auto it = j.find(key); it != j.end() && it->is_string()) *dst = it->get<std::string>();
  };
  str("id", &m.id);
  str("zone", &m.zone);
  str("version", &m.version);
  if (auto s = j.find("shard"); s != j.end() && s->is_number_integer()) {
    int64_t sv = s->get<int64_t>();
    if (sv >= INT32_MIN && sv <= INT32_MAX) m.shard = static_cast<int>(sv);
  }
  // An admin endpoint that does not parse is ignored, not the member.
  if (auto extra = j.find("additionalEndpoints"); extra != j.end() && extra->is_object()) {
    if (auto admin = extra->find("admin"); admin != extra->end() && admin->is_object()) {
      if (auto ap = admin->find("port"); ap != admin->end() && ap->is_number_integer()) {
        int64_t v = ap->get<int64_t>();
        if (v >= 1 && v <= 65535) m.admin_port = static_cast<uint16_t>(v);
      }
    }
  }
  if (m.id.empty()) m.id = m.Address();
  *out = std::move(m);
  return Status::Ok();
}

}  // namespace webtier::serverset
