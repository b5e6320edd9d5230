# `cmake --install` writes a relocatable package: find_package(tlora [COMPONENTS core models glue dist])
# and tlora::core, tlora::models, tlora::glue, tlora::dist or all of them as tlora::tlora.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(TLORA_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/tlora")
install(TARGETS tlora tlora_core tlora_models tlora_glue tlora_dist EXPORT tloraTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY include/tlora DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT tloraTargets NAMESPACE tlora:: DESTINATION ${TLORA_INSTALL_CMAKEDIR})

configure_package_config_file(cmake/tloraConfig.cmake.in
  "${PROJECT_BINARY_DIR}/tloraConfig.cmake" INSTALL_DESTINATION ${TLORA_INSTALL_CMAKEDIR})
write_basic_package_version_file("${PROJECT_BINARY_DIR}/tloraConfigVersion.cmake"
  COMPATIBILITY SameMinorVersion)
install(FILES "${PROJECT_BINARY_DIR}/tloraConfig.cmake" "${PROJECT_BINARY_DIR}/tloraConfigVersion.cmake"
  DESTINATION ${TLORA_INSTALL_CMAKEDIR})
