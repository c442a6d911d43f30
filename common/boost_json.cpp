// Boost.JSON's compiled part, in this one translation unit of the whole program (Boost.JSON is
// used header-only: a second copy of this include anywhere else breaks the link).
#include <boost/json/src.hpp>
