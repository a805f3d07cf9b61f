// The metrics plumbing both programs share: a prometheus-cpp registry plus the
// standard process_* metrics and a <program>_build_info{version} gauge,
// rendered in the Prometheus text format by Render().
//
// Counters/gauges/histograms are prometheus-cpp types: lock-free to update,
// but Family::Add() takes a lock and a map lookup — resolve label sets once,
// outside hot paths, and keep the returned references.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <memory>
#include <string>
#include <string_view>

namespace webtier::metrics {

class Registry {
 public:
  // `program` is the metric prefix of build_info ("webnode" -> webnode_build_info).
  Registry(std::string_view program, std::string_view version);
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  prometheus::Registry& prom() { return *registry_; }

  // Text exposition format (version 0.0.4) of every metric, process_* included.
  std::string Render() const;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<prometheus::Collectable> process_;
};

// Latency buckets in seconds, 100us..10s, for request duration histograms.
const prometheus::Histogram::BucketBoundaries& LatencyBuckets();

}  // namespace webtier::metrics
