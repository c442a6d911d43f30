// The enrollment runner (daemon/identity/enrollment_runner.hpp) on a real io_context with a fake
// MQTT session that answers like AWS IoT (a CA made at test time signs the CSR): success commits
// a matching pair, a rejection or a timeout leaves the old pair untouched, a retry reuses the key.
// The fake answers inside the runner's own calls (subscribe, publish) to show it copes with that.
#include "daemon/identity/enrollment_runner.hpp"

#include "identity_test_support.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <gtest/gtest.h>

#include <fstream>
#include <optional>

namespace thingmux::identity {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

const std::string create_topic = "$aws/certificates/create-from-csr/json";
const std::string register_topic = "$aws/provisioning-templates/Fleet/provision/json";

// How the fake AWS IoT answers CreateCertificateFromCsr.
enum class create_answer { accept, reject_400, reject_503, silence, foreign_certificate };

class fake_session final : public channel {
public:
    explicit fake_session(const test::test_ca& ca) : ca_(ca) {}

    void subscribe(std::vector<std::string> filters, std::function<void(std::vector<std::uint8_t>)> done) override {
        ++subscribes;
        subscribed = filters;
        done(std::vector<std::uint8_t>(filters.size(), 1));
    }
    void unsubscribe(std::vector<std::string> filters) override {
        ++unsubscribes;
        unsubscribed = std::move(filters);
    }
    void publish(std::string topic, std::string payload,
                 std::function<void(std::error_code, std::string)> done) override {
        ++publishes;
        done({}, {});
        if (topic == create_topic) {
            const auto csr = std::string(json::parse(payload).at("certificateSigningRequest").as_string());
            switch (answer) {
                case create_answer::accept:
                    return deliver(create_topic + "/accepted", created(ca_.issue(csr)));
                case create_answer::foreign_certificate: {
                    const auto other = generate_key().value();
                    return deliver(create_topic + "/accepted", created(ca_.issue(make_csr(other.view(), "x").value())));
                }
                case create_answer::reject_400:
                    return deliver(create_topic + "/rejected",
                                   R"({"statusCode":400,"errorCode":"InvalidCSR","errorMessage":"no"})");
                case create_answer::reject_503:
                    return deliver(create_topic + "/rejected",
                                   R"({"statusCode":503,"errorCode":"ServiceUnavailable","errorMessage":"busy"})");
                case create_answer::silence:
                    return;
            }
        }
        if (topic == register_topic) {
            register_payload = payload;
            deliver(register_topic + "/accepted", R"({"deviceConfiguration":{"a":"b"},"thingName":"gw-7"})");
        }
    }

    create_answer answer = create_answer::accept;
    std::shared_ptr<enrollment_runner> runner;
    int subscribes = 0, unsubscribes = 0, publishes = 0;
    std::vector<std::string> subscribed, unsubscribed;
    std::string register_payload;

private:
    static std::string created(const std::string& pem) {
        return json::serialize(
            json::object{{"certificateId", "c0ffee"}, {"certificatePem", pem}, {"certificateOwnershipToken", "tok"}});
    }
    void deliver(const std::string& topic, const std::string& payload) {
        runner->on_message("unrelated/topic", "noise");
        runner->on_message(topic, payload);
    }
    const test::test_ca& ca_;
};

class IdentityEnrollmentRunner : public ::testing::Test {
protected:
    void SetUp() override {
        std::ofstream(paths_.key) << old_.key;
        std::ofstream(paths_.cert) << old_.cert;
    }

    enrollment_outcome run(enrollment_request request, create_answer answer,
                           std::optional<std::string> stop_with = {}) {
        boost::asio::io_context io;
        fake_session session(ca_);
        session.answer = answer;
        std::optional<enrollment_outcome> outcome;
        int completions = 0;
        session.runner = enrollment_runner::create(
            io.get_executor(), session, {paths_, "gw-7", key_type::ec_p256, std::move(request)}, [&](enrollment_outcome o) {
                ++completions;
                outcome = std::move(o);
            });
        session.runner->start();
        if (stop_with) session.runner->stop(*stop_with);
        io.run();
        EXPECT_EQ(completions, 1);
        EXPECT_EQ(session.subscribes, 1);
        EXPECT_EQ(session.unsubscribes, 1);
        EXPECT_EQ(session.unsubscribed, session.subscribed);
        EXPECT_FALSE(session.runner->wants(create_topic + "/accepted"));
        publishes_ = session.publishes;
        register_payload_ = session.register_payload;
        session.runner.reset();
        return outcome.value_or(enrollment_error{enrollment_step::request, "no completion", false});
    }
    static std::string read(const fs::path& p) { return test::read_file(p); }
    void expect_old_pair_untouched() {
        EXPECT_EQ(read(paths_.key), old_.key);
        EXPECT_EQ(read(paths_.cert), old_.cert);
        EXPECT_FALSE(fs::exists(pending_path(paths_.cert)));
    }

