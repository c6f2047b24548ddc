#!/bin/sh
# Recipe "milter": Postfix asks mailgate at the end of DATA, in the sender's own session.
# Rejections are 550 5.7.1 to the sending MTA (no bounce, no backscatter); accepted
# follow-ups are delivered to the desk as usual with X-Mailgate-* headers added.
#
# Run as root on the MX, then `postfix check && postfix reload`:
#   MILTER_ADDRESS=127.0.0.1:8899 MESSAGE_SIZE_LIMIT=26214400 \
#   AUTHSERV_ID='mx\.example\.com' sh deploy/postfix/milter.sh
# It adds to smtpd_milters and header_checks and never replaces them, so an OpenDKIM,
# OpenDMARC or rspamd milter already there keeps working (list an authentication milter
# before mailgate: it must write Authentication-Results first). non_smtpd_milters is left
# alone: mail submitted locally is not decided, and a DKIM signer listed there still signs.
set -eu
: "${MILTER_ADDRESS:?e.g. 127.0.0.1:8899, as MAILGATE_MILTER_LISTEN}"
: "${MESSAGE_SIZE_LIMIT:?at most MAILGATE_MAX_MESSAGE_BYTES, e.g. 26214400}"
: "${AUTHSERV_ID:?your MX authserv-id, dots as \\., e.g. mx\\.example\\.com}"
append="$(dirname "$0")/postconf-append"

# mailgate's own milter settings, in its list entry so that no other milter changes:
# default_action=tempfail because mail must never pass undecided (mailgate down or failing:
# the sender hears 4xx and retries); content_timeout=300s because mailgate commits the
# decision before it answers, which under load takes time.
sh "$append" smtpd_milters \
  "{ inet:$MILTER_ADDRESS, default_action=tempfail, content_timeout=300s, protocol=6 }"
postconf -e "message_size_limit = $MESSAGE_SIZE_LIMIT"
# A forged Authentication-Results carrying our own authserv-id would make mailgate trust
# SPF/DMARC that never happened (RFC 8601 section 5): drop it before mailgate sees it.
sh "$append" header_checks \
  "regexp:{ {/^Authentication-Results:[[:space:]]*$AUTHSERV_ID[[:space:];]/ IGNORE} }"
