// Crash-safe identity files (daemon/identity/identity_files.hpp). Each crash test leaves the
// files as a power cut at one step of commit() would (the steps done by hand), then checks that
// recover() ends with the old pair or the new pair, both matching, and that it is idempotent.
#include "daemon/identity/identity_files.hpp"

#include "identity_test_support.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

namespace thingmux::identity {
namespace {

namespace fs = std::filesystem;

using pair = test::test_ca::key_and_cert;

class IdentityFiles : public ::testing::Test {
protected:
    pair make_pair() { return ca_.issue_pair("gw-1"); }
    static void write(const fs::path& p, const std::string& bytes) { std::ofstream(p, std::ios::binary) << bytes; }
    static std::string read(const fs::path& p) { return test::read_file(p); }
    void install_old() {
        write(paths_.cert, old_.cert);
        write(paths_.key, old_.key);
    }
    void expect_only(const pair& p) {
        EXPECT_EQ(read(paths_.key), p.key);
        EXPECT_EQ(read(paths_.cert), p.cert);
        EXPECT_TRUE(key_matches_certificate(read(paths_.key), read(paths_.cert)).value());
        EXPECT_FALSE(fs::exists(pending_path(paths_.cert)));
        EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()),
                  fs::exists(pending_path(paths_.key)) ? 3 : 2);
    }
    recovery_report recover_twice() {
        const auto first = recover(paths_);
        EXPECT_TRUE(first.has_value()) << first.error().message;
        const auto second = recover(paths_);
        EXPECT_TRUE(second.has_value()) << second.error().message;
        if (second) {
            EXPECT_EQ(second->action, recovery::nothing_pending);
        }
        return first.has_value() ? *first : recovery_report{};
    }

    test::test_ca ca_;
    test::temp_dir temp_{"thingmux-identity-files"};
    fs::path dir_ = temp_.path();
    identity_paths paths_{dir_ / "thing.cert.pem", dir_ / "thing.key.pem"};
    pair old_ = make_pair();
    pair fresh_ = make_pair();
};

TEST_F(IdentityFiles, CommitInstallsTheNewPairWithItsModes) {
    install_old();
    const auto old_mask = ::umask(077);  // the certificate must still get 0644
    ASSERT_TRUE(write_pending_key(paths_, secret_pem(std::string(fresh_.key))).has_value());
    const auto committed = commit(paths_, fresh_.cert);
    ::umask(old_mask);
    ASSERT_TRUE(committed.has_value()) << committed.error().message;
    expect_only(fresh_);
    EXPECT_EQ(fs::status(paths_.key).permissions(), fs::perms::owner_read | fs::perms::owner_write);
    EXPECT_EQ(fs::status(paths_.cert).permissions(),
              fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read | fs::perms::others_read);
    EXPECT_EQ(recover_twice().action, recovery::nothing_pending);
}

TEST_F(IdentityFiles, CommitRefusesACertificateForAnotherKey) {
    install_old();
    ASSERT_TRUE(write_pending_key(paths_, secret_pem(std::string(fresh_.key))).has_value());
    const auto committed = commit(paths_, old_.cert);
    ASSERT_FALSE(committed.has_value());
    EXPECT_NE(committed.error().message.find("is not for the key in"), std::string::npos) << committed.error().message;
    expect_only(old_);
    EXPECT_TRUE(fs::exists(pending_path(paths_.key)));
}

TEST_F(IdentityFiles, CrashBeforeAnythingKeepsTheOldPair) {
    install_old();
    const auto r = recover_twice();
    EXPECT_EQ(r.action, recovery::nothing_pending);
    EXPECT_FALSE(r.pending_key_kept);
    expect_only(old_);
}

TEST_F(IdentityFiles, CrashAfterThePendingKeyKeepsItForTheRetry) {
    install_old();
    ASSERT_TRUE(write_pending_key(paths_, secret_pem(std::string(fresh_.key))).has_value());
    const auto r = recover_twice();
    EXPECT_EQ(r.action, recovery::nothing_pending);
    EXPECT_TRUE(r.pending_key_kept);
    expect_only(old_);
    const auto kept = read_pending_key(paths_);
    ASSERT_TRUE(kept.has_value() && kept->has_value());
    EXPECT_EQ((*kept)->view(), fresh_.key);
}

TEST_F(IdentityFiles, CrashWhileWritingThePendingCertificateKeepsTheOldPair) {
    install_old();
    write(pending_path(paths_.key), fresh_.key);
    write(fs::path(pending_path(paths_.cert).string() + ".tmp"), fresh_.cert.substr(0, 40));
    EXPECT_EQ(recover_twice().action, recovery::nothing_pending);
    expect_only(old_);
}

