-- SPDX-License-Identifier: MIT (see LICENSE)
-- snippets.lua: every ```lua block in README.md and docs/*.md runs as
-- written, each in its own luajit process started in the repository root
-- with the built module on its paths; every ```lua-love block (code that
-- needs LÖVE's main loop) must at least compile. A snippet that raises, or
-- does not finish within a minute, fails the test.
-- Usage: luajit snippets.lua <built lua dir> <repository root>
local luadir, root = assert(arg[1], "lua dir"), assert(arg[2], "repository root")

local function shellQuote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function readFile(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

-- The files: README.md, then docs/*.md in name order.
local files = { "README.md" }
local ls = io.popen("ls " .. shellQuote(root .. "/docs"))
local names = {}
for name in ls:lines() do
  if name:match("%.md$") then names[#names + 1] = name end
end
ls:close()
table.sort(names)
for _, name in ipairs(names) do files[#files + 1] = "docs/" .. name end

-- Fenced blocks: the fence's info word and the first line of the body.
local function blocks(text)
  local out, lineNo, current = {}, 0, nil
  for line in (text .. "\n"):gmatch("(.-)\r?\n") do
    lineNo = lineNo + 1
    if current then
      if line:match("^%s*```%s*$") then
        out[#out + 1] = current
        current = nil
      else
        current.lines[#current.lines + 1] = line
      end
    else
      local info = line:match("^%s*```%s*([%w%-]*)")
      if info then current = { kind = info, line = lineNo + 1, lines = {} } end
    end
  end
  return out
end

local prelude = ("package.path = %q .. package.path; package.cpath = %q .. package.cpath")
  :format(luadir .. "/?.lua;", luadir .. "/?.so;")
local tmp = os.tmpname()
local ran, checked, failed, readmeRan = 0, 0, 0, 0

for _, file in ipairs(files) do
  for _, b in ipairs(blocks(readFile(root .. "/" .. file))) do
    local code = table.concat(b.lines, "\n") .. "\n"
    local where = ("%s:%d"):format(file, b.line)
    if b.kind == "lua" then
      ran = ran + 1
      if file == "README.md" then readmeRan = readmeRan + 1 end
      -- Padded with the lines above it and named after its file, so that an
      -- error names the file's own line.
      local f = assert(io.open(tmp, "wb"))
      f:write(("\n"):rep(b.line - 1), code)
      f:close()
      local run = ("local h = assert(io.open(%q, 'rb')) local s = h:read('*a') h:close() assert(loadstring(s, %q))()")
        :format(tmp, "@" .. file)
      local cmd = ("cd %s && timeout 60 luajit -e %s -e %s 2>&1; echo \"exit=$?\""):format(
        shellQuote(root), shellQuote(prelude), shellQuote(run))
      local p = io.popen(cmd)
      local out = p:read("*a")
      p:close()
      local status = tonumber(out:match("exit=(%d+)%s*$"))
      if status == 0 then
        print("ok   " .. where)
      else
        failed = failed + 1
        print("FAIL " .. where .. " (exit " .. tostring(status) .. ")\n" .. out:gsub("exit=%d+%s*$", ""))
      end
    elseif b.kind == "lua-love" then
      checked = checked + 1
      local fn, err = loadstring(("\n"):rep(b.line - 1) .. code, "@" .. file)
      if fn then
        print("ok   " .. where .. " (compiles)")
      else
        failed = failed + 1
        print("FAIL " .. err)
      end
    end
  end
end
os.remove(tmp)

if readmeRan == 0 then
  failed = failed + 1
  print("FAIL README.md has no ```lua block to run")
end
local summary = ("snippets: %d run, %d compiled, %d failed"):format(ran, checked, failed)
if failed > 0 then error(summary, 0) end
print(summary)
