"""``twin train`` and ``twin evaluate``: mitigation policies learned in the twin and judged on
held-out fault scenarios. Torch and stable-baselines3 are imported inside the commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from twin.cli.errors import handles_errors
from twin.errors import InputError


@handles_errors
def evaluate(
    policy_dir: Annotated[Path, typer.Argument(help="Policy directory (model.zip optional).")],
    out: Annotated[Path, typer.Option(help="Directory for evaluation.json and the plot.")] = Path(
        "evaluation"
    ),
    search: Annotated[int, typer.Option(min=1, help="Static-search candidates.")] = 12,
) -> None:
    """Compare baselines (and the learned policy, if any) on the held-out fault scenarios."""
    from agents.evaluate import run as run_evaluation

    result = run_evaluation(policy_dir, out, search=search)
    for name, res in result["policies"].items():
        v = res["slo_violation_minutes"]
        typer.echo(
            f"{name:<14} SLO-violation min {v['mean']:.2f} [{v['lo']:.2f}, {v['hi']:.2f}]"
            f"  replica-s {res['replica_seconds']['mean']:.0f}"
        )
    typer.echo(f"wrote {out / 'evaluation.json'}")


@handles_errors
def train(
    out: Annotated[Path, typer.Option(help="Run directory (model, checkpoints, logs).")] = Path(
        "runs/online-boutique"
    ),
    steps: Annotated[int, typer.Option(min=1, help="Environment steps.")] = 20_000,
    algo: Annotated[
        str, typer.Option(help="ppo, a2c or dqn (dqn acts through macro actions, agents/macro.py).")
    ] = "ppo",
    envs: Annotated[int, typer.Option(min=1, help="Vectorised envs (processes).")] = 2,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    resume: Annotated[bool, typer.Option(help="Continue from the newest checkpoint.")] = False,
    teacher: Annotated[
        str, typer.Option(help="Controller cloned for the warm start: adaptive or reactive.")
    ] = "adaptive",
    bc_episodes: Annotated[
        int, typer.Option(min=0, help="Training-draw episodes of the teacher to clone (0: none).")
    ] = 0,
    bc_epochs: Annotated[int, typer.Option(min=1, help="Behaviour-cloning epochs.")] = 200,
    dagger_rounds: Annotated[
        int,
        typer.Option(
            min=0,
            help="Rounds of dataset aggregation after cloning: the clone drives, the teacher "
            "labels the states it reaches (0: none).",
        ),
    ] = 0,
    dagger_episodes: Annotated[
        int, typer.Option(min=1, help="Training-draw episodes per aggregation round.")
    ] = 48,
    validation: Annotated[
        int,
        typer.Option(
            min=0,
            help="Validation episodes that pick the best of the clone, the checkpoints and the "
            "final model (0: keep the final model).",
        ),
    ] = 0,
    learning_rate: Annotated[float, typer.Option(min=1e-9, help="Optimiser step size.")] = 3e-4,
    checkpoint_every: Annotated[
        int, typer.Option(min=1, help="Environment steps between checkpoints.")
    ] = 2048,
    faults_from: Annotated[
        Path | None,
        typer.Option(
            help="risk.json of twin risk: training faults follow its posterior rates "
            "(default: the uniform catalogue; the held-out set is the same either way)."
        ),
    ] = None,
) -> None:
    """Train a mitigation policy on Online Boutique faults (stable-baselines3).

    The committed policy's recipe: --steps 8192 --teacher reactive --bc-episodes 96
    --dagger-rounds 4 --validation 16 --learning-rate 1e-4 --checkpoint-every 4096.
    """
    import re

    from pydantic import ValidationError

    from agents.env import EnvConfig
    from agents.train import TrainConfig, train

    flags = {"run_dir": "--out", "n_envs": "--envs", "env": "--faults-from"}
    try:
        config = TrainConfig(
            run_dir=out,
            steps=steps,
            algo=algo,  # checked by TrainConfig
            n_envs=envs,
            seed=seed,
            resume=resume,
            teacher=teacher,
            bc_episodes=bc_episodes,
            bc_epochs=bc_epochs,
            dagger_rounds=dagger_rounds,
            dagger_episodes=dagger_episodes,
            validation=validation,
            learning_rate=learning_rate,
            checkpoint_every=checkpoint_every,
            env=EnvConfig() if faults_from is None else EnvConfig(faults_from=str(faults_from)),
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        text = err["msg"].removeprefix("Value error, ")
        if err["loc"]:
            text = f"{err['loc'][0]}: {text}, got {err['input']!r}"
        # the config's field names, as this command's options
        raise InputError(
            re.sub(
                r"\b(" + "|".join(TrainConfig.model_fields) + r")\b",
                lambda m: flags.get(m[1], "--" + m[1].replace("_", "-")),
                text,
            )
        ) from None
    result = train(config)
    typer.echo(f"wrote {result.model}")
