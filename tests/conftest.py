"""Test configuration: the Keras backend (and JAX's 64-bit mode) is chosen before anything imports keras."""

import os
import signal
import zlib

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# JAX computes in float32 unless 64-bit types are enabled before it is imported; the float64 checks
# (finite differences, dtype policies) need them.
os.environ.setdefault("JAX_ENABLE_X64", "1")

import keras
import pytest


def seed_for_test(node_id):
    """Seeds Python, NumPy and the backend from a test's node id (`keras.utils.set_random_seed`).

    A test that draws without a seed (an initializer, a layer's noise, `np.random`) would otherwise
    inherit whatever state the tests before it left. Under pytest-xdist which tests ran before it
    on its worker changes from run to run, so such a test could pass or fail by the order alone.
    Keras draws the seeds of unseeded initializers and layers from Python's `random`, so these are
    covered on every Keras in the matrix. Unseeded `keras.random` calls are not on Keras 3.10, whose
    `set_random_seed` leaves its global `SeedGenerator` running: tests pass a seed to those.
    """
    # crc32, not hash(): Python salts str hashes per process, and every worker must agree.
    keras.utils.set_random_seed(zlib.crc32(node_id.encode("utf-8")) & 0x7FFFFFFF)


@pytest.fixture(autouse=True)
def random_state_of_its_own(request):
    """Every test, doctests included, starts from the same random state in any order and on any worker."""
    seed_for_test(request.node.nodeid)


@pytest.fixture
def sigint_handler():
    """`sigint_handler(handler)` sets SIGINT's handler for one test; the one before is back afterwards.

    Tests of Ctrl-C set Python's own handler, `signal.default_int_handler`, as a terminal gives it:
    pytest started as a shell's background job inherits an ignored SIGINT, which the package leaves
    alone (`compare.stop_on_interrupt`).
    """
    before = signal.getsignal(signal.SIGINT)
    yield lambda handler: signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGINT, before)


@pytest.fixture
def dtype_policy():
    """Sets a global dtype policy for one test and restores float32 afterwards."""

    def set_policy(name):
        keras.config.set_dtype_policy(name)

    yield set_policy
    keras.config.set_dtype_policy("float32")


# The layer-level tests: the layers, their ops and what users do with them (train, save, swap into a
# model). The Keras version matrix and the backend jobs run every test but the slow ones (`-m "not
# slow"`); the JAX job adds the slow ones of this list (`-m "layer_level or not slow"`), among them
# the .keras files moved between backends. Paths relative to tests/; a folder takes every test under it.
LAYER_LEVEL = (
    "layers/",
    "ops/",
    "test_backends.py",
    "test_bad_input.py",
    "test_callbacks.py",
    "test_derivative_sparsity.py",
    "test_floor_file.py",
    "test_fuzz_regressions.py",
    "test_keras_bugs.py",
    "test_keras_internals.py",
    "test_measurement.py",
    "test_properties.py",
    "test_registry.py",
    "test_regularizers.py",
    "test_sparsity_callbacks.py",
    "test_surgery.py",
    "test_surgery_sublayers.py",
    # The GPU benchmark checks every layer's forward and backward pass against a float64 reference on
    # JAX (on the lent GPU machine, and in its quick run here on the CPU).
    "test_device_speed.py",
    # The docstring examples users copy (doctests): every backend and Keras must run them as written.
    "../keras_adaptive_acts/layers/",
    "../keras_adaptive_acts/ops/",
    "../keras_adaptive_acts/callbacks/",
    "../keras_adaptive_acts/regularizers.py",
)

# The tests of what the package builds on Keras' own machinery beyond the layers: saving and
# exporting (SavedModel, LiteRT, ONNX), KerasTuner's searches and the backends' distribution. Keras
# changes these between releases, so the floor's job also runs the slow ones among them (`-m
# "keras_integration or not slow"`), and so does the PyTorch job with the layer-level ones: the rest of
# the slow tests (training runs, benchmarks, the docs' pages, Keras Applications) add time there
# without touching another part of Keras. Paths relative to tests/.
KERAS_INTEGRATION = (
    "test_distribution.py",
    "test_jax_distribution.py",
    "test_torch_distribution.py",
    "test_export.py",
    "test_export_review4.py",
    "test_onnx_export.py",
    "test_tuning.py",
)

# How many slow tests a plain `pytest` left out, for the line at the end of its report.
SLOW_LEFT_OUT = pytest.StashKey[int]()


def pytest_addoption(parser):
    parser.addoption(
        "--slow",
        action="store_true",
        help="also run the tests marked slow (end-to-end runs): the full suite",
    )


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "layer_level: the layer tests; the JAX job runs the slow ones among them too"
    )
    config.addinivalue_line(
        "markers",
        "keras_integration: saving, export, tuning and distribution; the floor's job runs the slow ones too",
    )
    config.addinivalue_line(
        "markers",
        "keras_applications: builds a keras.applications model; CI's JAX and PyTorch jobs leave these out",
    )


