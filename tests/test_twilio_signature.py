"""Tests for ``sms_microfunnel_twilio/tools/twilio_signature.py``.

Vectors come from twilio-python ``tests/unit/test_request_validator.py``
(compliance book docs/compliance.md, "Provider webhooks"). When the official
``twilio`` package is installed, its ``RequestValidator`` is used as an oracle
for random inputs.
"""

import hashlib
from urllib.parse import urlparse

import pytest
from conftest import load_tool

sig = load_tool("sms_microfunnel_twilio", "twilio_signature")

TOKEN = "12345"
URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
URL_443 = "https://mycompany.com:443/myapp.php?foo=1&bar=2"
PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+14158675309",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
}
EXPECTED = "RSOYDt4T1cUTdK1PDd93/VVr8B8="
EXPECTED_443 = "kvajT1Ptam85bY51eRf/AJRuM3w="
REPEATED_PAIRS = [
    ("Sid", "CA123"),
    ("SidAccount", "AC123"),
    ("Digits", "5678"),
    ("Digits", "1234"),
]
EXPECTED_REPEATED = "IK+Dwps556ElfBT0I3Rgjkr1wJU="
BODY = b'{"property": "value", "boolean": true}'
BODY_HASH = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
URL_JSON = f"{URL}&bodySHA256={BODY_HASH}"
EXPECTED_JSON = "a9nBmqA0ju/hNViExpshrM61xv4="


def _multidict(pairs):
    werkzeug = pytest.importorskip("werkzeug.datastructures")
    return werkzeug.MultiDict(pairs)


# --- official vectors --------------------------------------------------------


def test_basic_vector():
    assert sig.compute_signature(TOKEN, URL, PARAMS) == EXPECTED
    assert sig.is_valid_signature(TOKEN, URL, PARAMS, EXPECTED)


def test_explicit_443_vector():
    assert sig.compute_signature(TOKEN, URL_443, PARAMS) == EXPECTED_443
    assert sig.is_valid_signature(TOKEN, URL_443, PARAMS, EXPECTED_443)


@pytest.mark.parametrize(
    "params",
    [
        REPEATED_PAIRS,
        list(reversed(REPEATED_PAIRS)),
        iter(REPEATED_PAIRS),
        {
            **{name: value for name, value in REPEATED_PAIRS if name != "Digits"},
            "Digits": ["5678", "1234"],
        },
        {
            **{name: value for name, value in REPEATED_PAIRS if name != "Digits"},
            "Digits": ("1234", "5678"),
        },
    ],
    ids=["pairs", "reversed-pairs", "iterator", "dict-of-list", "dict-of-tuple"],
)
def test_repeated_digits_vector(params):
    assert sig.compute_signature(TOKEN, URL, params) == EXPECTED_REPEATED


def test_repeated_digits_vector_multidict():
    multi = _multidict(REPEATED_PAIRS)
    assert sig.compute_signature(TOKEN, URL, multi) == EXPECTED_REPEATED
    assert sig.compute_signature(TOKEN, URL, multi.items(multi=True)) == (
        EXPECTED_REPEATED
    )
    assert sig.is_valid_signature(TOKEN, URL, multi, EXPECTED_REPEATED)


def test_http_vectors():
    # twilio-python: http URL, :80 added / explicit non-default port 1234
    http = URL.replace("https", "http")
    assert sig.is_valid_signature(TOKEN, http, PARAMS, "0ZXoZLH/DfblKGATFgpif+LLRf4=")
    http_1234 = http.replace(".com", ".com:1234")
    assert sig.compute_signature(TOKEN, http_1234, PARAMS) == (
        "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="
    )


def test_non_default_port_is_not_stripped():
    # deliberate difference: twilio-python also strips a non-default port
    url = URL.replace(".com", ".com:1234")
    assert not sig.is_valid_signature(TOKEN, url, PARAMS, EXPECTED)


def test_json_body_vector():
    assert hashlib.sha256(BODY).hexdigest() == BODY_HASH
    assert sig.compute_signature(TOKEN, URL_JSON, {}) == EXPECTED_JSON
    assert sig.is_valid_signature(TOKEN, URL_JSON, {}, EXPECTED_JSON, body=BODY)
    # params are ignored for JSON webhooks, a str body is accepted too
    assert sig.is_valid_signature(
        TOKEN, URL_JSON, PARAMS, EXPECTED_JSON, body=BODY.decode()
    )


# --- rejections --------------------------------------------------------------


def test_wrong_token():
    assert not sig.is_valid_signature("54321", URL, PARAMS, EXPECTED)


def test_tampered_param():
    assert not sig.is_valid_signature(TOKEN, URL, {**PARAMS, "To": "+1"}, EXPECTED)
    assert not sig.is_valid_signature(TOKEN, URL, {**PARAMS, "X": "1"}, EXPECTED)
    params = dict(PARAMS)
    del params["Digits"]
    assert not sig.is_valid_signature(TOKEN, URL, params, EXPECTED)


