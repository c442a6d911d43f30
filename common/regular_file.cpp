#include "common/regular_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cerrno>
#include <cstdint>
#include <cstring>

namespace thingmux::files {

namespace {

// Closes the descriptor however read_regular() returns.
struct descriptor {
    int fd;
    ~descriptor() {
        if (fd >= 0) ::close(fd);
    }
};

contents failed(int err) {
    contents c;
    c.os_error = err;
    c.problem = error_text(err);
    return c;
}

contents too_large(std::size_t max_bytes) {
    contents c;
    c.problem = "is larger than " + std::to_string(max_bytes) + " bytes";
    return c;
}

// Opens `path` for reading if it is a regular file; else returns -1 with `c` saying why.
// O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
int open_regular(const std::filesystem::path& path, contents& c) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        c = failed(errno);
        return -1;
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        c = failed(errno);
        ::close(fd);
        return -1;
    }
    c.mode = st.st_mode;
    c.gid = st.st_gid;
    c.size = st.st_size;
    if (!S_ISREG(st.st_mode)) {
        c.problem = std::string("is ") + file_type_name(st.st_mode) + ", not a regular file";
        ::close(fd);
        return -1;
    }
    return fd;
}

}  // namespace

std::string error_text(int err) {
    std::string s = std::strerror(err);
    if (!s.empty() && s[0] >= 'A' && s[0] <= 'Z') s[0] = static_cast<char>(s[0] - 'A' + 'a');
    return s;
}

const char* file_type_name(mode_t mode) noexcept {
    if (S_ISREG(mode)) return "a regular file";
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
    if (S_ISSOCK(mode)) return "a socket";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISLNK(mode)) return "a symbolic link";
    return "not a regular file";
}

contents read_regular(const std::filesystem::path& path, std::size_t max_bytes) {
    contents c;
    const descriptor file{open_regular(path, c)};
    if (file.fd < 0) return c;
    if (static_cast<std::uintmax_t>(c.size) > max_bytes) return too_large(max_bytes);
    c.bytes.resize(static_cast<std::size_t>(c.size));
    std::size_t got = 0;
    // A file that grows while being read is cut at max_bytes + 1, which is then reported.
    for (;;) {
        if (got == c.bytes.size()) {
            if (got > max_bytes) break;
            c.bytes.resize(got + 4096);
        }
        const auto n = ::read(file.fd, c.bytes.data() + got, c.bytes.size() - got);
        if (n < 0) {
            if (errno == EINTR) continue;
            return failed(errno);
        }
        if (n == 0) break;
        got += static_cast<std::size_t>(n);
    }
    if (got > max_bytes) return too_large(max_bytes);
    c.bytes.resize(got);
    return c;
}

contents check_regular(const std::filesystem::path& path) {
    contents c;
    const descriptor file{open_regular(path, c)};
    return c;
}

}  // namespace thingmux::files
