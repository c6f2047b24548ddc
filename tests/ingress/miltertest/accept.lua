-- A follow-up on ticket 1001 by its participant: continue, with mailgate's headers added.
dofile(DIR .. "/session.lua")
local conn = deliver()
if mt.getreply(conn) ~= SMFIR_CONTINUE then error("accept: no continue at end of message") end
if not mt.eom_check(conn, MT_HDRADD, "X-Mailgate-Decision", "accepted_followup") then
  error("accept: X-Mailgate-Decision not added")
end
if not mt.eom_check(conn, MT_HDRADD, "X-Mailgate-Ticket", "1001") then
  error("accept: X-Mailgate-Ticket not added")
end
mt.disconnect(conn)
mt.echo("accept ok")
