# SPDX-License-Identifier: MIT (see LICENSE)
# FindCriterion.cmake: Criterion (Debian: libcriterion-dev) as the IMPORTED target Criterion::criterion.
include(${CMAKE_CURRENT_LIST_DIR}/AsyncFindLibrary.cmake)
async_find_library(Criterion PC criterion HEADER criterion/criterion.h LIBS criterion TARGET Criterion::criterion)
