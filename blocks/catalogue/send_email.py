"""Sends an e-mail through SMTP: the user's server (a stored credential holding an SMTP URL)
or, where the operator allows it, the operator's. Connections leave through the outbound
guard like every request a run makes. Sensitive: safe mode reviews it, dry runs skip it."""

from __future__ import annotations

import re
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formataddr, parseaddr
from urllib.parse import unquote, urlsplit

from django.conf import settings

import outbound
from blocks.base import Block, BlockError, BlockSchema, Field, TransientBlockError
from blocks.files import files_of

MAX_RECIPIENTS = 50
ADDRESS = re.compile(r"[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+")
SCHEMES = {"smtp": "plain", "smtp+starttls": "starttls", "smtps": "tls"}


class SendEmailBlock(Block):
    name = "send_email"
    description = "Sends an e-mail (text, optional HTML, attachments) through SMTP."
    category = "io"
    sensitive = True
    simulated_in_dry_run = True
    usable_as_tool = False  # it sends: a person should see it in a graph, not a model's whim
    cost = 1

    class Input(BlockSchema):
        to: str | list[str] = Field(description="Address, or a list of them")
        subject: str = Field(min_length=1, max_length=998)
        body: str = Field(default="", description="Plain text")
        html: str | None = Field(default=None, description="An HTML version, if any")
        cc: str | list[str] = Field(default_factory=list)
        sender: str | None = Field(default=None, description="From (default: the SMTP user)")
        attachments: list[dict] = Field(default_factory=list, description='[{"$file": id}, …]')
        credentials: str | None = Field(
            default=None,
            description='{"$credential": NAME} holding smtp+starttls://USER:PASSWORD@HOST:587 '
            "(or smtps:// for TLS from the start, smtp:// for none); none: the operator's "
            "server, where allowed",
        )
        timeout: float = Field(default=30.0, gt=0, le=120)

    class Output(BlockSchema):
        status: str
        message_id: str

    @classmethod
    def simulate(cls, input_data):
        return [("status", "[dry run] not sent"), ("message_id", "")]

    def run(self, data, ctx):
        server = _server(data.credentials)
        to, cc = _addresses(data.to, "to"), _addresses(data.cc, "cc")
        if not to:
            raise BlockError("`to` names no address")
        if len(to) + len(cc) > MAX_RECIPIENTS:
            raise BlockError(f"at most {MAX_RECIPIENTS} recipients")
        message = EmailMessage()
        try:
            message["From"] = _one(data.sender, "sender") if data.sender else server.sender
            message["To"] = ", ".join(to)
            if cc:
                message["Cc"] = ", ".join(cc)
            message["Subject"] = data.subject
        except ValueError as exc:  # a header with a line break in it
            raise BlockError(f"invalid header: {exc}") from exc
        message["Message-ID"] = f"<{ctx.node_execution_id}.{ctx.attempt}@{server.domain}>"
        message.set_content(data.body or "")
        if data.html:
            message.add_alternative(data.html, subtype="html")
        for reference in data.attachments:
            content = files_of(ctx).read(reference)
            maintype, _, subtype = content.content_type.partition("/")
            message.add_attachment(
                content.data, maintype=maintype, subtype=subtype or "octet-stream",
                filename=content.name,
            )  # fmt: skip
        server.send(message, min(data.timeout, 120.0))
        yield "status", "sent"
        yield "message_id", message["Message-ID"]


