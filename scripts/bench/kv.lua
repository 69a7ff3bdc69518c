-- wrk script for the end-to-end key/value benchmark (scripts/bench-e2e.sh).
--
-- Usage:
--   wrk -t2 -c64 -d10s --latency -s scripts/bench/kv.lua URL -- MODE KEYS VALUE_SIZE
--
-- MODE is one of:
--   brainy-get  GET  /v1/items/{key}
--   brainy-put  PUT  /v1/items/{key}   body {"type":"bench","data":{"v":"xxx..."}}
--   etcd-get    POST /v3/kv/range       body {"key":"<base64 key>"}
--   etcd-put    POST /v3/kv/put         body {"key":"<base64 key>","value":"<base64 value>"}
--
-- Keys are "key-%011d" for 0 <= i < KEYS (the key space the benchmark
-- pre-loads); every request picks one uniformly at random. The value is
-- VALUE_SIZE bytes of 'x'. All requests are formatted once in init(), so
-- request() is a table lookup and wrk spends its CPU on the network, not
-- on Lua.

local requests = {}
local nrequests = 0

-- base64 encodes s (standard alphabet, with padding). Only used in init().
local b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function base64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local c1 = math.floor(n / 262144) % 64
    local c2 = math.floor(n / 4096) % 64
    local c3 = math.floor(n / 64) % 64
    local c4 = n % 64
    out[#out + 1] = b64chars:sub(c1 + 1, c1 + 1) .. b64chars:sub(c2 + 1, c2 + 1)
      .. (b and b64chars:sub(c3 + 1, c3 + 1) or "=")
      .. (c and b64chars:sub(c4 + 1, c4 + 1) or "=")
  end
  return table.concat(out)
end

-- setup runs once per thread in the main Lua state: give each thread its
-- own id so the threads draw different random sequences.
local nthreads = 0
function setup(thread)
  nthreads = nthreads + 1
  thread:set("thread_id", nthreads)
end

function init(args)
  local mode = args[1]
  local keys = tonumber(args[2] or "10000")
  local size = tonumber(args[3] or "100")
  if mode == nil or keys == nil or size == nil then
    error("usage: -- MODE KEYS VALUE_SIZE")
  end
  local value = string.rep("x", size)
  local json = { ["Content-Type"] = "application/json" }

  local fmt
  if mode == "brainy-get" then
    fmt = function(key)
      return wrk.format("GET", "/v1/items/" .. key)
    end
  elseif mode == "brainy-put" then
    local body = '{"type":"bench","data":{"v":"' .. value .. '"}}'
    fmt = function(key)
      return wrk.format("PUT", "/v1/items/" .. key, json, body)
    end
  elseif mode == "etcd-get" then
    fmt = function(key)
      return wrk.format("POST", "/v3/kv/range", json, '{"key":"' .. base64(key) .. '"}')
    end
  elseif mode == "etcd-put" then
    local v64 = base64(value)
    fmt = function(key)
      return wrk.format("POST", "/v3/kv/put", json,
        '{"key":"' .. base64(key) .. '","value":"' .. v64 .. '"}')
    end
  else
    error("unknown mode " .. tostring(mode))
  end

  for i = 0, keys - 1 do
    requests[i + 1] = fmt(string.format("key-%011d", i))
  end
  nrequests = keys
  math.randomseed(os.time() * 131 + (thread_id or 0) * 7919)
end

function request()
  return requests[math.random(nrequests)]
end
