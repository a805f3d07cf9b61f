// IsAdminPath: every spelling a member could normalise to /admin/... is caught,
// and nothing else is.
#include "webtier/balancer/admin_path.h"

#include <gtest/gtest.h>

namespace webtier::balancer {
namespace {

TEST(AdminPath, EverySpellingOfTheAdminRoutesIsCaught) {
  for (const char* target : {"/admin/purge", "/admin/purge?path=/x", "/admin", "/admin/", "/ADMIN/purge",
                             "//admin/purge", "/./admin/purge", "/x/../admin/purge", "/../admin/purge",
                             "/%61dmin/purge", "/%2561dmin/purge", "/admin%2Fpurge", "/%2e%2e/admin/purge",
                             "/admin;v=1/purge", "/admin#frag"}) {
    EXPECT_TRUE(IsAdminPath(target)) << target;
  }
}

TEST(AdminPath, OtherPathsPass) {
  for (const char* target : {"/", "/administrator", "/api/admin/purge", "/x/admin", "/admin-ui",
                             "/?next=/admin/purge", "/%zzadmin", "/%", "/%4", "", "/admin/../api"}) {
    EXPECT_FALSE(IsAdminPath(target)) << target;
  }
}

}  // namespace
}  // namespace webtier::balancer
