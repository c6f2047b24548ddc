#!/bin/sh
# Recipe "LMTP": Postfix is the MX and hands the support domain to mailgate over LMTP;
# mailgate is the final destination (it forwards accepted follow-ups, replies to the rest).
#
# Run as root on the MX, then `postfix check && postfix reload`:
#   SUPPORT_DOMAIN=support.example.com LMTP_ADDRESS=127.0.0.1:2424 \
#   MESSAGE_SIZE_LIMIT=26214400 AUTHSERV_ID='mx\.example\.com' sh deploy/postfix/lmtp.sh
# It adds to relay_domains, transport_maps and header_checks and never replaces them.
set -eu
: "${SUPPORT_DOMAIN:?the support domain, one of MAILGATE_SUPPORT_DOMAINS}"
: "${LMTP_ADDRESS:?e.g. 127.0.0.1:2424, as MAILGATE_LMTP_LISTEN}"
: "${MESSAGE_SIZE_LIMIT:?at most MAILGATE_MAX_MESSAGE_BYTES, e.g. 26214400}"
: "${AUTHSERV_ID:?your MX authserv-id, dots as \\., e.g. mx\\.example\\.com}"
append="$(dirname "$0")/postconf-append"

sh "$append" relay_domains "$SUPPORT_DOMAIN"
sh "$append" transport_maps "inline:{ $SUPPORT_DOMAIN=lmtp:inet:$LMTP_ADDRESS }"
# At or below MAILGATE_MAX_MESSAGE_BYTES, so a too big message is refused in the SMTP
# dialogue instead of bounced after queueing (base64 makes 20 MB of attachment 27 MB).
postconf -e "message_size_limit = $MESSAGE_SIZE_LIMIT"
# mailgate answers once per recipient and decides the message once.
postconf -e "lmtp_destination_recipient_limit = 50"
# A forged Authentication-Results carrying our own authserv-id would make mailgate trust
# SPF/DMARC that never happened (RFC 8601 section 5): drop it before mailgate sees it.
sh "$append" header_checks \
  "regexp:{ {/^Authentication-Results:[[:space:]]*$AUTHSERV_ID[[:space:];]/ IGNORE} }"
