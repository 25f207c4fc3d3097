"""Credentials kept out of what a report publishes: a URL's `user:password@` never reaches the page.

A dataset URL may carry them (`https://user:token@mirror.example/pets.tgz`), and the
report shows the whole config under Provenance, for anyone it is sent to.
"""

import re

# scheme://userinfo@host: the userinfo (a user, user:password or a token, up to the last @ before the
# path) is replaced; the rest of the URL stays, so the reader still sees where the data came from.
USERINFO = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*://)[^/?#\s]*@")


def redact_credentials(value):
    """`value` (a config: dicts, lists, strings) with the credentials of every URL in it replaced by ***."""
    if isinstance(value, str):
        return USERINFO.sub(r"\1***@", value)
    if isinstance(value, dict):
        return {key: redact_credentials(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_credentials(item) for item in value]
    return value
