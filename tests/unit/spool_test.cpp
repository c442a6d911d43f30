// The durable spool against real files in a temporary directory: ordering, usage, limits, and
// what happens when the process is killed, the file is damaged or the disk refuses writes.
#include "daemon/spool/spool.hpp"

#include "daemon/spool/format.hpp"

// Only to build a foreign SQLite database; thingmux_spool brings libsqlite3 to the link.
#include <sqlite3.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using thingmux::spool::failure;
using thingmux::spool::limits;
using thingmux::spool::store;
using thingmux::spool::stored;
using spool_message = thingmux::spool::message;

constexpr std::size_t kib = 1024;

// errno as text (strerror is not thread safe).
std::string last_os_error() {
    return std::error_code{errno, std::generic_category()}.message();
}

std::vector<std::uint8_t> bytes_of(std::string_view text) {
    return {text.begin(), text.end()};
}

std::string text_of(const std::vector<std::uint8_t>& bytes) {
    return {bytes.begin(), bytes.end()};
}

// A message that differs from others by its payload only.
spool_message payload_message(std::string_view payload) {
    return {.topic = "dt/thing/data", .payload = std::string{payload}};
}

std::string text_of(const spool_message& m) {
    return m.payload;
}

std::vector<std::uint8_t> random_bytes(std::size_t n, std::uint32_t seed) {
    std::mt19937 gen{seed};
    std::uniform_int_distribution<int> byte{0, 255};
    std::vector<std::uint8_t> out(n);
    for (auto& b : out) b = static_cast<std::uint8_t>(byte(gen));
    return out;
}

void write_file(const fs::path& p, const std::vector<std::uint8_t>& content) {
    std::ofstream out{p, std::ios::binary | std::ios::trunc};
    out.write(reinterpret_cast<const char*>(content.data()), static_cast<std::streamsize>(content.size()));
}

std::vector<std::uint8_t> read_file(const fs::path& p) {
    std::ifstream in{p, std::ios::binary};
    return {std::istreambuf_iterator<char>{in}, std::istreambuf_iterator<char>{}};
}

// The files in `dir` whose names start with `prefix`.
std::vector<fs::path> files_starting_with(const fs::path& dir, const std::string& prefix) {
    std::vector<fs::path> out;
    for (const auto& entry : fs::directory_iterator{dir}) {
        if (entry.path().filename().string().starts_with(prefix)) out.push_back(entry.path());
    }
    return out;
}

// The databases moved aside in `dir`, without their -wal and -shm files.
std::vector<fs::path> moved_aside(const fs::path& dir) {
    std::vector<fs::path> out;
    for (auto& p : files_starting_with(dir, "spool.db.corrupt-")) {
        if (!p.string().ends_with("-wal") && !p.string().ends_with("-shm")) out.push_back(std::move(p));
    }
    return out;
}

// A numbered message, long enough to span more than a few bytes of a page.
spool_message numbered(std::uint64_t n) {
    std::string text = "message " + std::to_string(n) + " ";
    text.resize(200, '.');
    return payload_message(text);
}

bool write_all(int fd, const void* data, std::size_t size) {
    const auto* p = static_cast<const char*>(data);
    while (size > 0) {
        const ssize_t n = ::write(fd, p, size);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        p += n;
        size -= static_cast<std::size_t>(n);
    }
    return true;
}

// Reads exactly `size` bytes; false at end of file (or on an error) before that.
bool read_all(int fd, void* data, std::size_t size) {
    auto* p = static_cast<char*>(data);
    while (size > 0) {
        const ssize_t n = ::read(fd, p, size);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        p += n;
        size -= static_cast<std::size_t>(n);
    }
    return true;
}

class SpoolTest : public ::testing::Test {
protected:
    void SetUp() override {
        std::string pattern = (fs::temp_directory_path() / "thingmux-spool-test-XXXXXX").string();
        ASSERT_NE(::mkdtemp(pattern.data()), nullptr) << last_os_error();
        dir_ = pattern;
        path_ = dir_ / "spool.db";
    }

    void TearDown() override {
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }

    // Opens the spool at path_, which must open without notices.
    std::unique_ptr<store> open_clean(limits l = {}) {
        std::vector<std::string> notices;
        std::string error;
        auto s = store::open(path_, l, notices, error);
        EXPECT_NE(s, nullptr) << error;
        EXPECT_THAT(notices, IsEmpty());
        return s;
    }

    // Everything of `thing`, oldest first.
    static std::vector<stored> load_all(store& s, std::string_view thing) {
        auto loaded = s.load(thing, 0, 1'000'000);
        EXPECT_EQ(loaded.error, "");
        return std::move(loaded.rows);
    }

    static std::int64_t append_ok(store& s, std::string_view thing, std::string_view text) {
        const auto message = payload_message(text);
        const auto r = s.append(thing, message, message.payload.size());
        EXPECT_EQ(r.error, failure::none) << r.message;
        return r.id;
    }

    fs::path dir_;
    fs::path path_;
};

TEST_F(SpoolTest, AppendedMessagesLoadOldestFirstAndOnlyForTheirThing) {
    auto s = open_clean();
    ASSERT_NE(s, nullptr);
    const auto a1 = append_ok(*s, "thing-a", "a1");
    const auto b1 = append_ok(*s, "thing-b", "b1");
    const auto a2 = append_ok(*s, "thing-a", "a2");
    const auto a3 = append_ok(*s, "thing-a", "a3");
    const auto b2 = append_ok(*s, "thing-b", "b2");
    // Ids give the global order of acceptance.
    EXPECT_LT(a1, b1);
    EXPECT_LT(b1, a2);
    EXPECT_LT(a2, a3);
    EXPECT_LT(a3, b2);

    const auto a = load_all(*s, "thing-a");
    ASSERT_EQ(a.size(), 3U);
    EXPECT_EQ(a[0].id, a1);
    EXPECT_EQ(a[1].id, a2);
    EXPECT_EQ(a[2].id, a3);
    EXPECT_EQ(text_of(a[0].message), "a1");
    EXPECT_EQ(text_of(a[2].message), "a3");
    for (const auto& row : a) {
        EXPECT_EQ(row.thing, "thing-a");
        EXPECT_EQ(row.bytes, 2U);
    }
    const auto b = load_all(*s, "thing-b");
    ASSERT_EQ(b.size(), 2U);
    EXPECT_EQ(b[0].id, b1);
    EXPECT_EQ(text_of(b[1].message), "b2");
    EXPECT_THAT(load_all(*s, "thing-c"), IsEmpty());
}

