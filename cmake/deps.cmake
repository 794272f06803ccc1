# SPDX-License-Identifier: GPL-2.0-or-later
# Third-party dependencies: libevent, concurrencykit, wolfSSL (and cmocka for tests).
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)

pkg_check_modules(LIBEVENT REQUIRED IMPORTED_TARGET libevent_core>=2.1 libevent_pthreads>=2.1 libevent_extra>=2.1)

find_path(CK_INCLUDE_DIR ck_ring.h REQUIRED)
find_library(CK_LIBRARY ck REQUIRED)
add_library(tlsq_ck INTERFACE)
target_include_directories(tlsq_ck SYSTEM INTERFACE ${CK_INCLUDE_DIR})
target_link_libraries(tlsq_ck INTERFACE ${CK_LIBRARY})

if(TLSQ_WOLFSSL STREQUAL "bundled")
  # Built once at configure time into the build tree; the stamp in the prefix
  # makes a second configure (or a re-run of cmake) reuse it.
  set(TLSQ_WOLFSSL_PREFIX ${CMAKE_BINARY_DIR}/_deps/wolfssl CACHE PATH
      "Where the bundled wolfSSL is built (shared between build trees by tools/run-tests)")
  get_filename_component(_wolf_parent ${TLSQ_WOLFSSL_PREFIX} DIRECTORY)
  set(TLSQ_WOLFSSL_WORK ${_wolf_parent}/wolfssl-src)
  # The stamp's suffix is FLAGS_REV in build-wolfssl.sh.
  if(NOT EXISTS "${TLSQ_WOLFSSL_PREFIX}/.tlsq-wolfssl-${TLSQ_WOLFSSL_DEBIAN_VERSION}-r3")
    message(STATUS "tlsq: building wolfSSL ${TLSQ_WOLFSSL_DEBIAN_VERSION} from Debian's source package (about a minute)")
  endif()
  execute_process(
    COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/cmake/build-wolfssl.sh
            ${TLSQ_WOLFSSL_WORK} ${TLSQ_WOLFSSL_PREFIX} ${TLSQ_WOLFSSL_DEBIAN_VERSION}
    RESULT_VARIABLE _wolf_rc)
  if(NOT _wolf_rc EQUAL 0)
    message(FATAL_ERROR "tlsq: building wolfSSL failed (see ${TLSQ_WOLFSSL_WORK}). "
                        "Run tools/setup as root first, or use -DTLSQ_WOLFSSL=system.")
  endif()
  add_library(tlsq_wolfssl STATIC IMPORTED GLOBAL)
  set_target_properties(tlsq_wolfssl PROPERTIES
    IMPORTED_LOCATION ${TLSQ_WOLFSSL_PREFIX}/lib/libwolfssl.a
    INTERFACE_INCLUDE_DIRECTORIES ${TLSQ_WOLFSSL_PREFIX}/include
    INTERFACE_LINK_LIBRARIES "m")
  set(TLSQ_WOLFSSL_PC_REQUIRES "")
  set(TLSQ_WOLFSSL_STATIC ON)
else()
  pkg_check_modules(WOLFSSL REQUIRED IMPORTED_TARGET wolfssl)
  add_library(tlsq_wolfssl INTERFACE)
  target_link_libraries(tlsq_wolfssl INTERFACE PkgConfig::WOLFSSL)
  set(TLSQ_WOLFSSL_PC_REQUIRES "wolfssl")
  set(TLSQ_WOLFSSL_STATIC OFF)
endif()

if(TLSQ_BUILD_TESTS)
  pkg_check_modules(CMOCKA IMPORTED_TARGET cmocka)
  if(NOT CMOCKA_FOUND)
    message(FATAL_ERROR "tlsq: the tests need cmocka (Debian: libcmocka-dev; tools/setup --test "
                        "installs it and the other test tools); or configure with -DTLSQ_BUILD_TESTS=OFF")
  endif()
endif()
