"""Replies in the customer's language, end to end through the pipeline: for each shipped
language a new ticket, a Customer Care follow-up and an unauthorized sender, each reply
checked with the language identifier, its Content-Language, its placeholders, its hints
and its RFC 3834 headers; unclear text gets English. One SQLite gate for the module."""

from __future__ import annotations

import email
import hashlib
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import default

import pytest
from helpers import envelope, make_settings, outbox_files

from worker.decision import Decision
from worker.language import identify
from worker.pipeline import Mailgate
from worker.tickets import TicketRecord, upsert

LANGUAGES = ("en", "it", "de", "fr", "es", "pt", "nl")

# (name, subject, body) of a customer whose PBX is down, writing to open a ticket.
NEW_TICKET = {
    "en": (
        "John Smith",
        "Our PBX is down",
        "Good morning,\n\nsince 8 o'clock this morning our PBX is down and nobody in the office "
        'can make or receive calls. The phones show "no service" on the display. Could you '
        "please look into this as soon as possible?\n\nKind regards,\nJohn Smith\nAcme Ltd",
    ),
    "it": (
        "Mario Rossi",
        "Centralino fuori servizio",
        "Buongiorno,\n\ndalle 8 di questa mattina il nostro centralino non funziona più e "
        "nessuno in ufficio riesce a effettuare o ricevere chiamate. I telefoni mostrano "
        '"nessun servizio" sul display. Potreste verificare il prima possibile?\n\n'
        "Cordiali saluti,\nMario Rossi\nAcme S.r.l.",
    ),
    "de": (
        "Hans Müller",
        "Telefonanlage ausgefallen",
        "Guten Morgen,\n\nseit 8 Uhr heute früh ist unsere Telefonanlage ausgefallen und "
        "niemand im Büro kann Anrufe tätigen oder annehmen. Die Telefone zeigen „kein Dienst“ "
        "im Display an. Könnten Sie sich das bitte so schnell wie möglich ansehen?\n\n"
        "Mit freundlichen Grüßen\nHans Müller\nMuster GmbH",
    ),
    "fr": (
        "Jean Dupont",
        "Standard téléphonique en panne",
        "Bonjour,\n\ndepuis 8 heures ce matin, notre standard téléphonique est en panne et "
        "personne au bureau ne peut passer ou recevoir d'appels. Les téléphones affichent "
        "« aucun service ». Pourriez-vous regarder cela au plus vite ?\n\n"
        "Cordialement,\nJean Dupont\nExemple SARL",
    ),
    "es": (
        "Javier García",
        "Centralita caída",
        "Buenos días:\n\ndesde las 8 de esta mañana nuestra centralita está caída y nadie en la "
        "oficina puede hacer ni recibir llamadas. Los teléfonos muestran «sin servicio» en la "
        "pantalla. ¿Podrían revisarlo lo antes posible?\n\nUn saludo,\nJavier García\n"
        "Ejemplo S.L.",
    ),
    "pt": (
        "João Silva",
        "Central telefónica em baixo",
        "Bom dia,\n\ndesde as 8 horas desta manhã a nossa central telefónica está em baixo e "
        "ninguém no escritório consegue fazer ou receber chamadas. Os telefones mostram "
        '"sem serviço" no ecrã. Podem verificar isto o mais depressa possível?\n\n'
        "Cumprimentos,\nJoão Silva\nExemplo Lda.",
    ),
    "nl": (
        "Jan de Vries",
        "Telefooncentrale ligt eruit",
        "Goedemorgen,\n\nsinds 8 uur vanochtend ligt onze telefooncentrale eruit en kan "
        'niemand op kantoor bellen of gebeld worden. De telefoons tonen "geen dienst" op het '
        "display. Kunt u dit zo snel mogelijk bekijken?\n\nMet vriendelijke groet,\n"
        "Jan de Vries\nVoorbeeld B.V.",
    ),
}

