# SPDX-License-Identifier: MIT (see LICENSE)
# AsyncFindLibrary.cmake: the one pattern behind our find modules: pkg-config
# first (hints), then a plain search, then an IMPORTED target.
#   async_find_library(<Pkg> PC <pc-name> HEADER <file> LIBS <names...>
#                      TARGET <ns::name> [SUFFIXES <dirs...>])
# sets <Pkg>_FOUND, <Pkg>_VERSION, <Pkg>_INCLUDE_DIR and <Pkg>_LIBRARY.
include(FindPackageHandleStandardArgs)
macro(async_find_library pkg)
  cmake_parse_arguments(_afl "" "PC;HEADER;TARGET" "LIBS;SUFFIXES" ${ARGN})
  find_package(PkgConfig QUIET)
  if(PkgConfig_FOUND)
    pkg_check_modules(_afl_pc QUIET ${_afl_PC})
  endif()
  find_path(${pkg}_INCLUDE_DIR ${_afl_HEADER} HINTS ${_afl_pc_INCLUDE_DIRS} PATH_SUFFIXES ${_afl_SUFFIXES})
  find_library(${pkg}_LIBRARY NAMES ${_afl_LIBS} HINTS ${_afl_pc_LIBRARY_DIRS})
  set(${pkg}_VERSION ${_afl_pc_VERSION})
  find_package_handle_standard_args(${pkg} REQUIRED_VARS ${pkg}_LIBRARY ${pkg}_INCLUDE_DIR VERSION_VAR ${pkg}_VERSION)
  if(${pkg}_FOUND AND NOT TARGET ${_afl_TARGET})
    add_library(${_afl_TARGET} UNKNOWN IMPORTED)
    set_target_properties(${_afl_TARGET} PROPERTIES IMPORTED_LOCATION "${${pkg}_LIBRARY}"
      INTERFACE_INCLUDE_DIRECTORIES "${${pkg}_INCLUDE_DIR}")
  endif()
  mark_as_advanced(${pkg}_INCLUDE_DIR ${pkg}_LIBRARY)
endmacro()
