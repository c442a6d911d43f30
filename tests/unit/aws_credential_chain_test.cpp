// The credential chain (daemon/aws/credential_chain.hpp): a Thing's aws_credentials sources
// tried in order at each call, the first that gives credentials winning; an
// iot_credentials_provider entry answered with needs_provider; every source's reason when none
// gives anything. Files in a scratch directory, the environment a map.
#include "daemon/aws/credential_chain.hpp"
#include "daemon/uplink/error.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>

namespace {

using namespace thingmux;
using namespace thingmux::aws;
using source = config::aws_credential_source;

constexpr const char* secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

class CredentialChain : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = std::filesystem::temp_directory_path() / ("thingmux-chain-" + std::to_string(::getpid()));
        std::filesystem::remove_all(dir_);
        std::filesystem::create_directories(dir_ / "home/.aws");
        vars_["HOME"] = (dir_ / "home").string();
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }

    std::filesystem::path write(const std::string& name, const std::string& text) {
        const auto p = dir_ / name;
        std::ofstream(p) << text;
        return p;
    }
    static std::string profile(const std::string& name, const std::string& key_id) {
        return "[" + name + "]\naws_access_key_id = " + key_id + "\naws_secret_access_key = " + secret + "\n";
    }
    environment env() const {
        return [this](const char* name) -> const char* {
            const auto it = vars_.find(name);
            return it == vars_.end() ? nullptr : it->second.c_str();
        };
    }
    static source file(std::filesystem::path p, std::string profile_name = "default") {
        return source{.type = source::kind::file, .file = std::move(p), .profile = std::move(profile_name)};
    }

    std::filesystem::path dir_;
    std::map<std::string, std::string> vars_;
};

TEST_F(CredentialChain, FirstSourceThatGivesCredentialsWins) {
    const auto f = write("creds", profile("default", "AKIAFILE000000000000"));
    vars_["AWS_ACCESS_KEY_ID"] = "AKIAENV0000000000000";
    vars_["AWS_SECRET_ACCESS_KEY"] = secret;
    const credential_chain chain({file(f), source{.type = source::kind::environment}}, env());
    const auto r = chain.resolve();
    ASSERT_EQ(r.what, chain_result::outcome::found) << r.describe();
    EXPECT_EQ(r.found.access_key_id, "AKIAFILE000000000000");
    EXPECT_EQ(r.source, 0U);
    EXPECT_EQ(r.describe(), "AWS credentials AKIA… from file " + f.string() + " [default]");
    EXPECT_FALSE(r.error());
}

TEST_F(CredentialChain, ReadsTheSourcesAgainAtEachCall) {
    const auto missing = dir_ / "later";
    vars_["AWS_ACCESS_KEY_ID"] = "AKIAENV0000000000000";
    vars_["AWS_SECRET_ACCESS_KEY"] = secret;
    const credential_chain chain({file(missing), source{.type = source::kind::environment}}, env());
    const auto before = chain.resolve();
    ASSERT_EQ(before.what, chain_result::outcome::found);
    EXPECT_EQ(before.found.access_key_id, "AKIAENV0000000000000");
    ASSERT_EQ(before.tried.size(), 1U);
    EXPECT_EQ(before.tried[0], "file " + missing.string() + " [default]: does not exist");
    write("later", profile("default", "AKIAROTATED000000000"));
    const auto after = chain.resolve();
    ASSERT_EQ(after.what, chain_result::outcome::found);
    EXPECT_EQ(after.found.access_key_id, "AKIAROTATED000000000");
}