# A Customer Care follow-up about an invoice, above the desk's quoted English message.
FOLLOWUP = {
    "en": "Hello,\n\nthe October invoice still shows a different amount from the one agreed in "
    "our order. Could you please send us a credit note for the difference?\n\nThanks,\nCarla",
    "it": "Buongiorno,\n\nvi scrivo di nuovo perché la fattura di ottobre riporta un importo "
    "diverso da quello concordato nell'ordine. Potreste inviarci una nota di credito per la "
    "differenza?\n\nCordiali saluti,\nCarla",
    "de": "Hallo,\n\ndie Rechnung für Oktober weist immer noch einen anderen Betrag aus als in "
    "unserer Bestellung vereinbart. Könnten Sie uns bitte eine Gutschrift über die Differenz "
    "schicken?\n\nViele Grüße\nHans",
    "fr": "Bonjour,\n\nla facture d'octobre indique toujours un montant différent de celui "
    "convenu dans notre commande. Pourriez-vous nous envoyer un avoir pour la différence ?\n\n"
    "Merci d'avance,\nJean",
    "es": "Hola:\n\nla factura de octubre sigue mostrando un importe distinto al acordado en "
    "nuestro pedido. ¿Podrían enviarnos una nota de crédito por la diferencia?\n\n"
    "Gracias,\nJavier",
    "pt": "Olá,\n\na fatura de outubro continua a apresentar um valor diferente do acordado na "
    "nossa encomenda. Podem enviar-nos uma nota de crédito pela diferença?\n\nObrigado,\nJoão",
    "nl": "Hallo,\n\nde factuur van oktober vermeldt nog steeds een ander bedrag dan in onze "
    "bestelling is afgesproken. Kunt u ons een creditnota voor het verschil sturen?\n\n"
    "Met vriendelijke groet,\nJan",
}
QUOTED = (
    "\n\nOn Mon, 16 Nov 2026 at 10:00, Wildix Customer Care <support@wildix.com> wrote:\n"
    "> Dear customer, we have received your request about the October invoice\n"
    "> and we will get back to you within one business day.\n"
)


def raw_message(
    sender: str, name: str, subject: str, body: str, message_id: str, **headers: str
) -> bytes:
    message = EmailMessage()
    message["From"] = f"{name} <{sender}>"
    message["To"] = "Wildix Support <support@wildix.com>"
    message["Subject"] = subject
    message["Date"] = "Mon, 23 Nov 2026 09:11:58 +0100"
    message["Message-ID"] = message_id
    message.set_content(body)  # before the headers: it drops any Content-* header
    for key, value in headers.items():
        message[key.replace("_", "-")] = value
    return message.as_bytes()


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mailgate]:
    instance = Mailgate.open(make_settings(tmp_path_factory.mktemp("lang"), None))
    upsert(
        instance.engine,
        [TicketRecord(id="1001", kind="technical", participants=["bob@partner.example"])]
        + [
            TicketRecord(
                id=f"21{number}", kind="customer_care", participants=[f"cc-{lang}@customer.example"]
            )
            for number, lang in enumerate(LANGUAGES)
        ],
    )
    yield instance
    instance.engine.dispose()


def answer(gate: Mailgate, raw: bytes, sender: str) -> tuple[Decision, EmailMessage | None, bytes]:
    """Ingest one message: its decision, and its reply parsed and as bytes (if any)."""
    before = set(outbox_files(gate))
    decision = gate.ingest(raw, envelope(sender))
    new = sorted(set(outbox_files(gate)) - before)
    assert len(new) <= 1
    if not new:
        return decision, None, b""
    data = new[0].read_bytes()
    parsed = email.message_from_bytes(data, policy=default)
    assert isinstance(parsed, EmailMessage)
    return decision, parsed, data


def sections(reply: EmailMessage) -> list[str]:
    """The plain text, split where a bilingual reply starts its English version."""
    plain = reply.get_body(("plain",))
    assert isinstance(plain, EmailMessage)
    return re.split(r"\n-{20}\n[^\n]*\n", plain.get_content().replace("\r\n", "\n"))


