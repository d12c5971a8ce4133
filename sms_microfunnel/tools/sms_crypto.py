# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Encryption at rest of consent evidence and inbound texts.

The key is never stored in the database, so that a database dump alone
reveals none of the evidence.  It comes from, in this order:

1. the option ``sms_microfunnel_encryption_key`` of Odoo's configuration file;
2. the environment variable ``SMS_MICROFUNNEL_ENCRYPTION_KEY``;
3. a key file created once in Odoo's data directory
   (``<data_dir>/sms_microfunnel/encryption.key``, next to but outside every
   database's filestore, so neither a SQL dump nor a backup zip holds it).
   Fine for trying the app; the settings page flags it as not for production.

A key is a Fernet key (``cryptography.fernet``: AES-128-CBC with an
HMAC-SHA256, base64, 44 characters).  Several keys may be given, separated by
commas (or one per line in the key file): the first encrypts, every one
decrypts.  That is how keys are rotated (see readme/CONFIGURE.md).

Encrypted values are stored as ``smfenc1:<Fernet token>``; a value without
that prefix is a clear value written before encryption was enabled and is
read as is until it is re-encrypted.
"""

import logging
import os
import tempfile
import threading

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from odoo.tools import config

_logger = logging.getLogger(__name__)

CONFIG_OPTION = "sms_microfunnel_encryption_key"
ENVIRONMENT_VARIABLE = "SMS_MICROFUNNEL_ENCRYPTION_KEY"
KEY_DIRECTORY = "sms_microfunnel"
KEY_FILE = "encryption.key"
PREFIX = "smfenc1:"
UNREADABLE = "[encrypted: key unavailable]"

_lock = threading.Lock()
_keyrings = {}


class EncryptionKeyError(ValueError):
    """The configured key is missing or malformed."""


def key_file_path():
    return os.path.join(config["data_dir"], KEY_DIRECTORY, KEY_FILE)


def _parse(text):
    keys = [k.strip() for k in text.replace("\n", ",").split(",") if k.strip()]
    if not keys:
        raise EncryptionKeyError("no key")
    return keys


_file_keys = {}  # path: text, read once per process (a restart picks up a change)


def _read_or_create_key_file():
    path = key_file_path()
    if path in _file_keys:
        return _file_keys[path]
    text = _file_keys[path] = _read_key_file(path)
    return text


def _read_key_file(path):
    if os.path.exists(path):
        with open(path, encoding="ascii") as handle:
            return handle.read()
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    key = Fernet.generate_key().decode()
    # written in full under a temporary name, then linked into place: when
    # several workers start at once, one key wins and nobody reads half a file
    descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=".key-")
    try:
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write(key + "\n")
        os.link(temporary, path)
    except FileExistsError:
        with open(path, encoding="ascii") as handle:
            return handle.read()
    finally:
        os.unlink(temporary)
    _logger.info("SMS Funnels: encryption key file created at %s", path)
    return key


def key_source():
    """Where the key comes from: 'config', 'environment' or 'file'."""
    if config.get(CONFIG_OPTION):
        return "config"
    if os.environ.get(ENVIRONMENT_VARIABLE):
        return "environment"
    return "file"


def configured_keys():
    """The configured keys, the one that encrypts first."""
    source = key_source()
    if source == "config":
        text = config.get(CONFIG_OPTION)
    elif source == "environment":
        text = os.environ[ENVIRONMENT_VARIABLE]
    else:
        with _lock:
            text = _read_or_create_key_file()
    return _parse(text)


def keyring():
    """The MultiFernet of the configured keys (first one encrypts)."""
    source = key_source()
    keys = configured_keys()
    text = ",".join(keys)
    ring = _keyrings.get(text)
    if ring is None:
        try:
            ring = MultiFernet([Fernet(key.encode()) for key in keys])
        except (ValueError, TypeError) as error:
            raise EncryptionKeyError(
                f"The SMS Funnels encryption key ({source}) is not a valid Fernet "
                "key: generate one with `python3 -c 'from cryptography.fernet "
                "import Fernet; print(Fernet.generate_key().decode())'`."
            ) from error
        with _lock:
            _keyrings.clear()  # only the current configuration is kept
            _keyrings[text] = ring
    return ring


def is_encrypted(value):
    return isinstance(value, str) and value.startswith(PREFIX)


def encrypt(value):
    """The stored form of a clear text (None/False/'' stay empty)."""
    if value is None or value is False or value == "":
        return value
    if is_encrypted(value):
        return value
    token = keyring().encrypt(str(value).encode())
    return PREFIX + token.decode()


def decrypt(value, strict=False):
    """The clear text of a stored value; a value not encrypted is returned.

    A value no configured key opens reads as a placeholder (the record stays
    usable), or raises ``EncryptionKeyError`` when ``strict``.
    """
    if not is_encrypted(value):
        return value
    try:
        return keyring().decrypt(value[len(PREFIX) :].encode()).decode()
    except InvalidToken as error:
        if strict:
            raise EncryptionKeyError(
                "A value cannot be decrypted with the configured SMS Funnels "
                "encryption keys: was a key removed before re-encrypting?"
            ) from error
        _logger.error(
            "SMS Funnels: a value cannot be decrypted with the configured keys "
            "(was a key removed before re-encrypting?)"
        )
        return UNREADABLE


def reencrypt(value, strict=False):
    """The stored form of ``value`` under the first key (a clear value is
    encrypted); None when empty or when no configured key opens it (raises
    ``EncryptionKeyError`` instead when ``strict``)."""
    if value is None or value is False or value == "":
        return None
    if not is_encrypted(value):
        return encrypt(value)
    token = value[len(PREFIX) :].encode()
    try:
        return PREFIX + keyring().rotate(token).decode()
    except InvalidToken as error:
        if strict:
            raise EncryptionKeyError(
                "A value cannot be re-encrypted: no configured key opens it."
            ) from error
        _logger.error("SMS Funnels: a value cannot be re-encrypted (unknown key)")
        return None
