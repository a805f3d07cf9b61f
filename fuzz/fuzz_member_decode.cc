// Fuzzes the decoding of what ZooKeeper (or the disk) hands the balancer:
// serverset member JSON and the state file. Neither may crash or throw, and
// whatever decodes must survive an encode/decode round trip.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "webtier/balancer/state_file.h"
#include "webtier/common/serverset.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  webtier::serverset::Member m;
  if (webtier::serverset::Decode(text, &m).ok()) {
    webtier::serverset::Member again;
    if (!webtier::serverset::Decode(webtier::serverset::Encode(m), &again).ok() || !(again == m)) std::abort();
  }
  std::vector<webtier::balancer::MemberRecord> records;
  int invalid = 0;
  if (webtier::balancer::ParseState(text, &records, &invalid).ok()) {
    std::vector<webtier::balancer::MemberRecord> again;
    if (!webtier::balancer::ParseState(webtier::balancer::FormatState(records), &again, nullptr).ok() ||
        again != records)
      std::abort();
  }
  return 0;
}