TEST_F(SpoolTest, RemovedMessageIsGoneAndRemovingAnUnknownIdIsNoError) {
    auto s = open_clean();
    ASSERT_NE(s, nullptr);
    const auto first = append_ok(*s, "thing-a", "first");
    const auto second = append_ok(*s, "thing-a", "second");
    const auto third = append_ok(*s, "thing-a", "third");

    std::string error;
    ASSERT_TRUE(s->remove(second, error)) << error;
    auto rows = load_all(*s, "thing-a");
    ASSERT_EQ(rows.size(), 2U);
    EXPECT_EQ(rows[0].id, first);
    EXPECT_EQ(rows[1].id, third);

    // A duplicate acknowledgement, or one for a message that was never spooled.
    EXPECT_TRUE(s->remove(second, error)) << error;
    EXPECT_TRUE(s->remove(third + 1000, error)) << error;
    EXPECT_EQ(error, "");
    EXPECT_EQ(s->total_count(), 2U);
}

TEST_F(SpoolTest, CountsAndBytesFollowAppendsAndRemovesPerThingAndInTotal) {
    auto s = open_clean();
    ASSERT_NE(s, nullptr);
    const auto message = payload_message("payload");
    // The byte count is the caller's, not the stored blob's size.
    const auto a1 = s->append("thing-a", message, 100);
    const auto a2 = s->append("thing-a", message, 250);
    const auto b1 = s->append("thing-b", message, 40);
    ASSERT_EQ(a1.error, failure::none);
    ASSERT_EQ(a2.error, failure::none);
    ASSERT_EQ(b1.error, failure::none);

    EXPECT_EQ(s->count("thing-a"), 2U);
    EXPECT_EQ(s->bytes("thing-a"), 350U);
    EXPECT_EQ(s->count("thing-b"), 1U);
    EXPECT_EQ(s->bytes("thing-b"), 40U);
    EXPECT_EQ(s->count("thing-c"), 0U);
    EXPECT_EQ(s->bytes("thing-c"), 0U);
    EXPECT_EQ(s->total_count(), 3U);
    EXPECT_EQ(s->total_bytes(), 390U);
    EXPECT_EQ(s->things(), (std::vector<std::string>{"thing-a", "thing-b"}));

    std::string error;
    ASSERT_TRUE(s->remove(a1.id, error)) << error;
    ASSERT_TRUE(s->remove(b1.id, error)) << error;
    EXPECT_EQ(s->count("thing-a"), 1U);
    EXPECT_EQ(s->bytes("thing-a"), 250U);
    EXPECT_EQ(s->count("thing-b"), 0U);
    EXPECT_EQ(s->bytes("thing-b"), 0U);
    EXPECT_EQ(s->total_count(), 1U);
    EXPECT_EQ(s->total_bytes(), 250U);
    // A drained Thing no longer has a backlog to resend.
    EXPECT_EQ(s->things(), (std::vector<std::string>{"thing-a"}));
    // An unknown id changes nothing.
    ASSERT_TRUE(s->remove(b1.id, error)) << error;
    EXPECT_EQ(s->total_count(), 1U);
    EXPECT_EQ(s->total_bytes(), 250U);
}

TEST_F(SpoolTest, LoadPagesThroughABacklogAfterTheLastIdSeen) {
    auto s = open_clean();
    ASSERT_NE(s, nullptr);
    std::vector<std::int64_t> ids;
    for (int i = 0; i < 25; ++i) {
        ids.push_back(append_ok(*s, "thing-a", "a" + std::to_string(i)));
        append_ok(*s, "thing-b", "b" + std::to_string(i));  // interleaved, never in a's pages
    }

    std::vector<std::int64_t> seen;
    std::vector<std::size_t> page_sizes;
    std::int64_t after = 0;
    for (;;) {
        auto page = s->load("thing-a", after, 10);
        ASSERT_EQ(page.error, "");
        if (page.rows.empty()) break;
        page_sizes.push_back(page.rows.size());
        for (const auto& row : page.rows) {
            EXPECT_EQ(text_of(row.message), "a" + std::to_string(seen.size()));
            seen.push_back(row.id);
        }
        after = page.rows.back().id;
    }
    EXPECT_EQ(seen, ids);
    EXPECT_EQ(page_sizes, (std::vector<std::size_t>{10, 10, 5}));
    EXPECT_THAT(s->load("thing-a", 0, 0).rows, IsEmpty());
    // Starting in the middle of the backlog.
    const auto rest = s->load("thing-a", ids[20], 100);
    ASSERT_EQ(rest.rows.size(), 4U);
    EXPECT_EQ(rest.rows.front().id, ids[21]);
}

TEST_F(SpoolTest, EverythingAppendedIsThereAfterReopenWithUsageRecomputed) {
    std::vector<std::int64_t> a_ids;
    std::int64_t removed = 0;
    {
        auto s = open_clean();
        ASSERT_NE(s, nullptr);
        for (int i = 0; i < 50; ++i) a_ids.push_back(append_ok(*s, "thing-a", "a" + std::to_string(i)));
        for (int i = 0; i < 7; ++i) append_ok(*s, "thing-b", "bb" + std::to_string(i));
        removed = a_ids[10];
        std::string error;
        ASSERT_TRUE(s->remove(removed, error)) << error;
    }
    a_ids.erase(a_ids.begin() + 10);

    auto s = open_clean();
    ASSERT_NE(s, nullptr);
    const auto a = load_all(*s, "thing-a");
    std::vector<std::int64_t> loaded_ids;
    loaded_ids.reserve(a.size());
    for (const auto& row : a) loaded_ids.push_back(row.id);
    EXPECT_EQ(loaded_ids, a_ids);
    EXPECT_EQ(text_of(a.back().message), "a49");
    EXPECT_EQ(s->count("thing-a"), 49U);
    EXPECT_EQ(s->count("thing-b"), 7U);
    EXPECT_EQ(s->bytes("thing-b"), 7U * 3U);
    std::uint64_t a_bytes = 0;
    for (const auto& row : a) a_bytes += row.message.payload.size();
    EXPECT_EQ(s->bytes("thing-a"), a_bytes);
    EXPECT_EQ(s->total_count(), 56U);
    EXPECT_EQ(s->total_bytes(), a_bytes + 21U);
}

TEST_F(SpoolTest, IdsAreNeverReusedEvenAfterTheNewestWasRemovedAndTheSpoolReopened) {
    std::int64_t newest = 0;
    {
        auto s = open_clean();
        ASSERT_NE(s, nullptr);
        append_ok(*s, "thing-a", "old");
        newest = append_ok(*s, "thing-a", "newest");
        std::string error;
        ASSERT_TRUE(s->remove(newest, error)) << error;
    }
    auto s = open_clean();
    ASSERT_NE(s, nullptr);
    // A late acknowledgement of `newest` must never delete the next message.
    EXPECT_GT(append_ok(*s, "thing-a", "next"), newest);
}

