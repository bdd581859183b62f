"""`omni train ...`: one command per trainable component; each composes library pieces."""

from __future__ import annotations

import typer

from omni.cli import decoder as decoder_cli
from omni.cli import train_dpo, train_lm, train_stage, train_tokenizer, train_vision

app = typer.Typer(help="Train components and model stages.", no_args_is_help=True)

# Commands are registered by their modules, one line each, e.g.
#   app.command("tokenizer")(train_tokenizer.tokenizer_cmd)
app.command("tokenizer")(train_tokenizer.tokenizer_cmd)
app.command("lm")(train_lm.lm_cmd)
app.command("vision")(train_vision.vision_cmd)
app.command("flow")(decoder_cli.flow_cmd)
app.command("vocoder")(decoder_cli.vocoder_cmd)
app.command("stage")(train_stage.stage_cmd)
app.command("pipeline")(train_stage.pipeline_cmd)
app.command("dpo")(train_dpo.dpo_cmd)
