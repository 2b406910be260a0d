"""The `hybrid-rag topics` subcommand: k-means topics of a collection, as a table and a bar chart."""

from __future__ import annotations

from pathlib import Path

import click

from retriever.cli.options import CliError, cli_errors, collection_option, database_option, engine_from
from retriever.errors import ConfigurationError
from retriever.topics import TopicReport

__all__ = ["topics_command"]


@click.command("topics")
@collection_option
@click.option("--k", "k", type=click.IntRange(min=2), default=10, show_default=True, help="Number of topics.")
@click.option("--key", default="topic", show_default=True, help="Metadata key each chunk gets its topic number under.")
@click.option(
    "--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True, help="Seed of k-means' initialisation."
)
@click.option("--list", "list_only", is_flag=True, help="Show the stored topics, as they are now, without recomputing.")
@click.option(
    "--chart",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the bar chart of topic sizes (default: COLLECTION-topics.png).",
)
@database_option
@cli_errors
def topics_command(
    collection: str, k: int, key: str, seed: int, list_only: bool, chart: Path | None, database_url: str | None
) -> None:
    """Group a collection's chunks into k topics (k-means over their vectors), labelled by distinctive terms.

    Each chunk's metadata gets its topic number, so searches can filter by topic; chunks
    ingested later get the nearest topic. Running it again replaces the topics. Prints
    one line per topic (number, chunks, label) and writes a bar chart of their sizes.

    \b
    Example:
        hybrid-rag topics -c scifact --k 12
        hybrid-rag search "stem cells" -c scifact --filter '{"topic": 3}'
    """
    engine = engine_from(database_url)
    report = engine.topics(collection) if list_only else engine.find_topics(collection, k, key=key, seed=seed)
    if not report.topics:
        raise CliError(f"collection {collection!r} has no topics yet: hybrid-rag topics -c {collection} --k N")
    for topic in report.topics:
        click.echo(f"{topic.topic:>4}  {topic.size:>7}  {topic.label}")
    path = chart or Path(f"{collection}-topics.png")
    _draw(report, path)
    click.echo(f"{len(report.topics)} topics in metadata {report.key!r}; chart: {path}")


def _draw(report: TopicReport, path: Path) -> None:
    """A horizontal bar chart of the topics' sizes, each bar named by its number and label."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ConfigurationError("the topics chart needs matplotlib: pip install 'hybrid-rag[topics]'") from None
    topics = report.topics
    figure = Figure(figsize=(9, 1.2 + 0.38 * len(topics)), layout="constrained")
    axes = figure.add_subplot()
    axes.barh([f"{t.topic}: {t.label[:60]}" for t in topics], [t.size for t in topics], color="#4878a8")
    axes.invert_yaxis()
    axes.set_xlabel("chunks")
    axes.set_title(f"{report.collection}: {len(topics)} topics (k-means over the chunk vectors)")
    try:
        FigureCanvasAgg(figure).print_png(str(path))
    except OSError as error:
        raise CliError(f"cannot write the chart {str(path)!r}: {error.strerror or error}") from None
