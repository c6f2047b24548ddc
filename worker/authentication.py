"""The backscatter guard: trust an automatic reply's destination only when our own MTA
vouched for it in an ``Authentication-Results`` header (RFC 8601).

Only headers whose authserv-id is ``MAILGATE_TRUSTED_AUTHSERV_ID`` count; anyone can write
an ``Authentication-Results`` header, and the receiving MTA is expected to strip incoming
ones that carry its own id (RFC 8601 section 5). The sender is trusted on SPF ``pass`` for
the envelope sender's domain, or on DMARC ``pass``. Parsing uses the ``authres`` package.
"""

from __future__ import annotations

import authres

from worker.mail import InboundMail, domain_of


def sender_authenticated(mail: InboundMail, envelope_from: str, authserv_id: str) -> bool:
    wanted = authserv_id.strip().lower()
    envelope_domain = domain_of(envelope_from)
    for value in mail.header_all("Authentication-Results"):
        try:
            header = authres.AuthenticationResultsHeader.parse_value(value)
        except Exception:  # an unparseable header proves nothing
            continue
        if str(header.authserv_id or "").lower() != wanted:
            continue
        for result in header.results:
            method, outcome = str(result.method).lower(), str(result.result).lower()
            if outcome != "pass":
                continue
            if method == "dmarc":
                return True
            if method == "spf":
                for prop in result.properties:
                    if (prop.type, prop.name) == ("smtp", "mailfrom"):
                        checked = str(prop.value).lower()
                        if domain_of(checked) == envelope_domain or checked == envelope_domain:
                            return True
    return False
