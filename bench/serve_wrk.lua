-- wrk script for bench/serve.py: requests drawn from a file the bench writes, one per line:
--   GET <path?query>            a read (search, recommendations)
--   EV <user_id> <item_id>...   POST /events with one view event per item, each in a
--                               session unique to this thread and request, so every
--                               acknowledged event is new and the store must grow by it
-- wrk -s serve_wrk.lua <url> -- <requests file> <api key> <seed> <run tag>
-- At the end it prints one JSON line: statuses, events acknowledged, latency percentiles.

local threads = {}
local counter = 1

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  key = args[2]
  -- reads formatted once here: wrk.format per request was most of this client's remaining CPU
  reqs = {}
  for line in io.lines(args[1]) do
    if line:sub(1, 4) == "GET " then
      line = wrk.format("GET", line:sub(5), {["X-API-Key"] = key})
    end
    reqs[#reqs + 1] = line
  end
  tag = args[4] or "run"
  math.randomseed(tonumber(args[3] or "1") * 1000 + tid)
  n = 0
  ok = 0
  s4xx = 0
  s5xx = 0
  other = 0
  acked = 0
  posted = 0
  hits = 0
  pre = 0
  first_error = ""
end

function request()
  n = n + 1
  local line = reqs[math.random(#reqs)]
  if line:sub(1, 3) ~= "EV " then
    return line
  end
  local user = nil
  local parts = {}
  for word in line:gmatch("%S+") do
    if word ~= "EV" then
      if user == nil then
        user = word
      else
        parts[#parts + 1] = string.format(
          '{"user_id":"%s","item_id":"%s","type":"view","session_id":"%s-%d-%d"}', user, word, tag, tid, n)
      end
    end
  end
  posted = posted + #parts
  return wrk.format("POST", "/events", {["X-API-Key"] = key, ["Content-Type"] = "application/json"},
                    "[" .. table.concat(parts, ",") .. "]")
end

-- SERVE_WRK_RESPONSES=0: no response() at all, so wrk neither copies each body and its headers
-- into Lua nor calls in: the runs with no event acknowledgement to count (search, recommend)
-- then read statuses from wrk's own summary and cache outcomes from the server (bench/serve.py).
-- Defined or not at load: wrk decides once, on the script's main state, whether to parse them.
local function count_response(status, headers, body)
  if status >= 200 and status < 300 then
    ok = ok + 1
    if headers["x-cache"] == "hit" then
      hits = hits + 1
    elseif headers["x-cache"] == "precomputed" then
      pre = pre + 1
    end
    -- anchored: an event post's answer starts with it, and scanning every recommendation's
    -- ~6 KB body for it was most of this client's CPU at 8,000 answers/s
    local r = body:match('^{"received":(%d+)')
    if r then
      acked = acked + tonumber(r)
    end
    return
  end
  if first_error == "" then
    first_error = status .. " " .. body:sub(1, 300)
  end
  if status >= 500 then
    s5xx = s5xx + 1
  elseif status >= 400 then
    s4xx = s4xx + 1
  else
    other = other + 1
  end
end

if os.getenv("SERVE_WRK_RESPONSES") ~= "0" then
  response = count_response
end

function done(summary, latency, requests)
  local t = {ok = 0, s4xx = 0, s5xx = 0, other = 0, acked = 0, posted = 0, hits = 0, pre = 0}
  for _, thread in ipairs(threads) do
    for name, _ in pairs(t) do
      t[name] = t[name] + thread:get(name)
    end
  end
  local first_error = ""
  for _, thread in ipairs(threads) do
    if first_error == "" then
      first_error = thread:get("first_error")
    end
  end
  io.write("WRKERR ", (first_error:gsub("\n", " ")), "\n")
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"ok":%d,"status_4xx":%d,"status_5xx":%d,"status_other":%d,' ..
    '"events_acked":%d,"events_posted":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,' ..
    '"timeouts":%d,"non2xx3xx":%d,"cache_hits":%d,"precomputed":%d,"p50_us":%d,"p95_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"mean_us":%.1f}\n',
    summary.requests, summary.duration, t.ok, t.s4xx, t.s5xx, t.other, t.acked, t.posted, e.connect,
    e.read, e.write, e.timeout, e.status, t.hits, t.pre, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.max, latency.mean))
end
