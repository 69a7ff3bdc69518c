-- wrk script for scripts/bench-edge.sh: GETs of Brainy items.
--
--   wrk ... -s edge-get.lua URL -- hot            every request reads lt-0
--   wrk ... -s edge-get.lua URL -- uniform KEYS   ids lt-0 .. lt-(KEYS-1),
--                                                 uniformly at random
--
-- Item ids are those brainy-loadtest pre-loads ("lt-" and the key number).
-- No response() function: wrk then skips parsing bodies, and counts non-2xx
-- answers itself ("Non-2xx or 3xx responses").

local mode, keys, hot

function init(args)
	mode = args[1] or "hot"
	keys = tonumber(args[2] or "1")
	math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 100000)
	hot = wrk.format("GET", "/v1/items/lt-0")
end

function request()
	if mode == "uniform" then
		return wrk.format("GET", "/v1/items/lt-" .. math.random(0, keys - 1))
	end
	return hot
end
