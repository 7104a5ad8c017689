-- async-scm-1.rockspec: `luarocks make` from a clone builds the native module
-- through CMake and installs async_native.so and the Lua files (async.lua,
-- async_extras.lua, async_loader.lua, async_thread*.lua, async_fast.lua,
-- async_messages.lua, async_profile.lua, async_perfmap.lua: lua/CMakeLists.txt lists them) into
-- the rocks tree, and nothing else: the build installs the CMake component
-- "lua" only, never the C core's headers, library, CMake package or .pc file.
-- LuaJIT only (the module uses LuaJIT's C API extensions and the FFI):
-- LuaRocks must run for LuaJIT (docs/SHIPPING.md).
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
  license = "MIT",
  labels = { "love", "luajit", "threads", "jobs" },
}
-- LuaRocks provides "luajit" when it runs for LuaJIT; Debian's LuaJIT 2.1
-- calls itself 2.1.0-beta3, which is older than 2.1 to LuaRocks.
dependencies = { "luajit >= 2.1.0-beta3" }
external_dependencies = {
  CK = { header = "ck_pr.h", library = "ck" },       -- Debian: libck-dev
  HWLOC = { header = "hwloc.h", library = "hwloc" }, -- Debian: libhwloc-dev
}
build = {
  type = "command",
  build_command = [[$(CMAKE) -S . -B build.luarocks -DCMAKE_BUILD_TYPE=Release \
    -DASYNC_BUILD_TESTS=OFF -DASYNC_BUILD_BENCH=OFF -DCMAKE_INSTALL_PREFIX="$(PREFIX)" \
    -DASYNC_LUA_CMOD_DIR="$(LIBDIR)" -DASYNC_LUA_LMOD_DIR="$(LUADIR)" \
    -DCK_INCLUDE_DIR="$(CK_INCDIR)" -DHWLOC_INCLUDE_DIR="$(HWLOC_INCDIR)" \
    -DCMAKE_LIBRARY_PATH="$(CK_LIBDIR);$(HWLOC_LIBDIR)" -DLuaJIT_INCLUDE_DIR="$(LUA_INCDIR)" \
    && $(CMAKE) --build build.luarocks --target async_lua]],
  install_command = [[$(CMAKE) --install build.luarocks --component lua]],
  copy_directories = { "library" }, -- LuaLS annotations (---@meta)
}
