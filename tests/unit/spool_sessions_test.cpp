// Local sessions in the spool's file (daemon/spool/sessions.hpp) against real files: what is
// stored comes back after a reopen, writes are visible to another reader only once committed,
// a session's messages go with it, and a damaged row is reported and removed, never fatal.
#include "daemon/spool/sessions.hpp"
#include "daemon/spool/spool.hpp"

#include <sqlite3.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using thingmux::spool::session_record;
using thingmux::spool::store;
using thingmux::spool::format::subscription;
using ::testing::HasSubstr;

// A second connection to the file, as another process would see it.
std::string query(const fs::path& path, const std::string& sql) {
    sqlite3* db = nullptr;
    sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr);
    sqlite3_stmt* stmt = nullptr;
    std::string out;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK && sqlite3_step(stmt) == SQLITE_ROW) {
        const auto* text = sqlite3_column_text(stmt, 0);
        out = text == nullptr ? "NULL" : reinterpret_cast<const char*>(text);
    }
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return out;
}

void exec(const fs::path& path, const std::string& sql) {
    sqlite3* db = nullptr;
    sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr);
    char* error = nullptr;
    const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
    const std::string why = error != nullptr ? error : "";
    sqlite3_free(error);
    sqlite3_close(db);
    ASSERT_EQ(rc, SQLITE_OK) << why;
}

session_record sample(std::string client_id) {
    session_record r;
    r.thing = "gateway-01";
    r.client_id = std::move(client_id);
    r.uid = 1000;
    r.gid = 100;
    r.groups = {100, 27, 4};
    r.user = "alice";
    r.group_names = {"users", "sudo", "adm"};
    r.unit = "sensor.service";
    r.mqtt_user = "";
    r.expiry = 3600;
    r.subscriptions = {{.filter = "cmd/#", .max_qos = 1, .options = 0}, {.filter = "a/+/b", .max_qos = 0, .options = 0x2C}};
    return r;
}

thingmux::spool::message numbered(int i) {
    return {.topic = "cmd/" + std::to_string(i), .payload = "command " + std::to_string(i), .qos = 1,
            .content_type = "text/plain", .user_properties = {{"k", "v" + std::to_string(i)}}};
}

class SpoolSessionsTest : public ::testing::Test {
protected:
    void SetUp() override {
        std::string templ = (fs::temp_directory_path() / "thingmux-spool-sessions-XXXXXX").string();
        ASSERT_NE(mkdtemp(templ.data()), nullptr);
        dir_ = templ;
        path_ = dir_ / "spool.db";
    }
    void TearDown() override { fs::remove_all(dir_); }

    std::unique_ptr<store> open() {
        std::vector<std::string> notices;
        std::string error;
        auto s = store::open(path_, {}, notices, error);
        EXPECT_EQ(error, "");
        notices_ = notices;
        return s;
    }

    fs::path dir_;
    fs::path path_;
    std::vector<std::string> notices_;
};

TEST_F(SpoolSessionsTest, ASessionAndItsMessagesComeBackAfterReopenOldestFirst) {
    auto stored = sample("sensor-1");
    {
        auto s = open();
        ASSERT_NE(s, nullptr);
        std::string error;
        ASSERT_TRUE(s->sessions().save(stored, error)) << error;
        EXPECT_GT(stored.id, 0);
        for (int i = 0; i < 5; ++i) EXPECT_GT(s->sessions().add_message(stored.id, {.message = numbered(i)}, error), 0) << error;
        ASSERT_TRUE(s->sessions().commit(error)) << error;
    }
    auto s = open();
    ASSERT_NE(s, nullptr);
    auto loaded = s->sessions().load_sessions();
    EXPECT_EQ(loaded.error, "");
    EXPECT_TRUE(loaded.problems.empty());
    ASSERT_EQ(loaded.sessions.size(), 1U);
    const auto& r = loaded.sessions[0];
    EXPECT_EQ(r.id, stored.id);
    EXPECT_EQ(r.thing, "gateway-01");
    EXPECT_EQ(r.kind, "mqtt");
    EXPECT_EQ(r.client_id, "sensor-1");
    EXPECT_EQ(r.uid, 1000U);
    EXPECT_EQ(r.gid, 100U);
    EXPECT_EQ(r.groups, (std::vector<std::uint32_t>{100, 27, 4}));
    EXPECT_EQ(r.user, "alice");
    EXPECT_EQ(r.group_names, (std::vector<std::string>{"users", "sudo", "adm"}));
    EXPECT_EQ(r.unit, "sensor.service");
    EXPECT_EQ(r.expiry, 3600U);
    EXPECT_FALSE(r.ended_at.has_value());
    EXPECT_EQ(r.subscriptions, stored.subscriptions);
    auto messages = s->sessions().load_messages(r.id);
    EXPECT_EQ(messages.error, "");
    ASSERT_EQ(messages.messages.size(), 5U);
    for (int i = 0; i < 5; ++i) EXPECT_EQ(messages.messages[static_cast<std::size_t>(i)].message, numbered(i));
}

