"""``forewarn schemas``: export every message model as JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli import app
from schemas import message_models


@app.command("schemas")
def export_schemas(
    out_dir: Annotated[
        Path, typer.Option("--out-dir", help="Directory to write <Model>.schema.json files into.")
    ] = Path("schemas/json"),
) -> None:
    """Write the JSON Schema of every message type, for teams that consume the topics."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, model in message_models().items():
        path = out_dir / f"{name}.schema.json"
        path.write_text(json.dumps(model.model_json_schema(), indent=2, sort_keys=True) + "\n")
    typer.echo(f"wrote {len(message_models())} schemas to {out_dir}/")
