"""seq2seq_ae's training throughput beside a PyTorch twin on ``torch.nn.LSTM`` / ``GRU``.

    python -m benchmarks seq2seq --out bench-out/seq2seq --repeats 3

The twin has the same sizes and computes the same function (encoder RNN, final hidden
state projected to the code, dense initial decoder state, the code as every decoder
step's input, dense output, reversed decoding): its parameters are copied from the Flax
initialization and its outputs checked equal (``max_abs_diff``) before timing. Both train
on the same batches with Adam (lr 1e-3) on the per-example summed squared error, mean over
the batch: JAX one jitted step (``lax.scan`` recurrences), PyTorch eager (oneDNN LSTM/GRU
kernels). Throughput is examples per second, median over ``steps`` timed steps after
``warmup``, the two frameworks' steps alternating; the ratio JAX / PyTorch is taken in one
run, and with ``--repeats R`` the median of R such runs.
"""

from __future__ import annotations

import json
import pathlib
import time

import numpy as np

from benchmarks import environment


def _twin(cell: str, d: int, hidden: int, latent: int, steps: int):
    import torch

    class Twin(torch.nn.Module):
        def __init__(self):
            super().__init__()
            rnn = torch.nn.LSTM if cell == "lstm" else torch.nn.GRU
            self.enc = rnn(d, hidden, batch_first=True)
            self.project = torch.nn.Linear(hidden, latent)
            self.init_h = torch.nn.Linear(latent, hidden)
            self.init_c = torch.nn.Linear(latent, hidden) if cell == "lstm" else None
            self.dec = rnn(latent, hidden, batch_first=True)
            self.out = torch.nn.Linear(hidden, d)

        def forward(self, x):
            _, state = self.enc(x)
            h = state[0] if cell == "lstm" else state
            z = self.project(h[0])
            h0 = torch.tanh(self.init_h(z))[None]
            s0 = (h0, self.init_c(z)[None]) if cell == "lstm" else h0
            ys, _ = self.dec(z[:, None, :].expand(-1, steps, -1).contiguous(), s0)
            return torch.flip(self.out(ys), dims=(1,))

    return Twin()


def _copy_rnn(torch_rnn, p: dict, cell: str) -> None:
    """Flax cell params -> ``torch.nn.LSTM``/``GRU`` layer 0 (gate orders i,f,g,o / r,z,n)."""
    import torch

    gates = ("i", "f", "g", "o") if cell == "lstm" else ("r", "z", "n")
    w_ih = np.concatenate([np.asarray(p["i" + g]["kernel"]).T for g in gates])
    w_hh = np.concatenate([np.asarray(p["h" + g]["kernel"]).T for g in gates])
    hidden = w_hh.shape[1]
    zeros = np.zeros(hidden, np.float32)
    if cell == "lstm":  # Flax: the bias on the hidden side only
        b_ih = np.concatenate([zeros] * 4)
        b_hh = np.concatenate([np.asarray(p["h" + g]["bias"]) for g in gates])
    else:  # Flax: input biases on r, z, n; a hidden bias on n only (inside r * (...))
        b_ih = np.concatenate([np.asarray(p["i" + g]["bias"]) for g in gates])
        b_hh = np.concatenate([zeros, zeros, np.asarray(p["hn"]["bias"])])
    with torch.no_grad():
        for name, a in (("weight_ih_l0", w_ih), ("weight_hh_l0", w_hh)):
            getattr(torch_rnn, name).copy_(torch.from_numpy(np.ascontiguousarray(a)))
        torch_rnn.bias_ih_l0.copy_(torch.from_numpy(b_ih))
        torch_rnn.bias_hh_l0.copy_(torch.from_numpy(b_hh))
    # The biases Flax lacks stay 0 in training too, so the twin trains the same parameters
    # (trainable, each would take its own Adam step beside its twin bias: twice the move).
    if cell == "lstm":
        torch_rnn.bias_ih_l0.requires_grad_(False)
    elif not getattr(torch_rnn, "_aejax_hooked", False):
        keep = torch.cat([torch.zeros(2 * hidden), torch.ones(hidden)])
        torch_rnn.bias_hh_l0.register_hook(lambda g: g * keep)
        torch_rnn._aejax_hooked = True