TEST_F(SpoolTest, EmptyMessageAndEmptyThingNameAreStoredNotLost) {
    auto s = open_clean();
    ASSERT_NE(s, nullptr);
    const auto id = s->append("", {}, 0);
    ASSERT_EQ(id.error, failure::none) << id.message;
    const auto rows = load_all(*s, "");
    ASSERT_EQ(rows.size(), 1U);
    EXPECT_EQ(rows[0].id, id.id);
    EXPECT_EQ(rows[0].message, spool_message{});
    EXPECT_EQ(s->count(""), 1U);
}

TEST_F(SpoolTest, MaxMessagesRefusesWithFullNamingTheLimitAndStoresNothing) {
    auto s = open_clean({.max_bytes = std::nullopt, .max_messages = 3});
    ASSERT_NE(s, nullptr);
    for (int i = 0; i < 3; ++i) append_ok(*s, i == 1 ? "thing-b" : "thing-a", "m" + std::to_string(i));

    const auto refused = s->append("thing-a", payload_message("one too many"), 12);
    EXPECT_EQ(refused.error, failure::full);
    EXPECT_EQ(refused.message, "spool full: 3 messages (spool.max_messages 3)");
    EXPECT_EQ(s->total_count(), 3U);
    EXPECT_EQ(s->count("thing-a"), 2U);
    EXPECT_EQ(load_all(*s, "thing-a").size(), 2U);

    // The limit is on the whole spool, and removing makes room again.
    std::string error;
    ASSERT_TRUE(s->remove(load_all(*s, "thing-b").at(0).id, error)) << error;
    EXPECT_EQ(s->append("thing-a", payload_message("fits now"), 8).error, failure::none);

    s.reset();
    auto reopened = open_clean({.max_bytes = std::nullopt, .max_messages = 3});
    ASSERT_NE(reopened, nullptr);
    EXPECT_EQ(reopened->total_count(), 3U);
    EXPECT_EQ(reopened->append("thing-b", payload_message("x"), 1).error, failure::full);
}

TEST_F(SpoolTest, MaxBytesRefusesWithFullNamingTheLimitAndStoresNothing) {
    auto s = open_clean({.max_bytes = 100, .max_messages = std::nullopt});
    ASSERT_NE(s, nullptr);
    const auto message = payload_message("m");
    ASSERT_EQ(s->append("thing-a", message, 60).error, failure::none);

    const auto refused = s->append("thing-a", message, 41);
    EXPECT_EQ(refused.error, failure::full);
    EXPECT_THAT(refused.message, HasSubstr("spool full"));
    EXPECT_THAT(refused.message, HasSubstr("60 bytes stored"));
    EXPECT_THAT(refused.message, HasSubstr("spool.max_bytes 100"));
    EXPECT_EQ(s->total_count(), 1U);
    EXPECT_EQ(s->total_bytes(), 60U);
    EXPECT_EQ(load_all(*s, "thing-a").size(), 1U);

    // Up to the limit exactly is allowed; one more byte is not.
    ASSERT_EQ(s->append("thing-b", message, 40).error, failure::none);
    EXPECT_EQ(s->append("thing-b", message, 1).error, failure::full);
    // A message larger than the whole spool never fits.
    s->set_limits({.max_bytes = 100, .max_messages = std::nullopt});
    std::string error;
    for (const auto& row : load_all(*s, "thing-a")) ASSERT_TRUE(s->remove(row.id, error)) << error;
    for (const auto& row : load_all(*s, "thing-b")) ASSERT_TRUE(s->remove(row.id, error)) << error;
    EXPECT_EQ(s->append("thing-a", message, 101).error, failure::full);
    EXPECT_EQ(s->total_count(), 0U);
}

TEST_F(SpoolTest, SetLimitsRaisesAndLowersTheBoundsWithoutDroppingWhatIsStored) {
    auto s = open_clean({.max_bytes = 1000, .max_messages = 2});
    ASSERT_NE(s, nullptr);
    const auto message = payload_message("m");
    ASSERT_EQ(s->append("thing-a", message, 400).error, failure::none);
    ASSERT_EQ(s->append("thing-a", message, 400).error, failure::none);
    EXPECT_EQ(s->append("thing-a", message, 100).error, failure::full);

    s->set_limits({.max_bytes = 1000, .max_messages = 10});
    EXPECT_EQ(s->append("thing-a", message, 100).error, failure::none);
    EXPECT_EQ(s->append("thing-a", message, 101).error, failure::full);  // now bytes bind
    s->set_limits({.max_bytes = std::nullopt, .max_messages = std::nullopt});
    EXPECT_EQ(s->append("thing-a", message, 1'000'000).error, failure::none);

    // Lowered below the usage: the stored messages stay, new ones are refused.
    s->set_limits({.max_bytes = 10, .max_messages = 1});
    const auto refused = s->append("thing-a", message, 1);
    EXPECT_EQ(refused.error, failure::full);
    EXPECT_EQ(refused.message, "spool full: 4 messages (spool.max_messages 1)");
    s->set_limits({.max_bytes = 10, .max_messages = std::nullopt});
    EXPECT_EQ(s->append("thing-a", message, 0).error, failure::full);
    EXPECT_EQ(s->total_count(), 4U);
    EXPECT_EQ(load_all(*s, "thing-a").size(), 4U);
}

// append() reports an id only once the message is committed, so whatever a killed process had
// reported is on disk. Several rounds on the same file, so that a later round also recovers what
// an earlier kill left in the WAL.
TEST_F(SpoolTest, EveryAppendReportedBeforeKillNineIsThereAfterReopen) {
    struct report {
        std::int64_t id;
        std::uint64_t number;
    };
    std::vector<report> reported;
    constexpr std::array<std::size_t, 3> kill_after = {137, 500, 311};
    // Each round numbers from its own range: a killed child may have committed one message it
    // had not reported, and the next round must not store the same number again.
    constexpr std::uint64_t numbers_per_round = 1'000'000;

    for (std::size_t round = 0; round < kill_after.size(); ++round) {
        std::array<int, 2> fds{};
        ASSERT_EQ(::pipe(fds.data()), 0) << last_os_error();
        const pid_t child = ::fork();
        ASSERT_GE(child, 0) << last_os_error();
        if (child == 0) {
            ::close(fds[0]);
            std::vector<std::string> notices;
            std::string error;
            auto s = store::open(path_, {}, notices, error);
            if (!s || !notices.empty()) ::_exit(3);
            for (std::uint64_t n = round * numbers_per_round;; ++n) {
                const auto message = numbered(n);
                const auto r = s->append("thing-a", message, message.payload.size());
                if (r.error != failure::none) ::_exit(4);
                const report rep{r.id, n};
                if (!write_all(fds[1], &rep, sizeof rep)) ::_exit(5);
            }
        }
        ::close(fds[1]);
        std::size_t got = 0;
        report rep{};
        while (got < kill_after[round] && read_all(fds[0], &rep, sizeof rep)) {
            reported.push_back(rep);
            ++got;
        }
        ASSERT_EQ(::kill(child, SIGKILL), 0);
        // What the child wrote before it died counts too: it was reported after a commit.
        while (read_all(fds[0], &rep, sizeof rep)) reported.push_back(rep);
        ::close(fds[0]);
        int status = 0;
        ASSERT_EQ(::waitpid(child, &status, 0), child);
        ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
            << "child ended on its own, status " << status << " after " << got << " appends";
        ASSERT_GE(got, kill_after[round]);
    }

    auto s = open_clean();
    ASSERT_NE(s, nullptr);
    const auto rows = load_all(*s, "thing-a");
    std::map<std::int64_t, spool_message> by_id;
    std::set<std::string> contents;
    for (const auto& row : rows) {
        EXPECT_TRUE(by_id.emplace(row.id, row.message).second) << "id " << row.id << " twice";
        EXPECT_TRUE(contents.insert(text_of(row.message)).second) << "stored twice: " << text_of(row.message);
    }
    for (const auto& rep : reported) {
        const auto it = by_id.find(rep.id);
        ASSERT_NE(it, by_id.end()) << "message " << rep.number << " (id " << rep.id << ") was reported but is lost";
        EXPECT_EQ(it->second, numbered(rep.number));
    }
    // At most the one append per round that was committed but not yet reported when the kill came.
    EXPECT_GE(rows.size(), reported.size());
    EXPECT_LE(rows.size(), reported.size() + kill_after.size());
    EXPECT_EQ(s->count("thing-a"), rows.size());
    EXPECT_EQ(s->total_count(), rows.size());
}