// A message keeps the shared subscription it was taken for, and a delayed will its due time.
TEST_F(SpoolSessionsTest, ShareAndWillDueComeBackWithTheirMessages) {
    auto stored = sample("sensor-1");
    std::int64_t will_row = 0;
    {
        auto s = open();
        ASSERT_NE(s, nullptr);
        std::string error;
        ASSERT_TRUE(s->sessions().save(stored, error)) << error;
        ASSERT_GT(s->sessions().add_message(stored.id, {.message = numbered(1)}, error), 0) << error;
        ASSERT_GT(s->sessions().add_message(stored.id, {.message = numbered(2), .share = "$share/g/cmd/#"}, error), 0);
        will_row = s->sessions().add_message(stored.id, {.message = numbered(3), .will_due = 1'900'000'000}, error);
        ASSERT_GT(will_row, 0) << error;
        ASSERT_TRUE(s->sessions().commit(error)) << error;
    }
    auto s = open();
    ASSERT_NE(s, nullptr);
    const auto loaded = s->sessions().load_messages(stored.id);
    EXPECT_EQ(loaded.error, "");
    ASSERT_EQ(loaded.messages.size(), 3U);
    EXPECT_EQ(loaded.messages[0].share, "");
    EXPECT_FALSE(loaded.messages[0].will_due.has_value());
    EXPECT_EQ(loaded.messages[1].share, "$share/g/cmd/#");
    EXPECT_EQ(loaded.messages[1].message, numbered(2));
    EXPECT_EQ(loaded.messages[2].id, will_row);
    EXPECT_EQ(loaded.messages[2].will_due, std::optional<std::int64_t>{1'900'000'000});
    EXPECT_EQ(loaded.messages[2].message, numbered(3));
}

TEST_F(SpoolSessionsTest, WritesAreVisibleToOtherReadersOnlyOnceCommitted) {
    auto s = open();
    ASSERT_NE(s, nullptr);
    auto r = sample("sensor-1");
    std::string error;
    ASSERT_TRUE(s->sessions().save(r, error));
    for (int i = 0; i < 3; ++i) ASSERT_GT(s->sessions().add_message(r.id, {.message = numbered(i)}, error), 0);
    EXPECT_TRUE(s->sessions().pending());
    EXPECT_EQ(query(path_, "SELECT count(*) FROM local_message"), "0");
    ASSERT_TRUE(s->sessions().commit(error)) << error;
    EXPECT_FALSE(s->sessions().pending());
    EXPECT_EQ(query(path_, "SELECT count(*) FROM local_message"), "3");
}

TEST_F(SpoolSessionsTest, AnAppendOfTheSpoolCommitsTheOpenBatchWithIt) {
    auto s = open();
    ASSERT_NE(s, nullptr);
    auto r = sample("sensor-1");
    std::string error;
    ASSERT_TRUE(s->sessions().save(r, error));
    ASSERT_GT(s->sessions().add_message(r.id, {.message = numbered(1)}, error), 0);
    const auto appended = s->append("gateway-01", numbered(2), 10);
    ASSERT_EQ(appended.error, thingmux::spool::failure::none) << appended.message;
    EXPECT_FALSE(s->sessions().pending());
    EXPECT_EQ(query(path_, "SELECT count(*) FROM local_message"), "1");
    EXPECT_EQ(query(path_, "SELECT count(*) FROM spool"), "1");
}

TEST_F(SpoolSessionsTest, RemovingASessionRemovesItsMessagesAndOnlyThem) {
    auto s = open();
    ASSERT_NE(s, nullptr);
    auto a = sample("a");
    auto b = sample("b");
    std::string error;
    ASSERT_TRUE(s->sessions().save(a, error));
    ASSERT_TRUE(s->sessions().save(b, error));
    for (int i = 0; i < 4; ++i) {
        ASSERT_GT(s->sessions().add_message(a.id, {.message = numbered(i)}, error), 0);
        ASSERT_GT(s->sessions().add_message(b.id, {.message = numbered(i)}, error), 0);
    }
    ASSERT_TRUE(s->sessions().remove_session(a.id, error)) << error;
    ASSERT_TRUE(s->sessions().commit(error));
    EXPECT_EQ(query(path_, "SELECT count(*) FROM local_message"), "4");
    EXPECT_EQ(query(path_, "SELECT count(*) FROM local_message WHERE session = " + std::to_string(b.id)), "4");
    EXPECT_EQ(s->sessions().load_sessions().sessions.size(), 1U);
}

TEST_F(SpoolSessionsTest, SavingTheSameKeyAgainReplacesTheOldSessionAndItsMessages) {
    auto s = open();
    ASSERT_NE(s, nullptr);
    auto first = sample("sensor-1");
    std::string error;
    ASSERT_TRUE(s->sessions().save(first, error));
    ASSERT_GT(s->sessions().add_message(first.id, {.message = numbered(1)}, error), 0);
    auto second = sample("sensor-1");
    second.subscriptions = {{.filter = "other/#", .max_qos = 1, .options = 0}};
    ASSERT_TRUE(s->sessions().save(second, error)) << error;
    // Another MQTT user with the same uid and client id is another session.
    auto other_user = sample("sensor-1");
    other_user.mqtt_user = "bob";
    ASSERT_TRUE(s->sessions().save(other_user, error)) << error;
    ASSERT_TRUE(s->sessions().commit(error));
    const auto loaded = s->sessions().load_sessions().sessions;
    ASSERT_EQ(loaded.size(), 2U);
    EXPECT_EQ(loaded[0].id, second.id);
    EXPECT_EQ(loaded[0].subscriptions, second.subscriptions);
    EXPECT_EQ(loaded[1].mqtt_user, "bob");
    EXPECT_EQ(query(path_, "SELECT count(*) FROM local_message"), "0");
}

TEST_F(SpoolSessionsTest, EndTimeSubscriptionsAndMessageRemovalAreStored) {
    auto r = sample("sensor-1");
    std::int64_t kept = 0;
    {
        auto s = open();
        std::string error;
        ASSERT_TRUE(s->sessions().save(r, error));
        const auto gone = s->sessions().add_message(r.id, {.message = numbered(1)}, error);
        kept = s->sessions().add_message(r.id, {.message = numbered(2)}, error);
        ASSERT_TRUE(s->sessions().remove_message(gone, error)) << error;
        ASSERT_TRUE(s->sessions().set_ended(r.id, 1'800'000'000, 60, error)) << error;
        ASSERT_TRUE(s->sessions().set_subscriptions(r.id, {{.filter = "x", .max_qos = 0, .options = 0}}, error));
    }  // closed without commit(): a clean shutdown commits
    auto s = open();
    const auto loaded = s->sessions().load_sessions().sessions;
    ASSERT_EQ(loaded.size(), 1U);
    EXPECT_EQ(loaded[0].ended_at, std::optional<std::int64_t>{1'800'000'000});
    EXPECT_EQ(loaded[0].expiry, 60U);
    EXPECT_EQ(loaded[0].subscriptions, (std::vector<subscription>{{.filter = "x", .max_qos = 0, .options = 0}}));
    const auto messages = s->sessions().load_messages(r.id).messages;
    ASSERT_EQ(messages.size(), 1U);
    EXPECT_EQ(messages[0].id, kept);
    EXPECT_EQ(messages[0].message, numbered(2));
}

TEST_F(SpoolSessionsTest, UnreadableRowsAreReportedAndRemovedTheRestLoads) {
    {
        auto s = open();
        std::string error;
        auto a = sample("a");
        auto b = sample("b");
        ASSERT_TRUE(s->sessions().save(a, error));
        ASSERT_TRUE(s->sessions().save(b, error));
        ASSERT_GT(s->sessions().add_message(b.id, {.message = numbered(1)}, error), 0);
        ASSERT_GT(s->sessions().add_message(b.id, {.message = numbered(2)}, error), 0);
        ASSERT_TRUE(s->sessions().commit(error));
    }
    // Edited by hand: a's subscriptions and groups are garbage, one of b's messages too.
    exec(path_, "UPDATE local_session SET subscriptions = x'07' WHERE client_id = 'a';"
                "UPDATE local_message SET user_properties = x'0100' WHERE id = (SELECT min(id) FROM local_message)");
    auto s = open();
    auto loaded = s->sessions().load_sessions();
    ASSERT_EQ(loaded.sessions.size(), 1U);
    EXPECT_EQ(loaded.sessions[0].client_id, "b");
    ASSERT_EQ(loaded.problems.size(), 1U);
    EXPECT_THAT(loaded.problems[0], HasSubstr("subscriptions has unknown encoding 7"));
    auto messages = s->sessions().load_messages(loaded.sessions[0].id);
    ASSERT_EQ(messages.messages.size(), 1U);
    EXPECT_EQ(messages.messages[0].message, numbered(2));
    ASSERT_EQ(messages.problems.size(), 1U);
    EXPECT_THAT(messages.problems[0], HasSubstr("user_properties"));
    std::string error;
    ASSERT_TRUE(s->sessions().commit(error));
    EXPECT_EQ(query(path_, "SELECT count(*) FROM local_session"), "1");
    EXPECT_EQ(query(path_, "SELECT count(*) FROM local_message"), "1");
}

TEST_F(SpoolSessionsTest, ASchema2SpoolGainsTheSessionTablesAndKeepsItsMessages) {
    {
        auto s = open();
        ASSERT_EQ(s->append("gateway-01", numbered(7), 10).error, thingmux::spool::failure::none);
    }
    exec(path_, "DROP TABLE local_message; DROP TABLE local_session; PRAGMA user_version = 2");
    auto s = open();
    ASSERT_NE(s, nullptr);
    ASSERT_EQ(notices_.size(), 1U);
    EXPECT_THAT(notices_[0], HasSubstr("added the tables of local sessions (spool schema 2 to 4)"));
    EXPECT_EQ(s->total_count(), 1U);
    EXPECT_EQ(query(path_, "PRAGMA user_version"), "4");
    auto r = sample("sensor-1");
    std::string error;
    EXPECT_TRUE(s->sessions().save(r, error)) << error;
}

// Schema 3 keyed sessions without their Thing, and its messages had no share or will_due. Its file
// is rebuilt with the Thing in the key and the columns added: sessions, their ids, the id sequence
// and their waiting messages all stay.
TEST_F(SpoolSessionsTest, ASchema3SpoolKeysItsSessionsByThingAndKeepsThemWithTheirMessages) {
    auto kept = sample("sensor-1");
    {
        auto s = open();
        ASSERT_NE(s, nullptr);
        std::string error;
        auto gone = sample("gone");
        ASSERT_TRUE(s->sessions().save(gone, error)) << error;
        ASSERT_TRUE(s->sessions().save(kept, error)) << error;
        for (int i = 0; i < 3; ++i) ASSERT_GT(s->sessions().add_message(kept.id, {.message = numbered(i)}, error), 0) << error;
        ASSERT_TRUE(s->sessions().remove_session(gone.id, error)) << error;  // the sequence is above every row
        ASSERT_TRUE(s->sessions().commit(error)) << error;
    }
    // The table as schema 3 had it, under foreign keys off (as a schema 3 daemon left the file).
    exec(path_, "CREATE TABLE old_session AS SELECT * FROM local_session; DROP TABLE local_session;"
                "CREATE TABLE local_session (id INTEGER PRIMARY KEY AUTOINCREMENT, thing TEXT NOT NULL, kind TEXT NOT NULL,"
                " client_id TEXT NOT NULL, uid INTEGER NOT NULL, gid INTEGER NOT NULL, groups TEXT NOT NULL,"
                " user TEXT NOT NULL, group_names TEXT NOT NULL, unit TEXT NOT NULL, mqtt_user TEXT NOT NULL,"
                " expiry INTEGER NOT NULL CHECK (expiry >= 0), ended_at INTEGER, subscriptions BLOB NOT NULL,"
                " UNIQUE (kind, uid, mqtt_user, client_id));"
                "INSERT INTO local_session SELECT * FROM old_session; DROP TABLE old_session;"
                "INSERT INTO sqlite_sequence (name, seq) VALUES ('local_session', " + std::to_string(kept.id + 5) + ");"
                "ALTER TABLE local_message DROP COLUMN share; ALTER TABLE local_message DROP COLUMN will_due;"
                "PRAGMA user_version = 3");
    ASSERT_EQ(query(path_, "SELECT count(*) FROM local_message"), "3");

    auto s = open();
    ASSERT_NE(s, nullptr);
    ASSERT_EQ(notices_.size(), 1U);
    EXPECT_THAT(notices_[0], HasSubstr("local sessions are keyed by their Thing too (spool schema 3 to 4)"));
    EXPECT_EQ(query(path_, "PRAGMA user_version"), "4");
    EXPECT_THAT(query(path_, "SELECT sql FROM sqlite_master WHERE name = 'local_session'"),
                HasSubstr("UNIQUE (kind, uid, mqtt_user, thing, client_id)"));
    EXPECT_EQ(query(path_, "SELECT max(seq) FROM sqlite_sequence WHERE name = 'local_session'"), std::to_string(kept.id + 5));
    EXPECT_EQ(query(path_, "SELECT count(*) FROM sqlite_sequence WHERE name LIKE 'local_session_%'"), "0");
    auto loaded = s->sessions().load_sessions();
    ASSERT_EQ(loaded.sessions.size(), 1U);
    EXPECT_EQ(loaded.sessions[0].id, kept.id);
    EXPECT_EQ(loaded.sessions[0].subscriptions, kept.subscriptions);
    EXPECT_EQ(s->sessions().load_messages(kept.id).messages.size(), 3U);
    // local_message has the columns schema 4 added.
    EXPECT_EQ(query(path_, "SELECT count(*) FROM local_message WHERE share IS NULL AND will_due IS NULL"), "3");
    // The cascade still holds after the rebuild.
    std::string error;
    ASSERT_TRUE(s->sessions().remove_session(kept.id, error)) << error;
    ASSERT_TRUE(s->sessions().commit(error)) << error;
    EXPECT_EQ(query(path_, "SELECT count(*) FROM local_message"), "0");
}

// The same kind, uid, MQTT user and name on two Things are two sessions (IPC-43); saving one
// again replaces only its own row.
TEST_F(SpoolSessionsTest, TheSameNameOnTwoThingsIsTwoSessions) {
    auto s = open();
    ASSERT_NE(s, nullptr);
    std::string error;
    auto a = sample("app");
    a.kind = "ipc";
    auto b = a;
    b.thing = "gateway-02";
    ASSERT_TRUE(s->sessions().save(a, error)) << error;
    ASSERT_TRUE(s->sessions().save(b, error)) << error;
    ASSERT_GT(s->sessions().add_message(b.id, {.message = numbered(1)}, error), 0) << error;
    auto again = a;
    ASSERT_TRUE(s->sessions().save(again, error)) << error;
    ASSERT_TRUE(s->sessions().commit(error)) << error;
    const auto loaded = s->sessions().load_sessions();
    ASSERT_EQ(loaded.sessions.size(), 2U);
    EXPECT_EQ(loaded.sessions[0].thing, "gateway-02");
    EXPECT_EQ(loaded.sessions[0].id, b.id);
    EXPECT_EQ(loaded.sessions[1].id, again.id);
    EXPECT_EQ(s->sessions().load_messages(b.id).messages.size(), 1U);
}

}  // namespace
