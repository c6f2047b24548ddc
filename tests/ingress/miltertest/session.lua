-- One message to mailgate's milter as an MTA would send it; shared by the three scripts.
-- miltertest -D PORT=<port> -D SENDER=... -D SUBJECT=... [-D AUTO=1] -s <script>
function deliver()
  local conn = mt.connect("inet:" .. PORT .. "@127.0.0.1", 20, 0.1)
  if conn == nil then error("cannot connect to the milter") end
  mt.set_timeout(30)
  local steps = {
    function() return mt.conninfo(conn, "mx.customer.example", "192.0.2.7") end,
    function() return mt.helo(conn, "mx.customer.example") end,
    function() return mt.mailfrom(conn, "<" .. SENDER .. ">") end,
    function() return mt.rcptto(conn, "<support@wildix.com>") end,
    function() return mt.data(conn) end,
    function() return mt.header(conn, "From", SENDER) end,
    function() return mt.header(conn, "To", "support@wildix.com") end,
    function() return mt.header(conn, "Subject", SUBJECT) end,
    function() return mt.header(conn, "Message-ID", "<" .. SUBJECT:gsub("%W", "") .. "." .. PORT .. "@customer.example>") end,
  }
  if AUTO ~= nil then
    table.insert(steps, function() return mt.header(conn, "Auto-Submitted", "auto-replied") end)
  end
  table.insert(steps, function() return mt.eoh(conn) end)
  table.insert(steps, function() return mt.bodystring(conn, "Please have a look.\r\n") end)
  for number, step in ipairs(steps) do
    if step() ~= nil then error("step " .. number .. " failed") end
    if mt.getreply(conn) ~= SMFIR_CONTINUE then error("step " .. number .. ": no continue") end
  end
  if mt.eom(conn) ~= nil then error("mt.eom() failed") end
  return conn
end