TEST_F(SpoolTest, FileOfRandomBytesIsMovedAsideWithItsWalAndAnEmptySpoolOpens) {
    const auto garbage = random_bytes(64 * kib, 1);
    const auto garbage_wal = random_bytes(8 * kib, 2);
    write_file(path_, garbage);
    write_file(fs::path{path_.string() + "-wal"}, garbage_wal);

    std::vector<std::string> notices;
    std::string error;
    auto s = store::open(path_, {}, notices, error);
    ASSERT_NE(s, nullptr) << error;
    EXPECT_EQ(s->total_count(), 0U);
    EXPECT_THAT(s->things(), IsEmpty());

    // The database and its WAL (with the -shm index SQLite built while reading them).
    const auto moved = moved_aside(dir_);
    ASSERT_EQ(moved.size(), 1U);
    const auto& moved_db = moved[0];
    EXPECT_THAT(moved_db.filename().string(), ::testing::MatchesRegex(R"(spool\.db\.corrupt-[0-9]{8}T[0-9]{6}Z)"));
    EXPECT_EQ(read_file(moved_db), garbage);
    EXPECT_EQ(read_file(moved_db.string() + "-wal"), garbage_wal);
    // Left next to the fresh spool, that WAL could be replayed into it.
    EXPECT_NE(read_file(path_.string() + "-wal"), garbage_wal);
    ASSERT_EQ(notices.size(), 1U);
    EXPECT_THAT(notices[0], HasSubstr(path_.string()));
    EXPECT_THAT(notices[0], HasSubstr(moved_db.string()));

    // The fresh spool works and stays clean.
    append_ok(*s, "thing-a", "after");
    s.reset();
    auto reopened = open_clean();
    ASSERT_NE(reopened, nullptr);
    EXPECT_EQ(reopened->total_count(), 1U);
}

TEST_F(SpoolTest, ForeignSqliteDatabaseIsMovedAsideNotMistakenForASpool) {
    {
        sqlite3* raw = nullptr;
        ASSERT_EQ(sqlite3_open(path_.c_str(), &raw), SQLITE_OK);
        const std::unique_ptr<sqlite3, decltype(&sqlite3_close)> db{raw, &sqlite3_close};
        ASSERT_EQ(sqlite3_exec(db.get(),
                               "CREATE TABLE users (name TEXT, uid INTEGER);"
                               "INSERT INTO users VALUES ('alice', 1000);",
                               nullptr, nullptr, nullptr),
                  SQLITE_OK);
    }
    const auto original = read_file(path_);

    std::vector<std::string> notices;
    std::string error;
    auto s = store::open(path_, {}, notices, error);
    ASSERT_NE(s, nullptr) << error;
    EXPECT_EQ(s->total_count(), 0U);
    const auto moved = moved_aside(dir_);
    ASSERT_EQ(moved.size(), 1U);
    EXPECT_EQ(read_file(moved[0]), original);
    ASSERT_EQ(notices.size(), 1U);
    EXPECT_THAT(notices[0], HasSubstr("not a thingmux spool"));
    EXPECT_THAT(notices[0], HasSubstr(moved[0].string()));
    append_ok(*s, "thing-a", "works");
}

TEST_F(SpoolTest, SpoolWithDamagedPagesIsMovedAsideAndAnEmptySpoolOpens) {
    {
        auto s = open_clean();
        ASSERT_NE(s, nullptr);
        for (std::uint64_t i = 0; i < 300; ++i) {
            const auto message = numbered(i);
            ASSERT_EQ(s->append("thing-a", message, message.payload.size()).error, failure::none);
        }
    }  // closing checkpoints the WAL into the file
    ASSERT_FALSE(fs::exists(path_.string() + "-wal"));
    // Keep the header page (so it still reads as our spool), overwrite every other page.
    auto content = read_file(path_);
    ASSERT_GT(content.size(), 3U * 4096U);
    const auto noise = random_bytes(content.size() - 4096, 3);
    std::copy(noise.begin(), noise.end(), content.begin() + 4096);
    write_file(path_, content);

    std::vector<std::string> notices;
    std::string error;
    auto s = store::open(path_, {}, notices, error);
    ASSERT_NE(s, nullptr) << error;
    EXPECT_EQ(s->total_count(), 0U);
    ASSERT_EQ(notices.size(), 1U);
    const auto moved = moved_aside(dir_);
    ASSERT_EQ(moved.size(), 1U);
    EXPECT_THAT(notices[0], HasSubstr(moved[0].string()));
    EXPECT_EQ(read_file(moved[0]), content);
}

TEST_F(SpoolTest, SecondCorruptFileDoesNotOverwriteTheFirstOneKept) {
    for (std::uint32_t round = 0; round < 2; ++round) {
        write_file(path_, random_bytes(4096, 10 + round));
        std::vector<std::string> notices;
        std::string error;
        auto s = store::open(path_, {}, notices, error);
        ASSERT_NE(s, nullptr) << error;
        EXPECT_EQ(notices.size(), 1U);
    }
    const auto moved = moved_aside(dir_);
    ASSERT_EQ(moved.size(), 2U);
    std::set<std::vector<std::uint8_t>> kept;
    for (const auto& p : moved) kept.insert(read_file(p));
    EXPECT_EQ(kept, (std::set<std::vector<std::uint8_t>>{random_bytes(4096, 10), random_bytes(4096, 11)}));
}