def check_form(reply: EmailMessage, data: bytes, raw: bytes, sender: str, name: str) -> None:
    """RFC 3834 headers, the customer's name, no internal names, short lines, two parts."""
    original = email.message_from_bytes(raw, policy=default)
    assert reply["Auto-Submitted"] == "auto-replied"
    assert reply["X-Auto-Response-Suppress"] == "All"
    assert reply["X-Mailgate-Envelope-From"] == "<>", "sent with MAIL FROM:<>"
    assert reply["In-Reply-To"] == original["Message-ID"]
    assert reply["References"].split()[-1] == original["Message-ID"]
    assert reply["Subject"] == f"Auto: {original['Subject']}"
    assert reply["From"].addresses[0].addr_spec == "support@wildix.com"
    to = reply["To"].addresses[0]
    assert (to.addr_spec, to.display_name) == (sender, name)
    assert b"X-Mailgate-Decision" not in data
    assert not re.search(rb"rejected_|accepted_followup|not_a_followup", data)
    assert max(len(line) for line in data.split(b"\r\n")) <= 78
    assert reply.get_content_type() == "multipart/alternative"
    parts = [part.get_content_type() for part in reply.iter_parts()]
    assert parts == ["text/plain", "text/html"], "plain text first"
    html = reply.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "<img" not in html and "src=" not in html and "<script" not in html


def check_text(text: str, language: str, public_id: str | None) -> None:
    """In ``language`` by the identifier, every placeholder filled, the reference quoted."""
    guess = identify(text)
    assert (guess.language, guess.confidence >= 0.8) == (language, True), text[:200]
    assert "$" not in text, "a placeholder left unrendered"
    if language != "en":
        assert "This is an automatic reply" not in text, "half translated"
    assert public_id and re.search(rf"[\"«„]\s?{public_id}\s?[\"»“]", text), "reference quoted"


def hint(gate: Mailgate, name: str, language: str) -> str:
    policy = gate.policies.policies[-1]
    return " ".join(policy.document.hints[name].text[language].split())


@pytest.mark.parametrize("language", LANGUAGES)
def test_each_language_is_answered_in_kind(gate: Mailgate, language: str) -> None:
    """New ticket, Customer Care follow-up and an unauthorized sender (held, acknowledged),
    in one language."""
    name, subject, body = NEW_TICKET[language]
    sender = f"new-{language}@customer.example"
    raw = raw_message(sender, name, subject, body, f"<new-{language}@customer.example>")
    decision, reply, data = answer(gate, raw, sender)
    assert decision.decision == "rejected_new_ticket" and reply is not None
    check_form(reply, data, raw, sender, name)
    assert reply["Content-Language"] == language
    [text] = sections(reply)
    check_text(text, language, decision.public_id)
    flat = " ".join(text.split())
    for wanted in ("urgent", "technical", "partner"):
        assert hint(gate, wanted, language) in flat, wanted
    assert hint(gate, "customer_care", language) not in flat
    assert decision.trace[-1]["rule"] == "reply_language"
    assert decision.trace[-1]["reason"].startswith(f"text in {language}")

    sender = f"cc-{language}@customer.example"
    number = f"21{LANGUAGES.index(language)}"
    raw = raw_message(
        sender,
        name,
        f"Re: [Ticket#{number}] October invoice",
        FOLLOWUP[language] + QUOTED,
        f"<cc-{language}@customer.example>",
    )
    decision, reply, data = answer(gate, raw, sender)
    if language == "en":
        assert decision.decision == "accepted_followup" and reply is None
    else:
        assert decision.decision == "rejected_language" and reply is not None
        check_form(reply, data, raw, sender, name)
        assert reply["Content-Language"] == f"{language}, en", "theirs, then English"
        local, english = sections(reply)
        check_text(local, language, decision.public_id)
        check_text(english, "en", decision.public_id)
        assert number in local and number in english

    sender = f"stranger-{language}@elsewhere.example"
    raw = raw_message(
        sender, name, f"Re: [Ticket#1001] {subject}", body, f"<stranger-{language}@x.example>"
    )
    decision, reply, data = answer(gate, raw, sender)
    # The 2022 policy holds a stranger's reference for a person; the acknowledgement is in
    # their language too, and says nothing about the ticket.
    assert (decision.decision, decision.rule) == ("held", "unauthorized_sender")
    assert reply is not None
    check_form(reply, data, raw, sender, name)
    assert reply["Content-Language"] == language
    [text] = sections(reply)
    check_text(text, language, decision.public_id)
    assert "1001" not in text, "nothing about the ticket"


