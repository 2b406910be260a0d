"""The `hybrid-rag reembed` subcommand: a collection's vectors rebuilt with another model, swapped in at once."""

from __future__ import annotations

import dataclasses

import click

from retriever.cli.options import cli_errors, collection_option, database_option, settings_from
from retriever.embeddings import get_embedding_model
from retriever.engine import Engine
from retriever.store.progress import Progress

__all__ = ["reembed_command"]


@click.command("reembed")
@collection_option
@click.option(
    "--embeddings",
    "spec",
    required=True,
    help="The new model, as EMBEDDINGS names one: local, local:onnx, local:torch or openai:<model>.",
)
@click.option(
    "--storage",
    type=click.Choice(["vector", "halfvec"]),
    help="Store the new vectors as this type (default: as now); halfvec indexes up to 4,000 dimensions.",
)
@click.option("--batch-size", default=256, show_default=True, type=click.IntRange(1, 10_000), help="Chunks per batch.")
@database_option
@cli_errors
def reembed_command(collection: str, spec: str, storage: str | None, batch_size: int, database_url: str | None) -> None:
    """Embed every chunk of a collection with another model, then swap the new vectors in at once.

    The new vectors (any size) are built beside the live ones while searches go on with
    the old model; one transaction then makes them the collection's, and searches use the
    new model from then on, never a mix. Interrupted, rerun it: it picks up where it
    stopped. Ingests go on until the swap; after it, set EMBEDDINGS to the new model.

    \b
    Example:
        OPENAI_API_KEY=... hybrid-rag reembed -c docs --embeddings openai:text-embedding-3-large --storage halfvec
    """
    settings = settings_from(database_url)
    model = get_embedding_model(dataclasses.replace(settings, embeddings=spec))

    def progress(total: int) -> Progress:
        return Progress(f"re-embedding {collection}", total, unit=" chunks")

    report = Engine(settings).reembed(collection, model, batch_size=batch_size, storage=storage, progress=progress)
    resumed = " (resumed)" if report.resumed else ""
    click.echo(
        f"collection {collection!r} re-embedded{resumed} with {report.model!r} ({report.dimensions} dims; was "
        f"{report.previous_model!r}): {report.embedded} chunks embedded in {report.seconds:.0f} s; "
        f"ingest with EMBEDDINGS={spec} from now on"
    )
