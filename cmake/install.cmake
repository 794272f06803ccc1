# SPDX-License-Identifier: GPL-2.0-or-later
include(CMakePackageConfigHelpers)
# The static library needs at link time what libtlsq.so has inside or
# links itself: wolfSSL (our static build, installed beside it as
# lib/tlsq/libtlsq_wolfssl.a, or the system's), libevent, concurrencykit.
if(TLSQ_WOLFSSL_STATIC)
  install(FILES ${TLSQ_WOLFSSL_PREFIX}/lib/libwolfssl.a
    DESTINATION ${CMAKE_INSTALL_LIBDIR}/tlsq RENAME libtlsq_wolfssl.a)
  target_link_libraries(tlsq_static PUBLIC
    $<INSTALL_INTERFACE:$<INSTALL_PREFIX>/${CMAKE_INSTALL_LIBDIR}/tlsq/libtlsq_wolfssl.a>)
  set(TLSQ_PC_WOLFSSL "-L\${libdir}/tlsq -ltlsq_wolfssl")
else()
  target_link_libraries(tlsq_static PUBLIC $<INSTALL_INTERFACE:wolfssl>)
  set(TLSQ_PC_WOLFSSL "-lwolfssl")
endif()
target_link_libraries(tlsq_static PUBLIC
  $<INSTALL_INTERFACE:event_extra> $<INSTALL_INTERFACE:event_pthreads> $<INSTALL_INTERFACE:event_core> $<INSTALL_INTERFACE:ck>
  $<INSTALL_INTERFACE:m>)
install(TARGETS tlsq tlsq_static EXPORT tlsqTargets
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
