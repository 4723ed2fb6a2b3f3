"""The papers' ablations as named studies of `dvc exp run -S` overrides, and their result tables.

A study's rows are run as DVC experiments named `<study>-<row>`; `ablation_table` reads them back
from `dvc exp show --json` (parsed by `parse_exp_show`) into the paper's layout.
"""
from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pathlib import Path

import pandas as pd
import yaml

from pipeline.config import ConfigError, Params, flatten, params_from_dict
from pipeline.io import record_path
from pipeline.models import METHODS
from pipeline.report import fmt

Overrides = Mapping[str, Any]  # dotted params key -> value, as `dvc exp run -S key=value`

# FCN-scores of the labels -> photo direction, as the papers' ablation tables report them (the
# score names of the metrics files, pipeline.evaluation.SCORES)
FCN_COLUMNS: tuple[tuple[str, str], ...] = (
    ("pixel_acc", "Per-pixel acc."),
    ("class_acc", "Per-class acc."),
    ("class_iou", "Class IOU"),
)
# pix2pix's rows also give their L1 to the test photos: L1 alone should beat the median painting's
PAIRED_COLUMNS: tuple[tuple[str, str], ...] = (*FCN_COLUMNS, ("l1", "L1 to the photo"))
NOT_RUN = "not run"


@dataclass(frozen=True)
class Study:
    name: str  # preset key; the prefix of its experiment names
    title: str
    paper_table: str  # the table of the paper this study reproduces
    method: str  # the method whose branch it changes; metrics come from reports/metrics/<method>.json
    row_header: str  # the first column's header, as in the paper
    rows: tuple[tuple[str, Overrides], ...]  # (the paper's row label, overrides)
    caption: str = ""
    metric_columns: tuple[tuple[str, str], ...] = FCN_COLUMNS
    row_methods: tuple[str, ...] = ()  # a study of methods: each row's own (else every row is `method`)

    def method_of(self, label: str) -> str:
        """The method a row trains and is scored by."""
        labels = [row for row, _ in self.rows]
        return self.row_methods[labels.index(label)] if self.row_methods else self.method

    def metrics_file_of(self, label: str) -> str:
        return f"reports/metrics/{self.method_of(label)}.json"

    @property
    def metrics_files(self) -> dict[str, str]:
        """Every metrics file the rows are read from -> the record beside it (which names the MLflow run)."""
        files = [f"reports/metrics/{m}.json" for m in dict.fromkeys(self.row_methods or (self.method,))]
        return {f: record_path(Path(f)).as_posix() for f in files}

    @property
    def touched_keys(self) -> tuple[str, ...]:
        """Every key some row overrides (sorted)."""
        return tuple(sorted({key for _, overrides in self.rows for key in overrides}))

    @property
    def metrics_file(self) -> str:
        return f"reports/metrics/{self.method}.json"

    @property
    def record_file(self) -> str:
        """The record beside the metrics file: it names the row's MLflow run."""
        return record_path(Path(self.metrics_file)).as_posix()


# --------------------------------------------------------------------------- the presets


def _cyclegan_table4(p: Params) -> Study:
    full = {"cyclegan.use_gan": True, "cyclegan.cycle_forward": True, "cyclegan.cycle_backward": True}
    return Study(
        "cyclegan_table4", "CycleGAN loss ablation", "CycleGAN (Zhu et al. 2017), Table 4", "cyclegan", "Loss",
        rows=(("Cycle alone", {**full, "cyclegan.use_gan": False, "lambda_cyc": p.lambda_cyc}),
              # the identity weight is lambda_idt * lambda_cyc, so lambda_cyc 0 drops identity too
              ("GAN alone", {**full, "lambda_cyc": 0.0}),
              ("GAN + forward cycle", {**full, "cyclegan.cycle_backward": False, "lambda_cyc": p.lambda_cyc}),
              ("GAN + backward cycle", {**full, "cyclegan.cycle_forward": False, "lambda_cyc": p.lambda_cyc}),
              ("CycleGAN", {**full, "lambda_cyc": p.lambda_cyc})),
        caption=f"FCN-scores of labels -> photo. \"GAN alone\" sets lambda_cyc 0, which also removes the "
                f"identity term (its weight is lambda_idt x lambda_cyc); the other rows keep lambda_cyc "
                f"{p.lambda_cyc:g} and lambda_idt {p.lambda_idt:g}.")