TEST_F(IdentityFiles, CrashAfterThePendingCertificateCompletesTheCommit) {
    install_old();
    write(pending_path(paths_.key), fresh_.key);
    write(pending_path(paths_.cert), fresh_.cert);
    const auto r = recover_twice();
    EXPECT_EQ(r.action, recovery::completed);
    EXPECT_FALSE(r.pending_key_kept);
    EXPECT_NE(r.detail.find("interrupted commit"), std::string::npos);
    expect_only(fresh_);
}

TEST_F(IdentityFiles, CrashAfterTheKeyRenameCompletesTheCommit) {
    install_old();
    write(paths_.key, fresh_.key);  // KEY.pending -> KEY done; CERT still old
    write(pending_path(paths_.cert), fresh_.cert);
    EXPECT_EQ(recover_twice().action, recovery::completed);
    expect_only(fresh_);
}

TEST_F(IdentityFiles, FirstProvisioningInterruptedAtEachStepEndsMatchingOrEmpty) {
    // No old pair (the claim certificate lives elsewhere).
    write(pending_path(paths_.key), fresh_.key);
    write(pending_path(paths_.cert), fresh_.cert);
    EXPECT_EQ(recover_twice().action, recovery::completed);
    expect_only(fresh_);

    fs::remove(paths_.cert);
    write(pending_path(paths_.cert), fresh_.cert);  // KEY renamed, CERT not yet
    EXPECT_EQ(recover_twice().action, recovery::completed);
    expect_only(fresh_);
}

TEST_F(IdentityFiles, ACertificateForNoKnownKeyIsDiscarded) {
    install_old();
    const auto stranger = make_pair();
    write(pending_path(paths_.key), fresh_.key);
    write(pending_path(paths_.cert), stranger.cert);
    const auto r = recover_twice();
    EXPECT_EQ(r.action, recovery::discarded_certificate);
    EXPECT_TRUE(r.pending_key_kept);
    EXPECT_NE(r.detail.find("the previous certificate and key stay"), std::string::npos) << r.detail;
    expect_only(old_);

    write(pending_path(paths_.cert), "garbage");
    EXPECT_EQ(recover_twice().action, recovery::discarded_certificate);
    expect_only(old_);
}

TEST_F(IdentityFiles, AnUnreadablePendingKeyIsNotReused) {
    write(pending_path(paths_.key), "not a key");
    const auto kept = read_pending_key(paths_);
    ASSERT_TRUE(kept.has_value());
    EXPECT_FALSE(kept->has_value());
    ASSERT_TRUE(write_pending_key(paths_, secret_pem(std::string(fresh_.key))).has_value());
    EXPECT_EQ(read(pending_path(paths_.key)), fresh_.key);
}

TEST_F(IdentityFiles, LinksAndSpecialFilesAreRefusedNamingTheFile) {
    install_old();
    const auto elsewhere = dir_ / "elsewhere.pem";
    write(elsewhere, old_.key);
    fs::remove(paths_.key);
    fs::create_symlink(elsewhere, paths_.key);
    ASSERT_TRUE(write_pending_key(paths_, secret_pem(std::string(fresh_.key))).has_value());
    const auto committed = commit(paths_, fresh_.cert);
    ASSERT_FALSE(committed.has_value());
    EXPECT_NE(committed.error().message.find(paths_.key.string() + " is a symbolic link"), std::string::npos)
        << committed.error().message;
    EXPECT_EQ(read(elsewhere), old_.key);

    fs::remove(pending_path(paths_.key));
    ASSERT_EQ(::mkfifo(pending_path(paths_.key).c_str(), 0600), 0);
    const auto recovered = recover(paths_);
    ASSERT_FALSE(recovered.has_value());
    EXPECT_NE(recovered.error().message.find(pending_path(paths_.key).string() + " is a FIFO"), std::string::npos)
        << recovered.error().message;
    const auto written = write_file_atomically(pending_path(paths_.key), "x", key_file_mode);
    ASSERT_FALSE(written.has_value());
    EXPECT_NE(written.error().message.find("not a regular file"), std::string::npos) << written.error().message;
}

TEST_F(IdentityFiles, AtomicWriteReplacesALeftoverTemporaryFile) {
    const auto target = dir_ / "file";
    write(fs::path(target.string() + ".tmp"), "stale");
    ASSERT_TRUE(write_file_atomically(target, "fresh", certificate_file_mode).has_value());
    EXPECT_EQ(read(target), "fresh");
    EXPECT_FALSE(fs::exists(target.string() + ".tmp"));
}

}  // namespace
}  // namespace thingmux::identity
