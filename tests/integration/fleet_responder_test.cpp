// The fleet provisioning responder (tests/support/fleet-responder) on the test broker, driven with
// Debian's mosquitto_pub / mosquitto_sub and openssl as a device would: with the claim identity,
// CreateCertificateFromCsr gives a certificate of the test CA for the device's own key, and
// RegisterThing with its ownership token gives the Thing, once; what AWS refuses is refused with
// its error shapes; the scripted faults do what tests of the daemon rely on; and the claim gets
// nothing but the provisioning topics from the broker. Answers are counted, never waited for
// with sleeps.
#include "tests/support/broker_fixture.hpp"
#include "tests/support/fleet_responder_fixture.hpp"
#include "tests/support/measure.hpp"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

namespace thingmux::test {
namespace {

namespace json = boost::json;
using kind = fleet_responder_fixture::kind;
using strings = std::vector<std::string>;

constexpr int answer_timeout_ms = 15'000;
const std::string fleet_template = "thingmux-fleet";
const std::string serial_template = "by-serial";

fleet_responder_fixture::options two_templates() {
    fleet_responder_fixture::options o;
    o.templates = {{.name = fleet_template},
                   {.name = serial_template,
                    .thing_name = "gw-{SerialNumber}",
                    .required = {"Site"},
                    .refused = {{"SerialNumber", "stolen"}},
                    .device_configuration = {{"Fallback", "on"}}}};
    return o;
}

std::string openssl(const strings& args) {
    strings argv{"openssl"};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_or_throw(argv);
}

// A device's side of the API over the test broker: mosquitto_sub on every answer topic and
// mosquitto_pub for each request, both as `who`.
class device {
public:
    device(const broker_fixture& broker, identity who) : broker_(broker), who_(std::move(who)) {
        static std::atomic<int> counter{0};
        const std::string tag = who_.name + "-" + std::to_string(counter++);
        dir_ = broker_.dir() / ("device-" + tag);
        std::filesystem::create_directory(dir_);
        strings sub{"mosquitto_sub"};
        const auto args = broker_.client_args(who_, "answers-" + tag);
        sub.insert(sub.end(), args.begin(), args.end());
        sub.insert(sub.end(), {"-q", "1", "-F", "%J", "-t", fleet_responder_fixture::create_topic() + "/+", "-t",
                               fleet_responder_fixture::provision_topic("+") + "/+"});
        const auto subacks = [&] { return count_of(read_file(broker_.log_file()), "Sending SUBACK to answers-" + tag); };
        sub_.emplace(sub, dir_ / "answers", dir_ / "answers.err");
        if (!eventually([&] { return subacks() == 1; }, answer_timeout_ms))
            throw std::runtime_error("mosquitto_sub did not subscribe: " + read_file(dir_ / "answers.err"));
        pub_ = broker_.client_args(who_, "requests-" + tag);
    }

    // Publishes `payload` to `topic` (QoS 1); returns mosquitto_pub's exit code.
    int publish(const std::string& topic, const std::string& payload) {
        const auto file = dir_ / ("request-" + std::to_string(requests_++));
        std::ofstream(file, std::ios::binary) << payload;
        strings pub{"mosquitto_pub"};
        pub.insert(pub.end(), pub_.begin(), pub_.end());
        pub.insert(pub.end(), {"-q", "1", "-t", topic, "-f", file.string()});
        return run_command(pub, nullptr, answer_timeout_ms);
    }

    // Answers received so far: {"topic", "payload"} objects.
    [[nodiscard]] std::vector<json::object> answers() const {
        std::vector<json::object> out;
        for (const auto& line : complete_lines(read_file(dir_ / "answers"))) out.push_back(json::parse(line).as_object());
        return out;
    }

    // Waits for the `n`-th answer (1-based) and returns its topic and payload.
    std::pair<std::string, json::object> answer(std::size_t n) const {
        eventually([&] { return answers().size() >= n; }, answer_timeout_ms);
        const auto all = answers();
        if (all.size() < n) throw std::runtime_error("answer " + std::to_string(n) + " did not come");
        return {std::string(all[n - 1].at("topic").as_string()), all[n - 1].at("payload").as_object()};
    }

