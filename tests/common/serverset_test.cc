// Serverset JSON: round trip, foreign writers, and every way a member is invalid.
#include "webtier/common/serverset.h"

#include <gtest/gtest.h>

namespace webtier::serverset {
namespace {

TEST(Serverset, RoundTripKeepsEveryField) {
  Member m{.id = "webnode-1", .host = "10.0.0.5", .port = 8080, .zone = "a", .weight = 50, .version = "0.1.0", .shard = 3};
  Member out;
  ASSERT_TRUE(Decode(Encode(m), &out).ok());
  EXPECT_EQ(out, m);
  EXPECT_EQ(out.Address(), "10.0.0.5:8080");
}

TEST(Serverset, EncodesTheSpecShape) {
  Member m{.id = "n", .host = "h", .port = 1, .zone = "z", .weight = 100, .version = "v", .shard = 0};
  std::string j = Encode(m);
  EXPECT_NE(j.find(R"("serviceEndpoint":{"host":"h","port":1})"), std::string::npos) << j;
  EXPECT_NE(j.find(R"("additionalEndpoints":{"http":{"host":"h","port":1}})"), std::string::npos) << j;
  EXPECT_NE(j.find(R"("status":"ALIVE")"), std::string::npos) << j;
}

TEST(Serverset, AdminEndpointIsAnAdditionalEndpoint) {
  Member m{.id = "n", .host = "10.0.0.5", .port = 8080, .zone = "z", .admin_port = 8081};
  const std::string j = Encode(m);
  EXPECT_NE(j.find(R"("admin":{"host":"10.0.0.5","port":8081})"), std::string::npos) << j;
  EXPECT_NE(j.find(R"("http":{"host":"10.0.0.5","port":8080})"), std::string::npos) << j;
  Member out;
  ASSERT_TRUE(Decode(j, &out).ok());
  EXPECT_EQ(out, m);
  // None published: none encoded; a malformed one is ignored, not the member.
  m.admin_port = 0;
  EXPECT_EQ(Encode(m).find("admin"), std::string::npos);
  ASSERT_TRUE(Decode(R"({"serviceEndpoint":{"host":"h","port":80},"status":"ALIVE",
                          "additionalEndpoints":{"admin":{"host":"h","port":70000}}})", &out).ok());
  EXPECT_EQ(out.admin_port, 0);
}

TEST(Serverset, AcceptsForeignWritersWithExtraFieldsAndNoWeight) {
  Member out;
  ASSERT_TRUE(Decode(R"({"serviceEndpoint":{"host":"nginx.local","port":81},"status":"ALIVE",
                          "additionalEndpoints":{},"shard":1,"extra":{"x":[1,2]}})", &out).ok());
  EXPECT_EQ(out.host, "nginx.local");
  EXPECT_EQ(out.port, 81);
  EXPECT_EQ(out.weight, 100u);
  EXPECT_EQ(out.id, "nginx.local:81");
}

TEST(Serverset, RejectsInvalidMembers) {
  const char* bad[] = {
      "",
      "not json",
      "[1,2]",
      R"({"status":"ALIVE"})",
      R"({"serviceEndpoint":{"port":80},"status":"ALIVE"})",
      R"({"serviceEndpoint":{"host":"","port":80},"status":"ALIVE"})",
      R"({"serviceEndpoint":{"host":"h"},"status":"ALIVE"})",
      R"({"serviceEndpoint":{"host":"h","port":"80"},"status":"ALIVE"})",
      R"({"serviceEndpoint":{"host":"h","port":0},"status":"ALIVE"})",
      R"({"serviceEndpoint":{"host":"h","port":65536},"status":"ALIVE"})",
      R"({"serviceEndpoint":{"host":"h","port":-1},"status":"ALIVE"})",
      R"({"serviceEndpoint":{"host":"h","port":80},"status":"DEAD"})",
      R"({"serviceEndpoint":{"host":"h","port":80}})",
      R"({"serviceEndpoint":{"host":"h","port":80},"status":"ALIVE","weight":0})",
      R"({"serviceEndpoint":{"host":"h","port":80},"status":"ALIVE","weight":"x"})",
      R"({"serviceEndpoint":{"host":"h","port":80.5},"status":"ALIVE"})",
      "{\"serviceEndpoint\":{\"host\":\"h\",\"port\":80},\"status\":\"ALIVE\"",
  };
  for (const char* b : bad) {
    Member out;
    Status s = Decode(b, &out);
    EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument) << "accepted: " << b;
    EXPECT_FALSE(s.message().empty());
  }
}


}  // namespace
}  // namespace webtier::serverset
