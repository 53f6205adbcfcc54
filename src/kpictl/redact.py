"""Redaction of personal data and secrets in what kpictl shows (see the README, "report").

`redact_pii` is the one redactor: the scorecard (every data value of its drill-down, cohort
and breakdown tables) and `kpictl review sample`'s transcripts call it. It replaces what it
recognises with a bracketed kind — [email], [phone], [card], [iban], [ssn], [ip], [secret] —
and keeps what only looks like one: order numbers, prices, dates, times, version numbers and
tracking codes. Numbers are confirmed where a checksum exists (Luhn for cards, mod-97 for
IBANs) and IPv6 addresses by Python's own parser.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections import Counter
from collections.abc import Callable

# ---------------------------------------------------------------------------------------------
# Secrets: the shapes of well-known keys and tokens, then generic high-entropy tokens
# ---------------------------------------------------------------------------------------------

_SECRETS = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)"
    r"|(?<![\w-])(?:"
    r"sk-(?:proj-|ant-|live-|test-)?[A-Za-z0-9_-]{20,}"  # OpenAI, Anthropic style
    r"|(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}"  # Stripe
    r"|(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA)[0-9A-Z]{16}"  # AWS access key ids
    r"|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,}"  # GitHub
    r"|glpat-[A-Za-z0-9_-]{20,}"  # GitLab
    r"|xox[abprs]-[A-Za-z0-9-]{10,}"  # Slack
    r"|AIza[0-9A-Za-z_-]{35}"  # Google API keys
    r"|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"  # JSON web tokens
    r")(?![\w-])",
    re.DOTALL,
)
# `password: hunter2`, `api_key=…`, `Authorization: Bearer …`: the value after the name
_NAMED_SECRET = re.compile(
    r"(?i)\b((?:api[_-]?key|apikey|secret(?:[_-]?key)?|access[_-]?token|auth[_-]?token|token|"
    r"password|passwd|pwd|client[_-]?secret|private[_-]?key)\b[\"']?\s*[:=]\s*[\"']?"
    r"|\bbearer\s+)([^\s\"',;]{6,})"
)
_TOKEN = re.compile(r"(?<![\w-])[A-Za-z0-9_\-+/]{32,}={0,2}(?![\w-])")


def _entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(c / len(text) * math.log2(c / len(text)) for c in counts.values())


def _token_or_keep(match: re.Match[str]) -> str:
    """A long token mixing upper case, lower case and digits with high entropy is a secret;
    hex digests, UUIDs and words joined by dashes or underscores are kept."""
    text = match.group(0)
    classes = sum(
        (
            any(c.islower() for c in text),
            any(c.isupper() for c in text),
            any(c.isdigit() for c in text),
        )
    )
    if classes == 3 and _entropy(text) >= 4.0:
        return "[secret]"
    return text


# ---------------------------------------------------------------------------------------------
# E-mail addresses (any script; @ or the fullwidth ＠ and small ﹫)
# ---------------------------------------------------------------------------------------------

_EMAIL = re.compile(
    r"(?<![\w.+-])[\w.%+-]+\s?[@＠﹫]\s?[^\W_](?:[\w-]*[^\W_])?(?:\.[^\W_](?:[\w-]*[^\W_])?)*"
    r"\.[^\W\d_]{2,}"
)

# ---------------------------------------------------------------------------------------------
# Numbers: cards, IBANs, US social security numbers, phone numbers, IP addresses
# ---------------------------------------------------------------------------------------------

# 13-19 digits, contiguous or in groups separated by up to two spaces, dots, dashes or
# underscores
_CARD = re.compile(r"(?<![\w.-])\d(?:[ ._-]{0,2}\d){12,18}(?![\w-]|\.\d)")
_CARD_GROUPED = re.compile(
    r"^\d{4}([ ._-]{1,2})\d{4}\1\d{4}\1\d{1,7}$|^\d{4}([ ._-]{1,2})\d{6}\2\d{4,5}$"
)
_IBAN = re.compile(r"(?<![\w-])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![\w-])")
_SSN = re.compile(r"(?<![\w-])(?!000|666|9\d\d)\d{3}([- ])(?!00)\d{2}\1(?!0000)\d{4}(?![\w-])")
_PHONE_PATTERNS = (
    # international: +CC then groups, an optional (0) or (area) part
    re.compile(r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(\d{1,4}\))?(?:[ .-]?\d{1,5}){1,6}(?![\w])"),
    # the same dialled from Europe, 00CC: 0044 20 7946 0958 (11+ digits, unlike a padded id)
    re.compile(r"(?<![\w+])00[1-9]\d{0,2}(?:[ .-]?\(\d{1,4}\))?(?:[ .-]?\d{1,5}){1,6}(?![\w])"),
    # North American: (415) 555-0123, 415-555-0123, 415.555.0123, 415 555 0123
    re.compile(r"(?<![\w(])(?:\(\d{3}\)[ .-]?|\d{3}[ .-])\d{3}[ .-]\d{4}(?![\w-])"),
    # national with a trunk 0: 020 7946 0958, 030/1234567, 0171-1234567, 06 12 34 56 78,
    # 03-1234-5678, 06.12.34.56.78, or 0612345678 written together
    re.compile(r"(?<![\w.,/-])0[1-9]\d{0,4}(?:[ ./-]?\d{2,8}){1,4}(?![\w-]|[.,/]\d)"),
)
# a bare run of 7-15 digits right after a phone cue ("call me on 4155550123")
_PHONE_CUE = re.compile(
    r"(?i)\b(phone|tel|telephone|mobile|cell|call me|text me|whatsapp|sms)\b"
    r"((?:[\s:=#.-]|\b(?:on|at|is|number|no)\b){0,8})(\d{7,15})(?!\w)"
)
_IPV4 = re.compile(
    r"(?<![\w.])(?<![vV])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}"
    r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\w]|\.\d)"
)
_VERSION_CUE = re.compile(r"(?i)\b(?:version|ver|release|build|v)\s*$")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?:%\w+)?(?![\w:])")


def _luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _card_or_keep(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = re.sub(r"\D", "", text)
    if _CARD_GROUPED.match(text) or _luhn(digits):
        return "[card]"
    return text


def _iban_or_keep(match: re.Match[str]) -> str:
    """An IBAN passes the ISO 13616 check: moved-front digits mod 97 == 1."""
    compact = match.group(0).replace(" ", "")
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(c, 36)) for c in rearranged)
    return "[iban]" if 15 <= len(compact) <= 34 and int(number) % 97 == 1 else match.group(0)


def _digits_between(low: int, high: int) -> Callable[[re.Match[str]], str]:
    def replace(match: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", match.group(0))
        return "[phone]" if low <= len(digits) <= high else match.group(0)

    return replace


def _ipv4_or_keep(match: re.Match[str]) -> str:
    before = match.string[max(0, match.start() - 12) : match.start()]
    return match.group(0) if _VERSION_CUE.search(before) else "[ip]"


def _ipv6_or_keep(match: re.Match[str]) -> str:
    text = match.group(0)
    try:
        ipaddress.IPv6Address(text.split("%", 1)[0])
    except ValueError:  # a time (10:30:00), a MAC-like run, a ratio
        return text
    return "[ip]" if "::" in text or text.count(":") == 7 else text


_PHONE_REPLACERS = (
    _digits_between(7, 15),
    _digits_between(11, 17),
    _digits_between(10, 10),
    _digits_between(9, 13),
)


def redact_pii(text: str) -> str:
    """Replace personal data and secrets in `text` with [email], [phone], [card], [iban],
    [ssn], [ip] or [secret].

    Secrets: private keys, keys of well-known services (sk-…, AKIA…, ghp_…, xox…-, AIza…,
    JSON web tokens), the value after a name such as `api_key=` or `Bearer`, and tokens of
    32+ characters mixing upper case, lower case and digits with high entropy. E-mails: any
    script, with @, ＠ or ﹫. Cards: 13-19 digits, separated by up to two spaces, dots, dashes
    or underscores, passing the Luhn check or written in card groups. IBANs passing their
    check digits. US social security numbers written 123-45-6789. Phones: international
    (+CC or 00CC), North American with separators, national with a trunk 0 (with or without
    separators: 06 12 34 56 78, 03-1234-5678, 0612345678), or 7-15 digits after a cue such as
    "phone". IP addresses, v4 (not after "v" or "version") and v6.
    """
    text = _SECRETS.sub("[secret]", text)
    text = _NAMED_SECRET.sub(lambda m: f"{m.group(1)}[secret]", text)
    text = _EMAIL.sub("[email]", text)
    text = _TOKEN.sub(_token_or_keep, text)
    text = _IBAN.sub(_iban_or_keep, text)
    text = _CARD.sub(_card_or_keep, text)
    text = _SSN.sub("[ssn]", text)
    text = _IPV4.sub(_ipv4_or_keep, text)
    text = _IPV6.sub(_ipv6_or_keep, text)
    for pattern, replace in zip(_PHONE_PATTERNS, _PHONE_REPLACERS, strict=True):
        text = pattern.sub(replace, text)
    return _PHONE_CUE.sub(lambda m: f"{m.group(1)}{m.group(2)}[phone]", text)


def redact_value(value: object) -> object:
    """`redact_pii` for any value a report shows: text is redacted, other values kept."""
    return redact_pii(value) if isinstance(value, str) else value
