# SPDX-License-Identifier: MIT (see LICENSE)
# FindHWLOC.cmake: hwloc (Debian: libhwloc-dev) as the IMPORTED target HWLOC::hwloc.
include(${CMAKE_CURRENT_LIST_DIR}/AsyncFindLibrary.cmake)
async_find_library(HWLOC PC hwloc HEADER hwloc.h LIBS hwloc TARGET HWLOC::hwloc)