def _pix2pix_loss(p: Params) -> Study:
    def row(use_gan: bool, conditional_d: bool, lambda_l1: float) -> dict[str, Any]:
        return {"pix2pix.use_gan": use_gan, "pix2pix.conditional_d": conditional_d, "lambda_L1": lambda_l1}

    return Study(
        "pix2pix_loss", "pix2pix loss ablation", "pix2pix (Isola et al. 2017), Table 1", "pix2pix", "Loss",
        rows=(("L1", row(False, True, p.lambda_L1)),
              ("GAN", row(True, False, 0.0)),
              ("cGAN", row(True, True, 0.0)),
              ("L1+GAN", row(True, False, p.lambda_L1)),
              ("L1+cGAN", row(True, True, p.lambda_L1))),
        caption=f"FCN-scores of labels -> photo. GAN: the discriminator sees the output alone; cGAN: it "
                f"sees (input, output) pairs. L1 rows use lambda_L1 {p.lambda_L1:g}. L1 to the photo: mean "
                f"absolute difference to the real test photo (0..1); the report's image-similarity table "
                f"gives the per-class median painting's.",
        metric_columns=PAIRED_COLUMNS)


def generator_pair(name: str) -> tuple[str, str]:
    """(U-Net, encoder-decoder) names of the same depth: `unet_64` <-> `encdec_64`."""
    match = re.fullmatch(r"(unet|encdec)_(\d+)", name)
    if match is None:
        raise ValueError(f"pix2pix.generator {name!r} has no encoder-decoder counterpart; "
                         "the generator study needs unet_<size> or encdec_<size>")
    return f"unet_{match[2]}", f"encdec_{match[2]}"


def _pix2pix_generator(p: Params) -> Study:
    unet, encdec = generator_pair(p.pix2pix.generator)
    rows = tuple((f"{arch} ({loss})", {"pix2pix.generator": name, "pix2pix.use_gan": loss != "L1"})
                 for arch, name in (("Encoder-decoder", encdec), ("U-Net", unet)) for loss in ("L1", "L1+cGAN"))
    return Study(
        "pix2pix_generator", "pix2pix generator ablation", "pix2pix (Isola et al. 2017), Table 2", "pix2pix",
        "Generator (loss)", rows=rows,
        caption=f"FCN-scores of labels -> photo. {encdec} is {unet} without its skip connections.",
        metric_columns=PAIRED_COLUMNS)


def deepest_patch_layers(image_size: int) -> int:
    """The most PatchGAN layers an image of this size can take: n stride-2 convs leave size / 2^n,
    and the two 4x4 stride-1 convs after them take 2 more pixels, so size / 2^n - 2 must be >= 1."""
    n = 0
    while image_size // 2 ** (n + 1) - 2 >= 1:
        n += 1
    return n


def _pix2pix_patch(p: Params) -> Study:
    from_size = {1: "16x16", 2: "34x34", 3: "70x70", 4: "142x142", 5: "286x286"}
    image_gan = min(5, deepest_patch_layers(p.image_size))
    caption = (f"FCN-scores of labels -> photo at {p.image_size} px; the discriminator's receptive field "
               "varies, L1+cGAN loss.")
    if p.image_size < 286:
        caption += (f" At {p.image_size} px every field of {p.image_size} px or more covers the whole image, "
                    "so those rows all act as ImageGANs.")
    if image_gan < 5:
        caption += (f" The 286x286 discriminator (n_layers_D 5) does not fit {p.image_size} px images (its "
                    f"output map would be empty), so that row uses the deepest that fits, n_layers_D "
                    f"{image_gan} ({from_size.get(image_gan, '?')} field).")
    return Study(
        "pix2pix_patch", "pix2pix discriminator receptive field", "pix2pix (Isola et al. 2017), Table 3",
        "pix2pix", "Discriminator receptive field",
        rows=(("1x1 (PixelGAN)", {"pix2pix.discriminator": "pixel", "pix2pix.n_layers_D": p.pix2pix.n_layers_D}),
              ("16x16", {"pix2pix.discriminator": "patch", "pix2pix.n_layers_D": 1}),
              ("70x70", {"pix2pix.discriminator": "patch", "pix2pix.n_layers_D": 3}),
              ("286x286 (ImageGAN)", {"pix2pix.discriminator": "patch", "pix2pix.n_layers_D": image_gan})),
        caption=caption, metric_columns=PAIRED_COLUMNS)


