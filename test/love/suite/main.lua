-- SPDX-License-Identifier: MIT (see LICENSE)
-- main.lua: runs test/lua's suites inside LÖVE, headless, with the backend
-- that ASYNC_BACKEND names (native or thread), through test/lua/runner.lua:
--   love test/love/suite <lua build folder> <test/lua folder> suite.lua...
-- Suites are file names in the test/lua folder, or paths. skip.lua (here)
-- leaves out the tests a backend cannot run, each with its reason.
io.stdout:setvbuf("line")
-- Headless: an error must end the process with its traceback (LÖVE's error
-- screen would wait forever for a window that does not exist).
function love.errorhandler(msg)
  io.stderr:write("Error: " .. debug.traceback(tostring(msg), 2) .. "\n")
  os.exit(1)
end

function love.load(args)
  local dir, testdir = args[1], args[2]
  if not dir or not testdir then error("usage: love test/love/suite <lua build folder> <test/lua folder> suite.lua...") end
  -- runner.lua reads the global `arg`: the module folder, then the suites;
  -- skip.lua goes first so that it sees every test registered.
  arg = { dir, love.filesystem.getSource() .. "/skip.lua" }
  for i = 3, #args do
    local f = args[i]
    arg[#arg + 1] = f:find("/", 1, true) and f or (testdir .. "/" .. f)
  end
  dofile(testdir .. "/runner.lua") -- exits with the runner's status
end
