// balancer Config: defaults, flag text parsed by Finalize and its error messages.
#include "webtier/balancer/config.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

namespace webtier::balancer {
namespace {

TEST(BalancerConfig, DefaultsMatchTheSpec) {
  Config c;
  ASSERT_TRUE(Finalize(&c).ok());
  EXPECT_EQ(c.listen, (net::HostPort{"0.0.0.0", 8000}));
  EXPECT_EQ(c.admin_listen, (net::HostPort{"0.0.0.0", 9000}));
  EXPECT_EQ(c.zk.connect, "127.0.0.1:2181");
  EXPECT_EQ(c.zk.path, "/webtier/nodes");
  EXPECT_EQ(c.zk.session_timeout_ms, 6000);
  EXPECT_EQ(c.policy, PolicyKind::kRoundRobin);
  EXPECT_EQ(c.retries, 2);
  EXPECT_EQ(c.health.path, "/health");
  EXPECT_EQ(c.health.interval_ms, 1000);
  EXPECT_EQ(c.health.timeout_ms, 500);
  EXPECT_EQ(c.health.healthy_threshold, 2);
  EXPECT_EQ(c.health.unhealthy_threshold, 3);
  EXPECT_EQ(c.health.outlier_consecutive_5xx, 5);
  EXPECT_EQ(c.health.outlier_base_ejection_ms, 30000);
  EXPECT_EQ(c.health.max_ejection_percent, 50);
  EXPECT_EQ(c.health.slow_start_ms, 0);
  EXPECT_EQ(c.health.zone, "");
  EXPECT_EQ(c.member_allow.ToString(), "") << "any address but the refused-by-default ranges";
  EXPECT_EQ(c.zk.credential, "");
}

TEST(BalancerConfig, EachBadValueNamesItsFlag) {
  struct Case {
    void (*mutate)(Config*);
    const char* flag;
  } cases[] = {
      {[](Config* c) { c->listen_flag = "nohostport"; }, "--listen"},
      {[](Config* c) { c->listen_flag = "h:99999"; }, "--listen"},
      {[](Config* c) { c->admin_listen_flag = ""; }, "--admin-listen"},
      {[](Config* c) { c->policy_flag = "random"; }, "--policy"},
      {[](Config* c) { c->zk.path = "relative"; }, "--zk-path"},
      {[](Config* c) { c->zk.path = "/trailing/"; }, "--zk-path"},
      {[](Config* c) { c->zk.path = "/"; }, "--zk-path"},
      {[](Config* c) { c->health.path = "health"; }, "--health-path"},
      {[](Config* c) { c->health.path = "/he alth"; }, "--health-path"},
      {[](Config* c) { c->member_allow_flag = "10.0.0.0/33"; }, "--member-allow"},
      {[](Config* c) { c->member_allow_flag = "10.0.0.0/8,example.com"; }, "--member-allow"},
      {[](Config* c) { c->zk.admin_acl = "digest:admin:B05meOaFZGavGA/rJPCQlodOTYU="; }, "--zk-admin-acl"},
      {[](Config* c) { c->zk.auth_file = "/nonexistent/zk-auth"; }, "--zk-auth-file"},
      {[](Config* c) { c->edge_redis_user = "webtier-edge"; }, "--edge-redis-user"},
      {[](Config* c) { c->edge_redis_password_file = "/nonexistent/edge"; }, "--edge-redis-password-file"},
  };
  for (const auto& tc : cases) {
    Config c;
    tc.mutate(&c);
    Status s = Finalize(&c);
    EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument) << tc.flag;
    EXPECT_EQ(s.message().rfind(std::string(tc.flag) + ": ", 0), 0u) << s.message();
  }
}

TEST(BalancerConfig, FlagsReachTheTypedFields) {
  Config c;
  CLI::App app;
  AddFlags(app, &c);
  app.parse("--listen 127.0.0.1:8100 --admin-listen [::1]:9100 --policy least_request --zk-path /a/b --retries 5",
            false);
  ASSERT_TRUE(Finalize(&c).ok());
  EXPECT_EQ(c.listen, (net::HostPort{"127.0.0.1", 8100}));
  EXPECT_EQ(c.admin_listen, (net::HostPort{"::1", 9100}));
  EXPECT_EQ(c.policy, PolicyKind::kLeastRequest);
  EXPECT_EQ(c.zk.path, "/a/b");
  EXPECT_EQ(c.retries, 5);
}

TEST(BalancerConfig, HealthFlagsParseAndRangesRefuseBadValues) {
  Config c;
  CLI::App app;
  AddFlags(app, &c);
  // As argv (CLI11 takes it last first): an empty --health-path turns the checks off.
  std::vector<std::string> args = {"--health-path", "", "--zone", "us-east", "--slow-start-ms", "5000",
                                   "--max-ejection-percent", "30"};
  std::reverse(args.begin(), args.end());
  app.parse(args);
  ASSERT_TRUE(Finalize(&c).ok());
  EXPECT_FALSE(c.health.checks());
  EXPECT_EQ(c.health.zone, "us-east");
  EXPECT_EQ(c.health.slow_start_ms, 5000);
  EXPECT_EQ(c.health.max_ejection_percent, 30);
  for (const char* bad : {"--max-ejection-percent 101", "--healthy-threshold 0", "--health-interval-ms 1",
                          "--outlier-consecutive-5xx -1"}) {
    Config d;
    CLI::App a;
    AddFlags(a, &d);
    EXPECT_THROW(a.parse(bad, false), CLI::ValidationError) << bad;
  }
}

TEST(BalancerConfig, EveryPolicyNameParsesBack) {
  for (auto k : {PolicyKind::kRoundRobin, PolicyKind::kWeightedRoundRobin, PolicyKind::kLeastRequest,
                 PolicyKind::kConsistentHash}) {
    Config c;
    c.policy_flag = std::string(PolicyName(k));
    ASSERT_TRUE(Finalize(&c).ok()) << c.policy_flag;
    EXPECT_EQ(c.policy, k);
  }
}

TEST(BalancerConfig, TlsIsOffByDefaultAndNeedsItsFiles) {
  Config off;
  ASSERT_TRUE(Finalize(&off).ok());
  EXPECT_FALSE(off.tls_listen.has_value());

  Config c;
  CLI::App app;
  AddFlags(app, &c);
  app.parse("--tls-listen 127.0.0.1:8443 --tls-cert /c.pem --tls-key /k.pem", false);
  ASSERT_TRUE(Finalize(&c).ok());
  EXPECT_EQ(c.tls_listen, (net::HostPort{"127.0.0.1", 8443}));
  EXPECT_EQ(c.tls_cert, "/c.pem");
  EXPECT_EQ(c.tls_key, "/k.pem");

  const std::pair<void (*)(Config*), const char*> bad[] = {
      {[](Config* x) { x->tls_listen_flag = "nohostport"; }, "--tls-listen"},
      {[](Config* x) { x->tls_cert.clear(); }, "--tls-cert"},
      {[](Config* x) { x->tls_key.clear(); }, "--tls-key"},
  };
  for (const auto& [mutate, flag] : bad) {
    Config x = c;
    mutate(&x);
    Status s = Finalize(&x);
    EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument) << flag;
    EXPECT_EQ(s.message().rfind(std::string(flag) + ": ", 0), 0u) << s.message();
  }
}

}  // namespace
}  // namespace webtier::balancer
