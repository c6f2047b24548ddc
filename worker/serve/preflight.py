"""What ``serve`` does before it listens, and the one line it says when it does.

Settings that cannot work stop start-up with one ``ConfigError`` line (reject mode with
LMTP would bounce: backscatter); settings that probably do not get a warning (no support
domains). The language models are loaded before any listener opens and before workers
fork. ``announce`` writes the one ``mailgate_started`` line: what listens where, which
policy is in force, where the database, the outbox and the ingest socket are.
"""

from __future__ import annotations

import structlog

from worker.clock import utcnow
from worker.decision import Channel
from worker.errors import ConfigError
from worker.helpdesk.service import warn_at_startup
from worker.ingress.imap import ImapTarget
from worker.operators import OperatorBook
from worker.pipeline import Mailgate
from worker.settings import Settings

log = structlog.get_logger("mailgate.serve")


def refuse_unworkable(gate: Mailgate) -> None:
    """Stop on settings that cannot work; warn about those that probably do not."""
    settings = gate.settings
    OperatorBook.from_settings(settings)  # a broken operators file stops start-up here
    warn_at_startup(settings)  # accepted follow-ups with nowhere to go: never silent
    if settings.reject_mode == "smtp" and settings.lmtp_listen:
        raise ConfigError(
            "MAILGATE_REJECT_MODE=smtp with MAILGATE_LMTP_LISTEN would make the MTA bounce "
            "(backscatter): reject in the dialogue with the milter (MAILGATE_MILTER_LISTEN)"
        )
    if not settings.support_domains:
        policy = gate.policies.in_force(utcnow())
        log.warning(
            "support_domains_not_set",
            using=gate.support_domains(policy),
            hint="set MAILGATE_SUPPORT_DOMAINS: mail to other domains is refused (550 5.1.1)",
        )


def load_language_models(gate: Mailgate) -> None:
    """Load the language models before any listener opens and before workers fork, so no
    client waits for them inside a dialogue and the workers share the pages. The outbox
    alone (``dispatch``, or every listener off) decides nothing and loads nothing."""
    settings = gate.settings
    deciding = (
        settings.smtp_listen,
        settings.lmtp_listen,
        settings.milter_listen,
        settings.ingest_socket_path,
    )
    if not settings.language_preload or (not any(deciding) and not settings.imap_url):
        return
    # Every reply's language is judged by the identifier, whether or not a policy has a
    # language rule; the reply catalogues are compiled here too, before any fork.
    from worker.catalogues import preload as preload_catalogues
    from worker.language import preload

    log.info("language_models_loaded", seconds=round(preload() + preload_catalogues(), 2))


def announce(gate: Mailgate, listening: list[str], workers: int) -> None:
    """The one start-up line: what listens where, which policy is in force."""
    settings = gate.settings
    policy = gate.policies.in_force(utcnow())
    log.info(
        "mailgate_started",
        listening=listening,
        workers=workers,
        support_domains=gate.support_domains(policy),
        policy=policy.id if policy else None,
        policy_sha256=policy.sha256 if policy else None,
        database=_redact(settings.effective_database_url),
        reject_mode=settings.reject_mode,
        outbox="relay" if settings.relay_url else str(settings.outbox_dir),
        imap=[ImapTarget.parse(url).key for url in settings.imap_url or []],
        ingest_socket=str(path) if (path := settings.ingest_socket_path) else None,
        helpdesk=settings.helpdesk,
    )


def configured_listeners(settings: Settings, *, http: bool = True) -> list[str]:
    """The listeners as configured (port 0 stays 0), for the start-up line of ``--workers``."""
    listening = [
        f"{channel}://{host}:{port}"
        for channel in (Channel.SMTP, Channel.LMTP)
        if (address := settings.listen_address(channel))
        for host, port in [address]
    ]
    if settings.milter_listen:
        listening.append(f"milter://{settings.milter_listen}")
    if http and (address := settings.listen_address("http")):
        listening.append(f"http://{address[0]}:{address[1]}")
    return listening


def _redact(url: str) -> str:
    """Database URL without its password, for the start-up line."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
