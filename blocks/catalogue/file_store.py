"""Stores a file for the run's owner from a URL (through the outbound guard), text or base64;
yields its reference. The bytes stay in the file store, never in node data."""

import base64
import binascii
from urllib.parse import unquote, urlsplit

import httpx2
from django.conf import settings

import outbound
from blocks.base import Block, BlockError, BlockSchema, Field, TransientBlockError
from blocks.files import files_of

# The reference a dry run's file_store yields (file_read of a dry run reads no file).
DRY_RUN_FILE = "00000000-0000-0000-0000-000000000000"


class FileStoreBlock(Block):
    name = "file_store"
    description = 'Stores a file (from `url`, `text` or `base64`) and yields {"$file": id}.'
    category = "files"
    usable_as_tool = False  # it writes to the owner's store under their quota
    simulated_in_dry_run = True  # a dry run stores nothing and downloads nothing
    max_retries = 2  # a download's connection errors and timeouts

    class Input(BlockSchema):
        url: str | None = Field(default=None, max_length=8192, description="Download this")
        text: str | None = Field(default=None, description="Or store this text (UTF-8)")
        base64: str | None = Field(default=None, description="Or these bytes, base64")
        name: str = Field(default="", max_length=255, description="File name (default: the URL's)")
        timeout: float = Field(default=60.0, gt=0, description="Seconds for a download")

    class Output(BlockSchema):
        file: dict = Field(description='{"$file": id}')

    @classmethod
    def simulate(cls, input_data):
        return [("file", {"$file": DRY_RUN_FILE})]

    def run(self, data, ctx):
        given = [k for k in ("url", "text", "base64") if getattr(data, k) is not None]
        if len(given) != 1:
            raise BlockError("give exactly one of `url`, `text` or `base64`")
        name = data.name
        if data.text is not None:
            content = data.text.encode()
        elif data.base64 is not None:
            try:
                content = base64.b64decode(data.base64, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise BlockError(f"`base64` is not base64: {exc}") from exc
        else:
            content = _download(data.url, min(data.timeout, settings.HTTP_BLOCK_MAX_TIMEOUT))
            name = name or unquote(urlsplit(data.url).path.rsplit("/", 1)[-1])
        yield "file", files_of(ctx).store(name or "file", content, call="file")


def _download(url: str, timeout: float) -> bytes:
    limit = settings.FILES_MAX_BYTES
    try:
        outbound.check_url(url)
        with outbound.client(timeout=timeout, max_response_bytes=limit) as client:
            response = client.get(url)
    except outbound.Refused as exc:
        raise BlockError(str(exc)) from exc
    except httpx2.TransportError as exc:
        raise TransientBlockError(f"download of {url} failed: {exc!r}") from exc
    except httpx2.HTTPError as exc:
        raise BlockError(f"download of {url} failed: {exc}") from exc
    if response.status_code >= 500:
        raise TransientBlockError(f"{url} answered HTTP {response.status_code}")
    if response.status_code != 200:
        raise BlockError(f"{url} answered HTTP {response.status_code}")
    return response.content
