"""What `device_speed.py` needs from the framework under Keras: JAX's or PyTorch's.

`device_speed.py` checks and times every layer the same way on both Keras backends the lent GPU
machine has (it has no TensorFlow); only these things differ, and each runtime class here is the
one place that knows them for its framework:

- putting an array on the device, and waiting until the device has finished (`wait`);
- one forward + backward step of a model for a fixed upstream gradient (`gradient_step`);
- matrix products in float32 for the checks (a GPU may default to TF32);
- the compiled step's optimized HLO text and XLA's cost analysis (JAX only: PyTorch's steps are eager);
- the small CNN's training step;
- the device and the versions, for the report.

JAX compiles each step with `jax.jit`, as Keras' `fit` does on JAX. PyTorch runs it eagerly, as
Keras' PyTorch backend runs layers and `fit` unless `jit_compile=True` asks for `torch.compile`.
Each framework is imported when its runtime is built, never before: the module imports neither.
"""

from __future__ import annotations

import contextlib
import platform

import keras


class JaxRuntime:
    """Keras on JAX: steps compiled with `jax.jit`, state passed in and out (`stateless_call`)."""

    name = "jax"
    label = "JAX"
    wait_text = "`jax.block_until_ready`"
    step_text = (
        "the step `fit` compiles on JAX (`stateless_call`, loss, `optimizer.stateless_apply` under `jax.jit`)"
    )

    def __init__(self):
        import jax
        import jax.numpy as jnp

        self.jax, self.jnp = jax, jnp

    def array(self, values):
        return self.jnp.asarray(values)

    def wait(self, outputs):
        return self.jax.block_until_ready(outputs)

    def model_state(self, model):
        return [v.value for v in model.trainable_variables], [v.value for v in model.non_trainable_variables]

    def gradient_step(self, model, training: bool):
        """A jitted forward + backward: (output, input gradient, weight gradients, new non-trainable state).

        The objective is `sum(output * upstream)` plus the losses the layer adds (ActivitySparsity's
        penalty), so the input gradient is the vector-Jacobian product with `upstream`. Returning the
        output and every gradient makes XLA compute and write them all.
        """
        jax, jnp = self.jax, self.jnp

        def objective(trainable, non_trainable, x, upstream):
            y, non_trainable, losses = model.stateless_call(
                trainable, non_trainable, x, training=training, return_losses=True
            )
            return jnp.sum(y * upstream) + sum(losses), (y, non_trainable)

        differentiate = jax.grad(objective, argnums=(0, 2), has_aux=True)

        @jax.jit
        def step(trainable, non_trainable, x, upstream):
            (weight_gradients, input_gradient), (y, non_trainable) = differentiate(
                trainable, non_trainable, x, upstream
            )
            return y, input_gradient, weight_gradients, non_trainable

        return step

    def compiled_step(self, step, *arguments) -> tuple[str, dict | None]:
        """The optimized HLO text of `step` compiled for `arguments`, and XLA's cost analysis of it.

        `jax.jit` keeps what it compiled: asked before or after the step first runs, the step is
        compiled once. The cost analysis is a dict on current JAX, a list of one dict on older releases.
        """
        compiled = step.lower(*arguments).compile()
        cost = compiled.cost_analysis()
        if isinstance(cost, (list, tuple)):
            cost = cost[0] if cost else None
        return compiled.as_text(), cost

    def float32_matrix_products(self):
        return self.jax.default_matmul_precision("float32")

    def almost_nothing(self):
        return self.jax.jit(lambda x, upstream: x[0] + upstream[0])

    def cnn_step(self, model, optimizer, loss_function):
        """`run(images, labels)`: one training step, the weights and the optimizer's state carried from
        step to step and donated (as `fit` does) so that XLA updates them in place; returns the loss.
        And `inspect(images, labels)`: the step's optimized HLO text and cost analysis (`compiled_step`)."""
        jax, jnp = self.jax, self.jnp

        def loss(trainable, non_trainable, images, labels):
            logits, non_trainable = model.stateless_call(trainable, non_trainable, images, training=True)
            return loss_function(labels, logits), non_trainable

        value_and_gradient = jax.value_and_grad(loss, has_aux=True)

        def step(state, images, labels):
            trainable, non_trainable, optimizer_state = state
            (loss_value, non_trainable), gradients = value_and_gradient(
                trainable, non_trainable, images, labels
            )
            trainable, optimizer_state = optimizer.stateless_apply(optimizer_state, gradients, trainable)
            return loss_value, (trainable, non_trainable, optimizer_state)

        compiled = jax.jit(step, donate_argnums=0)
        trainable, non_trainable = self.model_state(model)
        # Copies: the donated buffers must not be the model's own variables.
        state = [
            jax.tree_util.tree_map(
                jnp.array, (trainable, non_trainable, [v.value for v in optimizer.variables])
            )
        ]

        def run(images, labels):
            loss_value, state[0] = compiled(state[0], images, labels)
            return loss_value

        def inspect(images, labels):
            return self.compiled_step(compiled, state[0], images, labels)  # lowering donates nothing

        return run, inspect

    def environment(self) -> dict:
        import jaxlib

        device = self.jax.devices()[0]
        return {
            "platform": device.platform,
            "device": device.device_kind,
            "device_count": self.jax.device_count(),
            "framework": f"JAX {self.jax.__version__} (jaxlib {jaxlib.__version__})",
            "framework_versions": {"jax": self.jax.__version__, "jaxlib": jaxlib.__version__},
            "matmul_precision": str(self.jax.config.jax_default_matmul_precision),
        }


