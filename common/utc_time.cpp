#include "common/utc_time.hpp"

#include <array>
#include <cstdio>

namespace thingmux {

std::string utc_text(std::chrono::system_clock::time_point t, utc_format format) {
    using namespace std::chrono;
    const auto day = floor<days>(t);
    const year_month_day date{day};
    const hh_mm_ss time{floor<seconds>(t - day)};
    const int y = static_cast<int>(date.year());
    const unsigned mo = static_cast<unsigned>(date.month());
    const unsigned d = static_cast<unsigned>(date.day());
    const int h = static_cast<int>(time.hours().count());
    const int mi = static_cast<int>(time.minutes().count());
    const int s = static_cast<int>(time.seconds().count());
    std::array<char, 48> text{};
    switch (format) {
        case utc_format::minutes:
            std::snprintf(text.data(), text.size(), "%04d-%02u-%02u %02d:%02d UTC", y, mo, d, h, mi);
            break;
        case utc_format::seconds:
            std::snprintf(text.data(), text.size(), "%04d-%02u-%02u %02d:%02d:%02d UTC", y, mo, d, h, mi, s);
            break;
        case utc_format::iso8601:
            std::snprintf(text.data(), text.size(), "%04d-%02u-%02uT%02d:%02d:%02dZ", y, mo, d, h, mi, s);
            break;
        case utc_format::compact:
            std::snprintf(text.data(), text.size(), "%04d%02u%02uT%02d%02d%02dZ", y, mo, d, h, mi, s);
            break;
    }
    return text.data();
}

std::optional<std::chrono::system_clock::time_point> utc_time_point(const std::tm& tm) {
    using namespace std::chrono;
    if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_hour < 0 || tm.tm_hour > 23 || tm.tm_min < 0 ||
        tm.tm_min > 59 || tm.tm_sec < 0 || tm.tm_sec > 60)
        return std::nullopt;
    const year_month_day date{year{tm.tm_year + 1900}, month{static_cast<unsigned>(tm.tm_mon + 1)},
                              day{static_cast<unsigned>(tm.tm_mday)}};
    if (!date.ok()) return std::nullopt;
    return system_clock::time_point{sys_days{date} + hours{tm.tm_hour} + minutes{tm.tm_min} + seconds{tm.tm_sec}};
}

}  // namespace thingmux
