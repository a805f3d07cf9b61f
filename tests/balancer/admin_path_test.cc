// IsAdminPath: every spelling a member could normalise to /admin/... is caught,
// and nothing else is.
#include "webtier/balancer/http/admin_path.h"

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string_view>

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

// A target that ends the buffer it lives in, spelled in another case: the
// comparison must stop at the last byte (the sanitizer build catches a read
// one past it, as Beast 1.81's iequals did).
TEST(AdminPath, ATargetAtTheEndOfItsBufferIsReadNoFurther) {
  for (std::string_view spelling : {"/admiN", "/ADMIN", "/x/aDmIn"}) {
    std::unique_ptr<char[]> exact(new char[spelling.size()]);
    std::memcpy(exact.get(), spelling.data(), spelling.size());
    const std::string_view target(exact.get(), spelling.size());
    EXPECT_EQ(IsAdminPath(target), spelling != "/x/aDmIn") << spelling;
  }
}

}  // namespace
}  // namespace webtier::balancer
