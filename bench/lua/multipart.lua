-- wrk script: POST images as multipart/form-data, the way curl -F does.
--   UPLOAD_FILE   path of the image              UPLOAD_FIELD  form field (file, image)
--   UPLOAD_COUNT  parts in one body (batches)     UPLOAD_TOKEN  sent as "Authorization: Token"
--   UPLOAD_LIST   instead of UPLOAD_FILE: a file naming one image per line, posted in turn
local boundary = "----digit-bench-7d1f"
local field = os.getenv("UPLOAD_FIELD") or "file"
local count = tonumber(os.getenv("UPLOAD_COUNT") or "1")

local function read(path)
  local handle = assert(io.open(path, "rb"))
  local data = handle:read("*a")
  handle:close()
  return data
end

local function body(image)
  local parts = {}
  for i = 1, count do
    parts[#parts + 1] = "--" .. boundary .. "\r\n"
      .. 'Content-Disposition: form-data; name="' .. field .. '"; filename="digit' .. i .. '.png"\r\n'
      .. "Content-Type: image/png\r\n\r\n" .. image .. "\r\n"
  end
  return table.concat(parts) .. "--" .. boundary .. "--\r\n"
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "multipart/form-data; boundary=" .. boundary
local token = os.getenv("UPLOAD_TOKEN")
if token and token ~= "" then
  wrk.headers["Authorization"] = "Token " .. token
end

local list = os.getenv("UPLOAD_LIST")
if list and list ~= "" then
  local requests = {}
  local next_one = 0
  init = function()  -- wrk.path is the URL's only from here on
    for path in io.lines(list) do
      requests[#requests + 1] = wrk.format(nil, nil, nil, body(read(path)))
    end
  end
  request = function()
    next_one = next_one % #requests + 1
    return requests[next_one]
  end
else
  wrk.body = body(read(os.getenv("UPLOAD_FILE")))
end
