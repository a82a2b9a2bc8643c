"""Raster, population-rate and rate-distribution plots (matplotlib, Agg-safe)."""
from __future__ import annotations

from typing import Optional

import numpy as np

from .simulate import SpikeTrains


def population_rate(trains: SpikeTrains, bin_ms: float = 5.0, start: int = 0, stop: Optional[int] = None):
    """Histogram rate (Hz) of neurons ``start <= i < stop`` in bins of ``bin_ms``: ``(bin centres ms, rate)``."""
    stop = trains.size if stop is None else stop
    keep = (trains.indices >= start) & (trains.indices < stop)
    edges = np.arange(0.0, trains.duration + bin_ms, bin_ms)
    counts, _ = np.histogram(trains.times[keep], bins=edges)
    return 0.5 * (edges[1:] + edges[:-1]), counts / max(stop - start, 1) / (bin_ms / 1000.0)


def _pyplot(path):
    """matplotlib's pyplot, on the Agg backend when the figure goes to a file."""
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save_or_return(fig, path):
    """Save ``fig`` to ``path`` (PNG) and close it, or return it when there is no path."""
    fig.tight_layout()
    if path is None:
        return fig
    fig.savefig(path, dpi=120)
    _pyplot(path).close(fig)
    return None


def raster_and_rate(trains: SpikeTrains, groups: dict, title: str = "", path=None, max_neurons: int = 1000,
                    bin_ms: float = 5.0):
    """Spike raster (at most ``max_neurons`` neurons shown) above population rates per group.

    Args:
        trains: spikes of the population.
        groups: name -> (start, stop) index ranges, each plotted in its own colour.
        path: if given, the figure is saved there (PNG) and closed; otherwise it is returned.
    """
    plt = _pyplot(path)
    fig, (ax_raster, ax_rate) = plt.subplots(2, 1, figsize=(9, 6), sharex=True,
                                             gridspec_kw={"height_ratios": [3, 1]})
    colors = [f"C{i % 10}" for i in range(len(groups))]  # (tab10: one colour per group, up to 10)
    shown = min(max_neurons, trains.size)
    stride = max(1, trains.size // shown)
    for (name, (start, stop)), color in zip(groups.items(), colors):
        keep = (trains.indices >= start) & (trains.indices < stop) & (trains.indices % stride == 0)
        ax_raster.scatter(trains.times[keep], trains.indices[keep], s=2.0, c=color, marker=".", linewidths=0,
                          label=name, rasterized=True)
        centres, rate = population_rate(trains, bin_ms, start, stop)
        ax_rate.plot(centres, rate, color=color, lw=1, label=f"{name}: {rate.mean():.1f} Hz")
    ax_raster.set_ylabel("neuron index" + (f" (every {stride}th)" if stride > 1 else ""))
    ax_raster.set_ylim(0, trains.size)
    ax_raster.set_title(title)
    ax_rate.set_xlabel("time (ms)")
    ax_rate.set_ylabel(f"rate (Hz, {bin_ms:g} ms bins)")
    ax_rate.set_xlim(0, trains.duration)
    ax_rate.legend(loc="upper right", fontsize=8)
    return _save_or_return(fig, path)


def rate_distributions(trains: SpikeTrains, groups: dict, title: str = "", path=None):
    """Box plot of the firing rates (Hz) of the neurons of every group, as the Potjans–Diesmann figure.

    Args:
        trains: spikes of the population.
        groups: name -> (start, stop) index ranges.
        path: if given, the figure is saved there (PNG) and closed; otherwise it is returned.
    """
    plt = _pyplot(path)
    rates = trains.counts() / (trains.duration / 1000.0)
    names = list(groups)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.8 * len(names) + 2.0), 4))
    ax.boxplot([rates[start:stop] for start, stop in groups.values()], showfliers=False)
    ax.set_xticks(range(1, len(names) + 1), names)
    for i, (start, stop) in enumerate(groups.values(), start=1):
        ax.plot(i, rates[start:stop].mean(), "k^", ms=5)  # the mean
    ax.set_ylabel("firing rate (Hz)")
    ax.set_title(title or "rates per group (box: quartiles; triangle: mean)")
    return _save_or_return(fig, path)
