-- templates/render.lua - the template engine hzc runs through its embedded Lua 5.4.
-- A template is text with two marks, in the spirit of Lemon's template file:
--   a line whose first non-blank character is '%' is Lua code (loops, locals);
--   ${expr} anywhere else is replaced by the value of the Lua expression.
-- Templates render decisions the planner made; they do not make them.
-- Line N of a template is line N of the Lua chunk it compiles to, so a Lua error names
-- the template line. For C and CUDA output the caller asks for #line directives: the
-- output then points back at the template line (or, through from_file, the source file)
-- that produced it, so a compiler message names a file a person edits.

local render = {}

-- TEXT as a Lua string literal on one line: %q writes a newline as backslash-newline,
-- which would put the rest of the template line on the chunk's next line.
local function quote(text)
  return (string.format("%q", text):gsub("\\\n", "\\n"))
end

-- Compile template TEXT (NAME in errors) to a Lua chunk called with (emit, put, from_file);
-- each text line N becomes put(N, its expanded text) on chunk line N. LINES: #line is on,
-- so a #line follows line 1, which must not leave a comment open.
local function compile(text, name, env, lines)
  local code = { "local emit, put, from_file = ... " } -- shares line 1 with the template's
  local lineno = 0
  for line in (text .. (text:sub(-1) == "\n" and "" or "\n")):gmatch("(.-)\n") do
    lineno = lineno + 1
    local lua = line:match("^%s*%%(.*)$")
    if lua then
      code[#code + 1] = lua .. "\n"
    else
      if lines and lineno == 1 then
        local open = line:match(".*()/%*")
        if open and not line:find("*/", open + 2, true) then
          error(name .. ":1: the first line must close its comment: a #line follows it", 0)
        end
      end
      local parts, pos = {}, 1
      while true do
        local s, e, braced = line:find("%$(%b{})", pos)
        if not s then break end
        local expr = braced:sub(2, -2)
        if s > pos then parts[#parts + 1] = quote(line:sub(pos, s - 1)) end
        parts[#parts + 1] = "emit(" .. expr .. ")"
        pos = e + 1
      end
      parts[#parts + 1] = quote(line:sub(pos) .. "\n")
      code[#code + 1] = "put(" .. lineno .. ", " .. table.concat(parts, " .. ") .. ")\n"
    end
  end
  local fn, err = load(table.concat(code), "=" .. name, "t", env)
  if not fn then error(err, 0) end -- err begins "NAME:LINE:"
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

-- Text from outside hzc (a file path, a device name from a ceilings file) inside a string
-- literal. c_string: the inside of a C string; every byte that is not printable ASCII, and
-- every quote, backslash and question mark (trigraphs), as a three-digit octal escape, which
-- no later digit can extend. json_string: the inside of a JSON string; quotes, backslashes
-- and control characters escaped, UTF-8 as it is.
local function c_string(s)
  return (tostring(s):gsub(".", function(ch)
    local b = ch:byte()
    if b < 32 or b > 126 or ch == '"' or ch == "\\" or ch == "?" then
      return string.format("\\%03o", b)
    end
  end))
end

local function json_string(s)
  return (tostring(s):gsub('[%c"\\]', function(ch) return string.format("\\u%04x", ch:byte()) end))
end

-- put(n, text) for the chunk: appends TEXT (template line N expanded) to OUT. With LINES,
-- a #line N goes first unless the output already stands at line N of NAME: after line 1
-- (the banner stays first), after Lua lines, and after a value that spanned lines.
local function writer(out, name, lines)
  local at -- the template line the next output line is, as a compiler counts; nil: unknown
  return function(n, text)
    if lines and n > 1 and n ~= at then
      out[#out + 1] = string.format('#line %d "%s"\n', n, name)
    end
    out[#out + 1] = text
    at = n > 1 and text:find("\n", 1, true) == #text and n + 1 or nil
  end
end

-- Render the template file PATH, named NAME in errors and #line ("templates/x.c.tmpl"),
-- with the table ENV visible as globals; LINES: write #line directives. Returns the text.
-- Templates may call from_file(path, text): TEXT, the contents of file PATH, preceded by
-- #line 1 "PATH" when LINES is on; and c_string(s), json_string(s) above.
function render.file(path, env, name, lines)
  env.c_string, env.json_string = c_string, json_string
  local f = assert(io.open(path, "r"))
  local text = f:read("a")
  f:close()
  local fn = compile(text, name, setmetatable(env, { __index = _ENV }), lines)
  local out = {}
  local function from_file(file, contents)
    return lines and string.format('#line 1 "%s"\n', file) .. contents or contents
  end
  fn(emit, writer(out, name, lines), from_file)
  return table.concat(out)
end

return render
