"""HTML-only mail reaches the language rule as the text a person reads: entities unescaped,
CSS and scripts dropped, quoted history marked as quoted."""

from __future__ import annotations

from worker.html_text import html_to_text
from worker.language import identify, reply_text
from worker.mail import InboundMail

HTML = """<html><head><title>x</title><style>p { font-family: Calibri; color: #1F497D; }
.MsoNormal { margin: 0cm; }</style><script>var tracking = 1;</script></head>
<body><p class="MsoNormal">Buongiorno,&nbsp;il centralino non funziona pi&ugrave; da
stamattina e i telefoni non squillano.</p><p>Grazie &amp; saluti</p>
<blockquote>On Monday Support wrote: please open a ticket in WMP</blockquote></body></html>"""


def test_entities_unescaped_and_style_script_dropped() -> None:
    text = html_to_text(HTML)
    assert "più" in text and "Grazie & saluti" in text and "\u00a0" not in text
    assert "font-family" not in text and "tracking" not in text and "&nbsp;" not in text


def test_blockquote_is_quoted_history_for_the_language_rule() -> None:
    text = reply_text(html_to_text(HTML))
    assert "please open a ticket" not in text
    assert identify(text).language == "it"


def test_html_only_message_body_text() -> None:
    raw = (
        b"From: a@b.example\r\nTo: support@wildix.com\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/html; charset=utf-8\r\n\r\n" + HTML.encode()
    )
    body = InboundMail.from_bytes(raw).body_text
    assert body.startswith("Buongiorno, il centralino")
    assert "MsoNormal" not in body


def test_broken_markup_never_raises() -> None:
    assert html_to_text("<p>unclosed <b>bold <script>x") == "unclosed bold"
    assert html_to_text("") == ""