TEST_F(SpoolTest, EmptyFileLeftByACrashDuringCreationIsAFreshSpool) {
    write_file(path_, {});
    auto s = open_clean();
    ASSERT_NE(s, nullptr);
    append_ok(*s, "thing-a", "m");
    EXPECT_THAT(moved_aside(dir_), IsEmpty());
}

// The file size limit makes every write past it fail with EFBIG, as a full disk fails with
// ENOSPC: the append must report it, store nothing, and the spool must work once there is room.
TEST_F(SpoolTest, WriteFailureReturnsIoWithSqlitesReasonAndStoresNothing) {
    std::array<int, 2> fds{};
    ASSERT_EQ(::pipe(fds.data()), 0) << last_os_error();
    const pid_t child = ::fork();
    ASSERT_GE(child, 0) << last_os_error();
    if (child == 0) {
        ::close(fds[0]);
        std::signal(SIGXFSZ, SIG_IGN);  // the write fails with EFBIG instead of killing the process
        std::vector<std::string> notices;
        std::string error;
        auto s = store::open(path_, {}, notices, error);
        if (!s) ::_exit(10);
        rlimit original{};
        if (::getrlimit(RLIMIT_FSIZE, &original) != 0) ::_exit(11);
        rlimit small = original;
        small.rlim_cur = kib * kib;
        if (::setrlimit(RLIMIT_FSIZE, &small) != 0) ::_exit(11);

        const auto large = payload_message(text_of(random_bytes(64 * kib, 4)));
        std::uint64_t stored_count = 0;
        store::append_result r;
        for (int i = 0; i < 1000; ++i) {
            r = s->append("thing-a", large, large.payload.size());
            if (r.error != failure::none) break;
            ++stored_count;
        }
        if (r.error == failure::none) ::_exit(12);  // never failed
        if (r.error == failure::full) ::_exit(13);
        if (r.message.empty() || r.message.find(path_.string()) == std::string::npos) ::_exit(14);
        if (s->total_count() != stored_count) ::_exit(15);  // the failed one must not count
        // Room again: the same store goes on working.
        if (::setrlimit(RLIMIT_FSIZE, &original) != 0) ::_exit(11);
        if (s->append("thing-a", large, large.payload.size()).error != failure::none) ::_exit(16);
        ++stored_count;
        if (!write_all(fds[1], &stored_count, sizeof stored_count)) ::_exit(17);
        ::_exit(0);
    }
    ::close(fds[1]);
    std::uint64_t stored_count = 0;
    const bool reported = read_all(fds[0], &stored_count, sizeof stored_count);
    ::close(fds[0]);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status)) << "child crashed, status " << status;
    ASSERT_EQ(WEXITSTATUS(status), 0) << "see the _exit codes in the child";
    ASSERT_TRUE(reported);
    EXPECT_GE(stored_count, 2U);

    auto s = open_clean();
    ASSERT_NE(s, nullptr);
    const auto rows = load_all(*s, "thing-a");
    EXPECT_EQ(rows.size(), stored_count);
    for (const auto& row : rows) EXPECT_EQ(row.message.payload, text_of(random_bytes(64 * kib, 4)));
}

TEST_F(SpoolTest, MissingDirectoryFailsToOpenWithAnErrorNamingThePath) {
    const auto path = dir_ / "no-such-dir" / "spool.db";
    std::vector<std::string> notices;
    std::string error;
    EXPECT_EQ(store::open(path, {}, notices, error), nullptr);
    EXPECT_THAT(error, HasSubstr(path.string()));
    EXPECT_THAT(notices, IsEmpty());
    EXPECT_FALSE(fs::exists(dir_ / "no-such-dir"));
}

// As root no permission bit refuses anything; a regular file where a directory should be does.
TEST_F(SpoolTest, PathUnderARegularFileFailsToOpenWithAnErrorNamingThePath) {
    const auto not_a_dir = dir_ / "regular-file";
    write_file(not_a_dir, bytes_of("keep me"));
    const auto path = not_a_dir / "spool.db";
    std::vector<std::string> notices;
    std::string error;
    EXPECT_EQ(store::open(path, {}, notices, error), nullptr);
    EXPECT_THAT(error, HasSubstr(path.string()));
    EXPECT_THAT(notices, IsEmpty());
    EXPECT_EQ(text_of(read_file(not_a_dir)), "keep me");
}

}  // namespace