def pytest_collection_modifyitems(config, items):
    mark_by_path(items)
    skip_tensorflow_only_doctests(items)
    # A plain `pytest` runs the everyday suite; the slow tests (training runs, subprocesses, the
    # SavedModel and distribution checks) run with --slow, or whenever -m chooses by marker (CI's
    # `-m slow` step, the matrix's `-m "not slow"`).
    if config.getoption("--slow") or config.option.markexpr:
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        items[:] = [item for item in items if not item.get_closest_marker("slow")]
        config.hook.pytest_deselected(items=slow)
        config.stash[SLOW_LEFT_OUT] = len(slow)


# `-n auto` (pytest-xdist) starts at most this many workers. Each imports TensorFlow and keeps its
# own compiled functions, so memory grows with the count, while past a few workers the longest tests,
# not the count, set the suite's time.
MOST_WORKERS = 4


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config):
    """`-n auto`: one worker per core this process may use, at most `MOST_WORKERS`."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cores, MOST_WORKERS))


# Test modules whose tests share one costly module-scoped fixture: several processes trained once for
# all the module's tests (tf.distribute, JAX's and PyTorch's distribution, a benchmark's quick run).
# pytest-xdist's default `load` mode spreads a module's tests over the workers, and each worker would
# run the fixture again (the slow job's tf.distribute processes: 106 s and 130 s of setup, once per
# worker). Under `-n` each of these modules goes to one worker whole; every other test is handed out
# one by one as before. Paths relative to tests/.
ONE_WORKER_MODULES = (
    "test_distribution.py",
    "test_jax_distribution.py",
    "test_torch_distribution.py",
    "test_device_speed.py",
)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """`-n` with the default `--dist load`: `ONE_WORKER_MODULES` each on one worker (see there).

    xdist's own way, `xdist_group` marks with `--dist loadgroup`, groups nothing on pytest 9.2: it
    renames the items' node ids through a field pytest no longer reads (pytest-dev/pytest-xdist#1386).
    This scheduler is xdist's `loadscope` with a scope per module for those modules and a scope per
    test for the rest; another `--dist` given on the command line is left to xdist.
    """
    if config.getoption("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    # Loud, not silent, if xdist renames the method: the fixtures would run once per worker again.
    assert hasattr(LoadScopeScheduling, "_split_scope"), "pytest-xdist changed: see ModuleFixtureScheduling"
    tests_folder = os.path.dirname(os.path.abspath(__file__))
    shared = {
        os.path.relpath(os.path.join(tests_folder, module), str(config.rootpath)).replace(os.sep, "/")
        for module in ONE_WORKER_MODULES
    }

    class ModuleFixtureScheduling(LoadScopeScheduling):
        # `_split_scope` is the extension point xdist's own `loadgroup` and `loadfile` override.
        def _split_scope(self, nodeid):
            module = nodeid.split("::", 1)[0]
            return module if module in shared else nodeid

    return ModuleFixtureScheduling(config, log)


def pytest_sessionfinish(session):
    # Under pytest-xdist each worker collects (and leaves out the slow tests) on its own; the
    # controller, which prints the report, learns the count from them (`pytest_testnodedown`).
    worker_output = getattr(session.config, "workeroutput", None)
    if worker_output is not None:
        worker_output["slow_left_out"] = session.config.stash.get(SLOW_LEFT_OUT, 0)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    # Every worker collects the whole suite, so each reports the same count.
    left_out = getattr(node, "workeroutput", {}).get("slow_left_out", 0)
    node.config.stash[SLOW_LEFT_OUT] = max(node.config.stash.get(SLOW_LEFT_OUT, 0), left_out)


def pytest_terminal_summary(terminalreporter, config):
    left_out = config.stash.get(SLOW_LEFT_OUT, 0)
    if left_out:
        terminalreporter.write_line(
            f"{left_out} slow tests (marked slow) were not run: `python -m pytest --slow` runs the full "
            "suite, `python -m pytest -m slow` only those."
        )


# The docstring examples of TensorFlow-only features: a SavedModel is TensorFlow's, and the ONNX
# export converts a TensorFlow graph. On another backend their functions raise the clear error that
# tests/bad_input_cases.py checks, so the examples cannot run as written there.
TENSORFLOW_ONLY_DOCTESTS = ("../keras_adaptive_acts/export/",)


def skip_tensorflow_only_doctests(items):
    if keras.backend.backend() == "tensorflow":
        return
    skip = pytest.mark.skip(
        reason=f"a TensorFlow-only feature's docstring example: it needs the TensorFlow backend, "
        f"not {keras.backend.backend()!r}"
    )
    for item in items:
        if isinstance(item, pytest.DoctestItem) and in_paths(item, TENSORFLOW_ONLY_DOCTESTS):
            item.add_marker(skip)


def in_paths(item, paths):
    """Whether `item`'s file is one of `paths` (relative to tests/; a folder ends in "/")."""
    tests_folder = os.path.dirname(os.path.abspath(__file__))
    relative = os.path.relpath(str(item.path), tests_folder).replace(os.sep, "/")
    return any(relative == path or (path.endswith("/") and relative.startswith(path)) for path in paths)


def mark_by_path(items):
    """The markers given by a test's file: `layer_level` and `keras_integration`."""
    for item in items:
        if in_paths(item, LAYER_LEVEL):
            item.add_marker(pytest.mark.layer_level)
        if in_paths(item, KERAS_INTEGRATION):
            item.add_marker(pytest.mark.keras_integration)
