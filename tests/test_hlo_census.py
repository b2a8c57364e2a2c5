"""benchmarks/hlo_census.py: the passes and the memory traffic of a compiled step, read from XLA's output."""

import importlib.util

import benchmark_modules
import numpy as np
import pytest

hlo_census = benchmark_modules.load("hlo_census")

# Written by hand in the form XLA prints an optimized module: a fused square of x (1000 entries), its
# sum by a reduction left on its own, a division of two scalars, a conversion to an 8-bit float, and
# the instructions that move no data. The nested computations come first, as XLA prints them; only
# ENTRY is counted.
HAND_WRITTEN = """HloModule jit_step, entry_computation_layout={(f32[1000]{0})->(f32[], f32[1000]{0})}

%fused_computation (param_0: f32[1000]) -> f32[1000] {
  %param_0 = f32[1000]{0} parameter(0)
  ROOT %multiply.0 = f32[1000]{0} multiply(%param_0, %param_0)
}

ENTRY %main.9 (x.1: f32[1000]) -> (f32[], f32[1000]) {
  %x.1 = f32[1000]{0} parameter(0), metadata={op_name="x"}
  %zero = f32[] constant(0)
  %square_fusion = f32[1000]{0} fusion(%x.1), kind=kLoop, calls=%fused_computation
  %reduce.3 = f32[] reduce(%square_fusion, %zero), dimensions={0}, to_apply=%region_0.1
  %pair = (f32[], f32[1000]{0}) tuple(%reduce.3, %square_fusion)
  %first = f32[] get-tuple-element(%pair), index=0
  %flat = f32[10,100]{1,0} bitcast(%x.1)
  %mean = f32[] divide(%first, %zero)
  %narrow = f8e4m3fn[1000]{0} convert(%x.1)
  ROOT %out = (f32[], f32[1000]{0}) tuple(%mean, %square_fusion)
}
"""


def test_the_hand_written_module_has_four_operations_that_work_three_of_them_over_the_input():
    census = hlo_census.step_census(HAND_WRITTEN, {"bytes accessed": 8004.0, "flops": 2000.0}, 1000)
    # fusion (writes 1000), reduce (reads 1000), divide (scalars), convert (1000); the rest moves no data.
    assert census["operations"] == 4
    assert census["input_sized_operations"] == 3
    # Operands and outputs, by hand: the fusion reads x and writes its square (4000 + 4000 bytes), the
    # reduction reads the square and the zero and writes a scalar (4000 + 4 + 4), the division reads
    # two scalars and writes one (12), the conversion reads x and writes 1000 one-byte floats (5000).
    assert census["bytes_moved"] == 8000 + 4008 + 12 + 5000
    assert census["has_loop"] is False
    # XLA's own figures are kept as they came.
    assert census["xla_bytes_accessed"] == 8004.0 and census["flops"] == 2000.0
    assert census["transcendentals"] is None


# A guard and a loop, as CompetitiveReLU's overflow guard and JAX's random draws compile: what runs on
# every step is counted, not the guard's second branch nor the loop's body.
GUARD_AND_LOOP = """HloModule jit_guarded

ENTRY %main.3 (x.1: f32[1000], p.1: pred[]) -> (f32[10], (s32[], f32[1000])) {
  %x.1 = f32[1000]{0} parameter(0)
  %p.1 = pred[] parameter(1)
  %zero = s32[] constant(0)
  %stats = f32[10]{0} fusion(%x.1), kind=kInput, calls=%statistics
  %arguments = (f32[1000]{0}, f32[10]{0}) tuple(%x.1, %stats)
  %guard = f32[10]{0} conditional(%p.1, %arguments, %arguments), branch_computations={%keep, %recompute}
  %state = (s32[], f32[1000]{0}) tuple(%zero, %x.1)
  %loop = (s32[], f32[1000]{0}) while(%state), condition=%more, body=%round
  ROOT %out = (f32[10]{0}, (s32[], f32[1000]{0})) tuple(%guard, %loop)
}
"""


def test_a_conditional_counts_its_outputs_and_a_loop_its_state():
    census = hlo_census.step_census(GUARD_AND_LOOP, None, 1000)
    assert census["operations"] == 3  # the fusion, the conditional, the loop
    # The fusion reads x and writes 10 floats (4000 + 40); the conditional writes 10 floats (40), not
    # reading x (its first branch passes its statistics on); the loop reads and writes its state,
    # an int and x (4004 + 4004).
    assert census["bytes_moved"] == 4040 + 40 + 8008
    assert census["has_loop"] is True
    assert census["input_sized_operations"] == 2  # the fusion and the loop, not the conditional
    assert census["xla_bytes_accessed"] is None


def test_a_loop_inside_a_called_computation_is_a_loop_too():
    # Newer XLA:CPU wraps JAX's random draws' loop in a call: the step still has a loop.
    loop = "while(%state), condition=%more, body=%round"
    called = GUARD_AND_LOOP.replace(loop, "call(%state), to_apply=%draws")
    nested = "%draws (s: (s32[], f32[1000])) -> (s32[], f32[1000]) {\n"
    nested += "  %s = (s32[], f32[1000]{0}) parameter(0)\n"
    nested += "  ROOT %w = (s32[], f32[1000]{0}) while(%s), condition=%more, body=%round\n}\n\n"
    text = called.replace("ENTRY", nested + "ENTRY")
    census = hlo_census.step_census(text, None, 1000)
    assert census["has_loop"] is True and census["bytes_moved"] == 4040 + 40 + 8008
    assert hlo_census.step_census(HAND_WRITTEN, None, 1000)["has_loop"] is False


