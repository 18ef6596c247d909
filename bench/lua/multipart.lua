-- wrk script: POST one image as multipart/form-data, the way curl -F does.
--   UPLOAD_FILE   path of the image              UPLOAD_FIELD  form field (file, image)
--   UPLOAD_COUNT  parts in one body (batches)     UPLOAD_TOKEN  sent as "Authorization: Token"
local boundary = "----digit-bench-7d1f"
local handle = assert(io.open(os.getenv("UPLOAD_FILE"), "rb"))
local image = handle:read("*a")
handle:close()
local field = os.getenv("UPLOAD_FIELD") or "file"
local parts = {}
for i = 1, tonumber(os.getenv("UPLOAD_COUNT") or "1") do
  parts[#parts + 1] = "--" .. boundary .. "\r\n"
    .. 'Content-Disposition: form-data; name="' .. field .. '"; filename="digit' .. i .. '.png"\r\n'
    .. "Content-Type: image/png\r\n\r\n" .. image .. "\r\n"
end
wrk.method = "POST"
wrk.body = table.concat(parts) .. "--" .. boundary .. "--\r\n"
wrk.headers["Content-Type"] = "multipart/form-data; boundary=" .. boundary
local token = os.getenv("UPLOAD_TOKEN")
if token and token ~= "" then
  wrk.headers["Authorization"] = "Token " .. token
end
