"""Learn a narrow one-hidden-layer ReLU network by the method of moments, then keep training it in Keras.

`make_planted_regression` draws Gaussian inputs `x ~ N(0, I_d)` labelled by a random planted network
`f(x) = sum_i lambda_i relu(<u_i, x>)` of `k` units, and returns that network too, so every error below
is exact: `relative_population_mse` computes `E[(f - estimate)^2] / Var[f]` in closed form (no test
set, no sampling noise; 1.0 is as bad as predicting the mean). `NarrowReLULearner` estimates the
network from moments (no gradient step), then refines the estimate with Adam. `to_keras()` hands the
result over as a Keras model, which is fine-tuned here for one epoch with a small learning rate.

    python examples/narrow_learner.py            # full run: about 30 s on 2 CPU cores (d=20, k=3)
    python examples/narrow_learner.py --quick    # about 10 s (d=10, k=2, a short refinement)

The success threshold 1e-3 is the one of the package's benchmark (docs/narrow-relu-learner.md).
"""

import argparse
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras

from keras_adaptive_acts.narrow import (
    NarrowReLULearner,
    make_planted_regression,
    network_from_keras,
    recommended_samples,
    relative_population_mse,
)

THRESHOLD = 1e-3  # "success" in the benchmark: a relative population error below 1e-3


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny run of a few seconds")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.quick:
        d, k, n_samples, refine_steps = 10, 2, 20_000, 1000
    else:
        d, k, n_samples, refine_steps = 20, 3, 100_000, 8000

    X, y, target = make_planted_regression(n_samples, d, k, seed=args.seed)
    print(f"planted network: d={d}, k={k}, {n_samples} samples (recommended: {recommended_samples(d, k)})")

    learner = NarrowReLULearner(k=k, refine_steps=refine_steps, seed=args.seed).fit(X, y)
    moment_error = relative_population_mse(target, learner.moment_network_)
    refined_error = relative_population_mse(target, learner.network_)
    seconds = ", ".join(f"{stage} {time:.2f}" for stage, time in learner.fit_seconds_.items())
    print(f"fit seconds: {seconds}")
    print(f"moment estimate relative error: {moment_error:.3e}")
    print(f"refined relative error: {refined_error:.3e}")
    print(f"refined below threshold {THRESHOLD:g}: {refined_error < THRESHOLD}")

    # The fitted network as a Keras model, Dense(2k, relu, use_bias=False) -> Dense(1), to train further
    # with your own optimiser, data and callbacks. The refinement already fitted the planted network to
    # float64 precision, so one epoch in float32 can only keep the error small, not lower it.
    model = learner.to_keras()
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="mse")
    model.fit(X.astype("float32"), y, batch_size=256, epochs=1, verbose=0)
    tuned_error = relative_population_mse(target, network_from_keras(model))
    print(f"keras model: {model.layers[0].units} hidden units")
    print(f"after keras fine-tuning relative error: {tuned_error:.3e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
