// The record codec: a small versioned binary format with a CRC-32 trailer.
#include "webtier/cache/record.h"

#include <algorithm>
#include <cstring>

#include <zlib.h>

namespace webtier::cache {
namespace {

constexpr std::string_view kMagic = "WTC";

template <typename T>
void PutInt(std::string* out, T v) {
  using U = std::make_unsigned_t<T>;
  U u = static_cast<U>(v);
  for (size_t i = 0; i < sizeof(T); ++i) out->push_back(static_cast<char>((u >> (8 * i)) & 0xFF));
}

void PutString(std::string* out, std::string_view s) {
  PutInt<uint32_t>(out, static_cast<uint32_t>(s.size()));
  out->append(s);
}

// Reads from the front of `in`; false when it is too short.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  template <typename T>
  bool Int(T* v) {
    using U = std::make_unsigned_t<T>;
    if (in_.size() < sizeof(T)) return false;
    U u = 0;
    for (size_t i = 0; i < sizeof(T); ++i) u |= static_cast<U>(static_cast<uint8_t>(in_[i])) << (8 * i);
    in_.remove_prefix(sizeof(T));
    *v = static_cast<T>(u);
    return true;
  }
  bool String(std::string* s) {
    uint32_t n = 0;
    if (!Int(&n) || in_.size() < n) return false;
    s->assign(in_.data(), n);
    in_.remove_prefix(n);
    return true;
  }
  size_t left() const { return in_.size(); }

 private:
  std::string_view in_;
};

Status Corrupt(const char* why) { return Status(ErrorCode::kCorrupt, std::string("cache record: ") + why); }

}  // namespace

uint32_t Crc32(std::string_view bytes) {
  // zlib's: the same CRC-32 (IEEE), computed several bytes at a time where a
  // table lookup per byte cost 1.6% of a webnode's CPU under misses.
  return static_cast<uint32_t>(crc32_z(0, reinterpret_cast<const Bytef*>(bytes.data()), bytes.size()));
}

Record::Freshness Record::At(int64_t now_ms) const {
  const int64_t age = AgeMs(now_ms);
  if (age < ttl_ms && (flags & kAlwaysRevalidate) == 0) return Freshness::kFresh;
  if ((flags & kNoStale) != 0) return Freshness::kExpired;
  if (age < ttl_ms + swr_ms) return Freshness::kStaleRevalidate;
  if (age < ttl_ms + sie_ms) return Freshness::kStaleIfError;
  return Freshness::kExpired;
}

int64_t Record::AgeMs(int64_t now_ms) const {
  const int64_t age = age_ms + (now_ms - stored_at_ms);
  return age > 0 ? age : 0;
}

int64_t Record::AgeSeconds(int64_t now_ms) const { return AgeMs(now_ms) / 1000; }

int64_t Record::RetainMs() const {
  const int64_t retain = ttl_ms - age_ms + std::max({swr_ms, sie_ms, keep_ms});
  return retain > 1000 ? retain : 1000;
}

std::string EncodeRecord(const Record& record, uint8_t version) {
  std::string out;
  out.reserve(64 + record.response.body.size());
  out.append(kMagic);
  out.push_back(static_cast<char>(version));
  PutInt<uint16_t>(&out, static_cast<uint16_t>(record.response.status));
  PutInt<int64_t>(&out, record.stored_at_ms);
  PutInt<int64_t>(&out, record.age_ms);
  PutInt<int64_t>(&out, record.ttl_ms);
  PutInt<int64_t>(&out, record.swr_ms);
  PutInt<int64_t>(&out, record.sie_ms);
  PutInt<int64_t>(&out, record.keep_ms);
  PutInt<uint8_t>(&out, record.flags);
  PutInt<uint64_t>(&out, record.generation);
  PutString(&out, record.variant);
  PutInt<uint32_t>(&out, static_cast<uint32_t>(record.response.headers.size()));
  for (const auto& [name, value] : record.response.headers) {
    PutString(&out, name);
    PutString(&out, value);
  }
  PutString(&out, record.response.body);
  PutInt<uint32_t>(&out, Crc32(out));
  return out;
}

Status DecodeRecord(std::string_view bytes, Record* record, uint8_t version) {
  if (bytes.size() < kMagic.size() + 1 + 4) return Corrupt("truncated");
  if (bytes.substr(0, kMagic.size()) != kMagic) return Corrupt("bad magic");
  if (static_cast<uint8_t>(bytes[kMagic.size()]) != version) {
    return Status(ErrorCode::kNotFound, "cache record: format version " +
                                            std::to_string(static_cast<uint8_t>(bytes[kMagic.size()])));
  }
  std::string_view payload = bytes.substr(0, bytes.size() - 4);
  uint32_t crc = 0;
  Reader trailer(bytes.substr(bytes.size() - 4));
  trailer.Int(&crc);
  if (crc != Crc32(payload)) return Corrupt("checksum mismatch");

  Reader in(payload.substr(kMagic.size() + 1));
  uint16_t status = 0;
  uint32_t header_count = 0;
  if (!in.Int(&status) || !in.Int(&record->stored_at_ms) || !in.Int(&record->age_ms) || !in.Int(&record->ttl_ms) ||
      !in.Int(&record->swr_ms) || !in.Int(&record->sie_ms) || !in.Int(&record->keep_ms) || !in.Int(&record->flags) ||
      !in.Int(&record->generation) || !in.String(&record->variant) || !in.Int(&header_count)) {
    return Corrupt("truncated");
  }
  // Each header takes at least 8 bytes; refuse counts the payload cannot hold.
  if (header_count > in.left() / 8) return Corrupt("header count");
  record->response.status = status;
  record->response.headers.clear();
  record->response.headers.reserve(header_count);
  for (uint32_t i = 0; i < header_count; ++i) {
    std::string name, value;
    if (!in.String(&name) || !in.String(&value)) return Corrupt("truncated header");
    record->response.headers.emplace_back(std::move(name), std::move(value));
  }
  if (!in.String(&record->response.body)) return Corrupt("truncated body");
  if (in.left() != 0) return Corrupt("trailing bytes");
  return Status::Ok();
}

}  // namespace webtier::cache
