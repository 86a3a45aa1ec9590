"""Tabular prediction: TD(0) and constant-alpha Monte Carlo (Sutton & Barto 6.1-6.2),
vectorised over independent runs.

    rlrun algo=td0 env=random_walk algo.step_size=0.1          # Example 6.2
    rlrun algo=mc_constant_alpha env=random_walk algo.step_size=0.02
    rlrun -m experiment=sutton_barto/ex6_2                      # the RMS-error figure

Both estimate v_pi of a fixed policy (uniform over the available actions). The true values
come from solving the task's Bellman equations with its model, so `td/rms_error` (RMS over
the non-terminal states, averaged over runs) is logged for every tabular task.
"""

from __future__ import annotations

import numpy as np

from rlrun.envs.tabular_sim import VectorTabularSim, load_model, policy_values


def run(ctx) -> None:
    cfg, env_cfg = ctx.algo, ctx.env
    model, _, max_steps = load_model(env_cfg)
    n, S, E = env_cfg.num_runs, model.n_states, cfg.episodes
    pi = model.valid / model.valid.sum(axis=1, keepdims=True)  # the evaluated policy (S, A)
    v_true = policy_values(model, pi, cfg.gamma)
    nonterminal = ~model.terminal
    env_seed, agent_seed = np.random.SeedSequence(ctx.seed).spawn(2)
    sim = VectorTabularSim(model, np.random.default_rng(env_seed))
    rng = np.random.default_rng(agent_seed)
    pi_cdf = pi.cumsum(axis=1)

    v = np.full((n, S), float(cfg.initial_value))
    v[:, model.terminal] = 0.0
    st = {"v": v, "episode": 0}
    ctx.track(rngs=[sim.rng, rng], counters=st)

    def rms() -> float:
        err = (st["v"] - v_true)[:, nonterminal]
        return float(np.sqrt((err**2).mean(axis=1)).mean())

    if not ctx.resume() and v_true is not None:
        ctx.logger.scalar("td/rms_error", rms(), 0)  # before any episode, as in the book

    runs = np.arange(n)
    ctx.start_progress(E, st["episode"], unit="episode")
    while st["episode"] < E:
        # One episode for every run, all runs stepping together until each has ended.
        v = st["v"]
        s = sim.reset(n)
        alive = runs
        visited, rewards = [], []  # per time step: states and rewards of the alive runs
        steps = 0
        while alive.size and steps < max_steps:
            sa = s[alive]
            u = rng.random(alive.size)
            a = np.minimum((pi_cdf[sa] < u[:, None]).sum(axis=1), model.n_actions - 1)
            s2, r, term = sim.step(sa, a)
            if cfg.method == "td0":
                boot = np.where(term, 0.0, v[alive, s2])
                v[alive, sa] += cfg.step_size * (r + cfg.gamma * boot - v[alive, sa])
            else:
                visited.append((alive, sa))
                rewards.append(r)
            s[alive] = s2
            alive = alive[~term]
            steps += 1
        if cfg.method == "mc":
            _monte_carlo_update(v, visited, rewards, n, cfg.step_size, cfg.gamma)
        st["episode"] += 1
        if v_true is not None:
            ctx.logger.scalar("td/rms_error", rms(), st["episode"])
        if ctx.tick(st["episode"], rms() if v_true is not None else None):
            break
    ctx.finish()


def _monte_carlo_update(v: np.ndarray, visited: list, rewards: list, n: int, alpha: float,
                        gamma: float) -> None:
    """Every-visit constant-alpha MC after the episode: V(S_t) += alpha (G_t - V(S_t)),
    in time order, with G_t accumulated backwards; vectorised over runs."""
    g = np.zeros(n)
    returns = []
    for (alive, _), r in zip(reversed(visited), reversed(rewards), strict=True):
        g[alive] = r + gamma * g[alive]
        returns.append(g[alive].copy())
    for (alive, sa), g_t in zip(visited, reversed(returns), strict=True):
        v[alive, sa] += alpha * (g_t - v[alive, sa])
