// things[].jobs (docs/config.md, docs/services.md): absent means thingmuxd takes no jobs;
// written, its keys are checked where written (file:line:col).
#include "config/config.hpp"
#include "tests/unit/config_test_support.hpp"

#include <gtest/gtest.h>

#include <string>

namespace {

using namespace thingmux::config;
using namespace thingmux::config::test;

TEST(ConfigJobs, AbsentByDefault) {
    const auto r = parse(minimal, "t.yaml");
    ASSERT_TRUE(r.ok()) << all(r);
    EXPECT_FALSE(r.config->things.at(0).jobs);
}

// `jobs:` with nothing under it (or {}) turns the service on with the defaults.
TEST(ConfigJobs, EmptyBlockTakesTheDefaults) {
    for (const std::string block : {"    jobs:\n", "    jobs: {}\n"}) {
        const auto r = parse(minimal + block, "t.yaml");
        ASSERT_TRUE(r.ok()) << all(r);
        const auto& j = r.config->things.at(0).jobs;
        ASSERT_TRUE(j) << block;
        EXPECT_EQ(j->unhandled, unhandled_jobs::reject);
        EXPECT_EQ(j->reject_reason, "no application on this device handles operation ${operation}");
        EXPECT_EQ(j->handler_wait, std::chrono::seconds(60));
    }
}

TEST(ConfigJobs, EveryKey) {
    const auto r = parse(minimal +
                             "    jobs:\n"
                             "      unhandled: leave\n"
                             "      reject_reason: \"job ${job}: nobody runs ${operation} here\"\n"
                             "      handler_wait: 2m\n",
                         "t.yaml");
    ASSERT_TRUE(r.ok()) << all(r);
    const auto& j = *r.config->things.at(0).jobs;
    EXPECT_EQ(j.unhandled, unhandled_jobs::leave);
    EXPECT_STREQ(to_string(j.unhandled), "leave");
    EXPECT_EQ(j.reject_reason, "job ${job}: nobody runs ${operation} here");
    EXPECT_EQ(j.handler_wait, std::chrono::minutes(2));
    EXPECT_EQ(r.config->things.at(0).fields.at("jobs.handler_wait").line, 10);
}

TEST(ConfigJobs, HandlerWaitZeroToOneHour) {
    const auto zero = parse(minimal + "    jobs: {handler_wait: 0s}\n", "t.yaml");
    ASSERT_TRUE(zero.ok()) << all(zero);
    EXPECT_EQ(zero.config->things.at(0).jobs->handler_wait, std::chrono::milliseconds(0));
    const auto r = parse(minimal + "    jobs:\n      handler_wait: 2h\n", "t.yaml");
    expect_error(r, "things[0].jobs.handler_wait", 8, 21, "out of range: 2h", "0s..1h");
    const auto bad = parse(minimal + "    jobs:\n      handler_wait: soon\n", "t.yaml");
    expect_error(bad, "things[0].jobs.handler_wait", 8, 21, "invalid duration");
}

TEST(ConfigJobs, UnhandledIsRejectOrLeave) {
    const auto r = parse(minimal + "    jobs:\n      unhandled: rejcet\n", "t.yaml");
    expect_error(r, "things[0].jobs.unhandled", 8, 18, "'rejcet' is not one of", "did you mean 'reject'?");
}

TEST(ConfigJobs, UnknownKeyIsAnError) {
    const auto r = parse(minimal + "    jobs:\n      handler_wiat: 5s\n", "t.yaml");
    expect_error(r, "things[0].jobs.handler_wiat", 8, 7, "unknown key");
}

TEST(ConfigJobs, JobsMustBeAMapping) {
    const auto r = parse(minimal + "    jobs: [reject]\n", "t.yaml");
    EXPECT_FALSE(r.ok());
    EXPECT_NE(find(r, "things[0].jobs"), nullptr) << all(r);
}

// AWS IoT refuses a statusDetails value that is empty, over 1024 characters or holds a control
// character: such a reason is refused here, where it was written, not at the first rejection.
TEST(ConfigJobs, RejectReasonFitsAStatusDetailsValue) {
    const auto empty = parse(minimal + "    jobs:\n      reject_reason: \"\"\n", "t.yaml");
    expect_error(empty, "things[0].jobs.reject_reason", 8, 22, "is empty", "1 to 1024 characters");
    const auto long_one = parse(minimal + "    jobs:\n      reject_reason: " + std::string(1025, 'r') + "\n", "t.yaml");
    expect_error(long_one, "things[0].jobs.reject_reason", 8, 22, "is 1025 bytes long, more than 1024");
    const auto longest = parse(minimal + "    jobs:\n      reject_reason: " + std::string(1024, 'r') + "\n", "t.yaml");
    EXPECT_TRUE(longest.ok()) << all(longest);
    const auto control = parse(minimal + "    jobs:\n      reject_reason: \"a\\tb\"\n", "t.yaml");
    expect_error(control, "things[0].jobs.reject_reason", 8, 22, "holds a control character");
    const auto c1 = parse(minimal + "    jobs:\n      reject_reason: \"a\\x85b\"\n", "t.yaml");  // NEL
    expect_error(c1, "things[0].jobs.reject_reason", 8, 22, "holds a control character");
    const auto accented = parse(minimal + "    jobs:\n      reject_reason: \"op\\xe9ration ${operation}\"\n", "t.yaml");
    EXPECT_TRUE(accented.ok()) << all(accented);
}

TEST(ConfigJobs, RejectReasonKnowsOperationAndJobOnly) {
    const auto r = parse(minimal + "    jobs:\n      reject_reason: \"${thing} cannot run ${operation}\"\n", "t.yaml");
    expect_error(r, "things[0].jobs.reject_reason", 8, 22, "uses a variable other than ${operation} and ${job}");
}

}  // namespace
