// A response header with a name chosen at run time. Pistache 0.0.5 writes
// only typed headers (Collection::list()) and silently drops addRaw() ones,
// so every header the webnode sets goes through this class.
#pragma once

#include <pistache/http_header.h>
#include <pistache/http_headers.h>

#include <functional>
#include <memory>
#include <string>

namespace webtier::webnode {

class TextHeader : public Pistache::Http::Header::Header {
 public:
  TextHeader(std::string name, std::string value) : name_(std::move(name)), value_(std::move(value)) {}
  const char* name() const override { return name_.c_str(); }                        // Header
  void parse(const std::string& data) override { value_ = data; }                    // Header
  void write(std::ostream& os) const override { os << value_; }                      // Header
#ifdef SAFE_HEADER_CAST
  uint64_t hash() const override { return std::hash<std::string>()(name_); }          // Header
#endif
  const std::string& value() const { return value_; }

 private:
  std::string name_;
  std::string value_;
};

// Sets (replaces) header `name` on `headers`.
inline void SetHeader(Pistache::Http::Header::Collection& headers, std::string name, std::string value) {
  headers.remove(name);
  headers.add(std::make_shared<TextHeader>(std::move(name), std::move(value)));
}

}  // namespace webtier::webnode
