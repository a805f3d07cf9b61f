// Flags: environment fallback, flag precedence, exit codes.
#include "webtier/common/flags.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <vector>

namespace webtier::flags {
namespace {

struct Args {
  explicit Args(std::vector<std::string> a) : strings(std::move(a)) {
    for (auto& s : strings) ptrs.push_back(s.data());
  }
  int argc() { return static_cast<int>(ptrs.size()); }
  char** argv() { return ptrs.data(); }
  std::vector<std::string> strings;
  std::vector<char*> ptrs;
};

class FlagsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    app.add_option("--zk-path", zk_path);
    app.add_option("--threads", threads);
    BindEnvironment(app, "TESTPROG");
  }
  void TearDown() override { unsetenv("TESTPROG_ZK_PATH"); unsetenv("TESTPROG_THREADS"); }
  CLI::App app{"test", "testprog"};
  std::string zk_path = "/default";
  int threads = 1;
};

TEST_F(FlagsTest, EnvironmentFillsUnsetFlags) {
  setenv("TESTPROG_ZK_PATH", "/from/env", 1);
  Args a({"testprog"});
  EXPECT_FALSE(Parse(app, a.argc(), a.argv()).has_value());
  EXPECT_EQ(zk_path, "/from/env");
}

TEST_F(FlagsTest, FlagWinsOverEnvironment) {
  setenv("TESTPROG_ZK_PATH", "/from/env", 1);
  Args a({"testprog", "--zk-path", "/from/flag"});
  EXPECT_FALSE(Parse(app, a.argc(), a.argv()).has_value());
  EXPECT_EQ(zk_path, "/from/flag");
}

TEST_F(FlagsTest, UnknownFlagAndBadValueExitTwo) {
  Args unknown({"testprog", "--no-such-flag"});
  EXPECT_EQ(Parse(app, unknown.argc(), unknown.argv()), 2);
  CLI::App app2{"test", "testprog"};
  int n = 0;
  app2.add_option("--threads", n);
  Args bad({"testprog", "--threads", "many"});
  EXPECT_EQ(Parse(app2, bad.argc(), bad.argv()), 2);
}

TEST_F(FlagsTest, HelpExitsZero) {
  Args a({"testprog", "--help"});
  EXPECT_EQ(Parse(app, a.argc(), a.argv()), 0);
}

}  // namespace
}  // namespace webtier::flags
