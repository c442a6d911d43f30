# thingmux_warnings: an interface target every project target links, so the warning set and
# -Werror are stated once.
add_library(thingmux_warnings INTERFACE)
target_compile_options(thingmux_warnings INTERFACE -Wall -Wextra -Wpedantic -Werror
  -Wshadow -Wnon-virtual-dtor -Wold-style-cast -Wcast-align -Woverloaded-virtual
  -Wconversion -Wsign-conversion -Wno-missing-field-initializers)