def test_tampered_url():
    assert not sig.is_valid_signature(TOKEN, URL + "&baz=3", PARAMS, EXPECTED)
    assert not sig.is_valid_signature(
        TOKEN, URL.replace("https", "http"), PARAMS, EXPECTED
    )


@pytest.mark.parametrize("signature", [None, "", b"", "RSOYDt4T1cUTdK1PDd93"])
def test_missing_or_wrong_signature(signature):
    assert not sig.is_valid_signature(TOKEN, URL, PARAMS, signature)


@pytest.mark.parametrize("token", [None, ""])
def test_missing_token(token):
    assert not sig.is_valid_signature(token, URL, PARAMS, EXPECTED)


def test_non_ascii_signature_is_rejected():
    assert not sig.is_valid_signature(TOKEN, URL, PARAMS, EXPECTED[:-1] + "é")


def test_bytes_signature_is_accepted():
    assert sig.is_valid_signature(TOKEN, URL, PARAMS, EXPECTED.encode())


def test_identical_repeated_values_count_once():
    # like twilio-python (sorted(set(values))): duplicates are signed once
    pairs = [*REPEATED_PAIRS, ("Digits", "1234")]
    assert sig.compute_signature(TOKEN, URL, pairs) == EXPECTED_REPEATED


def test_dropped_repeated_value():
    pairs = [pair for pair in REPEATED_PAIRS if pair != ("Digits", "5678")]
    assert not sig.is_valid_signature(TOKEN, URL, pairs, EXPECTED_REPEATED)


def test_json_body_tampered():
    assert not sig.is_valid_signature(
        TOKEN, URL_JSON, {}, EXPECTED_JSON, body=BODY + b" "
    )


def test_json_body_missing_fails_closed():
    assert not sig.is_valid_signature(TOKEN, URL_JSON, {}, EXPECTED_JSON)


def test_json_wrong_signature():
    assert not sig.is_valid_signature(TOKEN, URL_JSON, {}, EXPECTED, body=BODY)


def test_json_hash_in_url_is_signed():
    other = b"{}"
    url = f"{URL}&bodySHA256={hashlib.sha256(other).hexdigest()}"
    assert not sig.is_valid_signature(TOKEN, url, {}, EXPECTED_JSON, body=other)


# --- port variants -----------------------------------------------------------


def test_signature_without_port_accepted_on_url_with_443():
    assert sig.is_valid_signature(TOKEN, URL_443, PARAMS, EXPECTED)


def test_signature_with_443_accepted_on_url_without_port():
    assert sig.is_valid_signature(TOKEN, URL, PARAMS, EXPECTED_443)


def test_json_port_variant():
    url = URL_JSON.replace("mycompany.com", "mycompany.com:443")
    assert sig.is_valid_signature(TOKEN, url, {}, EXPECTED_JSON, body=BODY)


@pytest.mark.parametrize(
    ("url", "variant"),
    [
        ("http://example.com/x", "http://example.com:80/x"),
        ("http://example.com:80/x", "http://example.com/x"),
        ("https://example.com/x?a=1", "https://example.com:443/x?a=1"),
        ("https://u:p@example.com:443/x", "https://u:p@example.com/x"),
        ("https://[::1]/x", "https://[::1]:443/x"),
        ("https://[::1]:443/x", "https://[::1]/x"),
        ("HTTPS://Example.COM/x?", "HTTPS://Example.COM:443/x?"),
    ],
)
def test_default_port_variants(url, variant):
    assert sig.is_valid_signature(
        TOKEN, url, PARAMS, sig.compute_signature(TOKEN, variant, PARAMS)
    )
    assert sig.is_valid_signature(
        TOKEN, variant, PARAMS, sig.compute_signature(TOKEN, url, PARAMS)
    )


@pytest.mark.parametrize(
    ("url", "other"),
    [
        ("https://example.com/x", "https://example.com:80/x"),
        ("http://example.com/x", "http://example.com:443/x"),
        ("https://example.com:8443/x", "https://example.com/x"),
        ("https://example.com:8443/x", "https://example.com:443/x"),
    ],
)
def test_other_ports_are_not_variants(url, other):
    assert not sig.is_valid_signature(
        TOKEN, url, PARAMS, sig.compute_signature(TOKEN, other, PARAMS)
    )


def test_url_is_used_exactly_as_given():
    # no normalisation: trailing "?", case and escaping are all signed
    for url in (URL + "&", "https://MyCompany.com/myapp.php?foo=1&bar=2"):
        assert sig.compute_signature(TOKEN, url, PARAMS) != EXPECTED
        assert not sig.is_valid_signature(TOKEN, url, PARAMS, EXPECTED)


def test_empty_params_shapes_agree():
    expected = sig.compute_signature(TOKEN, URL, None)
    for params in ({}, [], ()):
        assert sig.compute_signature(TOKEN, URL, params) == expected


# --- oracle: the official twilio package --------------------------------------

try:
    from hypothesis import assume, given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover - hypothesis is a dev dependency
    st = None


