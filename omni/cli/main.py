"""The `omni` console script: one Typer app, one sub-app per area."""

import typer

from omni.cli import bench as bench_cli
from omni.cli import bundle as bundle_cli
from omni.cli import config as config_cli
from omni.cli import data as data_cli
from omni.cli import decoder as decoder_cli
from omni.cli import eval as eval_cli
from omni.cli import model as model_cli
from omni.cli import serve as serve_cli
from omni.cli import train as train_cli

app = typer.Typer(
    name="omni",
    help="Train and serve a speech-in / speech-out multimodal LLM.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(data_cli.app, name="data")
app.add_typer(config_cli.app, name="config")
app.add_typer(train_cli.app, name="train")
app.command("decode")(decoder_cli.decode_cmd)
app.add_typer(model_cli.app, name="model")
app.add_typer(bundle_cli.app, name="bundle")
app.command("serve")(serve_cli.serve_cmd)
app.command("demo")(serve_cli.demo_cmd)
app.add_typer(eval_cli.app, name="eval")
app.command("bench")(bench_cli.bench_cmd)


@app.command()
def version() -> None:
    """Print the versions of omni and of its key dependencies."""
    import importlib.metadata as md

    import omni

    typer.echo(f"omni {omni.__version__}")
    for name in ("torch", "transformers", "accelerate", "vector-quantize-pytorch", "gradio"):
        try:
            typer.echo(f"{name} {md.version(name)}")
        except md.PackageNotFoundError:
            typer.echo(f"{name} (not installed)")