TEST_F(CredentialChain, NothingNamesEverySourceAndWhy) {
    const auto f = write("creds", profile("default", "AKIAFILE000000000000"));
    write("home/.aws/credentials", "[other]\n");
    const auto directory = dir_ / "a-directory";
    std::filesystem::create_directory(directory);
    const auto broken = write("broken", profile("default", "AKIAFILE000000000000") + "aws_session_token\n");
    const credential_chain chain(
        {file(f, "prod"), source{.type = source::kind::environment},
         source{.type = source::kind::profile, .profile = "dev"}, file(directory), file(broken)},
        env());
    const auto r = chain.resolve();
    ASSERT_EQ(r.what, chain_result::outcome::nothing);
    EXPECT_EQ(r.error(), uplink::errc::aws_credentials_unavailable);
    ASSERT_EQ(r.tried.size(), 5U);
    EXPECT_EQ(r.tried[0], "file " + f.string() + " [prod]: has no profile [prod] (profiles: default)");
    EXPECT_EQ(r.tried[1], "env: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set");
    EXPECT_EQ(r.tried[2], "profile dev (" + (dir_ / "home/.aws/credentials").string() +
                              "): has no profile [dev] (profiles: other)");
    EXPECT_EQ(r.tried[3], "file " + directory.string() + " [default]: is a directory, not a regular file");
    EXPECT_EQ(r.tried[4],
              "file " + broken.string() + " [default]: line 4: expected 'key = value', a [section] or a comment");
    EXPECT_EQ(r.describe().find("no AWS credentials: file "), 0U);
    EXPECT_EQ(r.describe().find(secret), std::string::npos);
}

TEST_F(CredentialChain, NamedProfileOfTheSharedFile) {
    write("home/.aws/credentials", profile("default", "AKIADEFAULT000000000") + profile("dev", "AKIADEV0000000000000"));
    const credential_chain chain({source{.type = source::kind::profile, .profile = "dev"}}, env());
    const auto r = chain.resolve();
    ASSERT_EQ(r.what, chain_result::outcome::found) << r.describe();
    EXPECT_EQ(r.found.access_key_id, "AKIADEV0000000000000");
    vars_["AWS_SHARED_CREDENTIALS_FILE"] = write("elsewhere", profile("dev", "AKIAELSEWHERE0000000")).string();
    EXPECT_EQ(chain.resolve().found.access_key_id, "AKIAELSEWHERE0000000");
    vars_.clear();
    EXPECT_EQ(chain.resolve().tried.at(0),
              "profile dev (no HOME): neither AWS_SHARED_CREDENTIALS_FILE nor HOME is set");
}

TEST_F(CredentialChain, ProviderEntryStopsTheChainAndResumesAfterIt) {
    vars_["AWS_ACCESS_KEY_ID"] = "AKIAENV0000000000000";
    vars_["AWS_SECRET_ACCESS_KEY"] = secret;
    const credential_chain chain({file(dir_ / "none"),
                                  source{.type = source::kind::iot_credentials_provider,
                                         .endpoint = "c1.credentials.iot.eu-west-1.amazonaws.com",
                                         .role_alias = "thingmux-role"},
                                  source{.type = source::kind::environment}},
                                 env());
    auto r = chain.resolve();
    ASSERT_EQ(r.what, chain_result::outcome::needs_provider);
    EXPECT_EQ(r.source, 1U);
    EXPECT_EQ(r.source_name, "iot_credentials_provider thingmux-role at c1.credentials.iot.eu-west-1.amazonaws.com");
    ASSERT_EQ(r.tried.size(), 1U);
    // The provider failed: the caller goes on after it, with its reason.
    auto tried = r.tried;
    tried.push_back(r.source_name + ": HTTP 403");
    vars_.erase("AWS_ACCESS_KEY_ID");
    r = chain.resolve(r.source + 1, tried);
    ASSERT_EQ(r.what, chain_result::outcome::nothing);
    ASSERT_EQ(r.tried.size(), 3U);
    EXPECT_EQ(r.tried[1],
              "iot_credentials_provider thingmux-role at c1.credentials.iot.eu-west-1.amazonaws.com: HTTP 403");
    EXPECT_EQ(r.tried[2], "env: AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not");
}

TEST_F(CredentialChain, SystemdCredentialWithoutCredentialsDirectory) {
    ::unsetenv("CREDENTIALS_DIRECTORY");
    const credential_chain chain({file("credential:aws")}, env());
    EXPECT_EQ(chain.resolve().tried.at(0),
              "file credential:aws [default]: CREDENTIALS_DIRECTORY is not set (no systemd credentials)");
}

TEST_F(CredentialChain, EmptyList) {
    const credential_chain chain({}, env());
    EXPECT_EQ(chain.resolve().describe(), "no AWS credentials: aws_credentials lists no source");
}

}  // namespace
