"""Language identification works offline on the customer's own words."""

from __future__ import annotations

from worker.language import identify, reply_text


def test_quoted_history_and_signature_are_removed() -> None:
    body = (
        "Thanks, it works now.\n\n-- \nBob\nPartner Ltd\n\n"
        "On Mon, 23 Nov 2026 Support wrote:\n> Riavvia il dispositivo"
    )
    assert reply_text(body) == "Thanks, it works now."
    assert reply_text("Grazie!\n\nIl giorno lun 16 nov ha scritto:\n> Hi") == "Grazie!"
    assert reply_text("Danke\n-----Original Message-----\nFrom: x") == "Danke"


def test_identifies_common_support_languages() -> None:
    assert (
        identify(
            "Buongiorno, la fattura di ottobre non è corretta, potete inviarci una nota di credito?"
        ).language
        == "it"
    )
    assert (
        identify(
            "Hello, the October invoice is not correct, could you send us a credit note please?"
        ).language
        == "en"
    )
    assert (
        identify(
            "Guten Tag, die Rechnung vom Oktober ist nicht korrekt, bitte senden "
            "Sie uns eine Gutschrift."
        ).language
        == "de"
    )


def test_empty_text_is_undetermined() -> None:
    assert identify("   ").language is None


def test_undecodable_bytes_in_the_text_are_read_past() -> None:
    """A body decoded with surrogateescape keeps lone surrogates; they must not stop the
    identification (an exception here would tempfail the message)."""
    text = (
        "Hello, the October invoice \udce9 is not correct, could you send us a credit note "
        "please?\x00"
    )
    assert identify(text).language == "en"
