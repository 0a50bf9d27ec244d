"""``forewarn schemas``: export every message model as JSON Schema, or the topic contracts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli import app
from pipeline.settings import load_settings
from schemas import message_models


@app.command("schemas")
def export_schemas(
    out_dir: Annotated[
        Path, typer.Option("--out-dir", help="Directory to write <Model>.schema.json files into.")
    ] = Path("schemas/json"),
    asyncapi: Annotated[
        bool,
        typer.Option(
            "--asyncapi",
            help="Write asyncapi.json instead: every topic's key, schema, partitioning, "
            "ordering, delivery guarantee, retention and an example (AsyncAPI 3.0).",
        ),
    ] = False,
) -> None:
    """Write the JSON Schema of every message type, for teams that consume the topics."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if asyncapi:
        from pipeline.asyncapi import build_document

        path = out_dir / "asyncapi.json"
        document = build_document(load_settings())
        path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
        typer.echo(
            f"wrote the AsyncAPI 3.0 document of {len(document['channels'])} topics to {path}"
        )
        return
    for name, model in message_models().items():
        path = out_dir / f"{name}.schema.json"
        path.write_text(json.dumps(model.model_json_schema(), indent=2, sort_keys=True) + "\n")
    typer.echo(f"wrote {len(message_models())} schemas to {out_dir}/")