class TorchRuntime:
    """Keras on PyTorch: eager steps, gradients by `torch.autograd`, variables updated in place."""

    name = "torch"
    label = "PyTorch"
    wait_text = "`torch.cuda.synchronize` on a GPU"
    step_text = "an eager step as Keras' PyTorch `fit` runs it (`torch.autograd`, `optimizer.apply`)"

    def __init__(self):
        import torch

        self.torch = torch
        self.on_gpu = torch.cuda.is_available()  # where Keras' PyTorch backend puts its tensors

    def array(self, values):
        return keras.ops.convert_to_tensor(values)

    def wait(self, outputs):
        if self.on_gpu:
            self.torch.cuda.synchronize()
        return outputs

    def model_state(self, model):
        return None, None  # eager: the layers hold their state

    def gradient_step(self, model, training: bool):
        """An eager forward + backward: (output, input gradient, weight gradients, None), the objective
        as for JAX. The layers' state (a noise stream's position) advances in place."""
        torch = self.torch
        weights = [variable.value for variable in model.trainable_variables]

        def step(trainable, non_trainable, x, upstream):
            x = x.detach().requires_grad_(True)
            y = model(x, training=training)
            objective = torch.sum(y * upstream) + sum(model.losses)
            gradients = torch.autograd.grad(objective, [x, *weights], allow_unused=True)
            return y.detach(), gradients[0], gradients[1:], None

        return step

    def compiled_step(self, step, *arguments):
        """None: the steps run eagerly, so there is no compiled module to read."""
        return None

    @contextlib.contextmanager
    def float32_matrix_products(self):
        backends = self.torch.backends
        saved = backends.cuda.matmul.allow_tf32, backends.cudnn.allow_tf32
        backends.cuda.matmul.allow_tf32 = backends.cudnn.allow_tf32 = False
        try:
            yield
        finally:
            backends.cuda.matmul.allow_tf32, backends.cudnn.allow_tf32 = saved

    def almost_nothing(self):
        return lambda x, upstream: x[0] + upstream[0]

    def cnn_step(self, model, optimizer, loss_function):
        """`run(images, labels)`: one eager training step (gradients, then `optimizer.apply`); the loss.
        And `inspect`, which gives None: there is no compiled step."""
        torch = self.torch
        variables = model.trainable_variables

        def run(images, labels):
            loss_value = loss_function(labels, model(images, training=True))
            gradients = torch.autograd.grad(loss_value, [variable.value for variable in variables])
            optimizer.apply(gradients, variables)
            return loss_value.detach()

        return run, lambda images, labels: None

    def environment(self) -> dict:
        torch = self.torch
        return {
            "platform": "gpu" if self.on_gpu else "cpu",
            "device": torch.cuda.get_device_name(0) if self.on_gpu else (platform.processor() or "CPU"),
            "device_count": torch.cuda.device_count() if self.on_gpu else 1,
            "framework": f"PyTorch {torch.__version__}",
            "framework_versions": {"torch": torch.__version__},
            "matmul_precision": f"allow_tf32={torch.backends.cuda.matmul.allow_tf32}",
        }


RUNTIMES = {"jax": JaxRuntime, "torch": TorchRuntime}
