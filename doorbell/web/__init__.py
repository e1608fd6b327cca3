"""The owner's window: the aiohttp interface on the home network.

``app.make_app(context)`` builds the application; ``routes.ROUTES`` is the
one table of every route and who may use it; ``views`` holds the handlers;
``sessions`` the signed-in sessions and their CSRF tokens; ``files`` serves
clips as ciphertext; ``guard`` caps connections where they are accepted;
``tls`` makes the self-signed certificate.
"""