    test::test_ca ca_;
    test::temp_dir dir_{"thingmux-identity-runner"};
    identity_paths paths_{dir_.path() / "cert.pem", dir_.path() / "key.pem"};
    test::test_ca::key_and_cert old_ = ca_.issue_pair("gw-7");
    std::string register_payload_;
    int publishes_ = 0;
};

enrollment_request provisioning(std::chrono::seconds timeout = std::chrono::seconds(30)) {
    return {enrollment_purpose::provisioning, "Fleet", {{"SerialNumber", "7"}}, timeout};
}

TEST_F(IdentityEnrollmentRunner, ProvisioningCommitsAMatchingPair) {
    const auto outcome = run(provisioning(), create_answer::accept);
    ASSERT_TRUE(outcome.has_value()) << outcome.error().message;
    EXPECT_EQ(outcome->thing_name, "gw-7");
    EXPECT_EQ(outcome->certificate_id, "c0ffee");
    EXPECT_EQ(outcome->device_configuration.at("a"), "b");
    EXPECT_EQ(publishes_, 2);
    EXPECT_EQ(register_payload_, R"({"certificateOwnershipToken":"tok","parameters":{"SerialNumber":"7"}})");
    EXPECT_EQ(read(paths_.cert), outcome->certificate_pem);
    EXPECT_NE(read(paths_.key), old_.key);
    EXPECT_TRUE(key_matches_certificate(read(paths_.key), read(paths_.cert)).value());
    EXPECT_FALSE(fs::exists(pending_path(paths_.key)));
    EXPECT_FALSE(fs::exists(pending_path(paths_.cert)));
    EXPECT_EQ(fs::status(paths_.key).permissions(), fs::perms::owner_read | fs::perms::owner_write);
}

TEST_F(IdentityEnrollmentRunner, RotationWithoutTemplateCommitsAfterTheCertificate) {
    const auto outcome = run({enrollment_purpose::rotation, "", {}, std::chrono::seconds(30)}, create_answer::accept);
    ASSERT_TRUE(outcome.has_value()) << outcome.error().message;
    EXPECT_EQ(publishes_, 1);
    EXPECT_EQ(outcome->thing_name, "");
    EXPECT_TRUE(key_matches_certificate(read(paths_.key), read(paths_.cert)).value());
}

TEST_F(IdentityEnrollmentRunner, ARejectionLeavesTheOldPairAndKeepsTheKeyForTheRetry) {
    const auto outcome = run(provisioning(), create_answer::reject_400);
    ASSERT_FALSE(outcome.has_value());
    EXPECT_EQ(outcome.error().step, enrollment_step::create_certificate);
    EXPECT_FALSE(outcome.error().retry_can_help);
    EXPECT_NE(outcome.error().message.find("InvalidCSR"), std::string::npos) << outcome.error().message;
    expect_old_pair_untouched();
    EXPECT_TRUE(fs::exists(pending_path(paths_.key)));
}

TEST_F(IdentityEnrollmentRunner, ARetryAfterATransientRejectionUsesTheSameKey) {
    const auto first = run(provisioning(), create_answer::reject_503);
    ASSERT_FALSE(first.has_value());
    EXPECT_TRUE(first.error().retry_can_help);
    const auto pending_key = read(pending_path(paths_.key));

    const auto second = run(provisioning(), create_answer::accept);
    ASSERT_TRUE(second.has_value()) << second.error().message;
    // The key installed is the first attempt's, and the certificate (issued for the second CSR) is its own.
    EXPECT_EQ(read(paths_.key), pending_key);
    EXPECT_TRUE(key_matches_certificate(pending_key, read(paths_.cert)).value());
}

TEST_F(IdentityEnrollmentRunner, ATimeoutFailsCleanly) {
    const auto started = std::chrono::steady_clock::now();
    const auto outcome = run(provisioning(std::chrono::seconds(1)), create_answer::silence);
    EXPECT_GE(std::chrono::steady_clock::now() - started, std::chrono::seconds(1));
    ASSERT_FALSE(outcome.has_value());
    EXPECT_EQ(outcome.error().message,
              "CreateCertificateFromCsr: AWS IoT did not answer $aws/certificates/create-from-csr/json within 1 s");
    EXPECT_TRUE(outcome.error().retry_can_help);
    expect_old_pair_untouched();
}

TEST_F(IdentityEnrollmentRunner, ACertificateForAnotherKeyIsNotInstalled) {
    const auto outcome = run(provisioning(), create_answer::foreign_certificate);
    ASSERT_FALSE(outcome.has_value());
    EXPECT_EQ(outcome.error().step, enrollment_step::store);
    EXPECT_NE(outcome.error().message.find("is not for the key in"), std::string::npos) << outcome.error().message;
    expect_old_pair_untouched();
}

TEST_F(IdentityEnrollmentRunner, StopEndsItWithATransientError) {
    const auto outcome = run(provisioning(), create_answer::silence, "the connection to AWS IoT was lost");
    ASSERT_FALSE(outcome.has_value());
    EXPECT_TRUE(outcome.error().retry_can_help);
    EXPECT_NE(outcome.error().message.find("stopped: the connection to AWS IoT was lost"), std::string::npos);
    expect_old_pair_untouched();
}

TEST_F(IdentityEnrollmentRunner, AKeyDirectoryItCannotWriteFailsBeforeAnythingIsSent) {
    fs::create_directory(pending_path(paths_.key));  // not a file: the key cannot be written there
    boost::asio::io_context io;
    fake_session session(ca_);
    std::optional<enrollment_outcome> outcome;
    session.runner =
        enrollment_runner::create(io.get_executor(), session, {paths_, "gw-7", key_type::ec_p256, provisioning()},
                                  [&](enrollment_outcome o) { outcome = std::move(o); });
    session.runner->start();
    io.run();
    ASSERT_TRUE(outcome.has_value());
    ASSERT_FALSE(outcome->has_value());
    EXPECT_EQ(outcome->error().step, enrollment_step::key);
    EXPECT_NE(outcome->error().message.find("not a regular file"), std::string::npos) << outcome->error().message;
    EXPECT_EQ(session.subscribes + session.publishes, 0);
    expect_old_pair_untouched();
}

}  // namespace
}  // namespace thingmux::identity
