"""The figures of the chapter 3-7 loops (matplotlib, imported here only when a run draws).

Each `draw_*` returns a matplotlib Figure laid out like the book's; `publish` writes it as
`<run>/figures/<name>.png` and logs it as a TensorBoard image, so that the PNG and the image
are the same picture.

* grid tasks: the values with their numbers, and arrows for every greedy action (a state
  whose actions tie gets several, as in Figures 3.5 and 4.1); mu_pi as a heatmap;
* Jack's car rental: each policy as a contour map of the cars moved, the values as a surface
  (Figure 4.2);
* the gambler's problem: the value curves of chosen sweeps and the final stakes (Figure 4.3);
* blackjack: value surfaces and hit/stick maps, with and without a usable ace (Figures 5.1,
  5.2);
* curves: the importance-sampling errors on a log axis (Figure 5.3), n-step TD's parameter
  study (Figure 7.2).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rlrun.core.checkpoint import atomic_write_bytes
from rlrun.rl.tabular_task import Grid

DPI = 110


def figure(rows: int, cols: int, size: tuple[float, float] = (4.2, 3.8),
           projections: Sequence[str | None] | None = None) -> tuple[Any, list[Any]]:
    """A figure of rows x cols panels (row-major list), `projections` per panel ('3d')."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size[0] * cols, size[1] * rows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(rows, cols, i + 1,
                            projection=projections[i] if projections else None)
            for i in range(rows * cols)]
    return fig, axes


def suptitle(fig: Any, text: str) -> None:
    """The figure's title, wrapped to its width."""
    import textwrap

    width = max(40, int(fig.get_figwidth() * 11))
    fig.suptitle(textwrap.fill(text, width), fontsize="medium")


def publish(ctx: Any, name: str, fig: Any, tag: str, step: int | None = None) -> Path:
    """`<run>/figures/<name>.png` (written atomically) and the TensorBoard image `tag`: one
    rendering, encoded once as the PNG and handed to TensorBoard as pixels."""
    from PIL import Image  # matplotlib's own dependency

    fig.set_dpi(DPI)
    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3]
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="png", optimize=False)
    path = Path(ctx.run_dir) / "figures" / f"{name}.png"
    atomic_write_bytes(path, buf.getvalue())
    if ctx.logger.writer is not None:
        ctx.logger.image(tag, rgb, ctx.step if step is None else step, dataformats="HWC")
    return path


# ---- grids ---------------------------------------------------------------------------------------
def _cells(values: np.ndarray, grid: Grid) -> np.ndarray:
    return np.asarray(values, dtype=float)[:grid.rows * grid.cols].reshape(grid.rows, grid.cols)


def _font(grid: Grid) -> float:
    return float(np.clip(48 / max(grid.rows, grid.cols, 1), 5, 11))


def value_grid(ax: Any, values: np.ndarray, grid: Grid, terminal: np.ndarray, title: str,
               decimals: int = 1, cmap: str = "YlGnBu") -> None:
    """The values of a grid task, one cell per state with its number (terminal cells grey)."""
    V = _cells(values, grid)
    dead = _cells(terminal, grid).astype(bool)
    shown = np.ma.masked_array(V, dead)
    im = ax.imshow(shown, cmap=cmap)
    ax.imshow(np.ma.masked_array(np.ones_like(V), ~dead), cmap="Greys", vmin=0, vmax=4)
    live = V[~dead] if (~dead).any() else V.ravel()
    lo, hi = float(live.min()), float(live.max())
    span = hi - lo or 1.0
    for r in range(grid.rows):
        for c in range(grid.cols):
            light = (V[r, c] - lo) / span > 0.6 and not dead[r, c]
            ax.text(c, r, f"{V[r, c]:.{decimals}f}", ha="center", va="center",
                    fontsize=_font(grid), color="white" if light else "black")
    _grid_axes(ax, grid, title)
    del im


