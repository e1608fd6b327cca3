"""The owner's window: the aiohttp interface on the home network.

``app.make_app(context)`` builds the application; ``routes.ROUTES`` is the
one table of every route and who may use it; ``views`` holds the handlers;
``sessions`` the unlocked sessions, their identities and CSRF tokens;
``media`` streams decrypted byte ranges of a clip; ``tls`` makes the
self-signed certificate.
"""