class _GetAll:
    """Multi-valued params as twilio's ``RequestValidator`` reads them.

    With a plain dict it reads a single value per name, so repeated names need
    an object with ``getall`` (Flask/WebOb) or ``getlist`` (Django).
    """

    def __init__(self, pairs):
        self._data = {}
        for name, value in pairs:
            self._data.setdefault(name, []).append(value)

    def __iter__(self):
        return iter(self._data)

    def __bool__(self):
        return bool(self._data)

    def getall(self, name):
        return list(self._data[name])


def _validator(token):
    module = pytest.importorskip("twilio.request_validator")
    return module.RequestValidator(token)


def test_oracle_official_vectors():
    validator = _validator(TOKEN)
    assert validator.compute_signature(URL, PARAMS) == EXPECTED
    assert validator.compute_signature(URL, _GetAll(REPEATED_PAIRS)) == (
        EXPECTED_REPEATED
    )
    assert validator.validate(URL_JSON, BODY.decode(), EXPECTED_JSON)


if st is not None:
    _text = st.text(
        st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=12
    )
    _names = st.text(
        st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=8
    )
    _tokens = st.text(
        st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40
    )
    _hosts = st.from_regex(r"[a-z0-9]{1,10}(\.[a-z0-9]{1,10}){0,2}", fullmatch=True)
    _ports = st.sampled_from(["", ":443", ":80", ":8080", ":1"])
    _paths = st.from_regex(r"(/[A-Za-z0-9._~%-]{0,8}){0,3}", fullmatch=True)
    _queries = st.one_of(
        st.just(""),
        st.from_regex(
            r"\?[A-Za-z0-9]{1,5}=[A-Za-z0-9%+]{0,5}(&[a-z]{1,3}=[0-9]{0,3}){0,3}",
            fullmatch=True,
        ),
    )

    @st.composite
    def _urls(draw):
        scheme = draw(st.sampled_from(["http", "https"]))
        url = "".join(
            (
                scheme,
                "://",
                draw(_hosts),
                draw(_ports),
                draw(_paths),
                draw(_queries),
            )
        )
        # twilio validates urlparse(url).geturl(); keep URLs it leaves intact
        assume(urlparse(url).geturl() == url)
        return url

    # names may repeat (small alphabet), values are arbitrary unicode
    _pairs = st.lists(
        st.tuples(st.one_of(st.sampled_from(["A", "Digits", "a", "Ä"]), _names), _text),
        max_size=8,
    )

    def _variants(url):
        """The URLs twilio's validator accepts for ``url`` (port added/removed)."""
        parsed = urlparse(url)
        default = 443 if parsed.scheme == "https" else 80
        host = parsed.hostname
        return {
            parsed._replace(netloc=host).geturl(),
            parsed._replace(netloc=f"{host}:{parsed.port or default}").geturl(),
        }

    @settings(max_examples=300, deadline=None)
    @given(token=_tokens, url=_urls(), pairs=_pairs)
    def test_oracle_compute_signature(token, url, pairs):
        validator = _validator(token)
        expected = validator.compute_signature(url, _GetAll(pairs))
        assert sig.compute_signature(token, url, pairs) == expected
        assert sig.compute_signature(token, url, _multidict(pairs)) == expected
        grouped = _GetAll(pairs)._data
        assert sig.compute_signature(token, url, grouped) == expected

    @settings(max_examples=300, deadline=None)
    @given(
        token=_tokens,
        url=_urls(),
        other_url=_urls(),
        pairs=_pairs,
        data=st.data(),
    )
    def test_oracle_validate_agrees(token, url, other_url, pairs, data):
        validator = _validator(token)
        candidates = sorted(_variants(url) | {other_url})
        signed_url = data.draw(st.sampled_from(candidates))
        signature = validator.compute_signature(signed_url, _GetAll(pairs))
        ours = sig.is_valid_signature(token, url, pairs, signature)
        theirs = validator.validate(url, _GetAll(pairs), signature)
        parsed = urlparse(url)
        default = 443 if parsed.scheme == "https" else 80
        if parsed.port in (None, default):
            assert ours == theirs == (signed_url in _variants(url))
        else:
            # stricter than twilio: only the scheme's default port is optional
            assert ours == (signed_url == url)
            assert theirs or not ours

    @settings(max_examples=200, deadline=None)
    @given(
        token=_tokens,
        url=_urls(),
        body=st.binary(max_size=64) | _text.map(str.encode),
        tamper=st.booleans(),
    )
    def test_oracle_json_body(token, url, body, tamper):
        body = body.decode("utf-8", "replace").encode()
        separator = "&" if "?" in url else "?"
        url = f"{url}{separator}bodySHA256={hashlib.sha256(body).hexdigest()}"
        validator = _validator(token)
        signature = validator.compute_signature(url, {})
        assert sig.compute_signature(token, url, None) == signature
        received = body + b"x" if tamper else body
        ours = sig.is_valid_signature(token, url, {}, signature, body=received)
        assert ours == validator.validate(url, received.decode(), signature)
        assert ours is not tamper
