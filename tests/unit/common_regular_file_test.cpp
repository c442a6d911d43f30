// files::read_regular: configured files are read without ever waiting on what sits at the path.
#include "common/regular_file.hpp"

#include <gtest/gtest.h>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

namespace thingmux::files {
namespace {

class RegularFile : public ::testing::Test {
protected:
    RegularFile() : dir_(std::filesystem::temp_directory_path() / ("thingmux-files-" + std::to_string(::getpid()))) {
        std::filesystem::create_directories(dir_);
    }
    ~RegularFile() override { std::filesystem::remove_all(dir_); }

    std::filesystem::path dir_;
};

TEST_F(RegularFile, ReadsARegularFileWithItsMode) {
    std::ofstream(dir_ / "a.pem") << "-----BEGIN-----\n";
    ::chmod((dir_ / "a.pem").c_str(), 0640);
    const auto c = read_regular(dir_ / "a.pem", 1024);
    ASSERT_TRUE(c.ok()) << c.problem;
    EXPECT_EQ(c.bytes, "-----BEGIN-----\n");
    EXPECT_EQ(c.mode & 0777, 0640U);
    EXPECT_TRUE(check_regular(dir_ / "a.pem").ok());
}

// With no writer, opening a FIFO for reading would block: the test itself would hang.
TEST_F(RegularFile, AFifoIsRefusedWithoutWaitingForAWriter) {
    ASSERT_EQ(::mkfifo((dir_ / "fifo").c_str(), 0600), 0);
    const auto c = read_regular(dir_ / "fifo", 1024);
    EXPECT_FALSE(c.ok());
    EXPECT_EQ(c.os_error, 0);
    EXPECT_EQ(c.problem, "is a FIFO (named pipe), not a regular file");
    EXPECT_EQ(check_regular(dir_ / "fifo").problem, "is a FIFO (named pipe), not a regular file");
}

TEST_F(RegularFile, DirectoriesSocketsAndDevicesAreNamed) {
    EXPECT_EQ(read_regular(dir_, 1024).problem, "is a directory, not a regular file");
    EXPECT_EQ(read_regular("/dev/null", 1024).problem, "is a character device, not a regular file");
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, (dir_ / "s").c_str(), sizeof addr.sun_path - 1);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    // A socket cannot be open()ed at all: the error is the OS's.
    const auto c = read_regular(dir_ / "s", 1024);
    EXPECT_FALSE(c.ok());
    EXPECT_EQ(c.os_error, ENXIO);
    ::close(fd);
}

TEST_F(RegularFile, MissingAndOversizedFilesSayWhy) {
    const auto missing = read_regular(dir_ / "none", 1024);
    EXPECT_EQ(missing.os_error, ENOENT);
    EXPECT_EQ(missing.problem, "no such file or directory");
    std::ofstream(dir_ / "big") << std::string(2000, 'x');
    const auto big = read_regular(dir_ / "big", 1024);
    EXPECT_EQ(big.problem, "is larger than 1024 bytes");
    EXPECT_TRUE(big.bytes.empty());
}

}  // namespace
}  // namespace thingmux::files
