# Which c10d backends this LibTorch offers tlora::dist: TLORA_HAVE_GLOO (CPU tensors) and
# TLORA_HAVE_NCCL (CUDA tensors), each proven by compiling and linking a probe against `torch`.
#
# Gloo: libtorch_cpu carries ProcessGroupGloo when torch_cpu's interface defines USE_C10D_GLOO,
# but the wheel does not ship gloo's headers, which ProcessGroupGloo.hpp includes. They come from
# TLORA_GLOO_INCLUDE_DIR, LibTorch's include folder, or the system (Debian's libgloo-dev). Only
# the headers are used: ProcessGroupGloo holds gloo objects by pointer and is built by exported
# functions, and gloo's own library must never be linked next to the copy inside libtorch_cpu.
#
# NCCL: libtorch_cuda carries ProcessGroupNCCL when torch_cuda defines USE_C10D_NCCL; nccl.h
# comes from the nvidia-nccl wheel beside torch or the CUDA toolkit. libtorch_cuda needs
# libcudart and libnccl, never the driver (libcuda.so), so CPU-only machines still start.

function(_tlora_torch_defines target out)
  set(_defs "")
  if(TARGET ${target})
    get_target_property(_defs ${target} INTERFACE_COMPILE_DEFINITIONS)
  endif()
  set(${out} "${_defs}" PARENT_SCOPE)
endfunction()

# The library file of an imported target (try_compile cannot take torch's targets themselves:
# their link interfaces name targets, such as protobuf's, that only exist inside TorchConfig).
function(_tlora_imported_file target out)
  set(_file "")
  foreach(_property IMPORTED_LOCATION IMPORTED_LOCATION_RELEASE IMPORTED_LOCATION_NOCONFIG)
    if(NOT _file)
      get_target_property(_file ${target} ${_property})
    endif()
  endforeach()
  set(${out} "${_file}" PARENT_SCOPE)
endfunction()

# Compiles and links the probe `probe` (a file in cmake/probes) with torch's include folders plus
# `include_dirs`, torch's definitions for `targets` and their libraries; sets `result`.
function(_tlora_probe_backend result probe include_dirs targets)
  set(_libraries "")
  set(_definitions "")
  foreach(_target ${targets})
    _tlora_imported_file(${_target} _file)
    list(APPEND _libraries "${_file}")
    _tlora_torch_defines(${_target} _defs)
    foreach(_def ${_defs})
      list(APPEND _definitions "-D${_def}")
    endforeach()
  endforeach()
  try_compile(${result}
    SOURCES ${PROJECT_SOURCE_DIR}/cmake/probes/${probe}
    CMAKE_FLAGS "-DINCLUDE_DIRECTORIES=${TORCH_INCLUDE_DIRS};${include_dirs}"
    COMPILE_DEFINITIONS ${_definitions}
    LINK_LIBRARIES ${_libraries}
    CXX_STANDARD 20 CXX_STANDARD_REQUIRED ON
    OUTPUT_VARIABLE _log)
  if(NOT ${result})
    file(WRITE ${CMAKE_BINARY_DIR}/${probe}.log "${_log}")
  endif()
endfunction()

set(TLORA_HAVE_GLOO OFF)
_tlora_torch_defines(torch_cpu _tlora_cpu_defines)
find_path(TLORA_GLOO_INCLUDE_DIR gloo/algorithm.h HINTS ${TORCH_INSTALL_PREFIX}/include
  DOC "Folder holding gloo/ headers (Debian: libgloo-dev) for ProcessGroupGloo.hpp")
if(NOT "USE_C10D_GLOO" IN_LIST _tlora_cpu_defines)
  set(_tlora_gloo_why "this LibTorch was built without Gloo (no USE_C10D_GLOO)")
elseif(NOT TLORA_GLOO_INCLUDE_DIR)
  set(_tlora_gloo_why "gloo headers not found (apt-get install libgloo-dev, or set TLORA_GLOO_INCLUDE_DIR)")
else()
  _tlora_probe_backend(TLORA_GLOO_PROBE gloo_probe.cpp "${TLORA_GLOO_INCLUDE_DIR}" "torch_cpu;c10")
  if(TLORA_GLOO_PROBE)
    set(TLORA_HAVE_GLOO ON)
  else()
    set(_tlora_gloo_why "the probe with ${TLORA_GLOO_INCLUDE_DIR} failed (${CMAKE_BINARY_DIR}/gloo_probe.cpp.log)")
  endif()
endif()

set(TLORA_HAVE_NCCL OFF)
_tlora_torch_defines(torch_cuda _tlora_cuda_defines)
find_path(TLORA_NCCL_INCLUDE_DIR nccl.h
  HINTS ${TORCH_INSTALL_PREFIX}/../nvidia/nccl/include ${CUDAToolkit_INCLUDE_DIRS} /usr/local/cuda/include
  DOC "Folder holding nccl.h for ProcessGroupNCCL.hpp")
if(NOT "USE_C10D_NCCL" IN_LIST _tlora_cuda_defines)
  set(_tlora_nccl_why "this LibTorch was built without CUDA or NCCL (no USE_C10D_NCCL)")
elseif(NOT TLORA_NCCL_INCLUDE_DIR)
  set(_tlora_nccl_why "nccl.h not found (pip install nvidia-nccl, or set TLORA_NCCL_INCLUDE_DIR)")
else()
  _tlora_probe_backend(TLORA_NCCL_PROBE nccl_probe.cpp "${TLORA_NCCL_INCLUDE_DIR};${CUDAToolkit_INCLUDE_DIRS}"
    "torch_cuda;c10_cuda;torch_cpu;c10")
  if(TLORA_NCCL_PROBE)
    set(TLORA_HAVE_NCCL ON)
  else()
    set(_tlora_nccl_why "the probe with ${TLORA_NCCL_INCLUDE_DIR} failed (${CMAKE_BINARY_DIR}/nccl_probe.cpp.log)")
  endif()
endif()

foreach(_backend GLOO NCCL)
  if(TLORA_HAVE_${_backend})
    message(STATUS "tlora::dist: ${_backend} backend available")
  else()
    string(TOLOWER ${_backend} _lower)
    message(STATUS "tlora::dist: no ${_backend} backend: ${_tlora_${_lower}_why}")
  endif()
endforeach()