    // Publishes and waits for the answer (the `n`-th this device got).
    std::pair<std::string, json::object> call(const std::string& topic, const std::string& payload) {
        const std::size_t n = answers().size() + 1;
        if (publish(topic, payload) != 0) throw std::runtime_error("mosquitto_pub to " + topic + " failed");
        return answer(n);
    }

    // A new P-256 key and a CSR for it with CN=`cn`; returns the CSR (PEM).
    std::string make_csr(const std::string& cn, const std::string& algorithm = "EC",
                         const std::string& option = "ec_paramgen_curve:P-256") {
        openssl({"genpkey", "-algorithm", algorithm, "-pkeyopt", option, "-out", key_file().string()});
        openssl({"req", "-new", "-key", key_file().string(), "-subj", "/CN=" + cn, "-out", (dir_ / "device.csr").string()});
        return read_file(dir_ / "device.csr");
    }

    std::pair<std::string, json::object> create_certificate(const std::string& csr) {
        return call(fleet_responder_fixture::create_topic(),
                    json::serialize(json::object{{"certificateSigningRequest", csr}}));
    }

    std::pair<std::string, json::object> register_thing(const std::string& template_name, const std::string& token,
                                                        const json::object& parameters = {}) {
        return call(fleet_responder_fixture::provision_topic(template_name),
                    json::serialize(json::object{{"certificateOwnershipToken", token}, {"parameters", parameters}}));
    }

    [[nodiscard]] std::filesystem::path key_file() const { return dir_ / "device.key"; }
    [[nodiscard]] const std::filesystem::path& dir() const { return dir_; }

private:
    const broker_fixture& broker_;
    identity who_;
    std::filesystem::path dir_;
    std::optional<child_process> sub_;
    strings pub_;
    int requests_ = 0;
};

std::string text(const json::object& o, const char* key) {
    const auto* v = o.if_contains(key);
    return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string();
}

// The rejection's fields, as "STATUS CODE".
std::string rejection(const json::object& o) {
    const auto* status = o.if_contains("statusCode");
    return (status != nullptr && status->is_int64() ? std::to_string(status->as_int64()) : "?") + " " +
           text(o, "errorCode");
}

class FleetResponderTest : public ::testing::Test {
protected:
    broker_fixture broker;
    fleet_responder_fixture responder{broker, two_templates()};
    device claim{broker, broker.claim()};

