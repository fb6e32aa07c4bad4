"""Who may use the API: the bearer token, where it comes from, the middleware that checks it, TLS files.

Only the standard library is imported here: ``genreflow serve`` refuses a bad token or an
exposed address before TensorFlow loads.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
import socket
import ssl
from collections.abc import Callable, Collection
from pathlib import Path

#: The environment variable that holds the token when ``--token-file`` is not given.
TOKEN_ENV = "GENREFLOW_API_TOKEN"

#: Paths answered without a token: load balancers probe them and cannot hold secrets.
OPEN_PATHS = frozenset({"/health"})


def read_token(*, token_file: str | os.PathLike | None, environ: dict | None = None) -> str | None:
    """The API token: the content of ``token_file``, else :data:`TOKEN_ENV`, else ``None``.

    Surrounding whitespace (the newline an editor adds) is stripped.

    Raises
    ------
    genreflow.core.errors.ConfigError
        The file cannot be read, or the token is empty or holds characters that an HTTP
        header cannot carry (whitespace, control or non-ASCII characters).
    """
    from genreflow.core.errors import ConfigError

    environ = os.environ if environ is None else environ
    if token_file is not None:
        source = f"--token-file {token_file}"
        try:
            token = Path(token_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise ConfigError(f"{source}: cannot read the token: {reason}") from None
    elif TOKEN_ENV in environ:
        source = TOKEN_ENV
        token = environ[TOKEN_ENV].strip()
    else:
        return None
    if not token:
        # Fail closed: an empty file or variable is a mistake, not a wish to run without auth.
        raise ConfigError(f"{source}: the token is empty")
    if not all("!" <= ch <= "~" for ch in token):
        raise ConfigError(
            f"{source}: the token must be printable ASCII without spaces "
            "(e.g. from `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
        )
    return token


def access_token(*, token_file: str | os.PathLike | None, no_auth: bool, host: str) -> str | None:
    """The token ``serve`` checks (``None``: no authentication), once the choice is safe.

    Raises
    ------
    genreflow.core.errors.ConfigError
        ``--no-auth`` beside a token, or an address other machines reach without a token
        and without ``--no-auth``; and whatever :func:`read_token` raises.
    """
    from genreflow.core.errors import ConfigError

    token = read_token(token_file=token_file)
    if no_auth and token is not None:
        source = f"--token-file {token_file}" if token_file else TOKEN_ENV
        raise ConfigError(f"--no-auth contradicts the token of {source}: give one or the other")
    if token is None and not no_auth and not is_loopback_host(host):
        raise ConfigError(
            f"--host {host} is reachable from other machines and no token is set: give "
            f"--token-file FILE or {TOKEN_ENV}, or --no-auth to serve without authentication"
        )
    return token


def is_loopback_host(host: str) -> bool:
    """Whether every address ``host`` names is a loopback address (only this machine reaches it).

    Raises
    ------
    genreflow.core.errors.ConfigError
        ``host`` is neither an address nor a name that resolves.
    """
    from genreflow.core.errors import ConfigError

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigError(f"--host {host}: cannot resolve: {exc.strerror}") from None
    return all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)


class BearerAuth:
    """Pure ASGI middleware: refuse HTTP requests without ``Authorization: Bearer <token>``.

    It answers before the application sees the request, so a refused upload's body is never
    read and the model never runs for it. The token is compared in constant time
    (:func:`hmac.compare_digest`).

    Parameters
    ----------
    app : ASGI application
    token : str
    open_paths : collection of str
        Paths served without a token.
    on_reject : callable, optional
        Called once per refused request (counters).
    """

    def __init__(
        self,
        app,
        *,
        token: str,
        open_paths: Collection[str] = OPEN_PATHS,
        on_reject: Callable[[], None] | None = None,
    ) -> None:
        self.app = app
        self.expected = token.encode("ascii")
        self.open_paths = frozenset(open_paths)
        self.on_reject = on_reject

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        problem = self._problem(scope)
        if problem is None:
            await self.app(scope, receive, send)
            return
        if self.on_reject is not None:
            self.on_reject()
        body = json.dumps(
            {"error": "unauthorized", "detail": problem}, separators=(",", ":")
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b'Bearer realm="genreflow"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _problem(self, scope) -> str | None:
        """Why the request is refused, or ``None`` when its token is right."""
        values = [v for k, v in scope["headers"] if k == b"authorization"]
        if not values:
            return "send the header 'Authorization: Bearer <token>'"
        scheme, _, given = values[0].partition(b" ")
        if scheme.lower() != b"bearer":
            return "the Authorization header must use the Bearer scheme"
        # Compare even a wrong-length token: compare_digest's time does not depend on where
        # the bytes differ.
        if len(values) > 1 or not hmac.compare_digest(given.strip(), self.expected):
            return "wrong token"
        return None


def check_tls(*, certfile: str | None, keyfile: str | None) -> None:
    """Both TLS files or neither, readable and matching; checked now, not after the model loads."""
    from genreflow.core.errors import ConfigError

    if (certfile is None) != (keyfile is None):
        given, missing = ("--ssl-certfile", "--ssl-keyfile")[:: 1 if certfile else -1]
        raise ConfigError(f"{given} needs {missing} too (HTTPS takes both, or neither)")
    if certfile is None:
        return
    for option, path in (("--ssl-certfile", certfile), ("--ssl-keyfile", keyfile)):
        if not Path(path).is_file():
            raise ConfigError(f"{option} {path}: no such file")
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"--ssl-certfile {certfile} / --ssl-keyfile {keyfile}: cannot load: {exc}"
        ) from None