@pytest.mark.parametrize(
    "body,headers,expected",
    [
        ("Grazie mille", {}, "en"),  # two words
        ("-- \nMario Rossi\nResponsabile IT\nAcme S.r.l., Milano\nTel. +39 02 1234567", {}, "en"),
        ("Cordiali saluti\nMario Rossi\nResponsabile IT\nAcme S.r.l., Milano", {}, "en"),
        (
            "Guten Tag, unsere Telefonanlage funktioniert seit heute Morgen nicht mehr. We "
            "cannot make any calls and the whole office is waiting, please help us quickly.",
            {},
            "en",
        ),  # two languages
        (
            "Buongiorno, il nostro centralino non funziona più da questa mattina e nessuno in "
            "ufficio riesce a ricevere chiamate. Potreste verificare al più presto?\n\n"
            "This e-mail is confidential.",
            {},
            "it",
        ),  # an English line under Italian is no mix
        ("Danke schön", {"Content_Language": "de-AT"}, "de"),
        ("Merci", {"Accept_Language": "pl;q=1, nl;q=0.5, fr;q=0.8"}, "fr"),
        (
            "Dzień dobry, nasza centrala telefoniczna nie działa od rana i nie możemy dzwonić.",
            {"Accept_Language": "es-ES"},
            "es",
        ),  # identified, but not a shipped language
    ],
)
def test_unclear_text_falls_back_to_headers_then_english(
    gate: Mailgate, body: str, headers: dict[str, str], expected: str
) -> None:
    sender = f"unclear-{hashlib.sha256(body.encode()).hexdigest()[:12]}@customer.example"
    raw = raw_message(sender, "A Customer", "Question", body, f"<{sender}>", **headers)
    decision, reply, _ = answer(gate, raw, sender)
    assert decision.decision == "rejected_new_ticket" and reply is not None
    assert reply["Content-Language"] == expected, decision.trace[-1]["reason"]
    step = decision.trace[-1]
    assert step["rule"] == "reply_language"
    assert step["hit"] is (expected != "en"), "a miss: nothing said which, English"
    assert step["reason"].endswith("English by default") is (expected == "en")


def test_a_billing_question_gets_the_customer_care_hint_only(gate: Mailgate) -> None:
    """The topic decides the form; nothing urgent is claimed for an invoice question."""
    sender = "billing-de@customer.example"
    raw = raw_message(
        sender, "Hans Müller", "Frage zur Rechnung", FOLLOWUP["de"], "<billing-de@x.example>"
    )
    _, reply, _ = answer(gate, raw, sender)
    assert reply is not None
    flat = " ".join(sections(reply)[0].split())
    assert hint(gate, "customer_care", "de") in flat
    assert hint(gate, "urgent", "de") not in flat


CONDITIONAL = {
    "en": "If ",
    "it": "Se ",
    "de": "Falls ",
    "fr": "Si ",
    "es": "Si ",
    "pt": "Se ",
    "nl": "Als ",
}


def test_hints_are_conditions_never_facts(gate: Mailgate) -> None:
    """Every hint of every policy, in every language, opens with that language's "if"."""
    for policy in gate.policies.policies:
        for name, configured in policy.document.hints.items():
            assert set(configured.text) == set(LANGUAGES), name
            for language, paragraph in configured.text.items():
                assert paragraph.startswith(CONDITIONAL[language]), (policy.id, name, language)


def test_the_2018_policy_answers_in_kind_without_the_partner_route(gate: Mailgate) -> None:
    """The partner route is the April 2022 revision's; the June 2018 policy has the others."""
    name, subject, body = NEW_TICKET["es"]
    sender = "old-es@customer.example"
    raw = raw_message(sender, name, subject, body, "<old-es@customer.example>")
    before = set(outbox_files(gate))
    decision = gate.ingest(raw, envelope(sender, at=datetime(2020, 3, 2, 9, 0, tzinfo=UTC)))
    [path] = sorted(set(outbox_files(gate)) - before)
    reply = email.message_from_bytes(path.read_bytes(), policy=default)
    assert isinstance(reply, EmailMessage)
    assert decision.policy == "wildix-2018-06" and reply["Content-Language"] == "es"
    flat = " ".join(sections(reply)[0].split())
    old = gate.policies.policies[0].document.hints
    assert " ".join(old["urgent"].text["es"].split()) in flat
    assert "partner" not in old and hint(gate, "partner", "es") not in flat