def _cut_ablation(p: Params) -> Study:
    """CUT's ablations on the `cut` branch: FastCUT is CUT configured as the authors' --CUT_mode FastCUT."""
    base = {"cut.enabled": True, "cut.lambda_NCE": p.cut.lambda_NCE, "cut.nce_idt": True,
            "cut.flip_equivariance": False, "cut.nce_layers": list(p.cut.nce_layers)}
    fast = p.fastcut
    return Study(
        "cut_ablation", "CUT ablation", "CUT (Park et al. 2020), the ablation table", "cut", "Variant",
        rows=(("CUT", base),
              ("FastCUT", {**base, "cut.lambda_NCE": fast.lambda_NCE, "cut.nce_idt": fast.nce_idt,
                           "cut.flip_equivariance": fast.flip_equivariance}),
              ("No identity NCE", {**base, "cut.nce_idt": False}),
              ("Last layer only", {**base, "cut.nce_layers": [p.cut.nce_layers[-1]]})),
        caption=f"FCN-scores of labels -> photo, every row at CUT's budget (FastCUT's own schedule is shorter). "
                f"FastCUT: lambda_NCE {fast.lambda_NCE:g}, no identity NCE, flip-equivariance. Last layer only: "
                f"PatchNCE on G's layer {p.cut.nce_layers[-1]} alone.")


def _default_methods(p: Params) -> Study:
    """The default run's three methods as rows, each with its own defaults: the study to repeat over
    seeds for error bars on the report's main table."""
    methods = ("pix2pix", "cyclegan", "bicyclegan")
    return Study(
        "default_methods", "The default run's methods", "CycleGAN (Zhu et al. 2017), Table 1 (pix2pix and CycleGAN)",
        "pix2pix", "Method", rows=tuple((METHODS[m].title, {}) for m in methods), row_methods=methods,
        caption="FCN-scores of labels -> photo, each method at its default params; BicycleGAN's row is its "
                "fixed-z output.")


_BUILDERS: dict[str, Callable[[Params], Study]] = {
    "cyclegan_table4": _cyclegan_table4,
    "pix2pix_loss": _pix2pix_loss,
    "pix2pix_generator": _pix2pix_generator,
    "pix2pix_patch": _pix2pix_patch,
    "cut_ablation": _cut_ablation,
    "default_methods": _default_methods,
}


def study_for(name: str, baseline: Params) -> Study:
    """The study `name` with the values that depend on the baseline params (image size, weights)."""
    try:
        builder = _BUILDERS[name]
    except KeyError:
        raise ValueError(f"unknown study {name!r}; expected one of {sorted(_BUILDERS)}") from None
    return builder(baseline)


PRESETS: dict[str, Study] = {name: builder(Params()) for name, builder in _BUILDERS.items()}

# Overrides added to every row: "small" trains 500 steps (pix2pix defaults to 1400, CycleGAN to 2500)
BUDGETS: dict[str, Callable[[str], dict[str, Any]]] = {
    "default": lambda method: {},
    "small": lambda method: {f"{method}.iters": 250, f"{method}.iters_decay": 250},
}


def row_overrides(study: Study, label: str, baseline: Params, budget: str = "default") -> dict[str, Any]:
    """Every key the study touches (the row's value, else the baseline's), plus the budget's keys.

    Passing every touched key keeps rows independent when they run one after another in the
    workspace, where each `dvc exp run -S` would otherwise inherit the previous row's params.
    """
    rows = dict(study.rows)
    if label not in rows:
        raise ValueError(f"study {study.name} has no row {label!r}; rows are {list(rows)}")
    if budget not in BUDGETS:
        raise ValueError(f"unknown budget {budget!r}; expected one of {sorted(BUDGETS)}")
    flat = baseline.as_flat_dict()
    budget_keys = BUDGETS[budget](study.method_of(label))
    return {key: rows[label].get(key, flat[key]) for key in study.touched_keys} | budget_keys


# --------------------------------------------------------------------------- DVC commands


def study_key(study: Study, budget: str = "default") -> str:
    """The study and budget as they prefix experiment names: `pix2pix_loss`, `pix2pix_loss-small`."""
    return "-".join([study.name, *([budget] if budget != "default" else [])])