def _copy_dense(torch_lin, p: dict) -> None:
    import torch

    with torch.no_grad():
        torch_lin.weight.copy_(torch.from_numpy(np.array(np.asarray(p["kernel"]).T, np.float32)))
        torch_lin.bias.copy_(torch.from_numpy(np.array(p["bias"], np.float32)))


def copy_params(twin, params: dict, cell: str) -> None:
    """Loads seq2seq_ae's Flax ``params`` into the twin."""
    enc, dec = params["encoder"], params["decoder"]
    _copy_rnn(twin.enc, next(v for k, v in enc.items() if k != "project"), cell)
    _copy_dense(twin.project, enc["project"])
    _copy_dense(twin.init_h, dec["init_h"])
    if cell == "lstm":
        _copy_dense(twin.init_c, dec["init_c"])
    _copy_rnn(twin.dec, dec["step"]["cell"], cell)
    _copy_dense(twin.out, dec["step"]["out"])


def build_twin(params: dict, cell: str, steps: int):
    """The PyTorch twin of a seq2seq_ae (no teacher forcing, reversed decoding) of
    ``steps`` time steps, sized from and loaded with its Flax ``params``."""
    hidden, latent = params["encoder"]["project"]["kernel"].shape
    d = params["decoder"]["step"]["out"]["kernel"].shape[1]
    twin = _twin(cell, d, hidden, latent, steps)
    copy_params(twin, params, cell)
    return twin


def _median_rates(fns, batch: int, warmup: int, steps: int) -> list[float]:
    """Examples/s of each step function, timed in alternation (one step each per round) so
    that load from other processes on a shared machine falls on all of them alike."""
    for fn in fns:
        for _ in range(warmup):
            fn()
    times = [[] for _ in fns]
    for _ in range(steps):
        for fn, ts in zip(fns, times, strict=True):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
    return [batch / float(np.median(ts)) for ts in times]


def compare(cell: str, t: int, *, d=1, hidden=64, latent=16, batch=64, warmup=3, steps=15) -> dict:
    """One row: outputs checked equal, then both trained; examples/s and the ratio."""
    import jax
    import jax.numpy as jnp
    import optax
    import torch

    from aejax.models import create_model

    model = create_model(
        "seq2seq_ae", (t, d), "gaussian", rnn_hidden=hidden, latent_dim=latent, cell=cell
    )
    x = np.random.default_rng(0).normal(size=(batch, t, d)).astype(np.float32)
    params = model.init(jax.random.key(0), jnp.asarray(x))["params"]
    twin = build_twin(params, cell, t)
    xt = torch.from_numpy(x)
    with torch.no_grad():
        diff = float(
            np.abs(twin(xt).numpy() - np.asarray(model.apply({"params": params}, x)[0])).max()
        )

    opt = optax.adam(1e-3)

    def loss(p, xb):
        return model.apply({"params": p}, xb)[1]["terms"]["reconstruction"].mean()

    @jax.jit
    def jstep(p, s, xb):
        val, g = jax.value_and_grad(loss)(p, xb)
        u, s = opt.update(g, s, p)
        return optax.apply_updates(p, u), s, val

    state = {"p": params, "s": opt.init(params)}
    xj = jnp.asarray(x)

    def run_jax():
        state["p"], state["s"], val = jstep(state["p"], state["s"], xj)
        val.block_until_ready()

    topt = torch.optim.Adam(twin.parameters(), lr=1e-3)

    def run_torch():
        topt.zero_grad()
        val = ((twin(xt) - xt) ** 2).sum(dim=(1, 2)).mean()
        val.backward()
        topt.step()

    t0 = time.perf_counter()
    run_jax()
    compile_s = time.perf_counter() - t0
    jax_rate, torch_rate = _median_rates((run_jax, run_torch), batch, warmup, steps)
    return {
        "cell": cell,
        "seq_len": t,
        "batch": batch,
        "hidden": hidden,
        "latent": latent,
        "max_abs_diff": diff,
        "jax_examples_per_s": round(jax_rate, 1),
        "torch_examples_per_s": round(torch_rate, 1),
        "ratio_jax_over_torch": round(jax_rate / torch_rate, 3),
        "jax_compile_s": round(compile_s, 2),
    }