class _Server:
    def __init__(self, host, port, security, user, password, trusted: bool):
        self.host, self.port, self.security = host, port, security
        self.user, self.password, self.trusted = user, password, trusted
        self.sender = formataddr(("", user)) if ADDRESS.fullmatch(user or "") else (
            settings.DEFAULT_FROM_EMAIL
        )  # fmt: skip
        self.domain = host

    def send(self, message: EmailMessage, timeout: float) -> None:
        trusted = self.host if self.trusted else None
        try:
            if self.security == "tls":
                smtp: smtplib.SMTP = _GuardedSMTPSSL(self.host, self.port, timeout=timeout,
                                                     context=ssl.create_default_context(),
                                                     trusted=trusted)  # fmt: skip
            else:
                smtp = _GuardedSMTP(self.host, self.port, timeout=timeout, trusted=trusted)
            with smtp:
                if self.security == "starttls":
                    smtp.starttls(context=ssl.create_default_context())
                if self.user:
                    _login(smtp, self.user, self.password)
                smtp.send_message(message)
        except outbound.DestinationRefused as exc:
            raise BlockError(str(exc)) from exc
        except smtplib.SMTPAuthenticationError as exc:
            raise BlockError(f"the SMTP server refused the login ({exc.smtp_code})") from exc
        except smtplib.SMTPRecipientsRefused as exc:
            raise BlockError(f"the SMTP server refused {sorted(exc.recipients)}") from exc
        except smtplib.SMTPResponseException as exc:
            error = TransientBlockError if 400 <= exc.smtp_code < 500 else BlockError
            raise error(f"the SMTP server answered {exc.smtp_code}") from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise BlockError(f"sending through {self.host}:{self.port} failed: {exc!r}") from exc


def _login(smtp: smtplib.SMTP, user: str, password: str) -> None:
    """One login, by PLAIN where the server offers it (smtplib's login() would try each
    mechanism in turn, sending the password again for each)."""
    smtp.ehlo_or_helo_if_needed()
    if "PLAIN" in smtp.esmtp_features.get("auth", "").upper().split():
        smtp.user, smtp.password = user, password
        smtp.auth("PLAIN", smtp.auth_plain)
    else:
        smtp.login(user, password)


def _server(credentials: str | None) -> _Server:
    if credentials:
        parts = urlsplit(credentials)
        if parts.scheme not in SCHEMES or not parts.hostname:
            raise BlockError(
                "the SMTP credential must be a URL: smtp+starttls://USER:PASSWORD@HOST:PORT "
                "(or smtps://, or smtp:// without TLS)"
            )
        security = SCHEMES[parts.scheme]
        port = parts.port or {"tls": 465, "starttls": 587, "plain": 25}[security]
        return _Server(parts.hostname, port, security, unquote(parts.username or ""),
                       unquote(parts.password or ""), trusted=False)  # fmt: skip
    if not settings.SEND_EMAIL_OPERATOR_SMTP:
        raise BlockError(
            "no SMTP server: store yours as a credential (POST /api/credentials/) and set "
            '`credentials` to {"$credential": "NAME"}'
        )
    security = (
        "tls" if settings.EMAIL_USE_SSL else "starttls" if settings.EMAIL_USE_TLS else "plain"
    )
    server = _Server(
        settings.EMAIL_HOST, settings.EMAIL_PORT, security, settings.EMAIL_HOST_USER,
        settings.EMAIL_HOST_PASSWORD, trusted=True,
    )  # fmt: skip
    server.sender = settings.DEFAULT_FROM_EMAIL
    return server


def _addresses(value: str | list[str], pin: str) -> list[str]:
    items = [value] if isinstance(value, str) else list(value)
    return [_one(item, pin) for item in items if item.strip()]


def _one(text: str, pin: str) -> str:
    name, address = parseaddr(text)
    if "\n" in text or "\r" in text or not ADDRESS.fullmatch(address):
        raise BlockError(f"`{pin}`: {text[:100]!r} is not an e-mail address")
    return formataddr((name, address))


class _GuardedSMTP(smtplib.SMTP):
    """smtplib's client, connecting only where the outbound guard allows."""

    def __init__(self, *args, trusted: str | None = None, **kwargs):
        self._trusted = (trusted,) if trusted else ()
        super().__init__(*args, **kwargs)

    def _get_socket(self, host, port, timeout):
        return outbound.connect(host, port, timeout=timeout, also_allow_hosts=self._trusted)


class _GuardedSMTPSSL(smtplib.SMTP_SSL):
    def __init__(self, *args, trusted: str | None = None, **kwargs):
        self._trusted = (trusted,) if trusted else ()
        super().__init__(*args, **kwargs)

    def _get_socket(self, host, port, timeout):
        sock = outbound.connect(host, port, timeout=timeout, also_allow_hosts=self._trusted)
        return self.context.wrap_socket(sock, server_hostname=self._host)