namespace {

// ---------------------------------------------------------------------------------------------
// The file format (schema 2) and the migration of 0.1.0 spools (schema 1), with the files
// thingmux 0.1.0 wrote in tests/data (see the README there).

using thingmux::spool::user_property;

const fs::path data_dir = THINGMUX_TEST_DATA_DIR;

// A message with every field set, the optional ones present but empty where that differs from absent.
spool_message every_field() {
    spool_message m;
    m.topic = "dt/thing-a/every/field";
    m.payload = std::string("\x00\x01\x02 binary \xff\x00", 13);
    m.qos = 1;
    m.retain = true;
    m.payload_format_indicator = 0;
    m.message_expiry_interval = 4'294'967'295U;
    m.content_type = "";
    m.response_topic = "dt/thing-a/reply";
    m.correlation_data = std::string("\x00\xff", 2);
    m.user_properties = {{"k", "v1"}, {"k", "v2"}, {"", ""}, {"long", std::string(70'000, 'x')}};
    return m;
}

// What spool-0.1.0.sqlite holds, as the apps published it (tests/data/make_spool_0.1.0.cpp).
std::string every_byte_value() {
    std::string out;
    for (int i = 0; i < 300; ++i) out.push_back(static_cast<char>(i % 256));
    return out;
}

struct expected_row {
    std::int64_t id;
    std::string thing;
    spool_message message;
};

std::vector<expected_row> spool_010_rows() {
    spool_message status{.topic = "dt/gateway-01/status", .payload = R"({"ok":true})"};
    status.payload_format_indicator = 1;
    status.message_expiry_interval = 3600;
    status.content_type = "application/json";
    status.response_topic = "dt/gateway-01/status/accepted";
    status.correlation_data = std::string("\x00\x01\xfe\xff", 4);
    status.user_properties = {{"unit", "celsius"}, {"unit", "kelvin"}, {"trace-id", ""}};
    spool_message raw{.topic = "dt/sensor-02/raw", .payload = every_byte_value(), .qos = 1, .retain = true};
    raw.payload_format_indicator = 0;
    spool_message event{.topic = "dt/sensor-02/event", .payload = "door open"};
    event.message_expiry_interval = 0;
    event.user_properties = {{"source", "gpio 17"}};
    return {{1, "gateway-01", {.topic = "dt/gateway-01/temperature", .payload = "21.5"}},
            {2, "gateway-01", status},
            {3, "sensor-02", raw},
            {4, "sensor-02", event},
            {5, "gateway-01", {.topic = "dt/gateway-01/heartbeat", .payload = ""}}};
}

// Plain SQLite on a spool file, to look at it as it is on disk.
class raw_db {
public:
    explicit raw_db(const fs::path& p) {
        EXPECT_EQ(sqlite3_open_v2(p.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK) << p;
    }
    raw_db(const raw_db&) = delete;
    raw_db& operator=(const raw_db&) = delete;
    ~raw_db() { sqlite3_close(db_); }

    // The rows of `sql`, each column as text (blobs as their bytes), NULL as "<null>".
    std::vector<std::vector<std::string>> rows(const std::string& sql) {
        std::vector<std::vector<std::string>> out;
        sqlite3_stmt* stmt = nullptr;
        EXPECT_EQ(sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK) << sqlite3_errmsg(db_);
        while (stmt != nullptr && sqlite3_step(stmt) == SQLITE_ROW) {
            auto& row = out.emplace_back();
            for (int i = 0; i < sqlite3_column_count(stmt); ++i) {
                const auto* data = static_cast<const char*>(sqlite3_column_blob(stmt, i));
                row.push_back(sqlite3_column_type(stmt, i) == SQLITE_NULL
                                  ? "<null>"
                                  : std::string(data == nullptr ? "" : data,
                                                static_cast<std::size_t>(sqlite3_column_bytes(stmt, i))));
            }
        }
        sqlite3_finalize(stmt);
        return out;
    }
    std::string value(const std::string& sql) {
        const auto r = rows(sql);
        return r.empty() || r[0].empty() ? "<none>" : r[0][0];
    }
    void exec(const std::string& sql) {
        EXPECT_EQ(sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK) << sql;
    }

private:
    sqlite3* db_ = nullptr;
};

class SpoolFormatTest : public SpoolTest {
protected:
    // A copy of a fixture at path_: opening migrates the file in place.
    void copy_fixture(const std::string& name) {
        fs::copy_file(data_dir / name, path_, fs::copy_options::overwrite_existing);
    }

    // Opens path_ expecting success; returns the notices.
    std::unique_ptr<store> open_noting(std::vector<std::string>& notices) {
        std::string error;
        auto s = store::open(path_, {}, notices, error);
        EXPECT_NE(s, nullptr) << error;
        return s;
    }
};

TEST_F(SpoolFormatTest, EveryFieldOfAMessageIsLoadedAsItWasAppended) {
    std::int64_t id = 0;
    const spool_message minimal{.topic = "t", .payload = ""};
    {
        auto s = open_clean();
        ASSERT_NE(s, nullptr);
        const auto r = s->append("thing-a", every_field(), 7);
        ASSERT_EQ(r.error, failure::none) << r.message;
        id = r.id;
        ASSERT_EQ(s->append("thing-a", minimal, 1).error, failure::none);
    }
    auto s = open_clean();
    ASSERT_NE(s, nullptr);
    const auto rows = load_all(*s, "thing-a");
    ASSERT_EQ(rows.size(), 2U);
    EXPECT_EQ(rows[0].id, id);
    EXPECT_EQ(rows[0].bytes, 7U);
    EXPECT_EQ(rows[0].message, every_field());
    // Absent stays absent: no property appears from nowhere, none is empty instead of missing.
    EXPECT_EQ(rows[1].message, minimal);
    EXPECT_FALSE(rows[1].message.content_type.has_value());
    EXPECT_FALSE(rows[1].message.correlation_data.has_value());
    EXPECT_TRUE(rows[0].message.content_type.has_value());

    // On disk: columns, not a frame of some protocol.
    raw_db db{path_};
    EXPECT_EQ(db.value("PRAGMA user_version"), "4");
    EXPECT_EQ(
        db.rows("SELECT topic, payload, qos, retain, payload_format, message_expiry, content_type, response_topic,"
                " correlation_data FROM spool WHERE id = " +
                std::to_string(id)),
        (std::vector<std::vector<std::string>>{{"dt/thing-a/every/field", every_field().payload, "1", "1", "0",
                                                "4294967295", "", "dt/thing-a/reply", std::string("\x00\xff", 2)}}));
}

TEST_F(SpoolFormatTest, UserPropertiesEncodingIsVersionedAndRefusesWhatItDidNotWrite) {
    using thingmux::spool::format::decode_user_properties;
    using thingmux::spool::format::encode_user_properties;
    const std::vector<user_property> props{{"a", "1"}, {"a", "2"}, {"", ""}};
    const auto encoded = encode_user_properties(props);
    // Version 1, then (length, key, length, value) per property.
    EXPECT_EQ(encoded, (std::vector<std::uint8_t>{1,   0, 0, 0, 1, 'a', 0, 0, 0, 1, '1', 0, 0, 0, 1,
                                                  'a', 0, 0, 0, 1, '2', 0, 0, 0, 0, 0,   0, 0, 0}));
    std::vector<user_property> decoded;
    std::string why;
    ASSERT_TRUE(decode_user_properties(encoded, decoded, why)) << why;
    EXPECT_EQ(decoded, props);

    const auto refused = [&](std::vector<std::uint8_t> bytes) {
        why.clear();
        const bool ok = decode_user_properties(bytes, decoded, why);
        return !ok && !why.empty();
    };
    EXPECT_TRUE(refused({}));
    EXPECT_TRUE(refused({2}));  // a later encoding
    auto cut = encoded;
    cut.pop_back();
    EXPECT_TRUE(refused(cut));                   // ends inside a length
    EXPECT_TRUE(refused({1, 0, 0, 0, 9, 'a'}));  // a string longer than what is left
    EXPECT_TRUE(refused({1, 0, 0, 0, 1, 'a'}));  // a key without a value
}

TEST_F(SpoolFormatTest, Spool010FileIsMigratedFieldByFieldInOrderWithCountsAndBytes) {
    copy_fixture("spool-0.1.0.sqlite");
    const auto before = raw_db{path_}.rows("SELECT id, thing, bytes FROM spool ORDER BY id");
    ASSERT_EQ(before.size(), 5U);

    std::vector<std::string> notices;
    auto s = open_noting(notices);
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(notices, (std::vector<std::string>{"spool " + path_.string() +
                                                 ": converted 5 message(s) from spool schema 1 (thingmux 0.1.0) to "
                                                 "schema 4"}));
    EXPECT_THAT(moved_aside(dir_), IsEmpty());

    std::vector<stored> loaded;
    for (const auto* thing : {"gateway-01", "sensor-02"}) {
        for (auto& row : load_all(*s, thing)) loaded.push_back(std::move(row));
    }
    std::sort(loaded.begin(), loaded.end(), [](const stored& a, const stored& b) { return a.id < b.id; });
    const auto expected = spool_010_rows();
    ASSERT_EQ(loaded.size(), expected.size());
    std::map<std::string, std::pair<std::uint64_t, std::uint64_t>> usage;  // count, bytes
    for (std::size_t i = 0; i < expected.size(); ++i) {
        SCOPED_TRACE("message " + std::to_string(expected[i].id));
        EXPECT_EQ(loaded[i].id, expected[i].id);
        EXPECT_EQ(loaded[i].thing, expected[i].thing);
        const auto& got = loaded[i].message;
        const auto& want = expected[i].message;
        EXPECT_EQ(got.topic, want.topic);
        EXPECT_EQ(got.payload, want.payload);
        EXPECT_EQ(got.qos, 1);
        EXPECT_EQ(got.retain, want.retain);
        EXPECT_EQ(got.payload_format_indicator, want.payload_format_indicator);
        EXPECT_EQ(got.message_expiry_interval, want.message_expiry_interval);
        EXPECT_EQ(got.content_type, want.content_type);
        EXPECT_EQ(got.response_topic, want.response_topic);
        EXPECT_EQ(got.correlation_data, want.correlation_data);
        EXPECT_EQ(got.user_properties, want.user_properties);
        EXPECT_EQ(got, want);  // and nothing this list forgot
        // The byte count is the one 0.1.0 stored (topic + payload), not recomputed.
        EXPECT_EQ(std::to_string(loaded[i].bytes), before[i][2]);
        EXPECT_EQ(loaded[i].bytes, want.topic.size() + want.payload.size());
        ++usage[loaded[i].thing].first;
        usage[loaded[i].thing].second += loaded[i].bytes;
    }
    EXPECT_EQ(s->things(), (std::vector<std::string>{"gateway-01", "sensor-02"}));
    for (const auto& [thing, u] : usage) {
        EXPECT_EQ(s->count(thing), u.first) << thing;
        EXPECT_EQ(s->bytes(thing), u.second) << thing;
    }
    EXPECT_EQ(s->total_count(), 5U);
    // Message 6 was acknowledged and removed under 0.1.0: its id is not given out again.
    EXPECT_EQ(append_ok(*s, "gateway-01", "after the migration"), 7);
}

TEST_F(SpoolFormatTest, UnreadableRowsOfA010FileGoToQuarantineWithTheReasonAndTheRestMigrate) {
    copy_fixture("spool-0.1.0-unreadable-rows.sqlite");
    const auto original =
        raw_db{path_}.rows("SELECT id, thing, message, bytes FROM spool WHERE id IN (2, 4) ORDER BY id");
    ASSERT_EQ(original.size(), 2U);

    std::vector<std::string> notices;
    auto s = open_noting(notices);
    ASSERT_NE(s, nullptr);
    ASSERT_EQ(notices.size(), 3U);
    EXPECT_THAT(notices[0], HasSubstr("converted 3 message(s) from spool schema 1"));
    EXPECT_THAT(notices[1], HasSubstr("message 2 of Thing gateway-01: "));
    EXPECT_THAT(notices[2], HasSubstr("message 4 of Thing sensor-02: the frame is cut short"));
    for (const auto& n : notices) EXPECT_THAT(n, HasSubstr(path_.string()));
    EXPECT_THAT(notices[1], HasSubstr("kept in the table quarantine"));

    const auto expected = spool_010_rows();
    const auto gateway = load_all(*s, "gateway-01");
    ASSERT_EQ(gateway.size(), 2U);
    EXPECT_EQ(gateway[0].id, 1);
    EXPECT_EQ(gateway[0].message, expected[0].message);
    EXPECT_EQ(gateway[1].id, 5);
    EXPECT_EQ(gateway[1].message, expected[4].message);
    const auto sensor = load_all(*s, "sensor-02");
    ASSERT_EQ(sensor.size(), 1U);
    EXPECT_EQ(sensor[0].id, 3);
    EXPECT_EQ(sensor[0].message, expected[2].message);
    // Quarantined messages are not counted against the spool's limits: they are never sent.
    EXPECT_EQ(s->count("gateway-01"), 2U);
    EXPECT_EQ(s->count("sensor-02"), 1U);
    EXPECT_EQ(s->total_bytes(), gateway[0].bytes + gateway[1].bytes + sensor[0].bytes);
    s.reset();

    // Kept as they were stored, with why.
    raw_db db{path_};
    const auto kept = db.rows("SELECT id, thing, record, bytes, format, reason FROM quarantine ORDER BY id");
    ASSERT_EQ(kept.size(), 2U);
    for (std::size_t i = 0; i < 2; ++i) {
        EXPECT_EQ(std::vector<std::string>(kept[i].begin(), kept[i].begin() + 4), original[i]);
        EXPECT_EQ(kept[i][4], "ipc-publish-frame-1");
        EXPECT_FALSE(kept[i][5].empty());
    }
}

TEST_F(SpoolFormatTest, ReopeningAMigratedSpoolChangesNothing) {
    copy_fixture("spool-0.1.0-unreadable-rows.sqlite");
    {
        std::vector<std::string> notices;
        ASSERT_NE(open_noting(notices), nullptr);
        ASSERT_EQ(notices.size(), 3U);
    }
    const auto file = read_file(path_);
    const auto everything = [this] {
        raw_db db{path_};
        auto out = db.rows("SELECT * FROM spool ORDER BY id");
        for (auto& row : db.rows("SELECT * FROM quarantine ORDER BY id")) out.push_back(std::move(row));
        out.push_back({db.value("PRAGMA user_version"), db.value("SELECT seq FROM sqlite_sequence")});
        return out;
    };
    const auto migrated = everything();
    ASSERT_EQ(migrated.size(), 3U + 2U + 1U);
    EXPECT_EQ(migrated.back(), (std::vector<std::string>{"4", "5"}));
    for (int round = 0; round < 2; ++round) {
        auto s = open_clean();  // no notice: nothing to convert
        ASSERT_NE(s, nullptr);
        EXPECT_EQ(s->total_count(), 3U);
    }
    EXPECT_EQ(everything(), migrated);
    EXPECT_EQ(read_file(path_), file);
}

// A 0.1.0 spool with many messages, so that converting it writes well past `limit` bytes.
void grow_010_spool(const fs::path& path) {
    raw_db db{path};
    // 5 << 8 = 1280 rows: the frames 0.1.0 wrote, copied.
    for (int i = 0; i < 8; ++i)
        db.exec("INSERT INTO spool (thing, message, bytes) SELECT thing, message, bytes FROM spool");
}

// What a 0.1.0 spool holds, to compare before and after a failed migration.
std::vector<std::vector<std::string>> schema_1_content(const fs::path& path) {
    raw_db db{path};
    auto out = db.rows("SELECT id, thing, message, bytes FROM spool ORDER BY id");
    out.push_back({db.value("PRAGMA user_version"), db.value("SELECT seq FROM sqlite_sequence WHERE name = 'spool'")});
    return out;
}

// Runs `body` in a forked child that exits with what it returns; `body` may write a report to
// the file descriptor it gets. The child's wait status and that report.
struct child_outcome {
    int status = 0;
    std::string report;
};
child_outcome run_in_child(const std::function<int(int report_fd)>& body) {
    child_outcome out;
    std::array<int, 2> fds{};
    if (::pipe(fds.data()) != 0) {
        ADD_FAILURE() << last_os_error();
        return out;
    }
    const pid_t child = ::fork();
    if (child == 0) {
        ::close(fds[0]);
        ::_exit(body(fds[1]));
    }
    ::close(fds[1]);
    std::array<char, 512> buf{};
    for (ssize_t n = 0; (n = ::read(fds[0], buf.data(), buf.size())) > 0;)
        out.report.append(buf.data(), static_cast<std::size_t>(n));
    ::close(fds[0]);
    EXPECT_GT(child, 0) << last_os_error();
    if (child > 0) {
        EXPECT_EQ(::waitpid(child, &out.status, 0), child);
    }
    return out;
}

// The migration is one transaction; a process that dies in the middle of it (here: killed by
// SIGXFSZ when a write passes the file size limit, at the same point where the next test's
// write fails) leaves no commit behind, and SQLite ignores the rest: the file is the 0.1.0
// spool it was.
TEST_F(SpoolFormatTest, CrashDuringTheMigrationLeavesTheSchema1FileUsableAndTheNextOpenConverts) {
    copy_fixture("spool-0.1.0.sqlite");
    grow_010_spool(path_);
    const auto before = schema_1_content(path_);
    ASSERT_EQ(before.size(), 1280U + 1U);
    ASSERT_EQ(before.back()[0], "1");

    const auto crashed = run_in_child([this](int) {
        const rlimit no_core{0, 0};
        ::setrlimit(RLIMIT_CORE, &no_core);
        // Above the 32 KiB of the -shm file SQLite creates while reading, below what the
        // conversion writes.
        const rlimit small{64 * kib, 64 * kib};
        if (::setrlimit(RLIMIT_FSIZE, &small) != 0) return 11;
        std::vector<std::string> notices;
        std::string error;
        auto s = store::open(path_, {}, notices, error);
        return s ? 12 : 13;  // not reached: the conversion writes past the limit
    });
    const int status = crashed.status;
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGXFSZ) << "status " << status;

    EXPECT_EQ(schema_1_content(path_), before);

    std::vector<std::string> notices;
    auto s = open_noting(notices);
    ASSERT_NE(s, nullptr);
    ASSERT_EQ(notices.size(), 1U);
    EXPECT_THAT(notices[0], HasSubstr("converted 1280 message(s)"));
    EXPECT_EQ(s->total_count(), 1280U);
    EXPECT_EQ(load_all(*s, "sensor-02").size(), 512U);
}

// The same with the write refused (EFBIG, like ENOSPC on a full disk) instead of the process
// killed: the conversion is rolled back, open() fails naming the file (the daemon then runs
// without a spool), and the file is left as it was for the next start.
TEST_F(SpoolFormatTest, WriteFailureDuringTheMigrationIsReportedAndLeavesTheSchema1File) {
    copy_fixture("spool-0.1.0.sqlite");
    grow_010_spool(path_);
    const auto before = schema_1_content(path_);

    const auto failed = run_in_child([this](int report_fd) {
        std::signal(SIGXFSZ, SIG_IGN);
        const rlimit small{64 * kib, 64 * kib};
        if (::setrlimit(RLIMIT_FSIZE, &small) != 0) return 11;
        std::vector<std::string> notices;
        std::string error;
        auto s = store::open(path_, {}, notices, error);
        if (s != nullptr || !notices.empty()) return 12;
        return write_all(report_fd, error.data(), error.size()) ? 0 : 13;
    });
    const int status = failed.status;
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
    const std::string& error = failed.report;
    EXPECT_THAT(error, HasSubstr(path_.string()));
    // Said only once the conversion's transaction had begun.
    EXPECT_THAT(error, HasSubstr("cannot migrate from schema 1 ("));
    EXPECT_THAT(moved_aside(dir_), IsEmpty());

    EXPECT_EQ(schema_1_content(path_), before);
    std::vector<std::string> notices;
    auto s = open_noting(notices);
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->total_count(), 1280U);
}

TEST_F(SpoolFormatTest, SpoolOfALaterSchemaIsMovedAsideAndAnEmptySpoolOpens) {
    {
        auto s = open_clean();
        ASSERT_NE(s, nullptr);
        append_ok(*s, "thing-a", "written by a later release");
    }
    raw_db{path_}.exec("PRAGMA user_version = 5");
    std::vector<std::string> notices;
    auto s = open_noting(notices);
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->total_count(), 0U);
    ASSERT_EQ(notices.size(), 1U);
    EXPECT_THAT(notices[0], HasSubstr("unknown spool schema version 5"));
    const auto moved = moved_aside(dir_);
    ASSERT_EQ(moved.size(), 1U);
    EXPECT_EQ(raw_db{moved[0]}.value("SELECT count(*) FROM spool"), "1");
}

TEST_F(SpoolFormatTest, RowThatBreaksTheFormatIsMovedToQuarantineWhenLoadedAndTheOthersLoad) {
    std::vector<std::int64_t> ids;
    {
        auto s = open_clean();
        ASSERT_NE(s, nullptr);
        for (int i = 0; i < 3; ++i) {
            auto m = every_field();
            m.payload = "m" + std::to_string(i);
            const auto r = s->append("thing-a", m, 10);
            ASSERT_EQ(r.error, failure::none) << r.message;
            ids.push_back(r.id);
        }
    }
    raw_db{path_}.exec("UPDATE spool SET user_properties = x'02' WHERE id = " + std::to_string(ids[1]));

    auto s = open_clean();
    ASSERT_NE(s, nullptr);
    const auto loaded = s->load("thing-a", 0, 100);
    ASSERT_EQ(loaded.rows.size(), 2U);
    EXPECT_EQ(loaded.rows[0].id, ids[0]);
    EXPECT_EQ(loaded.rows[1].id, ids[2]);
    EXPECT_EQ(loaded.error, "message " + std::to_string(ids[1]) +
                                " is unreadable (user_properties has unknown encoding 2); moved it to the table "
                                "quarantine");
    EXPECT_EQ(s->count("thing-a"), 2U);
    EXPECT_EQ(s->bytes("thing-a"), 20U);
    EXPECT_EQ(s->load("thing-a", 0, 100).error, "");
    s.reset();

    raw_db db{path_};
    const auto kept = db.rows(
        "SELECT id, thing, bytes, format, json_extract(record, '$.topic'),"
        " json_extract(record, '$.payload') FROM quarantine");
    ASSERT_EQ(kept.size(), 1U);
    EXPECT_EQ(kept[0], (std::vector<std::string>{std::to_string(ids[1]), "thing-a", "10", "spool-2-row-json",
                                                 "dt/thing-a/every/field", "6D31"}));
}

}  // namespace