def policy_arrows(ax: Any, greedy: np.ndarray, grid: Grid, terminal: np.ndarray,
                  title: str) -> None:
    """An arrow for every greedy action of every non-terminal cell (`greedy`: (S, A) bool)."""
    ax.imshow(np.zeros((grid.rows, grid.cols)), cmap="Greys", vmin=0, vmax=1)
    dead = _cells(terminal, grid).astype(bool)
    moves = grid.moves or []
    for s in range(grid.rows * grid.cols):
        r, c = divmod(s, grid.cols)
        if dead[r, c]:
            ax.add_patch(_rect(r, c))
            continue
        for a in np.flatnonzero(greedy[s][:len(moves)]):
            dr, dc = moves[a]
            ax.annotate("", xy=(c + 0.36 * dc, r + 0.36 * dr), xytext=(c, r),
                        arrowprops={"arrowstyle": "-|>", "lw": 1.1, "color": "black",
                                    "shrinkA": 0, "shrinkB": 0})
    _grid_axes(ax, grid, title)


def heatmap(ax: Any, values: np.ndarray, grid: Grid, title: str, label: str,
            axes: tuple[str, str] | None = None) -> None:
    """A grid-shaped heatmap with a colour bar (mu_pi). With `axes` (x and y labels) the
    rows count up from the bottom, as Jack's car counts do; else the grid is drawn as the
    task's picture, row 0 on top."""
    im = ax.imshow(_cells(values, grid), cmap="magma_r",
                   origin="lower" if axes else "upper")
    ax.figure.colorbar(im, ax=ax, shrink=0.8, label=label)
    if axes:
        ax.set_xlabel(axes[0])
        ax.set_ylabel(axes[1])
        ax.set_title(title, fontsize="medium")
    else:
        _grid_axes(ax, grid, title)


def _rect(r: int, c: int) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((c - 0.5, r - 0.5), 1, 1, color="0.75")


def _grid_axes(ax: Any, grid: Grid, title: str) -> None:
    """Cell borders as two line collections, no ticks (tick machinery is most of the time
    matplotlib spends on a small grid)."""
    ax.hlines(np.arange(grid.rows + 1) - 0.5, -0.5, grid.cols - 0.5, color="0.6", lw=0.6)
    ax.vlines(np.arange(grid.cols + 1) - 0.5, -0.5, grid.rows - 0.5, color="0.6", lw=0.6)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlim(-0.5, grid.cols - 0.5)
    ax.set_ylim(grid.rows - 0.5, -0.5)
    ax.set_title(title, fontsize="medium")


def draw_grid_rows(rows: Sequence[tuple[str, np.ndarray, np.ndarray | None]], grid: Grid,
                   terminal: np.ndarray, title: str, decimals: int = 1) -> Any:
    """One row per (label, values, greedy mask): the values beside their greedy policy
    (Figure 4.1's layout; one row for Figures 3.2 and 3.5)."""
    arrows = grid.moves is not None and all(greedy is not None for _, _, greedy in rows)
    fig, axes = figure(len(rows), 2 if arrows else 1,
                       size=(0.55 * grid.cols + 1.2, 0.55 * grid.rows + 0.8))
    for i, (label, values, greedy) in enumerate(rows):
        if arrows and greedy is not None:
            value_grid(axes[2 * i], values, grid, terminal, f"v, {label}", decimals)
            policy_arrows(axes[2 * i + 1], greedy, grid, terminal, f"greedy policy, {label}")
        else:
            value_grid(axes[i], values, grid, terminal, label, decimals)
    suptitle(fig, title)
    return fig


# ---- Jack's car rental ---------------------------------------------------------------------------
def car_policy(ax: Any, moves: np.ndarray, n: int, title: str) -> None:
    """Figure 4.2's policy panel: cars moved from the first to the second location
    (negative: back) over (cars at the first, cars at the second), as filled contours with
    each region's number."""
    grid = np.asarray(moves)[:n * n].reshape(n, n)
    levels = np.arange(-5.5, 6.0)
    ax.contourf(grid, levels=levels, cmap="RdBu_r", vmin=-5.5, vmax=5.5)
    ax.contour(grid, levels=levels, colors="black", linewidths=0.6)
    for m in np.unique(grid):
        rr, cc = np.nonzero(grid == m)
        i = np.argmin((rr - rr.mean()) ** 2 + (cc - cc.mean()) ** 2)
        ax.text(cc[i], rr[i], str(int(m)), ha="center", va="center", fontsize=9,
                fontweight="bold")
    ax.set_xticks(np.arange(0, n, 5))
    ax.set_yticks(np.arange(0, n, 5))
    ax.set_xlabel("# cars at second location")
    ax.set_ylabel("# cars at first location")
    ax.set_aspect("equal")
    ax.set_title(title, fontsize="medium")