def test_entry_operations_reads_names_opcodes_sizes_and_operands_in_both_print_styles():
    operations = {op["name"]: op for op in hlo_census.entry_operations(HAND_WRITTEN)}
    names = ["x.1", "zero", "square_fusion", "reduce.3", "pair", "first", "flat", "mean", "narrow", "out"]
    assert list(operations) == names
    fusion = operations["square_fusion"]
    assert fusion["opcode"] == "fusion" and fusion["elements"] == 1000 and fusion["operands"] == ["x.1"]
    assert operations["reduce.3"]["operands"] == ["square_fusion", "zero"]
    assert operations["pair"]["opcode"] == "tuple" and operations["pair"]["elements"] == 1000
    assert operations["zero"]["elements"] == 1 and operations["flat"]["elements"] == 1000
    assert operations["narrow"]["elements"] == 1000
    # Newer XLA prints names without "%".
    plain = HAND_WRITTEN.replace("%", "")
    assert hlo_census.entry_operations(plain) == list(operations.values())


def test_a_text_without_an_entry_computation_is_refused():
    with pytest.raises(ValueError, match="no ENTRY computation"):
        hlo_census.entry_operations("HloModule m\n")


@pytest.fixture(scope="module")
def jax_runtime():
    if importlib.util.find_spec("jax") is None:
        pytest.skip("JAX is not installed: the census reads steps that JAX compiled (CI's JAX job runs this)")
    return benchmark_modules.load("device_runtimes").JaxRuntime()


def test_a_step_compiled_by_jax_reads_and_writes_at_least_its_arrays(jax_runtime):
    # Lower bounds from what the step must do, not from XLA: a step that returns x * 2 and x + 1 for
    # x of 4096 float32 entries reads x once and writes two arrays of its size.
    jax = jax_runtime.jax
    size = 4096
    x = jax_runtime.array(np.arange(size, dtype=np.float32))
    step = jax.jit(lambda x: (x * 2, x + 1))
    text, cost = jax_runtime.compiled_step(step, x)
    census = hlo_census.step_census(text, cost, size)
    assert census["bytes_moved"] >= 3 * 4 * size
    assert census["operations"] >= 1 and census["input_sized_operations"] == census["operations"]
    # Without a conditional or a loop, the count is XLA's own (its cost analysis counts the same way).
    assert census["bytes_moved"] == pytest.approx(census["xla_bytes_accessed"], rel=0.01)
    # Its results are those of the step itself (the text is of the step that runs).
    doubled, incremented = step(x)
    assert np.array_equal(np.asarray(doubled), 2 * np.arange(size, dtype=np.float32))
    assert np.array_equal(np.asarray(incremented), np.arange(size, dtype=np.float32) + 1)


def test_a_sum_of_squares_reads_its_input_and_a_larger_step_moves_more(jax_runtime):
    jax, jnp = jax_runtime.jax, jax_runtime.jnp
    small, large = (jax_runtime.array(np.ones(size, np.float32)) for size in (1024, 65536))
    step = jax.jit(lambda x: jnp.sum(x * x))
    census_small = hlo_census.step_census(*jax_runtime.compiled_step(step, small), 1024)
    census_large = hlo_census.step_census(*jax_runtime.compiled_step(step, large), 65536)
    assert census_small["bytes_moved"] >= 4 * 1024 and census_large["bytes_moved"] >= 4 * 65536
    assert census_large["bytes_moved"] > census_small["bytes_moved"]
    assert census_large["input_sized_operations"] >= 1


def test_a_guard_that_rarely_runs_is_not_counted_as_xla_counts_it(jax_runtime):
    # XLA's cost analysis adds a conditional's costly branch as if it ran; the census counts what runs
    # while every entry is finite: reading x (to check it) and writing the doubled x, and little more.
    jax, jnp = jax_runtime.jax, jax_runtime.jnp
    x = jax_runtime.array(np.ones((512, 512), np.float32))
    x_bytes = 4 * 512 * 512

    def costly(x):
        return jnp.sin(x) @ jnp.cos(x).T + jnp.sum(x * x, axis=1, keepdims=True) * x

    step = jax.jit(lambda x: jax.lax.cond(jnp.all(jnp.isfinite(x)), lambda x: 2 * x, costly, x))
    census = hlo_census.step_census(*jax_runtime.compiled_step(step, x), 512 * 512)
    assert 2 * x_bytes <= census["bytes_moved"] <= 3 * x_bytes
    # XLA counts more, by whatever the second branch moves as it compiles it (JAX 0.10: about 8 arrays
    # of x's size; 0.11 and 0.12 fuse that branch into fewer).
    assert census["xla_bytes_accessed"] > census["bytes_moved"]
