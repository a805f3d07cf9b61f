// The stored form of a cached response: what goes into Redis, and the codec.
//
// Layout (all integers little-endian), format version 1:
//   "WTC" | u8 version | u16 status | i64 stored_at_ms | i64 ttl_ms |
//   i64 swr_ms | i64 sie_ms | u32 header_count | { u32 len, name, u32 len, value }* |
//   u32 body_len | body | u32 crc32 (IEEE, over every byte before it)
// Binary-safe: the body is length-prefixed and may hold any bytes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "webtier/cache/message.h"
#include "webtier/common/status.h"

namespace webtier::cache {

inline constexpr uint8_t kRecordVersion = 1;

struct Record {
  Response response;       // status, the headers worth keeping, body
  int64_t stored_at_ms = 0;  // Unix ms when the origin answered
  int64_t ttl_ms = 0;        // fresh for this long after stored_at
  int64_t swr_ms = 0;        // then served STALE while one request refreshes it
  int64_t sie_ms = 0;        // served STALE when the origin fails, up to ttl + sie

  enum class Freshness { kFresh, kStaleRevalidate, kStaleIfError, kExpired };
  Freshness At(int64_t now_ms) const;
  // Whole seconds since stored_at, never negative (the Age header).
  int64_t AgeSeconds(int64_t now_ms) const;
  // How long Redis should keep it: ttl plus the longer grace window.
  int64_t RetainMs() const;
};

std::string EncodeRecord(const Record& record);

// kCorrupt when the bytes are truncated, have the wrong magic or version, or
// fail the checksum; `*record` is then unspecified.
Status DecodeRecord(std::string_view bytes, Record* record);

// CRC-32 (IEEE 802.3), as zlib computes it.
uint32_t Crc32(std::string_view bytes);

}  // namespace webtier::cache
