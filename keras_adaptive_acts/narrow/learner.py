"""`NarrowReLULearner`: fit a narrow one-hidden-layer ReLU network by moments, then refine it in Keras."""

from __future__ import annotations

import inspect
import math
import time
import warnings
from typing import Any

import numpy as np

from keras_adaptive_acts.narrow import decomposition, moments
from keras_adaptive_acts.narrow import inputs as input_checks
from keras_adaptive_acts.narrow.keras_model import build_keras_model, network_from_keras, train_square_loss
from keras_adaptive_acts.narrow.network import ReLUNetwork
from keras_adaptive_acts.narrow.readout import least_squares_readout
from keras_adaptive_acts.validation import check_choice, check_integer, check_number

__all__ = ["NarrowReLULearner"]

METHODS = ("contraction", "jennrich")
INPUT_CHECKS = ("error", "warn", "ignore")


class NarrowReLULearner:
    """Learns `f(x) = sum_i lambda_i relu(<u_i, x>)`, `x ~ N(0, I_d)`, by the method of moments.

    The route (a practical instantiation of Chen, Dou, Goel, Klivans and Meka, 2023; not their theorem):

    1. **Moments.** `E[y]`, `E[y x]` and `M2 = E[y (x x^T - I)]` from the samples; the targets minus this
       degree-2 Hermite expansion leave a residual with the same degree-4 moments and a far smaller variance.
    2. **Subspace.** The top-`k` eigenvectors of `M2^2 + mean_t M_{g_t}^2`, with random degree-4
       contractions `M_g` along unit vectors `g` drawn in the span of `M2`'s top `2k` eigenvectors.
    3. **Directions.** From the degree-4 moment tensor projected onto the subspace: random contractions
       merged modulo sign, one neuron at a time with deflation (`method="contraction"`), or Jennrich's
       algorithm (`method="jennrich"`).
    4. **Readout.** Least squares on `[relu(<v_j, x>), relu(-<v_j, x>), 1]`: the signs, and the linear
       part of the target within the span of the directions found (`relu(t) - relu(-t) = t`).
    5. **Refinement** (`refine=True`): Adam on the square loss, in the Keras model `to_keras()` returns.

    Every pass over `X` reads it in batches of `batch_size` rows, so `X` may be a memory-mapped array: the
    estimate needs O(N) memory (residual targets) and O(batch_size * d + d^2) working memory besides `X`.
    The refinement copies its rows (at most `refine_samples`) to float32 for Keras.

    Args:
        k: the number of hidden units of the target network (`1 <= k <= d`).
        refine: refine the moment estimate by gradient descent in Keras during `fit`.
        method: `"contraction"` (default: `contraction_directions`, which merges near-parallel units; the
            result is padded to `k` with perturbed copies of the strongest directions) or `"jennrich"`.
            On the benchmark's planted networks both refined to success on every non-parallel fit;
            `"contraction"` had 2-10x smaller readout errors and also succeeded on every near-parallel one.
        n_contractions: degree-4 contractions that enter the subspace estimate (default `k`); for
            `method="contraction"`, 50 times as many per neuron are drawn in the projected space.
        merge_angle: radians within which `method="contraction"` merges two directions.
        refine_steps: Adam steps of the refinement, rounded up to whole epochs over the refinement samples.
        refine_samples: the most samples refinement uses (a random subset of the rows), or `None` for all.
        refine_batch_size: batch size of the refinement.
        learning_rate: Adam's initial learning rate; it decays to zero along a cosine over the refinement.
            Refinement does not shuffle (the rows are i.i.d. already) and uses no global random state.
        ridge: relative ridge of the least-squares readout; 0 solves it by least squares of minimum norm
            (`np.linalg.lstsq`), which also copes with a singular system.
        batch_size: rows per batch of the moment passes.
        input_check: what a failed check of the Gaussian-input assumption does: `"error"` (default),
            `"warn"` or `"ignore"`. The other checks (shapes, finite values) always raise.
        seed: seeds every random choice (contractions, Jennrich's vectors, the refinement subset); the same
            seed and data give the same estimate.
        verbose: Keras' `verbose` for the refinement (0 is silent).

    Attributes:
        n_features_in_: `d`.
        n_samples_seen_: `N`.
        subspace_: orthonormal basis of the estimated span of the neurons, shape `(d, k)`.
        directions_: the estimated unit directions, shape `(k, d)`, each up to sign.
        moment_network_: the `ReLUNetwork` after the readout, of width `2k` (each direction with both signs).
        network_: the fitted `ReLUNetwork`: `moment_network_` refined, or itself when `refine=False`.
        history_: the refinement's `keras.callbacks.History.history` (`None` without refinement), whose
            losses are of the targets `(y - target_offset_) / target_scale_`.
        target_offset_: the mean of `y`.
        target_scale_: the power of two nearest the root mean square of `y - target_offset_`. The learner
            fits `(y - target_offset_) / target_scale_` and maps its networks back (the output weights times
            the scale, the offset added to the bias), so the fit depends neither on the unit nor on the
            origin of `y`: `fit(X, 2**m * y)` gives exactly `2**m` times the networks of `fit(X, y)`, and
            `fit(X, y + 1000)` the same networks as `fit(X, y)` up to rounding, plus 1000 in the bias.
        fit_seconds_: wall time of each stage: `checks`, `moments`, `directions`, `readout`, `refine`.

    Examples:

    >>> from keras_adaptive_acts.narrow import make_planted_regression, relative_population_mse
    >>> X, y, target = make_planted_regression(100_000, 10, 2, seed=0)
    >>> learner = NarrowReLULearner(k=2, refine=False, seed=0).fit(X, y)
    >>> bool(relative_population_mse(target, learner.network_) < 0.05)
    True
    >>> learner.to_keras().layers[0].units  # Dense(2k, relu, use_bias=False) -> Dense(1)
    4

    Reference:
        [Chen, Dou, Goel, Klivans, Meka: Learning Narrow One-Hidden-Layer ReLU Networks, COLT 2023](
        https://arxiv.org/abs/2304.10524)
    """

    def __init__(
        self,
        k: int,
        *,
        refine: bool = True,
        method: str = "contraction",
        n_contractions: int | None = None,
        merge_angle: float = 0.15,
        refine_steps: int = 8000,
        refine_samples: int | None = 100_000,
        refine_batch_size: int = 256,
        learning_rate: float = 3e-3,
        ridge: float = 1e-8,
        batch_size: int = moments.DEFAULT_BATCH_SIZE,
        input_check: str = "error",
        seed: int | None = None,
        verbose: int | str = 0,
    ) -> None:
        self.k = k
        self.refine = refine
        self.method = method
        self.n_contractions = n_contractions
        self.merge_angle = merge_angle
        self.refine_steps = refine_steps
        self.refine_samples = refine_samples
        self.refine_batch_size = refine_batch_size
        self.learning_rate = learning_rate
        self.ridge = ridge
        self.batch_size = batch_size
        self.input_check = input_check
        self.seed = seed
        self.verbose = verbose
        self._check_params()

    # scikit-learn's estimator protocol: get_params / set_params (so `sklearn.base.clone` works).
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {
            name: getattr(self, name)
            for name in inspect.signature(type(self).__init__).parameters
            if name != "self"
        }

    def set_params(self, **params: Any) -> NarrowReLULearner:
        valid = self.get_params()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"Invalid parameter {name!r} for NarrowReLULearner. Valid: {sorted(valid)}")
            setattr(self, name, value)
        self._check_params()
        return self

    def __repr__(self) -> str:
        defaults = {
            name: parameter.default
            for name, parameter in inspect.signature(type(self).__init__).parameters.items()
            if name != "self"
        }
        changed = [
            f"{name}={value!r}" for name, value in self.get_params().items() if value is not defaults[name]
        ]
        return f"NarrowReLULearner({', '.join(changed)})"

    def _check_params(self) -> None:
        check_integer("k", self.k, minimum=1)
        check_choice("method", self.method, METHODS)
        check_choice("input_check", self.input_check, INPUT_CHECKS)
        if self.n_contractions is not None:
            check_integer("n_contractions", self.n_contractions, minimum=0)
        check_number("merge_angle", self.merge_angle, minimum=0.0, strict=True)
        if self.merge_angle >= math.pi / 2:
            # cos(angle) <= 0 merges every pair of directions (modulo sign, no two are further apart).
            raise ValueError(
                "`merge_angle` is in radians and must be below pi/2 (about 1.571): from pi/2 on, every "
                f"direction merges with every other. Received: merge_angle={self.merge_angle!r}"
            )
        check_integer("refine_steps", self.refine_steps, minimum=1)
        if self.refine_samples is not None:
            check_integer("refine_samples", self.refine_samples, minimum=1)
        check_integer("refine_batch_size", self.refine_batch_size, minimum=1)
        check_number("learning_rate", self.learning_rate, minimum=0.0, strict=True)
        check_number("ridge", self.ridge, minimum=0.0)
        check_integer("batch_size", self.batch_size, minimum=1)
        if not isinstance(self.refine, bool):
            raise ValueError(f"`refine` must be True or False. Received: refine={self.refine!r}")
        if self.seed is not None:
            check_integer("seed", self.seed, minimum=0)

    def fit(self, X: np.ndarray, y: np.ndarray, *, callbacks: list | None = None) -> NarrowReLULearner:
        """Estimates the network from `X` (`N x d`, rows `~ N(0, I_d)`) and `y` (`N`), then refines it.

        Args:
            X: inputs, shape `(N, d)`: an array or a memory-mapped array, read in batches.
            y: targets, shape `(N,)`.
            callbacks: Keras callbacks for the refinement's `fit` (e.g. `keras.callbacks.TensorBoard`); only
                with `refine=True` (`ValueError` otherwise: they would never be called). On TensorFlow and
                JAX their batch hooks run once per 32 steps (see `train_square_loss`).

        Raises:
            ValueError: `callbacks` with `refine=False`, bad shapes, non-finite values, `k > d`, fewer
                than `2k + 2` samples, (with `input_check="error"`) inputs that do not look like
                `N(0, I_d)`, or (with the check off) inputs so large that their moments overflow float64.
        """
        self._check_params()
        if callbacks and not self.refine:
            # Refused before any work: with refine=False no Keras `fit` runs, so they would never be called.
            raise ValueError(
                "`callbacks` are passed to the refinement's Keras `fit`, and refine=False skips it: "
                "pass refine=True, or call `to_keras()` and train the model with your callbacks yourself. "
                f"Received: callbacks={callbacks!r} with refine=False"
            )
        X, y = input_checks.check_shapes(X, y)
        n_samples, input_dim = X.shape
        if self.k > input_dim:
            raise ValueError(f"`k` must be <= the input dimension d={input_dim}. Received: k={self.k}")
        if n_samples < 2 * self.k + 2:
            raise ValueError(
                f"The readout of k={self.k} needs at least 2k + 2 = {2 * self.k + 2} samples. "
                f"Received: {n_samples}"
            )
        seconds = {}
        start = time.perf_counter()
        input_checks.check_finite(X, y, self.batch_size)
        self._check_gaussian(X)
        input_checks.warn_if_few_samples(n_samples, input_dim, self.k)
        seconds["checks"] = time.perf_counter() - start

        rng = np.random.default_rng(self.seed)
        start = time.perf_counter()
        # The estimate is of (y - offset) / scale (see `target_offset_and_scale`); the networks are mapped
        # back. Centring matters: the sampling noise of E[y x] grows with |E[y]|, so an offset of 1000
        # buried the moments; and the float32 refinement could not resolve 1 + 1e-3 variations.
        offset, scale = target_offset_and_scale(y)
        y = centred_targets(y, offset, scale)
        residual, second = self._moments(X, y)
        check_finite_moments(X, (residual, second), self.batch_size)
        vectors = decomposition.contraction_vectors(second, self.k, self._n_contractions(), seed=rng)
        contractions = moments.fourth_moment_contractions(X, residual, vectors, batch_size=self.batch_size)
        check_finite_moments(X, (contractions,), self.batch_size)
        subspace = decomposition.estimate_subspace(second, contractions, self.k)
        tensor = moments.projected_fourth_moment(X, residual, subspace, batch_size=self.batch_size)
        check_finite_moments(X, (tensor,), self.batch_size)
        seconds["moments"] = time.perf_counter() - start

        start = time.perf_counter()
        directions = self._directions(tensor, rng) @ subspace.T
        seconds["directions"] = time.perf_counter() - start

        start = time.perf_counter()
        moment_network = least_squares_readout(X, y, directions, ridge=self.ridge, batch_size=self.batch_size)
        seconds["readout"] = time.perf_counter() - start

        self.n_features_in_ = input_dim
        self.n_samples_seen_ = n_samples
        self.target_offset_ = offset
        self.target_scale_ = scale
        self.subspace_ = subspace
        self.directions_ = directions
        self.moment_network_ = scaled_network(moment_network, scale, offset)
        self.network_ = self.moment_network_
        self.history_ = None
        seconds["refine"] = 0.0
        if self.refine:
            start = time.perf_counter()
            refined, self.history_ = self._refine(X, y, moment_network, rng, callbacks)
            self.network_ = scaled_network(refined, scale, offset)
            seconds["refine"] = time.perf_counter() - start
        self.fit_seconds_ = seconds
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The fitted network's outputs, shape `(N,)`, computed in NumPy a batch at a time."""
        self._check_fitted()
        X = np.asarray(X) if not isinstance(X, np.ndarray) else X
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"`X` must have shape (n, {self.n_features_in_}). Received: X.shape={X.shape}")
        return self.network_(X)

    def score(self, X: np.ndarray, y: np.ndarray) -> float:
        """The coefficient of determination R^2 of `predict(X)` against `y` (as scikit-learn's regressors).

        For a constant `y` (R^2 undefined) it is, as scikit-learn's `r2_score`, 1.0 for an exact
        prediction and 0.0 otherwise. It is computed on `y` and the prediction shifted by `y`'s mean and
        divided by a power of two near its spread, so targets of any size in float64 (`1e-200`, `1e200`)
        give the same score as the same targets at unit size.
        """
        X, y = input_checks.check_shapes(X, y)
        prediction = self.predict(X)
        # R^2 does not change when y and the prediction are shifted and scaled alike; shifted and scaled
        # to about unit size (by y's own mean and a power of two), the sums of squares neither overflow
        # (targets of 1e200) nor underflow to 0 (1e-200, which read as a constant y and scored 1.0).
        offset, scale = target_offset_and_scale(y)
        y, prediction = centred_targets(y, offset, scale), centred_targets(prediction, offset, scale)
        total = float(((y - y.mean()) ** 2).sum())
        error = float(((y - prediction) ** 2).sum())
        if total == 0.0:
            return 1.0 if error == 0.0 else 0.0
        return 1.0 - error / total

    def to_keras(self, *, dtype: str = "float32"):
        """`Dense(2k, relu, use_bias=False) -> Dense(1)` initialised from `network_`, ready for `fit`.

        After `fit(..., refine=False)` this is the moment estimate: compile the model and train it yourself.

        Args:
            dtype: `"float32"` (default) or `"float64"`: the dtype of the model's weights and computation.

        Raises:
            ValueError: with `dtype="float32"`, the network's output weights overflow float32 (targets
                above about `1e38`) or underflow it (targets below about `1e-38`); the message names the
                largest weight. Fit rescaled targets, or pass `dtype="float64"`. With `"float64"`, this
                Keras does not compute a float64 `Dense` in float64 (PyTorch, keras-team/keras#23704; JAX
                without `JAX_ENABLE_X64=1`).
        """
        self._check_fitted()
        return build_keras_model(self.network_, dtype=dtype)

    # Stages.
    def _check_gaussian(self, X: np.ndarray) -> None:
        if self.input_check == "ignore":
            return
        failures = input_checks.gaussian_check(X, batch_size=self.batch_size)
        if not failures:
            return
        message = (
            "NarrowReLULearner assumes inputs x ~ N(0, I_d), and X does not look like it: "
            + "; ".join(failures)
            + ". Whiten X first (subtract the mean, multiply by the inverse square root of the covariance, "
            "e.g. sklearn.decomposition.PCA(whiten=True)). "
            'Pass input_check="warn" or "ignore" to fit anyway.'
        )
        if self.input_check == "error":
            raise ValueError(message)
        warnings.warn(message, UserWarning, stacklevel=3)

    def _moments(self, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The degree-2 residual of `y` and `M2`, each estimated from the lower-degree residual."""
        mean = float(np.mean(y, dtype=np.float64))
        first = moments.first_moment(X, y, batch_size=self.batch_size)
        linear_residual = moments.low_degree_residual(
            X, y, mean, first, np.zeros((len(first),) * 2), batch_size=self.batch_size
        )
        second = moments.second_moment(X, linear_residual, batch_size=self.batch_size)
        residual = moments.low_degree_residual(X, y, mean, first, second, batch_size=self.batch_size)
        return residual, second

    def _n_contractions(self) -> int:
        return self.k if self.n_contractions is None else self.n_contractions

    def _directions(self, tensor: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.method == "jennrich":
            return decomposition.jennrich(tensor, seed=rng)
        found, _ = decomposition.contraction_directions(
            tensor,
            self.k,
            n_contractions=50 * max(self._n_contractions(), 1),
            merge_angle=self.merge_angle,
            seed=rng,
        )
        # Fewer clusters than k: near-parallel units were merged. Perturbed copies of the strongest let
        # refinement split them again.
        if not len(found):  # an all-zero tensor (a target with no degree-4 part)
            found = np.eye(tensor.shape[0])[:1]
        copies = found[np.arange(self.k - len(found)) % len(found)]
        copies = copies + self.merge_angle * rng.standard_normal(copies.shape) / np.sqrt(copies.shape[1])
        directions = np.concatenate([found, copies])
        return directions / np.linalg.norm(directions, axis=1, keepdims=True)

    def _refine(self, X: np.ndarray, y: np.ndarray, start: ReLUNetwork, rng: np.random.Generator, callbacks):
        """Refines `start`, a network of the targets `y` (both divided by the target scale already)."""
        if self.refine_samples is not None and self.refine_samples < len(X):
            rows = np.sort(rng.choice(len(X), size=self.refine_samples, replace=False))
            X, y = X[rows], y[rows]
        model = build_keras_model(start)
        history = train_square_loss(
            model,
            X,
            y,
            steps=self.refine_steps,
            batch_size=self.refine_batch_size,
            learning_rate=self.learning_rate,
            callbacks=callbacks,
            verbose=self.verbose,
        )
        return network_from_keras(model), history

    def _check_fitted(self) -> None:
        if not hasattr(self, "network_"):
            raise ValueError("This NarrowReLULearner is not fitted yet: call `fit(X, y)` first.")


def target_offset_and_scale(targets: np.ndarray) -> tuple[float, float]:
    """`(offset, scale)`: the mean of `targets` and the power of two nearest the root mean square of
    `targets - offset` (`(0, 1)` for all-zero targets; the power of two nearest `|offset|` for a constant).

    The learner fits `(targets - offset) / scale` and maps the networks back (`scaled_network`), so the fit
    depends neither on the unit nor on the origin of `y`. A power of two divides exactly, so
    `fit(X, 2**m * y)` gives exactly `2**m` times the network of `fit(X, y)`. Why both: the float32 square
    loss of the refinement would overflow for targets above about 1e19, Adam's fixed step size would
    hardly move an output layer of size 1000, and the sampling noise of the moments grows with `|E[y]|`.
    The mean is taken of `targets` divided by a power of two above their largest size, so that neither it
    nor the spread overflows or underflows for any finite float64 targets.
    """
    values = np.asarray(targets, dtype=np.float64)
    largest = float(np.max(np.abs(values), initial=0.0))
    if largest == 0.0:
        return 0.0, 1.0
    unit = math.ldexp(1.0, math.frexp(largest)[1])  # the power of two just above `largest`
    normalised = values / unit  # in [-1, 1], exactly `values` in a new unit
    mean = float(np.mean(normalised))
    spread = math.sqrt(float(np.mean(np.square(normalised - mean))))
    exponent = round(math.log2(spread)) if spread > 0.0 else 0  # a constant: any scale fits zeros
    return mean * unit, math.ldexp(unit, exponent)


def centred_targets(targets: np.ndarray, offset: float, scale: float) -> np.ndarray:
    """`(targets - offset) / scale` in float64, computed so that no step overflows (`offset`, `scale` from
    `target_offset_and_scale`): the targets are divided by a power of two first."""
    values = np.asarray(targets, dtype=np.float64)
    unit = math.ldexp(1.0, math.frexp(max(abs(offset), scale))[1])
    return (values / unit - offset / unit) * (unit / scale)


def scaled_network(network: ReLUNetwork, scale: float, offset: float = 0.0) -> ReLUNetwork:
    """`scale` times `network` plus `offset`: the output layer is linear, so only it changes."""
    return ReLUNetwork(network.hidden_weights, network.output_weights * scale, network.bias * scale + offset)


def check_finite_moments(inputs: np.ndarray, estimates: tuple[np.ndarray, ...], batch_size: int) -> None:
    """Raises `ValueError` when a moment estimate overflowed float64 (before an eigensolver fails on it).

    The targets are centred and scaled already (`target_offset_and_scale`), so the cause is `X`, far
    from unit variance.
    """
    if all(np.all(np.isfinite(estimate)) for estimate in estimates):
        return
    largest = 0.0
    for start in range(0, len(inputs), batch_size):  # in batches: `X` may be a memmap
        rows = np.asarray(inputs[start : start + batch_size], dtype=np.float64)
        largest = max(largest, float(np.max(np.abs(rows), initial=0.0)))
    raise ValueError(
        "The moments of `X` overflow float64: NarrowReLULearner expects x ~ N(0, I_d), and X holds "
        f"values up to {largest:.3g} in size. Whiten X first (subtract the mean, multiply by the inverse "
        "square root of the covariance)."
    )
