# SPDX-License-Identifier: GPL-2.0-or-later
include(CMakePackageConfigHelpers)
install(TARGETS tlsq EXPORT tlsqTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  PUBLIC_HEADER DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT tlsqTargets NAMESPACE tlsq:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/tlsq)
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/tlsq-config.cmake.in
  ${CMAKE_BINARY_DIR}/tlsq-config.cmake INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/tlsq)
write_basic_package_version_file(${CMAKE_BINARY_DIR}/tlsq-config-version.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/tlsq-config.cmake ${CMAKE_BINARY_DIR}/tlsq-config-version.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/tlsq)
configure_file(${CMAKE_CURRENT_LIST_DIR}/tlsq.pc.in ${CMAKE_BINARY_DIR}/tlsq.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/tlsq.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
