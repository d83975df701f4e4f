"""Secrets never leave their origin: URL redaction and a redirect handler that enforces it.

urllib's default redirect handler copies every request header (an ``api_key`` too) to the
``Location`` of a 30x answer, whatever its host or scheme. :class:`RedirectGuard` replaces it:

* only ``http``/``https`` targets are followed, at most :attr:`RedirectGuard.max_redirections`;
* a *keyed* request (one carrying a secret: a registered secret value, a non-standard header
  such as ``api_key``, ``Authorization``/``Cookie``, or a secret-looking query parameter) is
  never redirected from https to http, and with ``policy='same-origin'`` never to another origin
  (scheme, host, port) at all: :class:`research.errors.RedirectRefused` says where it pointed;
* when a redirect is followed to another origin, every header outside a small allowlist and
  every secret query parameter is dropped first, so the other origin never sees the key.
"""
from __future__ import annotations

import re
import urllib.parse
import urllib.request
from typing import Iterable

from research.errors import RedirectRefused

__all__ = ["SECRET_PARAMS", "redact", "origin", "RedirectGuard"]

SECRET_PARAMS = re.compile(
    r"(?i)^(x[-_])?(api[_-]?key|apikey|key|token|secret|signature|access[_-]?token|auth|password|passphrase)$")
# headers that carry no credential and may follow a redirect anywhere
SAFE_HEADERS = {"user-agent", "accept", "accept-encoding", "accept-language", "range", "if-range",
                "if-none-match", "if-modified-since", "connection", "host"}
_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")
_CRED_HEADERS = {"authorization", "proxy-authorization", "cookie"}


def _redact_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.query:
        q = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        q = [(k, "***" if SECRET_PARAMS.match(k) else v) for k, v in q]
        parts = parts._replace(query=urllib.parse.urlencode(q, safe=",:"))
    return urllib.parse.urlunsplit(parts)


def redact(url: str, secrets: Iterable[str] = ()) -> str:
    """``url`` (or a message holding URLs) with secret query values and known secrets replaced by ``***``."""
    out = _URL.sub(lambda m: _redact_url(m.group(0)), url) if "://" in url else url
    for s in secrets:
        if s:
            out = out.replace(s, "***")
    return out


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the default port filled in."""
    p = urllib.parse.urlsplit(url)
    scheme = p.scheme.lower()
    return scheme, (p.hostname or "").lower(), p.port or {"http": 80, "https": 443}.get(scheme)


def _strip_query(url: str, secrets: tuple[str, ...]) -> str:
    parts = urllib.parse.urlsplit(url)
    if not parts.query:
        return url
    q = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
         if not SECRET_PARAMS.match(k) and not any(s and s in v for s in secrets)]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(q, safe=",:")))


class RedirectGuard(urllib.request.HTTPRedirectHandler):
    """A redirect handler that never carries credentials to another origin.

    Parameters
    ----------
    secrets : iterable of str
        Secret values (API keys); a request holding one anywhere is keyed.
    policy : {'follow', 'same-origin', 'never'}
        ``follow``: follow, stripping credentials on an origin change; ``same-origin``: refuse a
        keyed request's redirect to another origin; ``never``: refuse every redirect.
    redact : callable, optional
        Applied to URLs shown in errors.
    """

    max_redirections = 5

    def __init__(self, secrets: Iterable[str] = (), policy: str = "follow", redact=lambda u: u):
        if policy not in ("follow", "same-origin", "never"):
            raise ValueError(f"redirect policy must be follow, same-origin or never, not {policy!r}")
        self.secrets = tuple(s for s in secrets if s)
        self.policy = policy
        self._redact = redact

    def keyed(self, req: urllib.request.Request) -> bool:
        """Whether ``req`` carries a credential (header, query parameter or secret value)."""
        hdrs = {**req.headers, **req.unredirected_hdrs}
        if any(k.lower() not in SAFE_HEADERS for k in hdrs):
            return True
        if any(s in req.full_url or any(s in str(v) for v in hdrs.values()) for s in self.secrets):
            return True
        q = urllib.parse.parse_qsl(urllib.parse.urlsplit(req.full_url).query, keep_blank_values=True)
        return any(SECRET_PARAMS.match(k) for k, _ in q)

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        newurl = urllib.parse.urljoin(req.full_url, newurl)
        old, new = origin(req.full_url), origin(newurl)
        where = f"{self._redact(req.full_url)} redirected (HTTP {code}) to {self._redact(newurl)}"
        if new[0] not in ("http", "https"):
            raise RedirectRefused(f"{where}: refused, only http/https redirects are followed")
        if self.policy == "never":
            raise RedirectRefused(f"{where}: refused, redirects are not followed for this source; "
                                  "check the base URL")
        keyed = self.keyed(req)
        if keyed and old[0] == "https" and new[0] == "http":
            raise RedirectRefused(f"{where}: refused, the request carries credentials and the redirect "
                                  "downgrades https to plain http; check the base URL")
        if keyed and old != new and self.policy == "same-origin":
            raise RedirectRefused(f"{where}: refused, the request carries credentials and the redirect points "
                                  "to another origin (scheme, host or port); check the base URL")
        new_req = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new_req is None or old == new:
            return new_req
        # another origin: drop every header that is not known to be harmless, and secret parameters
        for k in list(new_req.headers):
            if k.lower() not in SAFE_HEADERS or k.lower() in _CRED_HEADERS or \
                    any(s in str(new_req.headers[k]) for s in self.secrets):
                del new_req.headers[k]
        new_req.unredirected_hdrs.clear()
        new_req.full_url = _strip_query(new_req.full_url, self.secrets)
        return new_req
