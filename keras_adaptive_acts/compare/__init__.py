"""Compare activations on a dataset: the engine behind `kaa compare`.

Every activation is trained in the same small multilayer perceptron, with the same seeds, the same
data split and the same budget; only the activation layers differ. The modules, by job:
`datasets` (loading and splitting), `specs` (activation specs such as
`"competitive_relu:competition=l1"`), `experiment` (the model and the runs), `report`
(summaries, the table, result files and the plot) and `interrupts` (Ctrl-C that stops the runs).

The functions take and return plain Python objects (arrays, dicts, lists), so they can be used
from a notebook as well as from the command line:

```python
from keras_adaptive_acts import compare

data = compare.load_dataset("digits")
records = compare.compare_activations(data, ["relu", "competitive_relu"], epochs=5, seeds=2)
print(compare.format_table(compare.summarize(records)))
```
"""

from keras_adaptive_acts.compare.datasets import (
    DATASETS,
    SPLIT_SEED,
    TEST_FRACTION,
    Dataset,
    load_dataset,
    split,
)
from keras_adaptive_acts.compare.experiment import (
    DEFAULT_ACTIVATIONS,
    build_model,
    compare_activations,
    parameter_count,
)
from keras_adaptive_acts.compare.interrupts import InterruptCheck, stop_on_interrupt
from keras_adaptive_acts.compare.report import (
    SUMMARY_FIELDS,
    TABLE_HEADER,
    format_table,
    learning_curves_figure,
    plot_learning_curves,
    summarize,
    write_results,
)
from keras_adaptive_acts.compare.specs import parse_activation, parse_value, repeated_activations

__all__ = [
    "DATASETS",
    "DEFAULT_ACTIVATIONS",
    "SPLIT_SEED",
    "SUMMARY_FIELDS",
    "TABLE_HEADER",
    "TEST_FRACTION",
    "Dataset",
    "InterruptCheck",
    "build_model",
    "compare_activations",
    "format_table",
    "learning_curves_figure",
    "load_dataset",
    "parameter_count",
    "parse_activation",
    "parse_value",
    "plot_learning_curves",
    "repeated_activations",
    "split",
    "stop_on_interrupt",
    "summarize",
    "write_results",
]
