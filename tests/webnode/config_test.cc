// webnode Config: defaults, derived fields and validation messages.
#include "webtier/webnode/config.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "webtier/testing/harness.h"

namespace webtier::webnode {
namespace {

TEST(WebnodeConfig, DefaultsMatchTheSpec) {
  Config c;
  ASSERT_TRUE(Finalize(&c).ok());
  EXPECT_EQ(c.listen_addr, (net::HostPort{"0.0.0.0", 8080}));
  EXPECT_EQ(c.zk.connect, "127.0.0.1:2181");
  EXPECT_EQ(c.zk.path, "/webtier/nodes");
  EXPECT_EQ(c.zk.session_timeout_ms, 6000);
  EXPECT_EQ(c.redis, "127.0.0.1:6379");
  EXPECT_EQ(c.redis_sentinel, "");
  EXPECT_EQ(c.redis_master_name, "webtier");
  EXPECT_TRUE(c.redis_sentinels.empty());
  EXPECT_EQ(c.cache_ttl, 60);
  EXPECT_EQ(c.drain_ms, 2000);
  EXPECT_GE(c.threads, 1);
  EXPECT_EQ(c.id, net::Hostname() + "-8080");
  EXPECT_EQ(c.name, c.id);
}

TEST(WebnodeConfig, EachBadValueNamesItsFlag) {
  struct Case {
    void (*mutate)(Config*);
    const char* flag;
  } cases[] = {
      {[](Config* c) { c->listen = "nope"; }, "--listen"},
      {[](Config* c) { c->advertise = "h:0"; }, "--advertise"},
      {[](Config* c) { c->zk.connect = ""; }, "--zk"},
      {[](Config* c) { c->zk.path = "relative"; }, "--zk-path"},
      {[](Config* c) { c->zk.path = "/trailing/"; }, "--zk-path"},
      {[](Config* c) { c->zk.session_timeout_ms = 10; }, "--zk-session-timeout-ms"},
      {[](Config* c) { c->redis = "h:99999"; }, "--redis"},
      {[](Config* c) { c->redis_sentinel = "s1:26379,,s2:26379"; }, "--redis-sentinel"},
      {[](Config* c) { c->redis_sentinel = "s1:0"; }, "--redis-sentinel"},
      {[](Config* c) { c->redis_sentinel = "s1:26379,"; }, "--redis-sentinel"},
      {[](Config* c) {
         c->redis_sentinel = "s1";
         c->redis_master_name = "two words";
       },
       "--redis-master-name"},
      {[](Config* c) {
         c->redis_sentinel = "s1";
         c->redis_master_name = "";
       },
       "--redis-master-name"},
      {[](Config* c) { c->threads = -1; }, "--threads"},
      {[](Config* c) { c->origin = "ftp://x"; }, "--origin"},
      {[](Config* c) { c->cache_ttl = -5; }, "--cache-ttl"},
      {[](Config* c) { c->drain_ms = -1; }, "--drain-ms"},
  };
  for (const auto& tc : cases) {
    Config c;
    tc.mutate(&c);
    Status s = Finalize(&c);
    EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument) << tc.flag;
    EXPECT_EQ(s.message().rfind(tc.flag, 0), 0u) << s.message();
  }
}

TEST(WebnodeConfig, EmptyRedisDisablesTheCacheAndIsValid) {
  Config c;
  c.redis = "";
  EXPECT_TRUE(Finalize(&c).ok());
  EXPECT_FALSE(c.redis_addr.has_value());
}

TEST(WebnodeConfig, SentinelsReplaceTheRedisAddressWhichIsThenIgnored) {
  Config c;
  c.redis = "h:99999";  // ignored, not even validated
  c.redis_sentinel = "s1,s2:5000,[::1]:26380";
  ASSERT_TRUE(Finalize(&c).ok());
  EXPECT_FALSE(c.redis_addr.has_value());
  ASSERT_EQ(c.redis_sentinels.size(), 3u);
  EXPECT_EQ(c.redis_sentinels[0], (net::HostPort{"s1", 26379}));
  EXPECT_EQ(c.redis_sentinels[1], (net::HostPort{"s2", 5000}));
  EXPECT_EQ(c.redis_sentinels[2], (net::HostPort{"::1", 26380}));
  EXPECT_TRUE(c.cache_enabled());
  c.redis_sentinel = "";
  c.redis = "";
  ASSERT_TRUE(Finalize(&c).ok());
  EXPECT_TRUE(c.redis_sentinels.empty());
  EXPECT_FALSE(c.cache_enabled());
}

TEST(WebnodeConfig, AddressesAreParsedOnceWithTheirDefaultPorts) {
  Config c;
  c.listen = "127.0.0.1:8181";
  c.redis = "cache-host";
  c.advertise = "10.9.8.7";
  ASSERT_TRUE(Finalize(&c).ok());
  EXPECT_EQ(c.redis_addr, (net::HostPort{"cache-host", 6379}));
  EXPECT_EQ(c.advertise_addr, (net::HostPort{"10.9.8.7", 8181}));
}

TEST(WebnodeConfig, MemberRecordPrefersAdvertiseThenASpecificListenHost) {
  Config c;
  c.id = "n1";
  c.listen = "0.0.0.0:8080";
  ASSERT_TRUE(Finalize(&c).ok());
  EXPECT_EQ(ThisMember(c).host, "");  // auto-detected at registration
  EXPECT_EQ(ThisMember(c).port, 8080);
  c.listen = "127.0.0.1:8080";
  ASSERT_TRUE(Finalize(&c).ok());
  EXPECT_EQ(ThisMember(c).host, "127.0.0.1");
  c.advertise = "10.9.8.7:9999";
  ASSERT_TRUE(Finalize(&c).ok());
  serverset::Member m = ThisMember(c);
  EXPECT_EQ(m.id, "n1");
  EXPECT_EQ(m.host, "10.9.8.7");
  EXPECT_EQ(m.port, 9999);
  EXPECT_EQ(m.admin_port, 8081);                      // --admin-listen's default
  EXPECT_EQ(ThisMember(c, 0, 40123).admin_port, 40123);  // the port bound for host:0
}

TEST(WebnodeConfig, HostListAdminListenAndFieldLimit) {
  Config c;
  c.id = "n1";
  c.hosts = "WWW.Example.com:80, api.example.com";
  ASSERT_TRUE(Finalize(&c).ok());
  EXPECT_EQ(c.allowed_hosts, (std::vector<std::string>{"www.example.com", "api.example.com"}));
  EXPECT_EQ(c.max_header_fields, 100u);
  EXPECT_EQ(c.admin_addr, (net::HostPort{"0.0.0.0", 8081}));
  for (const char* bad : {"a.example,,b.example", "evil/x", "a b"}) {
    c.hosts = bad;
    Status s = Finalize(&c);
    EXPECT_FALSE(s.ok()) << bad;
    EXPECT_NE(s.message().find("--host"), std::string::npos) << s.message();
  }
  c.hosts = "";
  c.admin_listen = "0.0.0.0:8080";
  EXPECT_NE(Finalize(&c).message().find("--admin-listen"), std::string::npos);
  c.admin_listen = "127.0.0.1:0";
  EXPECT_TRUE(Finalize(&c).ok());
  c.max_header_fields = 0;
  EXPECT_NE(Finalize(&c).message().find("--max-header-fields"), std::string::npos);
}

std::string WriteFile(const testing::TempDir& dir, const std::string& name, const std::string& content) {
  const std::string path = dir.path() + "/" + name;
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

// The secrets as files (what ps cannot show): the content is the value, one
// trailing newline dropped, as `echo secret >file` or a Kubernetes Secret
// written with one leaves it.
TEST(WebnodeConfig, SecretFilesFillTheirValues) {
  testing::TempDir dir;
  Config c;
  c.redis_password_file = WriteFile(dir, "redis", "r-secret\n");
  c.redis_sentinel_password_file = WriteFile(dir, "sentinel", "s-secret\r\n");
  c.admin_token_file = WriteFile(dir, "admin", "a-token");
  ASSERT_TRUE(Finalize(&c).ok());
  EXPECT_EQ(c.redis_password, "r-secret");
  EXPECT_EQ(c.redis_sentinel_password, "s-secret");
  EXPECT_EQ(c.admin_token, "a-token");
}

// A file and its flag together, a file that cannot be read, an empty one, or
// one of several lines: refused, naming the flag (and the path), never the
// secret itself.
TEST(WebnodeConfig, BadSecretFilesNameTheirFlagAndNeverTheSecret) {
  testing::TempDir dir;
  const std::string good = WriteFile(dir, "good", "hush-hush\n");
  const std::string empty = WriteFile(dir, "empty", "\n");
  const std::string lines = WriteFile(dir, "lines", "hush-hush\nmore\n");
  const std::string unreadable = WriteFile(dir, "unreadable", "hush-hush");
  ::chmod(unreadable.c_str(), 0);
  const bool root_reads_anything = std::ifstream(unreadable).good();
  const std::string a_directory = dir.path();  // refused even for root: not a regular file
  struct Case {
    std::string Config::*file;
    std::string Config::*value;
    const char* flag;
  } fields[] = {
      {&Config::redis_password_file, &Config::redis_password, "--redis-password-file"},
      {&Config::redis_sentinel_password_file, &Config::redis_sentinel_password, "--redis-sentinel-password-file"},
      {&Config::admin_token_file, &Config::admin_token, "--admin-token-file"},
  };
  for (const auto& f : fields) {
    struct Bad {
      std::string path, flag_value, why;
    } bad[] = {{good, "hush-hush", "together with"},
               {dir.path() + "/missing", "", "cannot read '" + dir.path() + "/missing'"},
               {empty, "", "is empty"},
               {lines, "", "more than one line"},
               {unreadable, "", "cannot read"},
               {a_directory, "", "cannot read '" + a_directory + "': "}};
    for (const auto& b : bad) {
      if (b.path == unreadable && root_reads_anything) continue;  // mode 0 stops no root
      Config c;
      c.*f.file = b.path;
      c.*f.value = b.flag_value;
      Status s = Finalize(&c);
      EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument) << f.flag << " " << b.path;
      EXPECT_EQ(s.message().rfind(f.flag, 0), 0u) << s.message();
      EXPECT_NE(s.message().find(b.why), std::string::npos) << s.message();
      EXPECT_EQ(s.message().find("hush-hush"), std::string::npos) << s.message();
    }
  }
}

}  // namespace
}  // namespace webtier::webnode
