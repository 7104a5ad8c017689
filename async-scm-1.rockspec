-- async-scm-1.rockspec: `luarocks make` from a clone builds the native module
-- through CMake and installs async_native.so and the Lua files (async.lua,
-- async_extras.lua, async_loader.lua, async_thread*.lua, async_fast.lua: lua/CMakeLists.txt
-- lists them). LuaJIT only (the
-- module uses LuaJIT's C API extensions); LuaRocks sees it as Lua 5.1.
rockspec_format = "3.0"
package = "async"
version = "scm-1"
source = { url = "git+file://." }
description = {
  summary = "Lock-free work-stealing job pool for LÖVE and LuaJIT; a drop-in Async 1.1",
  detailed = [[
    Define Lua functions, call them on a pool of native worker threads, and get the
    results as callbacks in async.update(). The C core is a Chase-Lev work-stealing
    job system; the Lua layer is API-compatible with the LÖVE library Async 1.1.
  ]],
}
dependencies = { "lua == 5.1" }
build = {
  type = "cmake",
  variables = {
    CMAKE_BUILD_TYPE = "Release",
    ASYNC_BUILD_TESTS = "OFF",
    ASYNC_BUILD_BENCH = "OFF",
    ASYNC_LUA_CMOD_DIR = "$(LIBDIR)",
    ASYNC_LUA_LMOD_DIR = "$(LUADIR)",
  },
  copy_directories = { "library" }, -- LuaLS annotations (---@meta)
}
