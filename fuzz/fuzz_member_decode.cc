// Fuzzes the decoding of what ZooKeeper (or the disk) hands the balancer:
// serverset member JSON and the state file, the member address policy
// (--member-allow ranges, and a member host checked against them), and the
// handover text from the balancer process it replaces. None may
// crash or throw; whatever decodes must survive an encode/decode round trip.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "webtier/balancer/control/handover.h"
#include "webtier/balancer/membership/address_policy.h"
#include "webtier/balancer/membership/state_file.h"
#include "webtier/common/serverset.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  webtier::serverset::Member m;
  if (webtier::serverset::Decode(text, &m).ok()) {
    webtier::serverset::Member again;
    if (!webtier::serverset::Decode(webtier::serverset::Encode(m), &again).ok() || !(again == m)) std::abort();
  }
  namespace control = webtier::balancer::control;
  control::Handover handover;
  if (control::DecodeHandover(text, &handover).ok()) {
    control::Handover again;
    if (!control::DecodeHandover(control::EncodeHandover(handover), &again).ok() || again.pid != handover.pid ||
        again.ticket_keys != handover.ticket_keys || again.listeners.size() != handover.listeners.size() ||
        again.members.size() != handover.members.size())
      std::abort();
    for (size_t i = 0; i < again.listeners.size(); ++i)
      if (again.listeners[i].role != handover.listeners[i].role ||
          again.listeners[i].address != handover.listeners[i].address)
        std::abort();
    for (size_t i = 0; i < again.members.size(); ++i)
      if (again.members[i].key != handover.members[i].key ||
          again.members[i].ejected_ms != handover.members[i].ejected_ms ||
          again.members[i].ejections != handover.members[i].ejections)
        std::abort();
  }
  std::vector<webtier::balancer::MemberRecord> records;
  int invalid = 0;
  if (webtier::balancer::ParseState(text, &records, &invalid).ok()) {
    std::vector<webtier::balancer::MemberRecord> again;
    if (!webtier::balancer::ParseState(webtier::balancer::FormatState(records), &again, nullptr).ok() ||
        again != records)
      std::abort();
  }
  // The input as an allow list: what parses prints back to a list that parses
  // to the same ranges; the member host (when it is an address) and the input
  // itself go through the match.
  webtier::balancer::AddressPolicy policy;
  if (webtier::balancer::AddressPolicy::Parse(text, &policy).ok()) {
    webtier::balancer::AddressPolicy again;
    if (!webtier::balancer::AddressPolicy::Parse(policy.ToString(), &again).ok() ||
        again.ToString() != policy.ToString())
      std::abort();
  }
  webtier::balancer::IpAddress ip;
  if (webtier::balancer::IpAddress::Parse(m.host, &ip)) (void)policy.Refusal(ip);
  if (webtier::balancer::IpAddress::Parse(text, &ip)) {
    webtier::balancer::IpAddress back;
    if (!webtier::balancer::IpAddress::Parse(ip.ToString(), &back) || back.bytes != ip.bytes || back.v4 != ip.v4)
      std::abort();
    (void)webtier::balancer::AddressPolicy().Refusal(ip);
  }
  return 0;
}
