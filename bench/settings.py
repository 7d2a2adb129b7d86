"""Server settings for benchmark runs: the project's own settings, with a fast password hasher.

Registering a thousand users over HTTP with Django's PBKDF2 (10^6 rounds, twice per
user: register, then token) would take minutes of the two cores the measurement
needs; no measured path (WebSocket handshake, actions, fan-out) hashes a password.
Everything else, the channel layer included, comes from the environment as usual.
"""

from mysite.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