def exp_name(study: Study, label: str, budget: str = "default") -> str:
    """A DVC-safe experiment name (a valid git ref part): `cyclegan_table4-gan-forward-cycle`."""
    slug = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")
    return f"{study_key(study, budget)}-{slug}"


def render_value(value: Any) -> str:
    """A value as `-S key=value` wants it, read back by DVC and PyYAML as the same type."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float):
        text = repr(value)
        mantissa, e, exponent = text.partition("e")
        if e and "." not in mantissa:  # YAML 1.1 (PyYAML) reads 1e-05 as a string, 1.0e-05 as a float
            text = f"{mantissa}.0e{exponent}"
        return text
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.\-]*", value) \
            and value.lower() not in ("true", "false", "yes", "no", "on", "off", "null", "none"):
        return value
    return json.dumps(value)  # quoted: a YAML flow scalar


def apply_overrides(baseline: Params, overrides: Overrides) -> Params:
    """`baseline` with dotted-key overrides, validated as params.yaml is (ConfigError names the key)."""
    raw = dataclasses.asdict(baseline)
    for key, value in overrides.items():
        *parents, leaf = key.split(".")
        node = raw
        for part in parents:
            if not isinstance(node.get(part), dict):
                raise ConfigError(f"{key}: unknown key (no section {part!r})")
            node = node[part]
        if leaf not in node:
            raise ConfigError(f"{key}: unknown key")
        node[leaf] = value
    return params_from_dict(raw)


def dvc_commands(study: Study, baseline: Params, budget: str = "default", queue: bool = True,
                 jobs: int = 1, targets: tuple[str, ...] = ()) -> list[list[str]]:
    """`dvc exp run` per row (queued, then one `dvc queue start`; or run one after another).

    Every row is checked first, with its values as DVC will write them, so a bad row fails here
    rather than after the rows before it have been queued or run.
    """
    commands = []
    for label, _ in study.rows:
        rendered = {key: render_value(value) for key, value in row_overrides(study, label, baseline, budget).items()}
        apply_overrides(baseline, {key: yaml.safe_load(text) for key, text in rendered.items()})
        sets = [arg for key, text in rendered.items() for arg in ("-S", f"{key}={text}")]
        commands.append(["dvc", "exp", "run", *(["--queue"] if queue else []), "-n",
                         exp_name(study, label, budget), *sets, *targets])
    if queue:
        commands.append(["dvc", "queue", "start", "-j", str(jobs)])
    return commands


# --------------------------------------------------------------------------- MLflow run labels

# the top-level loss weights each method reads (as in dvc.yaml's train stage)
METHOD_WEIGHTS: dict[str, tuple[str, ...]] = {name: spec.loss_weights for name, spec in METHODS.items()}


def study_tag(study: Study, budget: str = "default") -> str:
    """The MLflow tag that marks a run as a row of a study; its value is the row label. One key per
    study, because one run can be a row of several (the default pix2pix run is the baseline row of
    three studies)."""
    return f"ablation.{study_key(study, budget)}"


def study_row(experiment: str | None) -> tuple[Study, str, str] | None:
    """(study, row label, budget) of a DVC experiment named by `exp_name` (a seed's too), else None."""
    seeded = re.fullmatch(r"(.+)-seed\d+", experiment or "")
    experiment = seeded[1] if seeded else experiment
    for study in PRESETS.values():
        for label, _ in study.rows:
            for budget in BUDGETS:
                if experiment == exp_name(study, label, budget):
                    return study, label, budget
    return None


def method_params(params: Params, method: str) -> dict[str, Any]:
    """The flat params that can change `method`'s run: the shared ones and the method's own section
    and loss weights, without the other methods' (from the method table, so a new method needs no
    edit here). What a method's MLflow run logs, so that comparing runs shows what differs."""
    others = {spec.section for name, spec in METHODS.items() if name != method}
    foreign = {w for m in METHOD_WEIGHTS if m != method for w in METHOD_WEIGHTS[m]} - set(METHOD_WEIGHTS.get(method, ()))
    return {key: value for key, value in params.as_flat_dict().items()
            if key not in foreign and key.split(".")[0] not in others}


def changed_params(params: Params, method: str) -> str:
    """`key=value, ...` for the params that differ from the code's defaults (`Params()`), leaving
    out the other methods' sections and loss weights (they cannot change this method's run)."""
    base = Params().as_flat_dict()
    changed = [f"{key}={render_value(value)}" for key, value in sorted(method_params(params, method).items())
               if value != base.get(key)]
    return ", ".join(changed) or "none"


def run_labels(method: str, params: Params, experiment: str | None) -> tuple[str, dict[str, str]]:
    """The MLflow run name and tags that tell one training run from the others of its experiment:
    `<study>: <row>` and the study tag for a study's row, `<method> <dvc experiment>` for other DVC
    experiments, the method's name in the workspace; always the changed params."""
    tags = {"changed_params": changed_params(params, method)}
    found = study_row(experiment)
    if found is not None and found[0].method_of(found[1]) == method:
        study, label, budget = found
        tags[study_tag(study, budget)] = label
        seed = re.fullmatch(r".+-seed(\d+)", experiment or "")
        return f"{study_key(study, budget)}: {label}" + (f" (seed {seed[1]})" if seed else ""), tags
    return (f"{method} {experiment}" if experiment else method), tags


def row_run_tags(studies: list[Study], experiments: list[dict[str, Any]],
                 budget: str = "default") -> dict[str, dict[str, str]]:
    """MLflow run id -> study tags, for every row with a finished run. A row whose params equal the
    baseline's reuses a run DVC did not repeat (made in the workspace or by another study), so the
    tag is added afterwards to put it beside the study's other rows in the UI."""
    tags: dict[str, dict[str, str]] = {}
    for study in studies:
        for row in ablation_rows(study, experiments, budget):
            if row["status"] == "success" and row["mlflow_run_id"]:
                tags.setdefault(row["mlflow_run_id"], {})[study_tag(study, budget)] = row["label"]
    return tags


# --------------------------------------------------------------------------- reading results


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict):
        return {prefix.rstrip("."): tree} if prefix else {}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(_flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return out


def parse_exp_show(json_text: str) -> list[dict[str, Any]]:
    """Experiments from `dvc exp show --json` (DVC 3): name, rev, baseline, timestamp, status
    (success | queued | running | failed), params (flat dotted keys of params.yaml) and metrics
    ({file: flat dotted keys}). A failed experiment's metrics are dropped: DVC shows its baseline's.
    """
    data = json.loads(json_text)
    if not isinstance(data, list):
        raise ValueError(f"dvc exp show --json: expected a list of baselines, got {type(data).__name__}")
    found = []
    for base in data:
        if not isinstance(base, dict):
            continue
        for entry in base.get("experiments") or []:
            if not isinstance(entry, dict):
                continue
            revs = entry.get("revs") or [{}]
            rev = revs[0] if isinstance(revs[0], dict) else {}
            body = rev.get("data") or {}
            executor = entry.get("executor") if isinstance(entry.get("executor"), dict) else {}
            # finished experiments have no executor, or its state is "success"
            status = "failed" if rev.get("error") else executor.get("state") or "success"
            params_files = body.get("params") or {}
            params = (params_files.get("params.yaml") or {}).get("data") or {}
            metrics = {path: _flat((value or {}).get("data") or {})
                       for path, value in (body.get("metrics") or {}).items()}
            curated = ((body.get("deps") or {}).get(CURATED) or {})
            found.append({"name": entry.get("name") or rev.get("name"), "rev": rev.get("rev") or body.get("rev"),
                          "baseline": base.get("rev"), "timestamp": body.get("timestamp"), "status": status,
                          "data_hash": curated.get("hash") if isinstance(curated, dict) else None,
                          "params": flatten(params) if isinstance(params, dict) else {},
                          "metrics": {} if status != "success" else metrics})
    return found


CURATED = "data/curated"  # the curated store every training reads: its DVC hash names the data set
# the params that make a data set: a study's rows are shown with a run's tables only if these match
DATA_KEYS_PREFIXES = ("data.", "curate.")
DATA_KEYS = ("image_size", "seed")


def data_params(flat: dict[str, Any]) -> dict[str, Any]:
    """The flat params that define the data set a run trained and was scored on."""
    return {k: v for k, v in sorted(flat.items()) if k in DATA_KEYS or k.startswith(DATA_KEYS_PREFIXES)}


def ablation_rows(study: Study, experiments: list[dict[str, Any]], budget: str = "default",
                  seed_suffix: str = "") -> list[dict[str, Any]]:
    """One record per study row: its experiment (the newest of that name, `seed_suffix` added:
    `-seed<k>` for one seed's), status and metrics, and its provenance: the commit it ran from,
    when, its training steps and its data set's params."""
    by_name: dict[str, dict[str, Any]] = {}
    for exp in experiments:
        name = exp.get("name")
        if name and (name not in by_name or (exp.get("timestamp") or "") >= (by_name[name].get("timestamp") or "")):
            by_name[name] = exp
    rows = []
    for label, overrides in study.rows:
        name = exp_name(study, label, budget) + seed_suffix
        exp = by_name.get(name)
        metrics_file = study.metrics_file_of(label)
        metrics = (exp or {}).get("metrics", {}).get(metrics_file, {})
        run_id = ((exp or {}).get("run_ids") or {}).get(metrics_file)
        params = (exp or {}).get("params") or {}
        section = METHODS[study.method_of(label)].section
        steps = [params.get(f"{section}.iters"), params.get(f"{section}.iters_decay")]
        rows.append({"label": label, "experiment": name, "status": exp["status"] if exp else NOT_RUN,
                     "overrides": dict(overrides), "mlflow_run_id": run_id,
                     "metrics": {key: metrics.get(key) for key, _ in study.metric_columns},
                     "commit": (exp or {}).get("baseline"), "timestamp": (exp or {}).get("timestamp"),
                     "steps": sum(steps) if all(isinstance(v, int) for v in steps) else None,
                     "data": data_params(params), "data_hash": (exp or {}).get("data_hash")})
    return rows


def ablation_table(study: Study, experiments: list[dict[str, Any]], budget: str = "default") -> pd.DataFrame:
    """The paper's layout: row label, metric columns (or the run's status), DVC experiment, MLflow run."""
    return study_table(as_json(study, experiments, budget))


def study_table(record: dict[str, Any], runs_in_store: set[str] | None = None) -> pd.DataFrame:
    """A study's table from its record (as_json); with `runs_in_store`, a run missing from the
    MLflow store is marked so."""
    columns = [tuple(c) for c in record["metric_columns"]]
    records = []
    for row in record["rows"]:
        done = row["status"] == "success"
        cells = {header: fmt(row["metrics"].get(key)) if done else row["status"] for key, header in columns}
        run = row.get("mlflow_run_id") or "–"
        if runs_in_store is not None and run != "–" and run not in runs_in_store:
            run += " (not in this store)"
        records.append({record["row_header"]: row["label"], **cells, "DVC experiment": row["experiment"],
                        "MLflow run": run})
    return pd.DataFrame(records, columns=[record["row_header"], *(h for _, h in columns), "DVC experiment",
                                          "MLflow run"])


def as_json(study: Study, experiments: list[dict[str, Any]], budget: str = "default") -> dict[str, Any]:
    """The numbers and provenance behind a study's table (reports/ablations.json, which the report reads)."""
    return {"name": study.name, "title": study.title, "paper_table": study.paper_table, "method": study.method,
            "budget": budget, "caption": study.caption, "row_header": study.row_header,
            "metric_columns": [list(c) for c in study.metric_columns],
            "rows": ablation_rows(study, experiments, budget)}


def provenance(record: dict[str, Any]) -> str:
    """One sentence: the budget, steps per row, the commits the rows ran from, and when."""
    done = [r for r in record["rows"] if r["status"] == "success"]
    if not done:
        return "No row has finished."
    steps = sorted({r["steps"] for r in done if r.get("steps")})
    commits = sorted({str(r["commit"])[:9] for r in done if r.get("commit")})
    days = sorted({str(r["timestamp"])[:10] for r in done if r.get("timestamp")})
    parts = [f"budget `{record['budget']}`"
             + (f" ({' / '.join(map(str, steps))} steps per row)" if steps else "")]
    if commits:
        parts.append(f"from commit{'s' if len(commits) > 1 else ''} {', '.join(f'`{c}`' for c in commits)}")
    if days:
        parts.append(f"on {days[0]}" + (f" to {days[-1]}" if len(days) > 1 else ""))
    return f"{len(done)} of {len(record['rows'])} rows run: " + ", ".join(parts) + "."
