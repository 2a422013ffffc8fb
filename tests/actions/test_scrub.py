"""Secrets are scrubbed in the forms they travel in (issue 11): as is, base64 and
URL-encoded, longest first, so no part of one survives."""

from __future__ import annotations

import base64
import re
from urllib.parse import quote

from conveyor.actions.base import scrub

SECRET = "s3cr3t/t0ken+with=odd&chars"


def test_every_form_of_a_secret_is_scrubbed() -> None:
    b64 = base64.b64encode(SECRET.encode()).decode()
    url_b64 = base64.urlsafe_b64encode(SECRET.encode()).decode()
    text = f"raw {SECRET} basic {b64} urlsafe {url_b64} query ?sig={quote(SECRET, safe='')}"
    scrubbed = scrub(text, [SECRET])
    # base64's `=` padding, if any, is left: it says nothing of the secret
    pattern = r"raw \*\*\* basic \*\*\*=* urlsafe \*\*\*=* query \?sig=\*\*\*"
    assert re.fullmatch(pattern, scrubbed), scrubbed
    for form in (SECRET, b64.rstrip("="), url_b64.rstrip("="), quote(SECRET, safe="")):
        assert form not in scrubbed


def test_a_longer_secret_goes_before_one_it_contains() -> None:
    assert scrub("token-abcdef and token", ["token", "token-abcdef"]) == "*** and ***"


def test_ordinary_short_values_are_left_alone() -> None:
    assert scrub("page 2 of 10", ["2", ""]) == "page 2 of 10"
