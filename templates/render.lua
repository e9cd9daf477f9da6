-- templates/render.lua - the template engine hzc runs through its embedded Lua 5.4.
-- A template is text with two marks, in the spirit of Lemon's template file:
--   a line whose first non-blank character is '%' is Lua code (loops, locals);
--   ${expr} anywhere else is replaced by the value of the Lua expression.
-- Templates render decisions the planner made; they do not make them.

local render = {}

-- Compile template TEXT (named NAME in errors) to a Lua chunk that appends to `out`.
local function compile(text, name, env)
  local code = { "local out, emit = ...\n" }
  local lineno = 0
  for line in (text .. (text:sub(-1) == "\n" and "" or "\n")):gmatch("(.-)\n") do
    lineno = lineno + 1
    local lua = line:match("^%s*%%(.*)$")
    if lua then
      code[#code + 1] = lua .. "\n"
    else
      local parts, pos = {}, 1
      while true do
        local s, e, braced = line:find("%$(%b{})", pos)
        if not s then break end
        local expr = braced:sub(2, -2)
        if s > pos then parts[#parts + 1] = string.format("%q", line:sub(pos, s - 1)) end
        parts[#parts + 1] = "emit(" .. expr .. ")"
        pos = e + 1
      end
      parts[#parts + 1] = string.format("%q", line:sub(pos) .. "\n")
      code[#code + 1] = "out[#out + 1] = " .. table.concat(parts, " .. ") .. "\n"
    end
  end
  local fn, err = load(table.concat(code), "=" .. name, "t", env)
  if not fn then error(name .. ": " .. err, 0) end
  return fn
end

local function emit(v)
  if type(v) == "number" and math.type(v) == "float" then
    local text = string.format("%.9g", v)
    if not text:find("[%.eEn]") then text = text .. ".0" end -- stays a float in C and JSON
    return text
  end
  return tostring(v)
end

-- Render the template file PATH with the table ENV visible as globals; returns the text.
function render.file(path, env)
  local f = assert(io.open(path, "r"))
  local text = f:read("a")
  f:close()
  local fn = compile(text, path:match("[^/]+$"), setmetatable(env, { __index = _ENV }))
  local out = {}
  fn(out, emit)
  return table.concat(out)
end

return render
