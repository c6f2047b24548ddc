-- An automatic reply: discarded, never answered.
dofile(DIR .. "/session.lua")
local conn = deliver()
if mt.getreply(conn) ~= SMFIR_DISCARD then error("discard: not discarded") end
mt.disconnect(conn)
mt.echo("discard ok")
