# fmt, header-only. LibTorch's include directory carries its own fmt headers and comes first on
# the include path, so compiled against Debian's libfmt the headers and the library would
# disagree on the version. Header-only mode compiles whichever headers are found, consistently;
# on machines without libfmt-dev (the GPU machine) LibTorch's copy serves alone.
find_package(fmt QUIET)
add_library(tlora_fmt INTERFACE)
if(TARGET fmt::fmt-header-only)
  target_link_libraries(tlora_fmt INTERFACE fmt::fmt-header-only)
else()
  target_compile_definitions(tlora_fmt INTERFACE FMT_HEADER_ONLY=1)
endif()
