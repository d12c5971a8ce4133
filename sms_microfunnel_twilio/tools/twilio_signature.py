# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Twilio webhook signatures (``X-Twilio-Signature``), standard library only.

Algorithm (compliance book docs/compliance.md, "Provider webhooks"): take the
full URL exactly as configured in Twilio, append every POST parameter as
``name + value`` sorted by name (the values of a repeated name sorted too),
sign the result with HMAC-SHA1 keyed with the Auth Token and base64-encode the digest.

For JSON bodies Twilio adds ``bodySHA256=<hex sha256 of the raw body>`` to the
URL's query and signs the URL alone; the body is checked against that hash.

This module is loaded standalone by file path: no Odoo, no relative imports.
"""

import base64
import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import parse_qs, urlsplit

__all__ = ["compute_signature", "is_valid_signature"]

_DEFAULT_PORTS = {"http": "80", "https": "443"}


def _iter_params(params):
    """Yield ``(name, value)`` pairs from any supported ``params`` shape.

    Supported: ``None``; objects with ``getlist`` (werkzeug ``MultiDict``,
    Django ``QueryDict``), read with every value of each name; mappings of
    name to a value or to a list/tuple of values; iterables of pairs, e.g.
    ``MultiDict.items(multi=True)``.
    """
    if not params:
        return
    if hasattr(params, "getlist"):
        for name in params:
            for value in params.getlist(name):
                yield name, value
        return
    items = params.items() if isinstance(params, Mapping) else params
    for name, value in items:
        if isinstance(value, list | tuple):
            for item in value:
                yield name, item
        else:
            yield name, value


def _payload(url, params):
    """Return the signed string: the URL then ``name + value`` pairs, sorted.

    Like Twilio's own Python validator, the values of a repeated name are
    deduplicated before sorting.
    """
    grouped = {}
    for name, value in _iter_params(params):
        grouped.setdefault(name, set()).add(value)
    parts = [url]
    for name in sorted(grouped):
        parts.extend(name + value for value in sorted(grouped[name]))
    return "".join(parts)


def compute_signature(auth_token, url, params):
    """Return the base64 HMAC-SHA1 signature Twilio sends for a form POST.

    :param str auth_token: the account Auth Token (the HMAC key)
    :param str url: the full URL, used byte for byte as given
    :param params: POST parameters (see ``_iter_params``); values are ``str``
    :rtype: str
    """
    mac = hmac.new(
        auth_token.encode("utf-8"), _payload(url, params).encode("utf-8"), "sha1"
    )
    return base64.b64encode(mac.digest()).decode("ascii")


def _url_variants(url):
    """Return ``url`` plus its variant with or without the scheme's default port.

    A URL without a port also yields the one with ``:443``/``:80``; a URL with
    the default port also yields the one without it. Other ports yield nothing.
    Only the port is changed, the rest of the URL stays byte-identical.
    """
    variants = [url]
    parts = urlsplit(url)
    default = _DEFAULT_PORTS.get(parts.scheme.lower())
    start = len(parts.scheme) + 3  # "scheme://"
    end = start + len(parts.netloc)
    if not default or not parts.netloc or url[start:end] != parts.netloc:
        return variants
    userinfo, at, hostport = parts.netloc.rpartition("@")
    host, colon, port = hostport.rpartition(":")
    if not colon or "]" in port:  # no port (a ":" inside "[IPv6]" is no port)
        netloc = f"{parts.netloc}:{default}"
    elif port.isdigit() and int(port) == int(default):
        netloc = userinfo + at + host
    else:
        return variants
    variants.append(url[:start] + netloc + url[end:])
    return variants


def is_valid_signature(auth_token, url, params, signature, body=None):
    """Tell whether ``signature`` is Twilio's signature of this request.

    The URL is checked as given and with the scheme's default port added or
    removed (as Twilio's own validator does). When the URL's query has
    ``bodySHA256`` (JSON webhooks), ``body`` (the raw request body, ``bytes``)
    must hash to it and the signature covers the URL alone; ``params`` is then
    ignored. Comparisons are constant-time; a missing token, signature or body
    fails closed.

    :param str auth_token: the account Auth Token
    :param str url: the full public URL Twilio requested
    :param params: POST parameters (see ``_iter_params``)
    :param signature: the ``X-Twilio-Signature`` header value
    :param bytes body: the raw body, only for URLs with ``bodySHA256``
    :rtype: bool
    """
    if not auth_token or not signature:
        return False
    if isinstance(signature, str):
        signature = signature.encode("utf-8", "replace")
    query = parse_qs(urlsplit(url).query, keep_blank_values=True)
    if "bodySHA256" in query:
        if body is None:
            return False
        if isinstance(body, str):
            body = body.encode("utf-8")
        digest = hashlib.sha256(body).hexdigest().encode("ascii")
        expected = query["bodySHA256"][0].encode("utf-8", "replace")
        if not hmac.compare_digest(digest, expected):
            return False
        params = None
    return any(
        hmac.compare_digest(
            compute_signature(auth_token, variant, params).encode("ascii"), signature
        )
        for variant in _url_variants(url)
    )
