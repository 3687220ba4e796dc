"""Reads one of the run owner's files: as text (UTF-8) or base64, at most FILES_READ_MAX_BYTES."""

import base64
from typing import Literal

from pydantic import create_model

from blocks.base import Block, BlockError, BlockSchema, Field
from blocks.files import files_of


class FileReadBlock(Block):
    name = "file_read"
    description = 'Yields the content of a file ({"$file": id}) as text or base64.'
    category = "files"
    simulated_in_dry_run = True  # consistent with file_store's: a dry run touches no file

    # The pin is called `as` (a Python keyword), hence a model made by name.
    Input = create_model(  # type: ignore[call-overload]
        "Input",
        __base__=BlockSchema,
        file=(dict, Field(description='{"$file": id}: one of your files')),
        **{"as": (Literal["text", "base64"], Field(default="text", description="How to yield it"))},
    )

    class Output(BlockSchema):
        content: str
        name: str
        content_type: str

    @classmethod
    def simulate(cls, input_data):
        return [("content", "[dry run] the file's content"), ("name", "file"),
                ("content_type", "text/plain")]  # fmt: skip

    def run(self, data, ctx):
        content = files_of(ctx).read(data.file)
        if getattr(data, "as") == "base64":
            text = base64.b64encode(content.data).decode()
        else:
            try:
                text = content.data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise BlockError(f"{content.name} is not UTF-8 text: read it as base64") from exc
        yield "content", text
        yield "name", content.name
        yield "content_type", content.content_type