    // CreateCertificateFromCsr accepted for a fresh key; returns the ownership token.
    std::string token_for(const std::string& cn) {
        const auto [topic, answer] = claim.create_certificate(claim.make_csr(cn));
        EXPECT_EQ(topic, fleet_responder_fixture::create_topic() + "/accepted") << json::serialize(answer);
        return text(answer, "certificateOwnershipToken");
    }
};

TEST_F(FleetResponderTest, CreateCertificateFromCsrIssuesACertificateOfTheTestCaForTheDevicesKey) {
    const auto [topic, answer] = claim.create_certificate(claim.make_csr("gateway-07"));
    ASSERT_EQ(topic, fleet_responder_fixture::create_topic() + "/accepted") << json::serialize(answer);
    const auto cert = claim.dir() / "device.crt";
    std::ofstream(cert) << text(answer, "certificatePem");

    EXPECT_NE(openssl({"verify", "-CAfile", broker.ca_file().string(), cert.string()}).find(": OK"), std::string::npos);
    EXPECT_EQ(openssl({"x509", "-in", cert.string(), "-noout", "-pubkey"}),
              openssl({"pkey", "-in", claim.key_file().string(), "-pubout"}));
    // certificateId: the SHA-256 of the certificate's DER, in lower-case hex.
    auto fingerprint = openssl({"x509", "-in", cert.string(), "-noout", "-fingerprint", "-sha256"});
    fingerprint = fingerprint.substr(fingerprint.find('=') + 1);
    std::erase_if(fingerprint, [](char c) { return c == ':' || c == '\n'; });
    std::transform(fingerprint.begin(), fingerprint.end(), fingerprint.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    EXPECT_EQ(text(answer, "certificateId"), fingerprint);
    EXPECT_GE(text(answer, "certificateOwnershipToken").size(), 32U);
    EXPECT_NE(openssl({"x509", "-in", cert.string(), "-noout", "-subject"}).find("CN = gateway-07"), std::string::npos);

    // Active at once: the new certificate connects as its CN and gets that Thing's topics.
    observer_subscription obs(broker, "dt/#");
    ASSERT_TRUE(obs.wait_ready());
    device provisioned(broker, {"gateway-07", cert, claim.key_file()});
    EXPECT_EQ(provisioned.publish("dt/gateway-07/hello", "1"), 0);
    EXPECT_EQ(obs.wait_for(1, answer_timeout_ms), 1U);
    EXPECT_EQ(obs.lines(), strings{"dt/gateway-07/hello 1"});

    const auto records = responder.records();
    ASSERT_EQ(records.size(), 1U);
    EXPECT_EQ(records[0].outcome, "accepted");
    EXPECT_EQ(records[0].certificate_id, fingerprint);
    EXPECT_EQ(records[0].certificate_cn, "gateway-07");
    // The log holds no secret: neither the token nor the certificate.
    const auto log = read_file(responder.log_file());
    EXPECT_EQ(log.find(text(answer, "certificateOwnershipToken")), std::string::npos);
    EXPECT_EQ(log.find("BEGIN CERTIFICATE"), std::string::npos);
}

TEST_F(FleetResponderTest, RegisterThingAcceptsATokenOnce) {
    const auto token = token_for("gateway-08");
    const auto [topic, answer] = claim.register_thing(fleet_template, token, {{"ThingName", "gateway-08"}});
    ASSERT_EQ(topic, fleet_responder_fixture::provision_topic(fleet_template) + "/accepted") << json::serialize(answer);
    EXPECT_EQ(text(answer, "thingName"), "gateway-08");
    EXPECT_TRUE(answer.at("deviceConfiguration").as_object().empty());

    const auto [again, refusal] = claim.register_thing(fleet_template, token, {{"ThingName", "gateway-08"}});
    EXPECT_EQ(again, fleet_responder_fixture::provision_topic(fleet_template) + "/rejected");
    EXPECT_EQ(rejection(refusal), "400 InvalidCertificateOwnershipToken");
    const auto [empty, no_token] = claim.register_thing(fleet_template, "", {{"ThingName", "gateway-08"}});
    EXPECT_EQ(rejection(no_token), "400 InvalidCertificateOwnershipToken");

    EXPECT_EQ(responder.requests(kind::create_certificate), 1U);
    EXPECT_EQ(responder.accepted(kind::register_thing), 1U);
    EXPECT_EQ(responder.rejected(kind::register_thing), 2U);
    EXPECT_EQ(responder.records()[1].thing_name, "gateway-08");
    EXPECT_EQ(claim.answers().size(), 4U);
}

TEST_F(FleetResponderTest, TemplateRulesRefuseUnknownTemplatesMissingAndRefusedParameters) {
    const auto token = token_for("unprovisioned");
    EXPECT_EQ(rejection(claim.register_thing("no-such-template", token).second), "404 ResourceNotFound");
    EXPECT_EQ(rejection(claim.register_thing(serial_template, token, {{"SerialNumber", "0042"}}).second),
              "400 InvalidParameters");  // Site is required
    EXPECT_EQ(rejection(claim.register_thing(serial_template, token, {{"SerialNumber", "stolen"}, {"Site", "x"}}).second),
              "403 AccessDenied");  // the pre-provisioning hook says no
    EXPECT_EQ(rejection(claim.register_thing(serial_template, token, {{"SerialNumber", 42}, {"Site", "x"}}).second),
              "400 InvalidPayload");

    // None of them used the token up.
    const auto [topic, answer] = claim.register_thing(serial_template, token, {{"SerialNumber", "0042"}, {"Site", "x"}});
    ASSERT_EQ(topic, fleet_responder_fixture::provision_topic(serial_template) + "/accepted") << json::serialize(answer);
    EXPECT_EQ(text(answer, "thingName"), "gw-0042");
    EXPECT_EQ(json::serialize(answer.at("deviceConfiguration")), R"({"Fallback":"on"})");
    EXPECT_EQ(responder.rejected(kind::register_thing), 4U);
    EXPECT_EQ(responder.accepted(kind::register_thing), 1U);
}

TEST_F(FleetResponderTest, BadCsrsAndPayloadsAreRejected) {
    const auto create = fleet_responder_fixture::create_topic();
    EXPECT_EQ(rejection(claim.create_certificate("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE "
                                                 "REQUEST-----\n")
                            .second),
              "400 InvalidCSR");
    // A key AWS does not sign: RSA below 2048 bits.
    EXPECT_EQ(rejection(claim.create_certificate(claim.make_csr("weak", "RSA", "rsa_keygen_bits:1024")).second),
              "400 InvalidCSR");
    // A CSR altered after it was signed.
    auto forged = claim.make_csr("forged");
    forged[forged.find("-----END") - 10] ^= 0x01;
    EXPECT_EQ(rejection(claim.create_certificate(forged).second), "400 InvalidCSR");
    EXPECT_EQ(rejection(claim.call(create, "not json").second), "400 InvalidPayload");
    EXPECT_EQ(rejection(claim.call(create, R"({"certificateSigningRequest": 7})").second), "400 InvalidPayload");
    EXPECT_EQ(rejection(claim.call(create, "[]").second), "400 InvalidPayload");
    EXPECT_EQ(rejection(claim.call(create, std::string(132'000, ' ')).second), "400 InvalidPayload");  // > 128 KiB
    EXPECT_EQ(responder.rejected(kind::create_certificate), 7U);
    EXPECT_EQ(responder.accepted(kind::create_certificate), 0U);
}

// What comes from the network reaches the log escaped: a CSR's subject with a control character
// (AWS signs it), a template name that is not ASCII (MQTT allows no control character in topics).
TEST_F(FleetResponderTest, TheLogEscapesWhatDevicesSend) {
    EXPECT_EQ(claim.create_certificate(claim.make_csr("evil\x1b[31m")).first,
              fleet_responder_fixture::create_topic() + "/accepted");
    EXPECT_EQ(rejection(claim.call(fleet_responder_fixture::provision_topic("\xc3\xa9vil"), "{}").second),
              "404 ResourceNotFound");
    ASSERT_EQ(responder.records().size(), 2U);
    const auto log = read_file(responder.log_file());
    EXPECT_TRUE(std::all_of(log.begin(), log.end(), [](char c) { return c == '\n' || (c >= 0x20 && c < 0x7f); }))
        << log;
    EXPECT_EQ(responder.records()[1].template_name, "\xc3\xa9vil");
}

TEST_F(FleetResponderTest, ScriptedFaultsSilenceFailAndExit) {
    responder.inject({.silent_create = 1, .fail_register = 1});
    const auto csr = claim.make_csr("gateway-09");
    ASSERT_EQ(claim.publish(fleet_responder_fixture::create_topic(), json::serialize(json::object{{"certificateSigningRequest", csr}})), 0);
    ASSERT_EQ(responder.wait_for_records(1), 1U);
    EXPECT_EQ(responder.records()[0].outcome, "silent");
    // Answers come in the order of the requests: the second request's answer is the first one.
    const auto token = token_for("gateway-09");
    EXPECT_EQ(claim.answers().size(), 1U);

    const json::object thing{{"ThingName", "gateway-09"}};
    const auto [failed_topic, failure] = claim.register_thing(fleet_template, token, thing);
    EXPECT_EQ(rejection(failure), "500 InternalFailure");
    // A transient failure changes nothing: the token still works; then the responder exits.
    responder.inject({.exit_after = 1});
    EXPECT_EQ(text(claim.register_thing(fleet_template, token, thing).second, "thingName"), "gateway-09");
    ASSERT_TRUE(responder.wait_exited());

    // Started again, it remembers the token it issued (and that it was used).
    responder.start();
    EXPECT_EQ(rejection(claim.register_thing(fleet_template, token, thing).second),
              "400 InvalidCertificateOwnershipToken");
    EXPECT_EQ(responder.requests(kind::create_certificate), 2U);
    EXPECT_EQ(responder.requests(kind::register_thing), 3U);
}

// A short validity (for rotation tests) and the subject AWS gives the certificates it makes.
TEST(FleetResponder, IssuesForTheValidityAndWithTheSubjectAsked) {
    broker_fixture broker;
    fleet_responder_fixture responder(broker, {.certificate_days = 2, .aws_subject = true});
    device claim(broker, broker.claim());
    const auto [topic, answer] = claim.create_certificate(claim.make_csr("gateway-07"));
    ASSERT_EQ(topic, fleet_responder_fixture::create_topic() + "/accepted") << json::serialize(answer);
    const auto cert = (claim.dir() / "device.crt").string();
    std::ofstream(cert) << text(answer, "certificatePem");
    EXPECT_NE(openssl({"x509", "-in", cert, "-noout", "-subject"}).find("CN = AWS IoT Certificate"), std::string::npos);
    EXPECT_EQ(run_command({"openssl", "x509", "-in", cert, "-noout", "-checkend", "86400"}), 0);  // valid in a day
    EXPECT_EQ(run_command({"openssl", "x509", "-in", cert, "-noout", "-checkend", "259200"}), 1);  // not in 3
    EXPECT_EQ(responder.records().at(0).certificate_cn, "AWS IoT Certificate");
}

// Like the cloud, it outlives a broker restart: a request sent while it reconnects waits in its
// persistent session and is answered.
TEST_F(FleetResponderTest, AnswersAfterTheBrokerRestarts) {
    broker.restart();
    device after(broker, broker.claim());
    EXPECT_EQ(after.create_certificate(after.make_csr("gateway-10")).first,
              fleet_responder_fixture::create_topic() + "/accepted");
    EXPECT_TRUE(responder.running());
    EXPECT_EQ(responder.accepted(kind::create_certificate), 1U);
}

TEST_F(FleetResponderTest, AThingMayCallTheApiToRotateItsCertificate) {
    device thing(broker, broker.thing("gateway-01"));
    const auto [topic, answer] = thing.create_certificate(thing.make_csr("gateway-01"));
    EXPECT_EQ(topic, fleet_responder_fixture::create_topic() + "/accepted") << json::serialize(answer);
}

// AWS's claim policy allows nothing but the provisioning topics; nor does the broker here.
TEST_F(FleetResponderTest, TheClaimGetsNothingButTheProvisioningTopics) {
    observer_subscription obs(broker, "#");
    ASSERT_TRUE(obs.wait_ready());
    for (const auto* topic : {"dt/x", "dt/claim-fleet/x", "cmd/claim-fleet/x", "$aws/things/claim-fleet/shadow/get",
                              "$aws/certificates/create-from-csr/json/accepted"})
        EXPECT_EQ(claim.publish(topic, "from-claim"), 0) << topic;  // MQTT 3.1.1: dropped, not refused
    device thing(broker, broker.thing("gateway-01"));
    EXPECT_EQ(thing.publish("dt/gateway-01/x", "control"), 0);
    ASSERT_EQ(obs.wait_for(1, answer_timeout_ms), 1U);
    EXPECT_EQ(obs.lines(), strings{"dt/gateway-01/x control"});
    EXPECT_EQ(count_of(read_file(broker.log_file()), "Denied PUBLISH from requests-claim-fleet"), 5U);
    EXPECT_TRUE(claim.answers().empty());
    EXPECT_TRUE(responder.records().empty());
}

}  // namespace
}  // namespace thingmux::test
