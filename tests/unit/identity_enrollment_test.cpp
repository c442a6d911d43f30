// The sans-I/O enrollment (daemon/identity/enrollment.hpp), driven step by step with scripted
// answers: both flows accepted, a rejection at each step (4xx and 5xx), SUBACK failures, lost
// publishes, wrong topics, garbage and hostile payloads, timeouts, events after the end.
#include "daemon/identity/enrollment.hpp"

#include <gtest/gtest.h>

namespace thingmux::identity {
namespace {

const std::string csr = "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n";
const std::string cert = "-----BEGIN CERTIFICATE-----\\nMIIC\\n-----END CERTIFICATE-----\\n";
const std::string create_topic = "$aws/certificates/create-from-csr/json";
const std::string register_topic = "$aws/provisioning-templates/FleetTemplate/provision/json";
const std::string created =
    R"({"certificateId":"abc123","certificatePem":")" + cert + R"(","certificateOwnershipToken":"token-1"})";
const std::string registered = R"({"deviceConfiguration":{"Region":"eu"},"thingName":"gw-42"})";

// Counts what the machine asked for and keeps the last of each.
struct recorder {
    int subscribes = 0, unsubscribes = 0, publishes = 0, dones = 0, fails = 0;
    subscribe_action last_subscribe;
    unsubscribe_action last_unsubscribe;
    publish_action last_publish;
    done_action last_done;
    failed_action last_failed;

    void take(enrollment_actions actions) {
        for (auto& a : actions) {
            if (auto* s = std::get_if<subscribe_action>(&a)) ++subscribes, last_subscribe = *s;
            if (auto* u = std::get_if<unsubscribe_action>(&a)) ++unsubscribes, last_unsubscribe = *u;
            if (auto* p = std::get_if<publish_action>(&a)) ++publishes, last_publish = *p;
            if (auto* d = std::get_if<done_action>(&a)) ++dones, last_done = *d;
            if (auto* f = std::get_if<failed_action>(&a)) ++fails, last_failed = *f;
        }
    }
};

enrollment_request provisioning() {
    return {enrollment_purpose::provisioning, "FleetTemplate", {{"SerialNumber", "42"}}, std::chrono::seconds(20)};
}

enrollment_request rotation() {
    return {enrollment_purpose::rotation, "", {}, std::chrono::seconds(20)};
}

// Drives a machine to the point where it waits for CreateCertificateFromCsr's answer.
struct driven {
    enrollment machine;
    recorder seen;
    explicit driven(enrollment_request r) : machine(std::move(r)) {
        seen.take(machine.start(csr));
        seen.take(machine.subscribed(std::vector<std::uint8_t>(seen.last_subscribe.filters.size(), 1)));
        seen.take(machine.published(""));
    }
    void expect_failed(enrollment_step step, const std::string& words, bool retry) {
        EXPECT_EQ(seen.fails, 1);
        EXPECT_EQ(seen.dones, 0);
        EXPECT_EQ(seen.last_failed.error.step, step);
        EXPECT_NE(seen.last_failed.error.message.find(words), std::string::npos) << seen.last_failed.error.message;
        EXPECT_EQ(seen.last_failed.error.retry_can_help, retry) << seen.last_failed.error.message;
        for (const char c : seen.last_failed.error.message) EXPECT_GE(static_cast<unsigned char>(c), 0x20);
        EXPECT_TRUE(machine.finished());
    }
};

TEST(IdentityEnrollment, ProvisioningCreatesThenRegisters) {
    enrollment machine(provisioning());
    recorder seen;
    seen.take(machine.start(csr));
    ASSERT_EQ(seen.subscribes, 1);
    EXPECT_EQ(seen.publishes, 0);  // subscribed before anything is published
    EXPECT_EQ(seen.last_subscribe.filters,
              (std::vector<std::string>{create_topic + "/accepted", create_topic + "/rejected",
                                        register_topic + "/accepted", register_topic + "/rejected"}));
    EXPECT_TRUE(machine.wants(register_topic + "/rejected"));
    EXPECT_FALSE(machine.wants("other/topic"));

    seen.take(machine.subscribed({1, 1, 1, 1}));
    ASSERT_EQ(seen.publishes, 1);
    EXPECT_EQ(seen.last_publish.topic, create_topic);
    EXPECT_NE(seen.last_publish.payload.find("certificateSigningRequest"), std::string::npos);
    seen.take(machine.published(""));

    seen.take(machine.message(create_topic + "/accepted", created));
    ASSERT_EQ(seen.publishes, 2);
    EXPECT_EQ(seen.last_publish.topic, register_topic);
    EXPECT_EQ(seen.last_publish.payload,
              R"({"certificateOwnershipToken":"token-1","parameters":{"SerialNumber":"42"}})");
    seen.take(machine.published(""));
    EXPECT_EQ(seen.dones, 0);

    seen.take(machine.message(register_topic + "/accepted", registered));
    ASSERT_EQ(seen.dones, 1);
    EXPECT_EQ(seen.fails, 0);
    EXPECT_EQ(seen.unsubscribes, 1);
    EXPECT_EQ(seen.last_unsubscribe.filters, seen.last_subscribe.filters);
    const auto& r = seen.last_done.result;
    EXPECT_EQ(r.certificate_id, "abc123");
    EXPECT_TRUE(r.certificate_pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
    EXPECT_EQ(r.thing_name, "gw-42");
    EXPECT_EQ(r.device_configuration, (aws::fleet_provisioning::string_map{{"Region", "eu"}}));
    EXPECT_TRUE(machine.finished());
    EXPECT_FALSE(machine.wants(create_topic + "/accepted"));
}

TEST(IdentityEnrollment, RotationWithoutTemplateStopsAfterTheCertificate) {
    driven d(rotation());
    EXPECT_EQ(d.seen.last_subscribe.filters.size(), 2U);
    d.seen.take(d.machine.message(create_topic + "/accepted", created));
    EXPECT_EQ(d.seen.publishes, 1);
    ASSERT_EQ(d.seen.dones, 1);
    EXPECT_EQ(d.seen.unsubscribes, 1);
    EXPECT_EQ(d.seen.last_done.result.certificate_id, "abc123");
    EXPECT_EQ(d.seen.last_done.result.thing_name, "");
}

TEST(IdentityEnrollment, RotationWithTemplateAlsoRegisters) {
    auto request = provisioning();
    request.purpose = enrollment_purpose::rotation;
    driven d(request);
    d.seen.take(d.machine.message(create_topic + "/accepted", created));
    EXPECT_EQ(d.seen.last_publish.topic, register_topic);
    d.seen.take(d.machine.message(register_topic + "/accepted", registered));
    EXPECT_EQ(d.seen.dones, 1);
}

TEST(IdentityEnrollment, AnswersMayComeBeforeThePuback) {
    enrollment machine(rotation());
    recorder seen;
    seen.take(machine.start(csr));
    seen.take(machine.subscribed({0, 0}));
    seen.take(machine.message(create_topic + "/accepted", created));
    EXPECT_EQ(seen.dones, 1);
    seen.take(machine.published(""));
    seen.take(machine.published("connection lost"));  // after the end: ignored
    EXPECT_EQ(seen.fails, 0);
}

TEST(IdentityEnrollment, CreateRejectedWith4xxNeedsAChange) {
    driven d(provisioning());
    d.seen.take(
        d.machine.message(create_topic + "/rejected",
                          R"({"statusCode":400,"errorCode":"InvalidCSR","errorMessage":"bad\nCSR \u001b[2J"})"));
    d.expect_failed(enrollment_step::create_certificate,
                    "CreateCertificateFromCsr: AWS IoT rejected the request: statusCode 400, errorCode \"InvalidCSR\", "
                    "errorMessage \"bad\\nCSR \\x1b[2J\"",
                    false);
    EXPECT_EQ(d.seen.unsubscribes, 1);
    EXPECT_EQ(d.seen.publishes, 1);
}

TEST(IdentityEnrollment, RegisterRejectedWith5xxOr429IsTransient) {
    for (const int status : {429, 500, 503}) {
        driven d(provisioning());
        d.seen.take(d.machine.message(create_topic + "/accepted", created));
        d.seen.take(d.machine.message(
            register_topic + "/rejected",
            R"({"statusCode":)" + std::to_string(status) + R"(,"errorCode":"Throttling","errorMessage":"slow down"})"));
        d.expect_failed(enrollment_step::register_thing, "RegisterThing: AWS IoT rejected the request", true);
        EXPECT_EQ(d.seen.unsubscribes, 1);
    }
}

TEST(IdentityEnrollment, RegisterRejectedWith4xxNeedsAChange) {
    driven d(provisioning());
    d.seen.take(d.machine.message(create_topic + "/accepted", created));
    d.seen.take(d.machine.message(register_topic + "/rejected",
                                  R"({"statusCode":400,"errorCode":"InvalidParametersException","errorMessage":"x"})"));
    d.expect_failed(enrollment_step::register_thing, "InvalidParametersException", false);
}

TEST(IdentityEnrollment, UnrelatedTopicsAndOtherStepsAnswersAreIgnored) {
    driven d(provisioning());
    d.seen.take(d.machine.message("some/app/topic", "garbage"));
    d.seen.take(d.machine.message(register_topic + "/accepted", registered));  // not RegisterThing's turn yet
    d.seen.take(d.machine.message(create_topic, created));                     // the request topic, not an answer
    EXPECT_EQ(d.seen.dones + d.seen.fails + d.seen.unsubscribes, 0);
    EXPECT_EQ(d.seen.publishes, 1);
    d.seen.take(d.machine.message(create_topic + "/accepted", created));
    d.seen.take(d.machine.message(create_topic + "/accepted", created));  // a duplicate: now not this step's
    EXPECT_EQ(d.seen.publishes, 2);
    EXPECT_EQ(d.seen.fails, 0);
}

TEST(IdentityEnrollment, GarbageAndHostileAnswersFailClearly) {
    const std::vector<std::pair<std::string, std::string>> cases{
        {"not json", "cannot be read: the answer is not a JSON document"},
        {std::string(200 * 1024, '{'), "more than the 128 KiB accepted"},
        {R"({"certificateId":"abc","certificatePem":"-----BEGIN RSA PRIVATE KEY-----","certificateOwnershipToken":"t"})",
         "certificatePem is not a PEM certificate"},
        {R"({"certificateId":"a\u0000b","certificatePem":"x","certificateOwnershipToken":"t"})", "a\\x00b"},
    };
    for (const auto& [payload, words] : cases) {
        driven d(provisioning());
        d.seen.take(d.machine.message(create_topic + "/accepted", payload));
        d.expect_failed(enrollment_step::create_certificate, words, false);
        EXPECT_EQ(d.seen.unsubscribes, 1);
    }
    driven r(provisioning());
    r.seen.take(r.machine.message(create_topic + "/rejected", "[]"));
    r.expect_failed(enrollment_step::create_certificate, "rejected the request with an answer that cannot be read",
                    false);

    driven g(provisioning());
    g.seen.take(g.machine.message(create_topic + "/accepted", created));
    g.seen.take(g.machine.message(register_topic + "/accepted", R"({"thingName":"../etc"})"));
    g.expect_failed(enrollment_step::register_thing, "is not a Thing name", false);
}

TEST(IdentityEnrollment, TimeoutsNameTheTopicAndAreTransient) {
    driven create(provisioning());
    create.seen.take(create.machine.timeout());
    create.expect_failed(enrollment_step::create_certificate,
                         "AWS IoT did not answer $aws/certificates/create-from-csr/json within 20 s", true);
    EXPECT_EQ(create.seen.unsubscribes, 1);

    driven reg(provisioning());
    reg.seen.take(reg.machine.message(create_topic + "/accepted", created));
    reg.seen.take(reg.machine.timeout());
    reg.expect_failed(enrollment_step::register_thing, "did not answer " + register_topic + " within 20 s", true);

    enrollment machine(rotation());
    recorder seen;
    seen.take(machine.start(csr));
    seen.take(machine.timeout());
    EXPECT_EQ(seen.fails, 1);
    EXPECT_EQ(seen.last_failed.error.step, enrollment_step::subscribe);
    EXPECT_TRUE(seen.last_failed.error.retry_can_help);
    EXPECT_EQ(seen.unsubscribes, 1);
}

TEST(IdentityEnrollment, RefusedSubscriptionsFailBeforePublishing) {
    for (const auto& codes :
         {std::vector<std::uint8_t>{1, 0x87}, std::vector<std::uint8_t>{0x80, 1}, std::vector<std::uint8_t>{1}}) {
        enrollment machine(rotation());
        recorder seen;
        seen.take(machine.start(csr));
        seen.take(machine.subscribed(codes));
        EXPECT_EQ(seen.publishes, 0);
        EXPECT_EQ(seen.fails, 1);
        EXPECT_EQ(seen.last_failed.error.step, enrollment_step::subscribe);
        EXPECT_FALSE(seen.last_failed.error.retry_can_help);
    }
    enrollment machine(rotation());
    recorder seen;
    seen.take(machine.start(csr));
    seen.take(machine.subscribed({1, 0x87}));
    EXPECT_NE(seen.last_failed.error.message.find("refused the subscription to " + create_topic +
                                                  "/rejected (reason code 0x87)"),
              std::string::npos)
        << seen.last_failed.error.message;
}

TEST(IdentityEnrollment, LostPublishIsTransient) {
    driven d(rotation());
    d.seen.take(d.machine.published("connection \x1b lost"));
    d.expect_failed(enrollment_step::create_certificate,
                    "the request to " + create_topic + " was not delivered: connection \\x1b lost", true);
}

TEST(IdentityEnrollment, BadRequestsFailBeforeAnythingIsSent) {
    const std::vector<std::pair<enrollment_request, std::string>> cases{
        {{enrollment_purpose::provisioning, "", {}, std::chrono::seconds(5)},
         "needs the name of a provisioning template"},
        {{enrollment_purpose::rotation, "bad/name", {}, std::chrono::seconds(5)}, "is not one AWS accepts"},
        {{enrollment_purpose::rotation, "t", {{"k", "\xff"}}, std::chrono::seconds(5)}, "not UTF-8"},
    };
    for (const auto& [request, words] : cases) {
        enrollment machine(request);
        recorder seen;
        seen.take(machine.start(csr));
        EXPECT_EQ(seen.subscribes + seen.publishes + seen.unsubscribes, 0);
        ASSERT_EQ(seen.fails, 1);
        EXPECT_EQ(seen.last_failed.error.step, enrollment_step::request);
        EXPECT_NE(seen.last_failed.error.message.find(words), std::string::npos) << seen.last_failed.error.message;
    }
    enrollment machine(rotation());
    recorder seen;
    seen.take(machine.start("not a csr"));
    EXPECT_EQ(seen.fails, 1);
    EXPECT_EQ(seen.subscribes, 0);
}

TEST(IdentityEnrollment, StopFailsTransientlyAndUnsubscribes) {
    driven d(provisioning());
    d.seen.take(d.machine.stop("the connection to AWS IoT was lost"));
    d.expect_failed(enrollment_step::create_certificate, "stopped: the connection to AWS IoT was lost", true);
    EXPECT_EQ(d.seen.unsubscribes, 1);
    d.seen.take(d.machine.stop("again"));
    EXPECT_EQ(d.seen.fails, 1);
}

TEST(IdentityEnrollment, EventsAfterTheEndAndASecondStartAreIgnored) {
    driven d(rotation());
    d.seen.take(d.machine.message(create_topic + "/accepted", created));
    ASSERT_EQ(d.seen.dones, 1);
    d.seen.take(d.machine.start(csr));
    d.seen.take(d.machine.subscribed({1, 1}));
    d.seen.take(d.machine.timeout());
    d.seen.take(d.machine.message(create_topic + "/rejected", R"({"statusCode":500})"));
    EXPECT_EQ(d.seen.subscribes, 1);
    EXPECT_EQ(d.seen.publishes, 1);
    EXPECT_EQ(d.seen.unsubscribes, 1);
    EXPECT_EQ(d.seen.dones, 1);
    EXPECT_EQ(d.seen.fails, 0);
}

}  // namespace
}  // namespace thingmux::identity
