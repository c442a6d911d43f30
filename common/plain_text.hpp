// Plain text taken apart: into lines, for the line-oriented files thingmuxd reads (password
// files, AWS credentials files); into fields, for dotted or delimited names; and to ASCII lower
// case, for names compared without regard to case. Pure.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace thingmux::text {

// The lines of a text, one at a time, each without its "\n" and without one "\r" before it (so
// CRLF files read as LF ones). A last line without "\n" counts; an empty text has no line.
//
//     line_reader lines(text);
//     while (const auto line = lines.next()) use(*line, lines.number());
class line_reader {
public:
    explicit line_reader(std::string_view text) noexcept : text_(text) {}
    [[nodiscard]] std::optional<std::string_view> next() noexcept;
    // The 1-based number of the line next() returned last.
    [[nodiscard]] int number() const noexcept { return number_; }

private:
    std::string_view text_;
    std::size_t pos_ = 0;
    int number_ = 0;
};

// The pieces between `separator`s: "a.b" -> {"a", "b"}, "a..b" -> {"a", "", "b"}, "" -> {""}.
[[nodiscard]] std::vector<std::string_view> split(std::string_view s, char separator);

// `s` with A-Z as a-z; every other byte unchanged (no locale).
[[nodiscard]] std::string ascii_lower(std::string_view s);

}  // namespace thingmux::text
