"""DVC stages `train_segmenter` (the FCN-score's network, the real-photos upper bound and the
trivial baselines) and `evaluate@<method>` (every metric of one method's test translations)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stages.common import METHOD_HELP, ParamsOption, domain_errors, read_params


def train_segmenter(
    data_dir: Annotated[Path, typer.Option(exists=True, file_okay=False, help="Curated data set.")],
    out_dir: Annotated[Path, typer.Option(help="The trained segmenter (safetensors + config.json).")],
    real_metrics: Annotated[Path, typer.Option(help="JSON: FCN-score of the real test photos (upper bound).")],
    baseline_metrics: Annotated[Path, typer.Option(help="JSON: trivial baselines, both directions.")],
    params: Path = ParamsOption,
) -> None:
    """Train (or load, with segmenter.weights) the segmentation network behind the FCN-score."""
    from pipeline.evaluation import train_fcn_segmenter

    cfg = read_params(params)
    with domain_errors(ValueError, FileNotFoundError):
        train_fcn_segmenter(data_dir, out_dir, real_metrics=real_metrics, baseline_metrics=baseline_metrics,
                            params=cfg)


def evaluate(
    method: Annotated[str, typer.Argument(help=METHOD_HELP)],
    data_dir: Annotated[Path, typer.Option(exists=True, file_okay=False, help="Curated data set.")],
    translated_dir: Annotated[Path, typer.Option(exists=True, file_okay=False, help="Output of translate.")],
    segmenter_dir: Annotated[Path, typer.Option(exists=True, file_okay=False, help="Output of train_segmenter.")],
    model_dir: Annotated[Path, typer.Option(exists=True, file_okay=False, help="Output of train (its MLflow run).")],
    out: Annotated[Path, typer.Option(help="Metrics JSON (DVC metrics).")],
    params: Path = ParamsOption,
) -> None:
    """FCN-scores, image metrics, diversity and realism of one method; added to its MLflow run.
    A method that did not apply to the data set gets `{"applicable": false, "reason": ...}`."""
    from pipeline.evaluation import evaluate_method

    cfg = read_params(params)
    with domain_errors(ValueError, FileNotFoundError, RuntimeError):
        evaluate_method(method, data_dir, translated_dir, segmenter_dir=segmenter_dir, model_dir=model_dir, out=out,
                        params=cfg)
