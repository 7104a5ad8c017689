# SPDX-License-Identifier: MIT (see LICENSE)
# FindCK.cmake: concurrencykit (Debian: libck-dev) as the IMPORTED target CK::ck.
include(${CMAKE_CURRENT_LIST_DIR}/AsyncFindLibrary.cmake)
async_find_library(CK PC ck HEADER ck_pr.h LIBS ck TARGET CK::ck)