def surface(ax: Any, z: np.ndarray, x: np.ndarray, y: np.ndarray, labels: tuple[str, str, str],
            title: str) -> None:
    """A value surface over two axes (z[i, j] at y[i], x[j])."""
    X, Y = np.meshgrid(x, y)
    ax.plot_surface(X, Y, z, cmap="viridis", linewidth=0, antialiased=True)
    ax.set_xlabel(labels[0], fontsize="small")
    ax.set_ylabel(labels[1], fontsize="small")
    ax.set_zlabel(labels[2], fontsize="small")
    ax.set_title(title, fontsize="medium")


def draw_car_rental(policies: Sequence[tuple[str, np.ndarray]], values: np.ndarray, n: int,
                    title: str) -> Any:
    """Figure 4.2: each policy's contour map, then the last values as a surface."""
    k = len(policies) + 1
    cols = min(k, 3)
    rows = -(-k // cols)
    proj = [None] * len(policies) + ["3d"] + [None] * (rows * cols - k)
    fig, axes = figure(rows, cols, size=(4.4, 4.0), projections=proj)
    for ax, (label, moves) in zip(axes, policies, strict=False):
        car_policy(ax, moves, n, label)
    surface(axes[len(policies)], np.asarray(values)[:n * n].reshape(n, n), np.arange(n),
            np.arange(n), ("# cars at second location", "# cars at first location", "v"),
            "values of the last policy")
    for ax in axes[k:]:
        ax.set_visible(False)
    suptitle(fig, title)
    return fig


# ---- the gambler's problem -----------------------------------------------------------------------
def draw_gambler(curves: Sequence[tuple[str, np.ndarray]], stakes: np.ndarray,
                 title: str) -> Any:
    """Figure 4.3: value estimates of chosen sweeps against capital, and the final stakes."""
    fig, (top, bottom) = figure(2, 1, size=(7.5, 3.4))
    goal = len(stakes) - 1
    capital = np.arange(1, goal)
    for label, v in curves:
        top.plot(capital, np.asarray(v)[1:goal], lw=1.2, label=label)
    top.set_xlabel("Capital")
    top.set_ylabel("Value estimates")
    top.set_xlim(0, goal)
    top.legend(frameon=False, fontsize="small")
    top.grid(alpha=0.3)
    bottom.bar(capital, np.asarray(stakes)[1:goal], width=1.0, color="tab:blue")
    bottom.set_xlabel("Capital")
    bottom.set_ylabel("Final policy (stake)")
    bottom.set_xlim(0, goal)
    bottom.grid(alpha=0.3)
    suptitle(fig, title)
    return fig


# ---- blackjack -----------------------------------------------------------------------------------
DEALER = np.arange(1, 11)
PLAYER = np.arange(12, 22)


def blackjack_policy(ax: Any, actions: np.ndarray, usable: int, title: str,
                     wrong: np.ndarray | None = None) -> None:
    """Hit/stick over (player sum 12..21, dealer card A..10) for one usable-ace value;
    states whose action is not optimal (`wrong`, (200,) bool) are framed in red."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Rectangle

    grid = np.asarray(actions)[:200].reshape(2, 10, 10)[usable]
    ax.imshow(grid, origin="lower", cmap=ListedColormap(["#f2c14e", "#3c6e9f"]), vmin=0, vmax=1,
              extent=(0.5, 10.5, 11.5, 21.5), aspect="auto")
    for i, total in enumerate(PLAYER):
        for j, d in enumerate(DEALER):
            ax.text(d, total, "H" if grid[i, j] else "S", ha="center", va="center",
                    fontsize=7, color="white" if grid[i, j] else "black")
            if wrong is not None and wrong[:200].reshape(2, 10, 10)[usable][i, j]:
                ax.add_patch(Rectangle((d - 0.45, total - 0.45), 0.9, 0.9, fill=False,
                                       edgecolor="red", lw=1.6))
    ax.set_xticks(DEALER, ["A", *map(str, DEALER[1:])])
    ax.set_yticks(PLAYER)
    ax.set_xlabel("Dealer showing")
    ax.set_ylabel("Player sum")
    ax.set_title(title, fontsize="medium")


def blackjack_surface(ax: Any, values: np.ndarray, usable: int, title: str) -> None:
    grid = np.asarray(values)[:200].reshape(2, 10, 10)[usable]
    surface(ax, grid, DEALER, PLAYER, ("Dealer showing", "Player sum", "v"), title)
    ax.set_zlim(-1, 1)
    ax.set_zticks([-1, 0, 1])


def draw_blackjack_values(panels: Sequence[tuple[str, np.ndarray]], title: str) -> Any:
    """Figure 5.1: per (label, v) column, the surfaces with a usable ace (top) and without."""
    k = len(panels)
    fig, axes = figure(2, k, size=(4.4, 3.9), projections=["3d"] * (2 * k))
    for j, (label, v) in enumerate(panels):
        blackjack_surface(axes[j], v, 1, f"usable ace, {label}")
        blackjack_surface(axes[k + j], v, 0, f"no usable ace, {label}")
    suptitle(fig, title)
    return fig


def draw_blackjack_policy(actions: np.ndarray, values: np.ndarray, title: str,
                          wrong: np.ndarray | None = None) -> Any:
    """Figure 5.2: the policy (hit/stick) beside v, with and without a usable ace."""
    fig, axes = figure(2, 2, size=(4.4, 3.9), projections=[None, "3d", None, "3d"])
    for row, usable in enumerate((1, 0)):
        name = "usable ace" if usable else "no usable ace"
        blackjack_policy(axes[2 * row], actions, usable, f"policy, {name}", wrong)
        blackjack_surface(axes[2 * row + 1], values, usable, f"v, {name}")
    suptitle(fig, title)
    return fig


# ---- other tasks, curves -------------------------------------------------------------------------
def draw_values(curves: Sequence[tuple[str, np.ndarray]], labels: Sequence[str],
                title: str) -> Any:
    """Values per state for tasks without a picture of their own (one line per curve)."""
    fig, (ax,) = figure(1, 1, size=(8.0, 4.0))
    x = np.arange(len(labels))
    for label, v in curves:
        ax.plot(x, v, marker="o" if len(x) <= 50 else None, ms=3, lw=1.1, label=label)
    if len(x) <= 25:
        ax.set_xticks(x, labels, rotation=45, ha="right", fontsize="small")
    ax.set_xlabel("state")
    ax.set_ylabel("value")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize="small")
    suptitle(fig, title)
    return fig


def draw_importance_sampling(episodes: np.ndarray, ordinary: np.ndarray,
                             weighted: np.ndarray, title: str, ylabel: str) -> Any:
    """Figure 5.3: mean squared error of both estimators against episodes, log x axis."""
    fig, (ax,) = figure(1, 1, size=(7.5, 4.5))
    ax.plot(episodes, ordinary, color="tab:green", lw=1.4, label="Ordinary importance sampling")
    ax.plot(episodes, weighted, color="tab:red", lw=1.4, label="Weighted importance sampling")
    ax.set_xscale("log")
    ax.set_xlim(1, episodes[-1])
    ax.set_ylim(bottom=0)
    ax.set_xlabel("Episodes (log scale)")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    suptitle(fig, title)
    return fig


def draw_step_size_study(ns: np.ndarray, alphas: np.ndarray, errors: np.ndarray,
                         title: str) -> Any:
    """Figure 7.2: average RMS error against alpha, one line per n."""
    fig, (ax,) = figure(1, 1, size=(7.5, 5.0))
    from matplotlib import colormaps

    cmap = colormaps["tab10"]  # one distinct colour per n (ten in the book's figure)
    for i, n in enumerate(ns):
        ax.plot(alphas, errors[i], color=cmap(i % 10), lw=1.3, label=f"n={n}")
    ax.set_xlabel("α")
    ax.set_ylabel("Average RMS error over states\nand first episodes")
    ax.set_ylim(0.25, 0.55)  # the book's axis (large n and alpha rise above it)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize="small", loc="center left", bbox_to_anchor=(1.0, 0.5))
    suptitle(fig, title)
    return fig
