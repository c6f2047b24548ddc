-- A new ticket by email: refused in the dialogue with 550 5.7.1 and the policy's short text.
dofile(DIR .. "/session.lua")
local conn = deliver()
if mt.getreply(conn) ~= SMFIR_REPLYCODE then error("reject: no reply code") end
if not mt.eom_check(conn, MT_SMTPREPLY, "550", "5.7.1", TEXT) then
  error("reject: not 550 5.7.1 " .. TEXT)
end
mt.disconnect(conn)
mt.echo("reject ok")