def median_row(runs: list[dict]) -> dict:
    """One row from ``compare``'s rows of repeated runs: the run of the median ratio (the
    lower middle one for an even count), with the ratios' range over all runs."""
    ratios = [r["ratio_jax_over_torch"] for r in runs]
    row = dict(sorted(runs, key=lambda r: r["ratio_jax_over_torch"])[(len(runs) - 1) // 2])
    row.update(runs=len(runs), ratio_min=min(ratios), ratio_max=max(ratios))
    row["max_abs_diff"] = max(r["max_abs_diff"] for r in runs)
    return row


def markdown(record: dict) -> str:
    """``seq2seq.md``'s table of a ``run_seq2seq`` record."""
    lines = [
        "# seq2seq_ae vs a PyTorch twin (training throughput)",
        "",
        f"{environment.machine_line(record['device'])}; torch threads "
        f"{record['torch_threads']}; {record['timestamp']}. Batch 64, hidden 64, code 16, "
        "D=1, Adam; outputs of the twin checked against seq2seq_ae's (max abs diff). Each "
        f"run times {record['steps']} steps of each framework, alternating, and takes "
        f"medians; of {record['repeats']} run(s) per row, the one with the median ratio is "
        "shown, with the range of the ratios.",
        "",
        "| cell | T | max abs diff | JAX ex/s | PyTorch eager ex/s | JAX / PyTorch | range |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in record["rows"]:
        lines.append(
            f"| {r['cell']} | {r['seq_len']} | {r['max_abs_diff']:.1e} | "
            f"{r['jax_examples_per_s']:.0f} | {r['torch_examples_per_s']:.0f} | "
            f"{r['ratio_jax_over_torch']:.2f}x | "
            f"{r['ratio_min']:.2f}-{r['ratio_max']:.2f}x |"
        )
    return "\n".join(lines) + "\n"


def run_seq2seq(
    out,
    *,
    lengths=(32, 128),
    cells=("lstm", "gru"),
    steps: int = 15,
    torch_threads: int = 1,
    repeats: int = 1,
) -> dict:
    """Every (cell, length) row; writes ``seq2seq.json`` and ``seq2seq.md``.

    ``repeats`` runs every row that many times, the rows interleaved (all rows, then all
    again), and reports per row the run of the median ratio and the ratios' range
    (``median_row``): on a shared machine one run's ratio moves by +-20%.

    ``torch_threads`` defaults to 1: on the shared 2-core machine these figures come from
    (load average 3 to 4), PyTorch's 2-thread OpenMP pool collapsed now and then (2 s
    steps, 30 examples/s, runs 10x apart), while 1 thread was stable and as fast as its
    best 2-thread runs; 0 keeps PyTorch's default.
    """
    import torch

    if torch_threads:
        torch.set_num_threads(torch_threads)

    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    keys = [(c, t) for c in cells for t in lengths]
    runs = [[compare(c, t, steps=steps) for c, t in keys] for _ in range(repeats)]
    rows = [median_row([run[i] for run in runs]) for i in range(len(keys))]
    record = {
        "benchmark": "seq2seq",
        "rows": rows,
        "runs": runs,
        "steps": steps,
        "repeats": repeats,
        "torch_threads": torch.get_num_threads(),
        "seconds": time.perf_counter() - t0,
        "versions": environment.versions(),
        "device": environment.device(),
        "timestamp": environment.now(),
    }
    (out / "seq2seq.json").write_text(json.dumps(record, indent=2))
    (out / "seq2seq.md").write_text(markdown(record))
    return record
