# Finds LibTorch and decides whether the CUDA kernels are compiled.
#
# Torch's own TORCH_LIBRARIES pulls in CUDA::nvrtc and with it the driver library
# (libcuda.so), which does not exist on machines without a GPU. We link the imported `torch`
# target instead (libtorch_cpu and libtorch_cuda, neither of which needs the driver to load),
# so no binary of ours needs a GPU to start.

if(NOT DEFINED TORCH_CUDA_ARCH_LIST AND NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST})
  # H200 (sm_90) first; sm_80 is cheap to add for A100s.
  set(TORCH_CUDA_ARCH_LIST "8.0;9.0")
endif()
if(DEFINED TORCH_CUDA_ARCH_LIST)
  set(ENV{TORCH_CUDA_ARCH_LIST} "${TORCH_CUDA_ARCH_LIST}")
endif()

find_program(TLORA_NVCC nvcc HINTS /usr/local/cuda/bin ENV CUDA_HOME PATH_SUFFIXES bin)
if(TLORA_NVCC AND NOT CMAKE_CUDA_COMPILER AND NOT TLORA_CUDA STREQUAL "OFF")
  set(CMAKE_CUDA_COMPILER "${TLORA_NVCC}")
endif()

find_package(Torch REQUIRED)

set(TLORA_WITH_CUDA OFF)
if(TLORA_CUDA STREQUAL "OFF")
  message(STATUS "tlora: CUDA kernels disabled (TLORA_CUDA=OFF)")
elseif(TARGET torch_cuda AND TLORA_NVCC)
  set(TLORA_WITH_CUDA ON)
elseif(TLORA_CUDA STREQUAL "ON")
  if(TARGET torch_cuda)
    set(_tlora_why "nvcc was not found (set CUDA_HOME or put nvcc on PATH)")
  else()
    set(_tlora_why "this LibTorch was built without CUDA")
  endif()
  message(FATAL_ERROR "tlora: TLORA_CUDA=ON but ${_tlora_why}; or configure with -DTLORA_CUDA=OFF.")
else()
  message(STATUS "tlora: CUDA kernels disabled (torch without CUDA or no nvcc)")
endif()
if(TLORA_WITH_CUDA)
  enable_language(CUDA)
  message(STATUS "tlora: CUDA kernels enabled for TORCH_CUDA_ARCH_LIST=$ENV{TORCH_CUDA_ARCH_LIST}")
endif()
