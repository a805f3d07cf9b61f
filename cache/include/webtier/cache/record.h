// The stored form of a cached response: what goes into Redis, and the codec.
//
// Layout (all integers little-endian), format version 2:
//   "WTC" | u8 version | u16 status | i64 stored_at_ms | i64 age_ms | i64 ttl_ms |
//   i64 swr_ms | i64 sie_ms | i64 keep_ms | u8 flags | u64 generation |
//   u32 len, variant | u32 header_count | { u32 len, name, u32 len, value }* |
//   u32 body_len | body | u32 crc32 (IEEE, over every byte before it)
// Binary-safe: the body is length-prefixed and may hold any bytes. A record of
// another version (1 had no age, keep, flags or variant) does not decode: a miss.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "webtier/cache/message.h"
#include "webtier/common/status.h"

namespace webtier::cache {

inline constexpr uint8_t kRecordVersion = 2;

struct Record {
  enum Flags : uint8_t {
    kNoStale = 1,           // never served stale (must-revalidate, proxy-revalidate, s-maxage, no-cache)
    kAlwaysRevalidate = 2,  // no-cache: validated with the origin before every use
  };
  Response response;         // status, the headers worth keeping (Date included), body
  int64_t stored_at_ms = 0;  // Unix ms when the origin answered (response_time)
  int64_t age_ms = 0;        // its corrected initial age then (RFC 9111 4.2.3)
  int64_t ttl_ms = 0;        // freshness lifetime: fresh while the current age is below it
  int64_t swr_ms = 0;        // then served STALE while one request refreshes it
  int64_t sie_ms = 0;        // served STALE when the origin fails, up to ttl + sie
  int64_t keep_ms = 0;       // kept this long past ttl to be revalidated (it has validators)
  uint8_t flags = 0;
  uint64_t generation = 0;   // Vary: the variant set this record belongs to (vary.h)
  std::string variant;       // Vary: the request's normalised selecting fields; "" without Vary

  enum class Freshness { kFresh, kStaleRevalidate, kStaleIfError, kExpired };
  Freshness At(int64_t now_ms) const;
  // The current age in ms (age_ms plus the time since stored_at), never negative.
  int64_t AgeMs(int64_t now_ms) const;
  // Whole seconds of the current age (the Age header).
  int64_t AgeSeconds(int64_t now_ms) const;
  // How long Redis should keep it from now: ttl plus the longest window, less the age it came with.
  int64_t RetainMs() const;
};

// `version` is kRecordVersion but in tests that play a release with another format.
std::string EncodeRecord(const Record& record, uint8_t version = kRecordVersion);

// kCorrupt when the bytes are truncated, have the wrong magic, or fail the
// checksum; kNotFound for a record of a format version other than `version`
// (written by an older or newer webnode: a plain miss). `*record` is then unspecified.
Status DecodeRecord(std::string_view bytes, Record* record, uint8_t version = kRecordVersion);

// CRC-32 (IEEE 802.3), as zlib computes it.
uint32_t Crc32(std::string_view bytes);

}  // namespace webtier::cache
