"""The network distilled into a decision tree a reviewer can read.

States come from the learned policy's own rollouts in the twin (training-catalogue faults,
seeded): the states it actually meets. The tree is fitted on one set of episodes and its
agreement (all action components equal) measured on separate, held-aside episodes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from agents.env import EnvConfig, MitigationEnv
from agents.export.policy_file import DistilledRules, TreeNode
from agents.spaces import FEATURE_LABELS


def rollouts(
    model: Any, config: EnvConfig, episodes: int, seed: int, progress: Callable[[str], None]
) -> tuple[np.ndarray, np.ndarray]:
    env = MitigationEnv(config)
    obs_rows, act_rows = [], []
    for i in range(episodes):
        progress(f"rollout {i + 1}/{episodes}")
        obs, _ = env.reset(seed=seed + i)
        done = False
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs_rows.append(obs)
            act_rows.append(np.asarray(action, dtype=np.int64))
            obs, _, term, trunc, _ = env.step(action)
            done = term or trunc
    return np.asarray(obs_rows, dtype=np.float32), np.asarray(act_rows, dtype=np.int64)


def feature_names(services: tuple[str, ...]) -> list[str]:
    return [f"{s}.{f}" for s in services for f in FEATURE_LABELS]


def distill(
    model: Any,
    config: EnvConfig,
    services: tuple[str, ...],
    *,
    fit_episodes: int = 12,
    check_episodes: int = 6,
    max_depth: int = 6,
    seed: int = 0,
    progress: Callable[[str], None] = lambda _: None,
) -> DistilledRules:
    from sklearn.tree import DecisionTreeClassifier

    x_fit, y_fit = rollouts(model, config, fit_episodes, seed, progress)
    x_chk, y_chk = rollouts(model, config, check_episodes, seed + 10_000, progress)
    tree = DecisionTreeClassifier(max_depth=max_depth, random_state=seed).fit(x_fit, y_fit)
    pred = np.asarray(tree.predict(x_chk)).reshape(y_chk.shape)
    agreement = float(np.mean(np.all(pred == y_chk, axis=1)))
    per_component = float(np.mean(pred == y_chk))
    t = tree.tree_
    names = feature_names(services)
    classes = tree.classes_ if isinstance(tree.classes_, list) else [tree.classes_]
    nodes = []
    for i in range(t.node_count):
        if t.children_left[i] == -1:
            value = t.value[i]  # (n_outputs, max_classes)
            action = tuple(
                int(classes[o][int(np.argmax(value[o][: len(classes[o])]))])
                for o in range(len(classes))
            )
            nodes.append(TreeNode(action=action))
        else:
            f = int(t.feature[i])
            nodes.append(
                TreeNode(
                    feature=f,
                    feature_name=names[f],
                    threshold=float(t.threshold[i]),
                    left=int(t.children_left[i]),
                    right=int(t.children_right[i]),
                )
            )
    return DistilledRules(
        max_depth=max_depth,
        agreement=agreement,
        agreement_samples=len(y_chk),
        component_agreement=per_component,
        nodes=tuple(nodes),
    )
