// The result type of the identity module's synchronous functions: a value, or a message for
// people that says which file or step failed and what to do.
#pragma once

#include <boost/assert/source_location.hpp>
#include <boost/system/result.hpp>

#include <stdexcept>
#include <string>

namespace thingmux::identity {

struct error {
    std::string message;
};

template <class T>
using result = boost::system::result<T, error>;

// For result::value() on an error.
[[noreturn]] inline void throw_exception_from_error(const error& e, const boost::source_location&) {
    throw std::runtime_error(e.message);
}

}  // namespace thingmux::identity
