#!/bin/sh
# Recipe "pipe": the smallest install. Postfix runs `mailgate ingest` once per message and
# recipient; `mailgate dispatch` (a service of its own) sends the replies it queues.
#
# First add pipe.master.cf to /etc/postfix/master.cf (placeholders filled in), then run
# as root, then `postfix check && postfix reload`:
#   SUPPORT_DOMAIN=support.example.com MESSAGE_SIZE_LIMIT=26214400 \
#   AUTHSERV_ID='mx\.example\.com' sh deploy/postfix/pipe.sh
# It adds to relay_domains, transport_maps and header_checks and never replaces them.
set -eu
: "${SUPPORT_DOMAIN:?the support domain, one of MAILGATE_SUPPORT_DOMAINS}"
: "${MESSAGE_SIZE_LIMIT:?at most MAILGATE_MAX_MESSAGE_BYTES, e.g. 26214400}"
: "${AUTHSERV_ID:?your MX authserv-id, dots as \\., e.g. mx\\.example\\.com}"
append="$(dirname "$0")/postconf-append"

sh "$append" relay_domains "$SUPPORT_DOMAIN"
sh "$append" transport_maps "inline:{ $SUPPORT_DOMAIN=mailgate: }"
# Postfix expands ${recipient} into one argument per recipient: one at a time, so
# `mailgate ingest` always gets exactly one --recipient.
postconf -e "mailgate_destination_recipient_limit = 1"
postconf -e "message_size_limit = $MESSAGE_SIZE_LIMIT"
sh "$append" header_checks \
  "regexp:{ {/^Authentication-Results:[[:space:]]*$AUTHSERV_ID[[:space:];]/ IGNORE} }"
