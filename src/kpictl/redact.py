"""Redaction of personal data in free text (message text shown in a report or a review file).

`redact_pii` is the one redactor: the scorecard's drill-down and `kpictl review sample`'s
transcripts both call it.
"""

from __future__ import annotations

import re

_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
)
# 13-19 digits, contiguous or in groups separated by single spaces or dashes.
_CARD = re.compile(r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])")
_CARD_GROUPED = re.compile(r"^\d{4}([ -])\d{4}\1\d{4}\1\d{1,7}$|^\d{4}([ -])\d{6}\2\d{4,5}$")
_PHONE_PATTERNS = (
    # international: +CC then groups, an optional (0) or (area) part
    re.compile(r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(\d{1,4}\))?(?:[ .-]?\d{1,5}){1,5}(?![\w])"),
    # North American: (415) 555-0123, 415-555-0123, 415.555.0123, 415 555 0123
    re.compile(r"(?<![\w(])(?:\(\d{3}\)[ .-]?|\d{3}[ .-])\d{3}[ .-]\d{4}(?![\w-])"),
    # national with a trunk 0 and a separator: 020 7946 0958, 030/1234567, 0171-1234567
    re.compile(r"(?<![\w])0\d{2,4}[ /-]\d{3,8}(?:[ -]\d{2,4})?(?![\w-])"),
)
# a bare run of 7-15 digits right after a phone cue ("call me on 4155550123")
_PHONE_CUE = re.compile(
    r"(?i)\b(phone|tel|telephone|mobile|cell|call me|text me|whatsapp|sms)\b"
    r"((?:[\s:=#.-]|\b(?:on|at|is|number|no)\b){0,8})(\d{7,15})(?!\w)"
)


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


def _phone_or_keep(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return "[phone]" if 7 <= len(digits) <= 15 else match.group(0)


def redact_pii(text: str) -> str:
    """Replace e-mail addresses, card numbers and phone numbers with [email], [card], [phone].

    Cards: 13-19 digits, redacted when they pass the Luhn check or are written in card groups
    (4-4-4-4, 4-6-5); phones: an international number (+CC …), a North American number with
    separators, a national number with a trunk 0 and a separator, or a bare 7-15 digit run right
    after a cue such as "phone" or "call me". Plain order numbers, prices, dates and versions are
    kept.
    """
    text = _EMAIL.sub("[email]", text)
    text = _CARD.sub(_card_or_keep, text)
    for pattern in _PHONE_PATTERNS:
        text = pattern.sub(_phone_or_keep, text)
    return _PHONE_CUE.sub(lambda m: f"{m.group(1)}{m.group(2)}[phone]", text)
