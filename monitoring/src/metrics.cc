// Registry wrapper and the /proc based process collector.
#include "webtier/monitoring/metrics.h"

#include <dirent.h>
#include <unistd.h>

#include <prometheus/collectable.h>
#include <prometheus/text_serializer.h>

#include <fstream>
#include <sstream>
#include <vector>

namespace webtier::metrics {
namespace {

// process_* metrics as the Prometheus client libraries define them, read from /proc/self.
class ProcessCollector : public prometheus::Collectable {
 public:
  ProcessCollector() : start_time_(ReadStartTime()) {}

  std::vector<prometheus::MetricFamily> Collect() const override {  // prometheus::Collectable
    std::vector<prometheus::MetricFamily> out;
    double utime = 0, stime = 0, rss_pages = 0;
    ReadStat(&utime, &stime, &rss_pages);
    const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
    const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
    out.push_back(Make("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
                       prometheus::MetricType::Counter, (utime + stime) / ticks));
    out.push_back(Make("process_resident_memory_bytes", "Resident memory size in bytes.",
                       prometheus::MetricType::Gauge, rss_pages * page));
    out.push_back(Make("process_open_fds", "Number of open file descriptors.", prometheus::MetricType::Gauge,
                       static_cast<double>(CountFds())));
    out.push_back(Make("process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
                       prometheus::MetricType::Gauge, start_time_));
    return out;
  }

 private:
  static prometheus::MetricFamily Make(const char* name, const char* help, prometheus::MetricType type,
                                       double value) {
    prometheus::MetricFamily f;
    f.name = name;
    f.help = help;
    f.type = type;
    prometheus::ClientMetric m;
    if (type == prometheus::MetricType::Counter) m.counter.value = value;
    else m.gauge.value = value;
    f.metric.push_back(std::move(m));
    return f;
  }

  // Fields of /proc/self/stat after the ")" of comm: state is field 3.
  static std::vector<std::string> StatFields() {
    std::ifstream in("/proc/self/stat");
    std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto close = all.rfind(')');
    std::vector<std::string> fields;
    if (close == std::string::npos) return fields;
    std::istringstream rest(all.substr(close + 2));
    std::string f;
    while (rest >> f) fields.push_back(f);
    return fields;
  }

  static void ReadStat(double* utime, double* stime, double* rss) {
    auto f = StatFields();  // f[0] is field 3 (state)
    if (f.size() > 21) {
      *utime = std::stod(f[11]);  // field 14
      *stime = std::stod(f[12]);  // field 15
      *rss = std::stod(f[21]);    // field 24
    }
  }

  static double ReadStartTime() {
    auto f = StatFields();
    double boot = 0;
    std::ifstream st("/proc/stat");
    std::string key;
    while (st >> key) {
      if (key == "btime") { st >> boot; break; }
    }
    if (f.size() <= 19) return 0;
    return boot + std::stod(f[19]) / static_cast<double>(sysconf(_SC_CLK_TCK));  // field 22
  }

  static int CountFds() {
    DIR* d = opendir("/proc/self/fd");
    if (d == nullptr) return 0;
    int n = 0;
    while (readdir(d) != nullptr) ++n;
    closedir(d);
    return n - 3;  // ".", ".." and the DIR's own fd
  }

  double start_time_;
};

}  // namespace

Registry::Registry(std::string_view program, std::string_view version)
    : registry_(std::make_shared<prometheus::Registry>()), process_(std::make_shared<ProcessCollector>()) {
  prometheus::BuildGauge()
      .Name(std::string(program) + "_build_info")
      .Help("Build information; the value is always 1.")
      .Register(*registry_)
      .Add({{"version", std::string(version)}})
      .Set(1);
}

std::string Registry::Render() const {
  auto families = registry_->Collect();
  auto proc = process_->Collect();
  families.insert(families.end(), std::make_move_iterator(proc.begin()), std::make_move_iterator(proc.end()));
  return prometheus::TextSerializer().Serialize(families);
}

const prometheus::Histogram::BucketBoundaries& LatencyBuckets() {
  static const prometheus::Histogram::BucketBoundaries b = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                            0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5,
                                                            5,      10};
  return b;
}

}  // namespace webtier::metrics
