# SPDX-License-Identifier: MIT (see LICENSE)
# FindLuaJIT.cmake: LuaJIT (Debian: libluajit-5.1-dev, luajit).
#   LuaJIT::headers   include directory only: what a Lua C module compiles against
#                     (a module must not link LuaJIT: the host process provides it)
#   LuaJIT::luajit    the library, for programs that embed LuaJIT
#   LUAJIT_EXECUTABLE the luajit interpreter
include(${CMAKE_CURRENT_LIST_DIR}/AsyncFindLibrary.cmake)
async_find_library(LuaJIT PC luajit HEADER luajit.h LIBS luajit-5.1 luajit TARGET LuaJIT::luajit
  SUFFIXES luajit-2.1 luajit-2.0)
find_program(LUAJIT_EXECUTABLE NAMES luajit)
if(LuaJIT_FOUND AND NOT TARGET LuaJIT::headers)
  add_library(LuaJIT::headers INTERFACE IMPORTED)
  set_target_properties(LuaJIT::headers PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${LuaJIT_INCLUDE_DIR}")
endif()
